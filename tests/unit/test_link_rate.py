"""When file data is compressed (controller/link_rate.py), and that both forms land alike."""

from __future__ import annotations

import random
from pathlib import Path

from mngr.controller import link_rate, sync
from mngr.controller.channel import protocol
from mngr.remote_helper import files

NOISE = random.Random(1).randbytes(3000)  # does not compress
TEXT = b"".join(b"    return self.value_%d + other.value_%d\n" % (i % 50, i % 7) for i in range(4000))


def test_data_is_compressed_until_the_link_is_measured_and_then_only_on_a_slow_one() -> None:
    rate = link_rate.LinkRate()
    assert rate.compress
    rate.observe(1_000_000, 1.0)  # 1 MB/s: a slow WAN link
    assert rate.compress
    rate.observe(8_000_000, 0.02)  # 400 MB/s: loopback
    assert not rate.compress
    rate.observe(1_000_000, 0.0)  # the host's own work was the whole round trip
    assert not rate.compress
    rate.observe(0, 0.5)  # nothing crossed: no measure, the last one stands
    assert not rate.compress


def _land(tmp_path: Path, name: str, compress: bool) -> tuple[Path, list[list[object]]]:
    pieces = [("a.py", TEXT), ("b.bin", NOISE), ("tiny", b"x")]
    pending = [(path, 0o640, 1_700_000_000_123_456_789, data, 0, True) for path, data in pieces]
    request = protocol.WriteFiles(name="agent")
    blob = sync._pack_parts(request, pending, compress)
    root = tmp_path / name
    root.mkdir()
    assert files.apply_write(str(root), [], [], request.parts, [], blob) == []
    return root, request.parts


def test_a_batch_lands_the_same_compressed_or_not(tmp_path: Path) -> None:
    packed_root, packed_parts = _land(tmp_path, "packed", True)
    raw_root, raw_parts = _land(tmp_path, "raw", False)
    assert [part[5] for part in packed_parts] == [True, False, False]  # only where it saves a tenth
    assert not any(part[5] for part in raw_parts)
    for root in (packed_root, raw_root):
        assert (root / "a.py").read_bytes() == TEXT
        info = (root / "a.py").stat()
        assert (info.st_mode & 0o777, info.st_mtime_ns) == (0o640, 1_700_000_000_123_456_789)
        assert (root / "b.bin").read_bytes() == NOISE
        assert (root / "tiny").read_bytes() == b"x"


def test_the_host_reads_files_compressed_or_not_as_asked(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_bytes(TEXT)
    for compress in (True, False):
        entries, blob, skipped, _ = files.read_many(str(tmp_path), ["a.py"], compress=compress)
        assert skipped == []
        assert entries[0][3] is compress
        assert (len(blob) < len(TEXT)) is compress
        path, content, _mode, _mtime, size = sync._pulled_content("box", entries[0], blob, {"a.py"})
        assert (path, content, size) == ("a.py", TEXT, len(TEXT))
