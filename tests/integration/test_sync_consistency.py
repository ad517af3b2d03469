"""A copy is a version the file really had: content, mode and mtime of one moment, landed
whole. A file rewritten in place while it is read is read again or skipped (exit status
3), never landed torn or with another version's mtime. Real mngr processes on the local
host; large files over a real sshd in test_sync_large.py."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import threading
from pathlib import Path

from mngr.remote_helper import files
from tests.conftest import MNGR_BIN, wait_for

PARTIAL = 3
ROUNDS = 12
SIZES = {"small.bin": 1024 * 1024, "large.bin": 20 * 1024 * 1024}  # one reply; several parts


def _write_version(path: Path, version: int, size: int) -> None:
    """Rewrite ``path`` in place, in small writes, as version ``version``: every 8 bytes say
    the version and the mtime is ``version`` seconds."""
    block = struct.pack(">Q", version) * 8192
    with open(path, "r+b" if path.exists() else "wb") as output:
        for _ in range(size // len(block)):
            output.write(block)
            output.flush()
    os.utime(path, ns=(version * 10**9, version * 10**9))


def _version_of(path: Path) -> int | None:
    """The version ``path`` holds, None if its bytes are of several versions."""
    data = path.read_bytes()
    first = data[:8]
    return struct.unpack(">Q", first)[0] if data == first * (len(data) // 8) else None


class _Writer:
    """Rewrites the files in ``root`` in place, version after version, until stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 1
        for name, size in SIZES.items():
            _write_version(root / name, self.version, size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pauses = random.Random(7)
        # Pauses let some reads find the file still (a file rewritten without pause is
        # always skipped); rewrites start at any moment of a read.
        while not self._stop.wait(pauses.uniform(0, 0.1)):
            self.version += 1
            for name, size in SIZES.items():
                _write_version(self.root / name, self.version, size)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _assert_consistent(root: Path, outcome: subprocess.CompletedProcess[str]) -> int:
    """Each file is absent or one whole version with that version's mtime; the number of
    files reported as skipped."""
    assert outcome.returncode in (0, PARTIAL), outcome.stderr
    skipped = 0
    for name in SIZES:
        if f"{name}: kept changing while it was read" in outcome.stderr:
            skipped += 1
        target = root / name
        if target.exists():
            version = _version_of(target)
            assert version is not None, f"{name} landed torn"
            assert target.stat().st_mtime_ns == version * 10**9, f"{name}: another version's mtime"
    assert not list(root.glob(".mngr-part.*"))
    return skipped


def test_a_file_rewritten_during_a_pull_lands_as_one_version_or_is_skipped(sandbox, agent_dir: Path) -> None:
    local = sandbox.root / "local"
    landed = 0
    with _Writer(agent_dir):
        for _ in range(ROUNDS):
            pulled = sandbox.mngr("pull", "box", str(local))
            landed += len(SIZES) - _assert_consistent(local, pulled)
    assert landed, "every pull was skipped: the race was never taken"
    final = sandbox.mngr("pull", "box", str(local))
    assert final.returncode == 0, final.stderr
    for name in SIZES:
        assert (local / name).read_bytes() == (agent_dir / name).read_bytes()


def test_a_file_rewritten_during_a_push_lands_as_one_version_or_is_skipped(sandbox, agent_dir: Path) -> None:
    local = sandbox.root / "local"
    local.mkdir()
    with _Writer(local):
        for _ in range(ROUNDS):
            pushed = sandbox.mngr("push", "box", str(local))
            _assert_consistent(agent_dir, pushed)
    final = sandbox.mngr("push", "box", str(local))
    assert final.returncode == 0, final.stderr
    for name in SIZES:
        assert (local / name).read_bytes() == (agent_dir / name).read_bytes()


def test_a_pull_killed_mid_file_leaves_nothing_torn_and_the_next_one_finishes(sandbox, agent_dir: Path) -> None:
    content = os.urandom(160 * 1024 * 1024)
    (agent_dir / "big.bin").write_bytes(content)
    local = sandbox.root / "local"
    local.mkdir()
    (local / "big.bin").write_bytes(b"the old version")
    pulling = subprocess.Popen([str(MNGR_BIN), "pull", "box", str(local)], env=sandbox.env,
                               cwd=sandbox.work_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = local / files.part_name("big.bin")
    wait_for(lambda: part.exists() or pulling.poll() is not None, "a part on disk")
    pulling.send_signal(signal.SIGKILL)
    assert pulling.wait() == -signal.SIGKILL, "the pull ended before it could be cut"
    landed = (local / "big.bin").read_bytes()
    assert landed in (b"the old version", content), "the target is either untouched or complete"
    finished = sandbox.mngr("pull", "box", str(local))
    assert finished.returncode == 0, finished.stderr
    assert (local / "big.bin").read_bytes() == content
    assert not list(local.glob(".mngr-part.*"))
