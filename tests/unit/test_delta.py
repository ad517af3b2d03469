"""Delta transfer's pieces in-process: signatures of an old file, the delta of a new one
against them, and the rebuild from both, byte-exact, sending little for small changes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mngr.remote_helper import delta, files
from mngr.remote_helper.wire import RequestFailed

BLOCK = delta.MIN_BLOCK


def _delta(old: bytes, new: bytes, tmp: Path, block: int = BLOCK) -> tuple[list[tuple[bytes, int, bytes]], int]:
    """(chunks of operations, literal bytes) of ``new`` against ``old``."""
    (tmp / "old").write_bytes(old)
    (tmp / "new").write_bytes(new)
    old_fd = os.open(tmp / "old", os.O_RDONLY)
    new_fd = os.open(tmp / "new", os.O_RDONLY)
    try:
        records = delta.signatures(old_fd, len(old), block)
        maker = delta.DeltaMaker(new_fd, len(new), records, block, len(old), chunk_bytes=4096)
        chunks = list(maker)
        return chunks, maker.literal_bytes
    finally:
        os.close(old_fd)
        os.close(new_fd)


def _rebuilt(old: bytes, new: bytes, tmp: Path, block: int = BLOCK) -> tuple[bytes, int]:
    chunks, literal = _delta(old, new, tmp, block)
    old_fd = os.open(tmp / "old", os.O_RDONLY)
    out_fd = os.open(tmp / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for ops, covered, digest in chunks:
            written, made = delta.apply_ops(ops, old_fd, block, len(old), out_fd)
            assert (written, made) == (covered, digest)  # each chunk makes what the sender read
    finally:
        os.close(old_fd)
        os.close(out_fd)
    return (tmp / "out").read_bytes(), literal


def _edited(old: bytes, edits: list[tuple[str, float, int]], rng: random.Random) -> bytes:
    new = bytearray(old)
    for kind, where, length in edits:
        at = int(where * len(new))
        if kind == "insert":
            new[at:at] = rng.randbytes(length)
        elif kind == "delete":
            del new[at:at + length]
        elif kind == "replace":
            new[at:at + length] = rng.randbytes(min(length, len(new) - at))
        else:  # a block moved elsewhere
            moved = bytes(new[at:at + length])
            del new[at:at + length]
            to = int(rng.random() * len(new))
            new[to:to] = moved
    return bytes(new)


@settings(derandomize=True, deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # each example rewrites its files
@given(seed=st.integers(0, 2**32), size=st.integers(0, 20 * BLOCK), low_entropy=st.booleans(),
       edits=st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "move"]), st.floats(0, 1),
                                st.integers(1, 3 * BLOCK)), max_size=4))
def test_a_rebuild_from_the_delta_is_the_new_file(tmp_path: Path, seed: int, size: int, low_entropy: bool,
                                                   edits: list[tuple[str, float, int]]) -> None:
    rng = random.Random(seed)
    old = bytes(rng.choice(b"\0\1") for _ in range(size)) if low_entropy else rng.randbytes(size)
    new = _edited(old, edits, rng)
    rebuilt, literal = _rebuilt(old, new, tmp_path)
    assert rebuilt == new
    assert literal <= len(new)


@pytest.mark.parametrize(("name", "edit"), [
    ("one byte changed", lambda data: data[:300_000] + bytes([data[300_000] ^ 1]) + data[300_001:]),
    ("bytes inserted at the start", lambda data: b"inserted!" * 100 + data),
    ("bytes inserted in the middle", lambda data: data[:500_000] + b"x" * 5000 + data[500_000:]),
    ("bytes deleted", lambda data: data[:400_000] + data[420_000:]),
    ("a large part deleted", lambda data: data[:100_000] + data[700_000:]),
    ("shrunk", lambda data: data[:700_000]),
    ("grown", lambda data: data + b"y" * 3000),
])
def test_a_small_change_sends_little(tmp_path: Path, name: str, edit) -> None:
    old = random.Random(1).randbytes(1024 * 1024)
    new = edit(old)
    rebuilt, literal = _rebuilt(old, new, tmp_path)
    assert rebuilt == new
    assert literal <= 5000 + 3 * BLOCK, name


def test_low_entropy_content_with_one_byte_changed_sends_little(tmp_path: Path) -> None:
    old = bytes(4 * 1024 * 1024)
    new = old[:2_000_000] + b"\1" + old[2_000_001:]
    rebuilt, literal = _rebuilt(old, new, tmp_path)
    assert rebuilt == new
    assert literal <= 2 * BLOCK


def test_scattered_changes_cost_a_block_each(tmp_path: Path) -> None:
    old = random.Random(2).randbytes(2 * 1024 * 1024)
    new = bytearray(old)
    for at in range(100_000, len(new), 400_000):
        new[at] ^= 0xFF
    rebuilt, literal = _rebuilt(old, bytes(new), tmp_path)
    assert rebuilt == new
    assert literal <= 6 * BLOCK


def test_an_unrelated_file_is_all_literal_and_still_exact(tmp_path: Path) -> None:
    old = random.Random(3).randbytes(3 * 1024 * 1024)
    new = random.Random(4).randbytes(3 * 1024 * 1024 + 17)
    rebuilt, literal = _rebuilt(old, new, tmp_path)
    assert rebuilt == new
    assert literal == len(new)


def test_the_literal_budget_stops_a_delta_that_would_not_pay(tmp_path: Path) -> None:
    old = random.Random(3).randbytes(2 * 1024 * 1024)
    new = random.Random(4).randbytes(2 * 1024 * 1024)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    old_fd = os.open(tmp_path / "old", os.O_RDONLY)
    new_fd = os.open(tmp_path / "new", os.O_RDONLY)
    try:
        records = delta.signatures(old_fd, len(old), BLOCK)
        with pytest.raises(delta.TooDifferent):
            list(delta.DeltaMaker(new_fd, len(new), records, BLOCK, len(old), literal_budget=100_000))
    finally:
        os.close(old_fd)
        os.close(new_fd)


def test_block_size_grows_with_the_file_within_bounds() -> None:
    assert delta.block_size_for(1024 * 1024) == delta.MIN_BLOCK
    assert delta.MIN_BLOCK < delta.block_size_for(300 * 1024 * 1024) < delta.MAX_BLOCK
    assert delta.block_size_for(10**13) == delta.MAX_BLOCK


def _landing(tmp_path: Path, old: bytes, new: bytes) -> tuple[Path, str, int, bytes, bytes]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(old)
    os.utime(root / "f.bin", ns=(1_600_000_000 * 10**9,) * 2)
    block, size, version, records = files.signatures_of(str(root), "f.bin")
    assert block and size == len(old)
    (tmp_path / "new").write_bytes(new)
    fd = os.open(tmp_path / "new", os.O_RDONLY)
    try:
        ((ops, _, digest),) = delta.DeltaMaker(fd, len(new), records, block, size, chunk_bytes=1 << 62)
    finally:
        os.close(fd)
    return root, version, block, ops, digest


def test_write_delta_lands_the_new_file_with_its_mode_and_mtime(tmp_path: Path) -> None:
    old = random.Random(5).randbytes(2 * 1024 * 1024)
    new = old[:1000] + b"changed" + old[1000:]
    root, version, block, ops, digest = _landing(tmp_path, old, new)
    files.write_delta(str(root), "f.bin", ops, 0, True, 0o640, 1_700_000_000 * 10**9, version, block, digest)
    assert (root / "f.bin").read_bytes() == new
    info = (root / "f.bin").stat()
    assert (info.st_mode & 0o777, info.st_mtime_ns) == (0o640, 1_700_000_000 * 10**9)
    assert sorted(path.name for path in root.iterdir()) == ["f.bin"]


def test_a_wrong_digest_lands_nothing_and_leaves_no_part(tmp_path: Path) -> None:
    old = random.Random(6).randbytes(2 * 1024 * 1024)
    root, version, block, ops, _ = _landing(tmp_path, old, old[::-1])
    with pytest.raises(RequestFailed) as raised:
        files.write_delta(str(root), "f.bin", ops, 0, True, 0o644, 0, version, block, b"\0" * 32)
    assert raised.value.code == "delta_mismatch"
    assert (root / "f.bin").read_bytes() == old
    assert sorted(path.name for path in root.iterdir()) == ["f.bin"]


def test_an_old_file_changed_since_its_signatures_lands_nothing(tmp_path: Path) -> None:
    old = random.Random(7).randbytes(2 * 1024 * 1024)
    new = old[:5] + b"!" + old[6:]
    root, version, block, ops, digest = _landing(tmp_path, old, new)
    with open(root / "f.bin", "r+b") as changing:
        changing.seek(1_000_000)
        changing.write(b"someone else")
    changed = (root / "f.bin").read_bytes()
    with pytest.raises(RequestFailed) as raised:
        files.write_delta(str(root), "f.bin", ops, 0, True, 0o644, 0, version, block, digest)
    assert raised.value.code == "delta_mismatch"
    assert (root / "f.bin").read_bytes() == changed
    assert sorted(path.name for path in root.iterdir()) == ["f.bin"]


def test_malformed_operations_are_refused(tmp_path: Path) -> None:
    (tmp_path / "old").write_bytes(b"x" * BLOCK)
    old_fd = os.open(tmp_path / "old", os.O_RDONLY)
    out_fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for ops in (b"Z", b"C\0\0\0\5\0\0\0\1", b"L\0\0\0\x10abc"):
            with pytest.raises(RequestFailed):
                delta.apply_ops(ops, old_fd, BLOCK, BLOCK, out_fd)
    finally:
        os.close(old_fd)
        os.close(out_fd)


def test_signatures_taken_by_several_threads_are_those_taken_by_one(tmp_path: Path, monkeypatch) -> None:
    data = random.Random(8).randbytes(3 * 1024 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        alone = delta.signatures(fd, len(data), BLOCK)
        monkeypatch.setattr(delta, "_PER_THREAD_BYTES", 512 * 1024)
        monkeypatch.setattr(os, "cpu_count", lambda: 4)
        assert delta.signatures(fd, len(data), BLOCK) == alone
    finally:
        os.close(fd)


def test_write_delta_refuses_a_bad_block_size_or_offset(tmp_path: Path) -> None:
    old = random.Random(9).randbytes(2 * 1024 * 1024)
    root, version, block, ops, digest = _landing(tmp_path, old, old)
    for bad_block, offset in ((0, 0), (delta.MAX_BLOCK * 2, 0), (block, -1)):
        with pytest.raises(RequestFailed) as raised:
            files.write_delta(str(root), "f.bin", ops, offset, True, 0o644, 0, version, bad_block, digest)
        assert raised.value.code == "invalid"
    assert (root / "f.bin").read_bytes() == old
