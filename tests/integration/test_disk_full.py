"""A host whose disk is full: every command that must write fails with a clear error, and
what was there before stays intact (host dir and work dir on a small tmpfs of the test's own)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(sandbox) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    mount_point = sandbox.root / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        sandbox.stop_daemons()
        sandbox.tmux("kill-server")
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full; the file stays (remove it to free space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def _one_line(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "No space left on device" in result.stderr, result.stderr


def test_a_full_disk_is_a_clear_error_and_the_previous_state_stays(sandbox, small_disk: Path) -> None:
    host_dir, work = small_disk / "host", small_disk / "work"
    work.mkdir()
    (work / "kept.txt").write_text("before the disk filled\n")
    sandbox.env["MNGR_HOST_DIR"] = str(host_dir)
    created = sandbox.mngr("create", "first", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    [first_dir] = (host_dir / "agents").iterdir()
    record_before = (first_dir / "record.json").read_text()
    source = sandbox.root / "source"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(300_000))
    (source / "kept.txt").write_text("a new version\n")

    filler = _fill(small_disk)
    _one_line(sandbox.mngr("create", "second", "command", "--no-connect", "--work-dir", str(work), "--",
                           "sleep", "600"))
    _one_line(sandbox.mngr("push", "first", str(source)))
    listed = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
    assert [(agent["name"], agent["state"]) for agent in listed] in ([("first", "RUNNING")], [("first", "WAITING")])
    assert sandbox.sessions() == ["mngr-first"]
    assert [path.name for path in (host_dir / "agents").iterdir()] == [first_dir.name]  # nothing half-made
    assert (first_dir / "record.json").read_text() == record_before
    assert sorted(path.name for path in work.iterdir()) == ["kept.txt"]  # no part file, nothing half-written
    assert (work / "kept.txt").read_text() == "before the disk filled\n"

    filler.unlink()  # space again: everything works
    assert sandbox.mngr("push", "first", str(source)).returncode == 0
    assert (work / "big.bin").read_bytes() == (source / "big.bin").read_bytes()
    again = sandbox.mngr("create", "second", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert again.returncode == 0, again.stderr


def test_a_disk_filling_mid_push_with_batches_in_flight_fails_cleanly(sandbox, small_disk: Path) -> None:
    """The push's batches go several at once: the one that meets the full disk fails the push
    with its own error, the ones after it land nothing, and no file is left torn."""
    host_dir, work = small_disk / "host", small_disk / "work"
    work.mkdir()
    sandbox.env["MNGR_HOST_DIR"] = str(host_dir)
    created = sandbox.mngr("create", "first", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    source = sandbox.root / "source"
    source.mkdir()
    for index in range(40):  # 12 MB in 300 KB files: three batches, the disk holds 4 MB
        (source / f"file{index:02}.bin").write_bytes(os.urandom(300_000))

    _one_line(sandbox.mngr("push", "first", str(source)))
    landed = sorted(path.name for path in work.iterdir())
    assert landed, "the first batch fits on the disk"
    assert len(landed) < 40
    for name in landed:  # whole files only: no part file, nothing cut short
        assert (work / name).read_bytes() == (source / name).read_bytes(), name

    (source / "file00.bin").unlink()  # room again: the push finishes
    for name in landed:
        (work / name).unlink(missing_ok=True)
    kept = sorted(path.name for path in source.iterdir())[:10]
    for path in source.iterdir():
        if path.name not in kept:
            path.unlink()
    assert sandbox.mngr("push", "first", str(source)).returncode == 0
    assert sorted(path.name for path in work.iterdir()) == kept
