"""Delta transfer's pieces in-process: signatures of an old file, the delta of a new one
against them, and the rebuild from both, byte-exact, sending little for small changes."""

from __future__ import annotations

import os
import random
import zlib
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


def test_hashing_ahead_on_several_threads_makes_the_delta_one_thread_makes(tmp_path: Path, monkeypatch) -> None:
    old = random.Random(10).randbytes(3 * 1024 * 1024 + 123)
    new = bytearray(old)
    new[2_000_000] ^= 0xFF  # in place: every other block is where the old file has it
    alone, literal = _delta(old, bytes(new), tmp_path)
    monkeypatch.setattr(delta, "_PER_THREAD_BYTES", 64 * 1024)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert _delta(old, bytes(new), tmp_path) == (alone, literal)
    assert literal <= BLOCK
    rebuilt, _ = _rebuilt(old, bytes(new), tmp_path)
    assert rebuilt == new


def _settled_instantly(monkeypatch) -> None:
    # A file counts as settled (its blocks' SHA-1s worth keeping) once its last change is
    # SETTLE_NS old: these tests do not wait for that.
    monkeypatch.setattr(files, "SETTLE_NS", 0)


def test_signatures_of_a_settled_file_are_remembered_and_not_taken_again(tmp_path: Path, monkeypatch) -> None:
    _settled_instantly(monkeypatch)
    data = random.Random(11).randbytes(2 * 1024 * 1024)
    (tmp_path / "f.bin").write_bytes(data)
    block, size, version, records = files.signatures_of(str(tmp_path), "f.bin")
    fd = os.open(tmp_path / "f.bin", os.O_RDONLY)
    try:
        assert delta.remembered(version, block) == delta.signed(fd, size, block)
    finally:
        os.close(fd)
    sha1s = delta.remembered(version, block)[1]
    delta.remember(version, block, b"\1" * len(records), sha1s)  # what a second signing must not read
    assert files.signatures_of(str(tmp_path), "f.bin")[3] == b"\1" * len(records)
    delta.forget(version, block)


def test_a_file_changed_just_now_is_signed_but_not_remembered(tmp_path: Path, monkeypatch) -> None:
    # "Just now" whatever the machine's load: a change counts as recent for an hour here.
    monkeypatch.setattr(files, "SETTLE_NS", 3600 * 10**9)
    (tmp_path / "f.bin").write_bytes(random.Random(12).randbytes(2 * 1024 * 1024))
    block, _, version, records = files.signatures_of(str(tmp_path), "f.bin")
    assert records and delta.remembered(version, block) is None


def test_a_rebuild_checks_copied_blocks_against_the_remembered_sha1s(tmp_path: Path, monkeypatch) -> None:
    _settled_instantly(monkeypatch)
    old = random.Random(13).randbytes(2 * 1024 * 1024)
    new = old[:5000] + b"!" + old[5001:]
    root, version, block, ops, digest = _landing(tmp_path, old, new)
    records, sha1s = delta.remembered(version, block)
    delta.remember(version, block, records, bytes(len(sha1s)))  # not what the old file holds
    with pytest.raises(RequestFailed) as raised:
        files.write_delta(str(root), "f.bin", ops, 0, True, 0o644, 0, version, block, digest)
    assert raised.value.code == "delta_mismatch"
    assert (root / "f.bin").read_bytes() == old
    assert sorted(path.name for path in root.iterdir()) == ["f.bin"]


@pytest.mark.parametrize(("name", "edit"), [
    ("one byte changed", lambda data: data[:1_234_567] + b"!" + data[1_234_568:]),
    ("a block's worth rewritten", lambda data: data[:BLOCK * 7] + bytes(3 * BLOCK) + data[BLOCK * 10:]),
    ("grown", lambda data: data + b"tail" * 10),
    ("shrunk", lambda data: data[:len(data) - 3 * BLOCK - 5]),
    ("bytes inserted near the end", lambda data: data[:-100_000] + b"new" + data[-100_000:]),
    ("bytes inserted at the start", lambda data: b"new" + data),
])
def test_a_rebuilt_file_is_remembered_with_the_signatures_signing_it_gives(tmp_path: Path, monkeypatch, name: str,
                                                                         edit) -> None:
    _settled_instantly(monkeypatch)
    old = random.Random(14).randbytes(2 * 1024 * 1024 + 777)
    new = edit(old)
    root, version, block, ops, digest = _landing(tmp_path, old, new)
    assert delta.remembered(version, block) is not None
    files.write_delta(str(root), "f.bin", ops, 0, True, 0o600, 1_700_000_000 * 10**9, version, block, digest)
    assert (root / "f.bin").read_bytes() == new
    assert delta.remembered(version, block) is None  # that version is gone
    landed = files.version_of((root / "f.bin").stat())
    learnt = delta.remembered(landed, block)
    if name != "bytes inserted at the start":  # every block moved: learnt only by reading it all
        assert learnt is not None, name
    if learnt is not None:
        fd = os.open(root / "f.bin", os.O_RDONLY)
        try:
            assert learnt == delta.signed(fd, len(new), block), name
        finally:
            os.close(fd)
        delta.forget(landed, block)


def test_a_rebuild_in_chunks_learns_the_new_signatures_too(tmp_path: Path, monkeypatch) -> None:
    _settled_instantly(monkeypatch)
    old = random.Random(15).randbytes(3 * 1024 * 1024)
    new = bytearray(old)
    for at in (10, 1_500_000, 3 * 1024 * 1024 - 1):
        new[at] ^= 1
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(old)
    block, size, version, records = files.signatures_of(str(root), "f.bin")
    (tmp_path / "new").write_bytes(new)
    fd = os.open(tmp_path / "new", os.O_RDONLY)
    try:
        chunks = list(delta.DeltaMaker(fd, len(new), records, block, size, chunk_bytes=1 << 62,
                                       chunk_covers=512 * 1024))
    finally:
        os.close(fd)
    assert len(chunks) > 2
    offset = 0
    for index, (ops, covered, digest) in enumerate(chunks):
        files.write_delta(str(root), "f.bin", ops, offset, index == len(chunks) - 1, 0o644, 1_700_000_000 * 10**9,
                          version, block, digest)
        offset += covered
    assert (root / "f.bin").read_bytes() == new
    learnt = delta.remembered(files.version_of((root / "f.bin").stat()), block)
    assert learnt is not None
    fd = os.open(root / "f.bin", os.O_RDONLY)
    try:
        assert learnt == delta.signed(fd, len(new), block)
    finally:
        os.close(fd)


def test_copying_falls_back_to_reading_where_the_kernel_cannot_copy(tmp_path: Path) -> None:
    data = random.Random(16).randbytes(40_000)
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    read_end, write_end = os.pipe()  # copy_file_range refuses a pipe (EINVAL)
    try:
        delta._copy_range(fd, 1000, 30_000, write_end)
        os.close(write_end)
        received = b""
        while chunk := os.read(read_end, 65536):
            received += chunk
        assert received == data[1000:31_000]
        out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(delta.FileChanged):  # asked for more than the file has
                delta._copy_range(fd, 39_000, 5000, out)
        finally:
            os.close(out)
    finally:
        os.close(fd)
        os.close(read_end)


@pytest.mark.parametrize(("name", "edit"), [
    ("changed in place here and there", lambda data: data[:10] + b"!" + data[11:1_500_000] + b"?" + data[1_500_001:]),
    ("bytes inserted", lambda data: data[:900_000] + b"inserted" * 300 + data[900_000:]),
    ("bytes deleted across a part's end", lambda data: data[:1_040_000] + data[1_060_000:]),
    ("grown", lambda data: data + b"more" * 30_000),
    ("shrunk", lambda data: data[:2_000_000]),
])
def test_a_delta_read_in_parts_rebuilds_the_file(tmp_path: Path, name: str, edit) -> None:
    old = random.Random(17).randbytes(3 * 1024 * 1024)
    new = edit(old)
    root, version, block, _, _ = _landing(tmp_path, old, new)
    (root / "new").mkdir()
    (root / "new" / "f.bin").write_bytes(new)
    os.utime(root / "new" / "f.bin", ns=(1_600_000_000 * 10**9,) * 2)
    records = files.signatures_of(str(root), "f.bin")[3]
    span = (1024 * 1024 // block) * block
    offset = 0
    sent = 0
    while offset < len(new):
        reply, ops = files.read_delta(str(root), "new/f.bin", records if not offset else b"", block, len(old), 0,
                                      offset=offset, length=span, signatures_tag="tag-" + name)
        assert reply["size"] == len(new), reply
        sent += len(ops)
        ops = zlib.decompress(ops) if reply["compressed"] else ops
        final = offset + span >= len(new)
        files.write_delta(str(root), "f.bin", ops, offset, final, 0o644, 1_600_000_000 * 10**9, version, block,
                          bytes.fromhex(reply["digest"]))
        offset += span
    assert (root / "f.bin").read_bytes() == new, name
    assert sent < 200_000, (name, sent)


def test_a_part_naming_signatures_the_helper_does_not_have_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(bytes(2 * 1024 * 1024))
    with pytest.raises(RequestFailed) as raised:
        files.read_delta(str(tmp_path), "f.bin", b"", BLOCK, 2 * 1024 * 1024, 0, offset=BLOCK, length=BLOCK,
                         signatures_tag="never-sent")
    assert raised.value.code == "invalid"
