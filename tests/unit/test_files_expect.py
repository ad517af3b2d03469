"""Compare-and-swap writes (remote_helper/files.py ``expect``): a write or delete lands only
if its path is still what the writer saw, checked right before the rename or unlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mngr.remote_helper import files


def _entry(root: Path, path: str) -> list:
    entry = files.current_entry(str(root), path)
    assert entry is not None
    return entry


def _absent(path: str) -> list:
    return [path, files.ABSENT, 0, 0, 0, ""]


def test_a_file_lands_over_the_version_expected_and_not_over_another(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("seen\n")
    seen = _entry(tmp_path, "f.txt")
    files.write_part(str(tmp_path), "f.txt", b"first\n", 0, True, 0o644, 1_000_000_000, expected=seen)
    assert (tmp_path / "f.txt").read_text() == "first\n"
    with pytest.raises(files.Conflict):  # it is "first" now, not what was seen
        files.write_part(str(tmp_path), "f.txt", b"second\n", 0, True, 0o644, 2_000_000_000, expected=seen)
    assert (tmp_path / "f.txt").read_text() == "first\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(files.PART_PREFIX)], "no part file left"


def test_expected_absence_refuses_to_replace_a_file_made_meanwhile(tmp_path: Path) -> None:
    (tmp_path / "new.txt").write_text("made meanwhile\n")
    with pytest.raises(files.Conflict):
        files.write_part(str(tmp_path), "new.txt", b"x", 0, True, 0o644, 0, expected=_absent("new.txt"))
    assert (tmp_path / "new.txt").read_text() == "made meanwhile\n"
    files.write_part(str(tmp_path), "sub/other.txt", b"x", 0, True, 0o644, 0, expected=_absent("sub/other.txt"))
    assert (tmp_path / "sub" / "other.txt").read_bytes() == b"x"


def test_a_delete_happens_only_to_the_version_expected(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("seen\n")
    seen = _entry(tmp_path, "f.txt")
    os.utime(tmp_path / "f.txt", ns=(1, seen[4] + 1))  # changed since it was seen
    with pytest.raises(files.Conflict):
        files.delete(str(tmp_path), "f.txt", expected=seen)
    assert (tmp_path / "f.txt").exists()
    files.delete(str(tmp_path), "f.txt", expected=_entry(tmp_path, "f.txt"))
    assert not (tmp_path / "f.txt").exists()


def test_an_expected_directory_is_removed_only_when_empty(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "edited.txt").write_text("still here\n")
    seen = _entry(tmp_path, "d")
    with pytest.raises(files.Conflict):
        files.delete(str(tmp_path), "d", expected=seen)
    assert (tmp_path / "d" / "edited.txt").read_text() == "still here\n"
    (tmp_path / "d" / "edited.txt").unlink()
    files.delete(str(tmp_path), "d", expected=seen)
    assert not (tmp_path / "d").exists()


def test_a_write_request_skips_changed_paths_as_conflicts_and_lands_the_rest(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("theirs\n")
    (tmp_path / "gone.txt").write_text("old\n")
    gone = _entry(tmp_path, "gone.txt")
    stale = [*_entry(tmp_path, "kept.txt")]
    stale[3] += 1  # a size the file no longer has
    skipped = files.apply_write(
        str(tmp_path), [], [], [["kept.txt", 0o644, 0, 0, 4, False, 0, True], ["fresh.txt", 0o644, 0, 4, 4, False, 0, True]],
        ["gone.txt"], b"minenew!", expect=[stale, _absent("fresh.txt"), gone])
    assert skipped == [["kept.txt", files.CHANGED_MEANWHILE]]
    assert (tmp_path / "kept.txt").read_text() == "theirs\n"
    assert (tmp_path / "fresh.txt").read_bytes() == b"new!" and not (tmp_path / "gone.txt").exists()


def test_a_malformed_expectation_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(files.RequestFailed):
        files.apply_write(str(tmp_path), [], [], [["a.txt", 0o644, 0, 0, 1, False, 0, True]], [], b"a",
                          expect=[["a.txt", "?", 0, 0, 0, ""]])
    with pytest.raises(files.RequestFailed):
        files.apply_write(str(tmp_path), [], [], [], [], b"", expect=[["../out", "-", 0, 0, 0, ""]])
    assert os.listdir(tmp_path) == []
