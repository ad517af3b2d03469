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
import time
from pathlib import Path

import pytest

from mngr.remote_helper import files
from tests.conftest import MNGR_BIN, wait_for

PARTIAL = 3
ROUNDS = 12
SIZES = {"small.bin": 1024 * 1024, "large.bin": 20 * 1024 * 1024}  # one reply; several parts


BLOCK = 8 * 8192
# A rewrite that stalls (its thread not scheduled) leaves the file half old, half new, with
# timestamps that no longer move: a state the file really had, indistinguishable from a
# finished one, which a reader may take once it has held for files.SETTLE_NS. Stalls at
# least this long are noted as such states (the timestamps' coarse clock can make a stall
# look up to one tick longer than it was).
QUIET_NS = files.SETTLE_NS // 2


def _version_of(path: Path) -> int | None:
    """The version ``path`` holds, None if its bytes are of several versions."""
    data = path.read_bytes()
    first = data[:8]
    return struct.unpack(">Q", first)[0] if data == first * (len(data) // 8) else None


def _half_rewritten(path: Path) -> tuple[str, int, int] | None:
    """(name, version, blocks) if ``path`` is version ``version`` for its first ``blocks``
    blocks and the version before it after them."""
    data = path.read_bytes()
    version = struct.unpack(">Q", data[:8])[0]
    new, old = struct.pack(">Q", version), struct.pack(">Q", version - 1)
    blocks = 0
    while blocks * BLOCK < len(data) and data[blocks * BLOCK:(blocks + 1) * BLOCK] == new * (BLOCK // 8):
        blocks += 1
    rest = data[blocks * BLOCK:]
    return (path.name, version, blocks) if rest == old * (len(rest) // 8) else None


class _Writer:
    """Rewrites the files in ``root`` in place, version after version, until stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 1
        self.quiet: set[tuple[str, int, int]] = set()  # half-written states that held still
        # (name, version, blocks written, when the last block was written): where it is now
        self.position: tuple[str, int, int, int] = ("", 0, 0, 0)
        for name, size in SIZES.items():
            self._rewrite(name, size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rewrite(self, name: str, size: int) -> None:
        """Rewrite file ``name`` in place, in small writes, as version ``self.version``:
        every 8 bytes say the version and the mtime is ``version`` seconds. Each pause
        between two writes long enough for the half-written file to look settled is noted."""
        path, version = self.root / name, self.version
        block = struct.pack(">Q", version) * (BLOCK // 8)
        with open(path, "r+b" if path.exists() else "wb") as output:
            written_at = None
            for blocks in range(size // len(block)):
                output.write(block)
                output.flush()
                # Measured once the write is done: the thread may stall after any look taken
                # before it, and the state before it holds until its bytes land.
                landed_at = time.monotonic_ns()
                if written_at is not None and landed_at - written_at >= QUIET_NS:
                    self.quiet.add((name, version, blocks))
                written_at = landed_at
                self.position = (name, version, blocks + 1, written_at)
        os.utime(path, ns=(version * 10**9, version * 10**9))

    def held_still(self, state: tuple[str, int, int] | None, since_ns: int) -> bool:
        """Whether half-written ``state`` is one the file held still in: noted, or where the
        writer stands now, having written nothing since ``since_ns`` (so nothing during a
        read made after it)."""
        name, version, blocks, written_at = self.position
        return state is not None and (state in self.quiet or (state == (name, version, blocks)
                                                              and written_at < since_ns))

    def _run(self) -> None:
        pauses = random.Random(7)
        # Pauses let some reads find the file still (a file rewritten without pause is
        # always skipped); rewrites start at any moment of a read.
        while not self._stop.wait(pauses.uniform(0, 0.1)):
            self.version += 1
            for name, size in SIZES.items():
                self._rewrite(name, size)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _transferred(sandbox, action: str, local: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """``mngr ACTION box LOCAL`` and when it started (monotonic ns)."""
    started = time.monotonic_ns()
    return sandbox.mngr(action, "box", str(local)), started


def _assert_consistent(root: Path, outcome: subprocess.CompletedProcess[str], writer: _Writer, started: int) -> int:
    """Each file is absent or one whole version with that version's mtime (or a half-written
    state the writer held still in); the number of files reported as skipped."""
    assert outcome.returncode in (0, PARTIAL), outcome.stderr
    skipped = 0
    for name in SIZES:
        if f"{name}: kept changing while it was read" in outcome.stderr:
            skipped += 1
        target = root / name
        if target.exists():
            version = _version_of(target)
            if version is None:
                state = _half_rewritten(target)
                assert writer.held_still(state, started), f"{name} landed torn ({state})"
                continue
            assert target.stat().st_mtime_ns == version * 10**9, f"{name}: another version's mtime"
    assert not list(root.glob(".mngr-part.*"))
    return skipped


def test_a_file_rewritten_during_a_pull_lands_as_one_version_or_is_skipped(sandbox, agent_dir: Path) -> None:
    local = sandbox.root / "local"
    landed = 0
    with _Writer(agent_dir) as writer:
        for _ in range(ROUNDS):
            pulled, started = _transferred(sandbox, "pull", local)
            landed += len(SIZES) - _assert_consistent(local, pulled, writer, started)
    assert landed, "every pull was skipped: the race was never taken"
    final = sandbox.mngr("pull", "box", str(local))
    assert final.returncode == 0, final.stderr
    for name in SIZES:
        assert (local / name).read_bytes() == (agent_dir / name).read_bytes()


def test_a_file_rewritten_during_a_push_lands_as_one_version_or_is_skipped(sandbox, agent_dir: Path) -> None:
    local = sandbox.root / "local"
    local.mkdir()
    with _Writer(local) as writer:
        for _ in range(ROUNDS):
            pushed, started = _transferred(sandbox, "push", local)
            _assert_consistent(agent_dir, pushed, writer, started)
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


class _SwapFiles:
    """An editor's swap and backup files in ``root``: made and removed within a few ms,
    over and over, in a few directories, until stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        places = [self.root, self.root / "src", self.root / "src" / "deep"]
        while not self._stop.is_set():
            for place in places:
                swap = place / f".notes.txt.swp{self.made % 3}"
                swap.write_bytes(os.urandom(4096))
                backup = place / f"notes.txt~{self.made % 2}"
                backup.write_bytes(b"backup")
                swap.unlink()
                backup.unlink()
                self.made += 1

    def __enter__(self) -> _SwapFiles:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _only_swap_files_missed(outcome: subprocess.CompletedProcess[str]) -> None:
    assert outcome.returncode in (0, PARTIAL), outcome.stderr
    for line in outcome.stderr.splitlines():
        if line.startswith(("mngr push: skipped", "mngr pull: skipped")):
            name = line.split(": ")[1].split(" ", 1)[1].rsplit("/", 1)[-1]
            assert ".swp" in name or name.startswith("notes.txt~"), line
            # Gone, or replaced by a new file of the same name while it was read (the editor
            # makes each name again and again): either way not sent, and said so.
            assert line.endswith((": vanished before it could be sent", ": kept changing while it was read")), line


def _project(root: Path, version: int) -> dict[str, bytes]:
    contents = {f"src/deep/file{index}.txt": f"{index} of version {version}\n".encode() for index in range(30)}
    contents.update({f"src/mod{index}.py": f"x = {version}\n".encode() * (index + 1) for index in range(30)})
    for path, data in contents.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return contents


@pytest.mark.alone  # the swap files race the transfers only if neither is starved of the CPU
def test_short_lived_files_during_a_push_or_pull_cost_only_themselves(sandbox, agent_dir: Path) -> None:
    """Swap files that live a few ms, appearing and vanishing between the listing and the
    read, are at worst reported as skipped: every real file lands, in every round."""
    local = sandbox.root / "local"
    made = 0  # swap files made while a transfer ran, over every round
    for version in range(1, 6):
        contents = _project(local, version)
        with _SwapFiles(local) as swaps:
            pushed = sandbox.mngr("push", "box", str(local))
        made += swaps.made
        _only_swap_files_missed(pushed)
        for path, data in contents.items():
            assert (agent_dir / path).read_bytes() == data, path
        contents = _project(agent_dir, version * 10)
        with _SwapFiles(agent_dir) as swaps:
            pulled = sandbox.mngr("pull", "box", str(local))
        made += swaps.made
        _only_swap_files_missed(pulled)
        for path, data in contents.items():
            assert (local / path).read_bytes() == data, path
    assert made > 100, "the swap files never raced the transfers"
