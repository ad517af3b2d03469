"""The host daemon's change feed (remote_helper/change_feed.py), in process on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mngr.remote_helper import change_feed


@pytest.fixture
def feed_root(tmp_path: Path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "a" / "old.txt").write_text("old\n")
    yield root
    change_feed.close_all()


def _all_changes(root: Path, cursor: str, want: set[str], max_changes: int = change_feed.MAX_CHANGES) -> tuple[str, set[str]]:
    """Follow the feed until ``want`` has been seen (each wait bounded by the feed's own timeout)."""
    seen: set[str] = set()
    for _ in range(50):
        cursor, paths, overflow = change_feed.changes_since(str(root), cursor, 2.0, max_changes)
        assert not overflow
        seen.update(paths)
        if want <= seen:
            break
    return cursor, seen


def test_a_new_cursor_hears_overflow_then_every_change_after_it(feed_root: Path) -> None:
    cursor, paths, overflow = change_feed.changes_since(str(feed_root), "", 0.0)
    assert overflow and paths == [] and cursor
    (feed_root / "a" / "old.txt").write_text("new\n")
    (feed_root / "b.txt").write_text("b\n")
    os.unlink(feed_root / "b.txt")
    cursor, seen = _all_changes(feed_root, cursor, {"a/old.txt", "b.txt"})
    assert {"a/old.txt", "b.txt"} <= seen
    # The feed may hand the events of b.txt (made, written, removed) over in more than one
    # answer: read on until it has no more, and all of them name only what was changed.
    for _ in range(10):
        cursor, paths, overflow = change_feed.changes_since(str(feed_root), cursor, 0.5)
        assert not overflow and set(paths) <= {"a/old.txt", "b.txt"}, paths
        if not paths:
            break
    else:
        raise AssertionError("the feed kept answering with changes no one made")
    _, paths, overflow = change_feed.changes_since(str(feed_root), cursor, 0.0)
    assert paths == [] and not overflow, "nothing changed since"


def test_a_directory_moved_in_counts_with_everything_in_it(feed_root: Path, tmp_path: Path) -> None:
    cursor, _, _ = change_feed.changes_since(str(feed_root), "", 0.0)
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "f.txt").write_text("f\n")
    os.rename(outside, feed_root / "moved")
    cursor, seen = _all_changes(feed_root, cursor, {"moved", "moved/deep", "moved/deep/f.txt"})
    assert {"moved", "moved/deep", "moved/deep/f.txt"} <= seen
    (feed_root / "moved" / "deep" / "g.txt").write_text("g\n")  # its directories are watched now
    _, seen = _all_changes(feed_root, cursor, {"moved/deep/g.txt"})
    assert "moved/deep/g.txt" in seen


def test_part_files_and_git_stay_out(feed_root: Path) -> None:
    cursor, _, _ = change_feed.changes_since(str(feed_root), "", 0.0)
    (feed_root / ".git").mkdir()
    (feed_root / ".git" / "index").write_text("i")
    (feed_root / ".mngr-part.0123456789abcdef").write_text("p")
    (feed_root / "real.txt").write_text("r")
    _, seen = _all_changes(feed_root, cursor, {"real.txt"})
    assert "real.txt" in seen and not any(path.startswith((".git", ".mngr-part.")) for path in seen)


def test_a_reader_left_behind_hears_overflow_and_a_new_cursor(feed_root: Path) -> None:
    cursor, _, _ = change_feed.changes_since(str(feed_root), "", 0.0, max_changes=8)
    for number in range(40):
        (feed_root / f"f{number}").write_text("x")
    # Wait for the feed to have taken in more than it keeps: it answers overflow.
    for _ in range(50):
        new_cursor, paths, overflow = change_feed.changes_since(str(feed_root), cursor, 0.5, max_changes=8)
        if overflow:
            break
        assert paths, "changes come until the reader is left behind"
    assert overflow and new_cursor != cursor
    _, paths, overflow = change_feed.changes_since(str(feed_root), new_cursor, 0.0, max_changes=8)
    assert not overflow


def test_a_cursor_of_another_feed_hears_overflow(feed_root: Path) -> None:
    _, paths, overflow = change_feed.changes_since(str(feed_root), "0123456789ab.0.5", 0.0)
    assert overflow and paths == []


def test_after_the_kernel_queue_overflows_readers_start_over_and_changes_flow_again(feed_root: Path) -> None:
    cursor, _, _ = change_feed.changes_since(str(feed_root), "", 0.0)
    feed = change_feed._feeds[os.path.realpath(feed_root)]
    feed._start_over()  # what an IN_Q_OVERFLOW from the kernel makes it do
    new_cursor, paths, overflow = change_feed.changes_since(str(feed_root), cursor, 0.0)
    assert overflow and paths == [] and new_cursor != cursor
    (feed_root / "a" / "after.txt").write_text("after\n")  # its directories are watched anew
    _, seen = _all_changes(feed_root, new_cursor, {"a/after.txt"})
    assert "a/after.txt" in seen
