"""A large file the receiving side already has in another version travels as a delta, both
ways, over a real sshd: the result is byte-exact, with the sender's mode and mtime, and
the channel carries little more than the change (counted by mngr's --format json)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_ssh import create_remote, ssh_host  # noqa: F401 (a fixture)
from tests.sshd import SshHost, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

SIZE = 8 * 1024 * 1024
SMALL_CHANGE_WIRE = 256 * 1024  # signatures (~10 KB), a few blocks of ~10 KB, the manifests


def _one_byte(data: bytes) -> bytes:
    return data[:3_000_000] + bytes([data[3_000_000] ^ 1]) + data[3_000_001:]


def _scattered(data: bytes) -> bytes:
    changed = bytearray(data)
    for at in range(100_000, len(changed), 900_000):
        changed[at] ^= 0x5A
    return bytes(changed)


EDITS: dict[str, Callable[[bytes], bytes]] = {
    "one byte changed in place": _one_byte,
    "bytes changed here and there": _scattered,
    "bytes inserted at the start": lambda data: b"new header " * 50 + data,
    "bytes inserted in the middle": lambda data: data[:4_000_000] + os.urandom(20_000) + data[4_000_000:],
    "bytes deleted": lambda data: data[:2_000_000] + data[2_030_000:],
    "shrunk": lambda data: data[: SIZE - 1_000_000],
    "grown": lambda data: data + os.urandom(30_000),
}


def _own(path: Path, host: SshHost) -> None:
    os.chown(path, host.user.pw_uid, host.user.pw_gid)


def _transfer(sandbox, action: str, local: Path) -> dict:
    result = sandbox.mngr(action, "far", str(local), "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _remote_work(sandbox, host: SshHost) -> Path:
    work = host.remote_root / "work"
    work.mkdir()
    _own(work, host)
    assert create_remote(sandbox, "far", "--work-dir", str(work)).returncode == 0
    return work


def _cases() -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(11)
    cases = []
    for name, edit in EDITS.items():
        old = rng.randbytes(SIZE)
        cases.append((name, old, edit(old)))
    zeros = bytes(SIZE)
    cases.append(("all zeros, then one byte changed", zeros, zeros[:5_000_000] + b"\1" + zeros[5_000_001:]))
    return cases


def test_a_changed_large_file_is_pushed_as_a_delta(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    for index, (name, old, new) in enumerate(_cases()):
        file_name = f"f{index}.bin"
        (local / file_name).write_bytes(old)
        whole = _transfer(sandbox, "push", local)
        assert (work / file_name).read_bytes() == old, name
        (local / file_name).write_bytes(new)
        os.chmod(local / file_name, 0o640)
        os.utime(local / file_name, ns=(1_650_000_000 * 10**9 + index,) * 2)
        changed = _transfer(sandbox, "push", local)
        assert (work / file_name).read_bytes() == new, name
        info = (work / file_name).stat()
        assert (info.st_mode & 0o777, info.st_mtime_ns) == (0o640, 1_650_000_000 * 10**9 + index), name
        assert whole["wire"]["sent"] > len(old) // 2 or name.startswith("all zeros"), name
        assert changed["wire"]["sent"] < SMALL_CHANGE_WIRE, (name, changed["wire"])
    assert not [path.name for path in work.iterdir() if path.name.startswith(".mngr-part")]


def test_a_changed_large_file_is_pulled_as_a_delta(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    for index, (name, old, new) in enumerate(_cases()):
        file_name = f"f{index}.bin"
        (work / file_name).write_bytes(old)
        _own(work / file_name, ssh_host)
        whole = _transfer(sandbox, "pull", local)
        assert (local / file_name).read_bytes() == old, name
        (work / file_name).write_bytes(new)
        os.chmod(work / file_name, 0o640)
        os.utime(work / file_name, ns=(1_650_000_000 * 10**9 + index,) * 2)
        changed = _transfer(sandbox, "pull", local)
        assert (local / file_name).read_bytes() == new, name
        info = (local / file_name).stat()
        assert (info.st_mode & 0o777, info.st_mtime_ns) == (0o640, 1_650_000_000 * 10**9 + index), name
        assert whole["wire"]["received"] > len(old) // 2 or name.startswith("all zeros"), name
        assert changed["wire"]["received"] < SMALL_CHANGE_WIRE, (name, changed["wire"])
    assert not [path.name for path in local.iterdir() if path.name.startswith(".mngr-part")]


def _flip(path: Path, at: int, mtime_ns: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return bytes(data)


def test_pulls_one_after_another_sign_the_local_file_from_what_the_last_one_learnt(
        sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    _write(work / "f.bin", random.Random(13).randbytes(SIZE), ssh_host)
    _transfer(sandbox, "pull", local)
    kept = sandbox.state_dir / "signatures"
    for round_index, at in enumerate((1_000_000, 5_000_000, 7_777_777)):
        wanted = _flip(work / "f.bin", at, 1_660_000_000 * 10**9 + round_index)
        moved = _transfer(sandbox, "pull", local)
        assert (local / "f.bin").read_bytes() == wanted
        assert moved["wire"]["received"] < SMALL_CHANGE_WIRE
        assert len(list(kept.iterdir())) == 1  # what the rebuild learnt, for the next pull
    # Changed here since: what was kept is of a version that is gone, and is not used.
    _flip(local / "f.bin", 2_000_000, 1_660_000_000 * 10**9 + 2)
    wanted = _flip(work / "f.bin", 3_000_000, 1_670_000_000 * 10**9)
    moved = _transfer(sandbox, "pull", local)
    assert (local / "f.bin").read_bytes() == wanted
    assert moved["wire"]["received"] < SMALL_CHANGE_WIRE
    assert _parts(local) == []


def test_a_file_of_several_parts_is_pulled_as_a_delta(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    from mngr.controller.sync_delta import PULL_PART_BYTES

    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    size = 2 * PULL_PART_BYTES + 5_000_000
    old = random.Random(15).randbytes(size)
    _write(work / "f.bin", old, ssh_host)
    _transfer(sandbox, "pull", local)
    new = bytearray(old)
    new[1_000_000] ^= 1
    new[PULL_PART_BYTES + 7] ^= 1
    new[PULL_PART_BYTES + 3_000_000:PULL_PART_BYTES + 3_000_000] = os.urandom(5000)  # shifts every later part
    new[-10] ^= 1
    _write(work / "f.bin", bytes(new), ssh_host)
    moved = _transfer(sandbox, "pull", local)
    assert (local / "f.bin").read_bytes() == new
    assert moved["wire"]["received"] < 2 * SMALL_CHANGE_WIRE, moved["wire"]
    assert _parts(local) == []


def test_pushes_one_after_another_land_exactly_what_was_sent(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    (local / "f.bin").write_bytes(random.Random(14).randbytes(SIZE))
    _transfer(sandbox, "push", local)
    for round_index, at in enumerate((100, 4_000_000, SIZE - 1)):
        wanted = _flip(local / "f.bin", at, 1_660_000_000 * 10**9 + round_index)
        moved = _transfer(sandbox, "push", local)
        assert (work / "f.bin").read_bytes() == wanted
        assert moved["wire"]["sent"] < SMALL_CHANGE_WIRE
    # Changed on the host since: the host daemon's signatures of the version it landed are not used.
    _flip(work / "f.bin", 2_000_000, 1_660_000_000 * 10**9 + 5)
    wanted = _flip(local / "f.bin", 6_000_000, 1_670_000_000 * 10**9)
    moved = _transfer(sandbox, "push", local)
    assert (work / "f.bin").read_bytes() == wanted
    assert moved["wire"]["sent"] < SMALL_CHANGE_WIRE
    assert _parts(work) == []


def test_a_file_unlike_the_old_one_still_arrives_whole(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    work = _remote_work(sandbox, ssh_host)
    source, target = sandbox.root / "source", sandbox.root / "target"
    source.mkdir()
    target.mkdir()
    (source / "push.bin").write_bytes(os.urandom(SIZE))
    (work / "pull.bin").write_bytes(os.urandom(SIZE))
    _own(work / "pull.bin", ssh_host)
    _transfer(sandbox, "push", source)
    _transfer(sandbox, "pull", target)
    pushed, pulled = os.urandom(SIZE), os.urandom(SIZE)
    (source / "push.bin").write_bytes(pushed)
    (work / "pull.bin").write_bytes(pulled)
    assert _transfer(sandbox, "push", source)["wire"]["sent"] > SIZE
    assert _transfer(sandbox, "pull", target)["wire"]["received"] > SIZE
    assert (work / "push.bin").read_bytes() == pushed
    assert (target / "pull.bin").read_bytes() == pulled
    assert (target / "push.bin").read_bytes() == pushed


class _Toucher:
    """Rewrites the first 4 KiB of a file in place with the bytes it already has, over and
    over: its version (mtime, ctime) keeps changing, its content (old or new) does not."""

    def __init__(self, path: Path, head: bytes) -> None:
        self.path, self.head = path, head
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            with contextlib.suppress(OSError), open(self.path, "r+b") as handle:
                handle.write(self.head)

    def __enter__(self) -> _Toucher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("action", ["push", "pull"])
def test_a_receiving_file_that_changes_during_the_rebuild_is_not_rebuilt_but_sent_whole(
        sandbox, ssh_host: SshHost, action: str) -> None:  # noqa: F811
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    source, target = (local, work) if action == "push" else (work, local)
    old = random.Random(12).randbytes(SIZE)
    new = _one_byte(old)
    _write(target / "f.bin", old, ssh_host)
    _write(source / "f.bin", new, ssh_host)
    with _Toucher(target / "f.bin", old[:4096]):
        moved = _transfer(sandbox, action, local)
    assert (target / "f.bin").read_bytes() == new
    carried = moved["wire"]["sent" if action == "push" else "received"]
    assert carried > SIZE, "the delta could not have landed: the file went whole"
    assert _parts(target) == []


def _write(path: Path, data: bytes, host: SshHost) -> None:
    path.write_bytes(data)
    _own(path, host)


def _parts(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir() if path.name.startswith(".mngr-part")]
