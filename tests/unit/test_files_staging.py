"""A request of many whole files lands them through one staging directory at the root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mngr.remote_helper import files, inotify

MTIME_NS = 1_700_000_000_123_456_789


def _request(paths: list[str], mode: int = 0o644) -> tuple[list[list[object]], bytes]:
    """A WriteFiles request's parts (each file whole, in one part) and its data."""
    parts, blob = [], b""
    for index, path in enumerate(paths):
        data = f"file {index} at {path}\n".encode() * (index + 1)
        parts.append([path, mode, MTIME_NS + index, len(blob), len(data), False, 0, True])
        blob += data
    return parts, blob


def _left_parts(root: Path) -> list[str]:
    return [str(path.relative_to(root)) for path in root.rglob(f"{files.PART_PREFIX}*")]


def test_many_whole_files_land_with_their_mode_and_mtime_and_leave_nothing(tmp_path: Path) -> None:
    paths = [f"d{index % 3}/sub/f{index}.txt" if index % 2 else f"top{index}.txt"
             for index in range(files.Staging.MIN_FILES * 2)]
    parts, blob = _request(paths, mode=0o664)  # group-writable: most umasks take that away
    watch = inotify.Inotify()  # as the host daemon's kept manifest watches the root
    watch.add(str(tmp_path))
    skipped = files.apply_write(str(tmp_path), [], [], parts, [], blob)
    events = watch.events()
    watch.close()
    assert skipped == []
    # The root saw each of its files arrive, once, and the staging directory come and go.
    top = [path for path in paths if "/" not in path]
    assert sorted(name for _, mask, name in events if mask & inotify.IN_MOVED_TO) == sorted(top)
    made = [(mask, name) for _, mask, name in events if name.startswith(files.PART_PREFIX)]
    assert [mask & ~inotify.IN_ISDIR for mask, _ in made] == [inotify.IN_CREATE, inotify.IN_DELETE]
    assert all(mask & inotify.IN_ISDIR for mask, _ in made)
    for index, path in enumerate(paths):
        info = os.lstat(tmp_path / path)
        assert (info.st_mode & 0o7777, info.st_mtime_ns) == (0o664, MTIME_NS + index), path
        assert (tmp_path / path).read_bytes() == f"file {index} at {path}\n".encode() * (index + 1)
    assert _left_parts(tmp_path) == []


def test_a_conflict_or_a_failure_in_staging_leaves_the_target_and_no_part(tmp_path: Path) -> None:
    (tmp_path / "theirs.txt").write_text("the agent's")
    (tmp_path / "blocked").write_text("a file where a directory is wanted")
    paths = ["theirs.txt", "blocked/x.txt"] + [f"f{index}.txt" for index in range(files.Staging.MIN_FILES)]
    parts, blob = _request(paths)
    expect = [["theirs.txt", files.ABSENT, 0, 0, 0, ""]]  # the writer thought it absent
    skipped = files.apply_write(str(tmp_path), [], [], parts, [], blob, expect=expect)
    assert sorted(skipped) == [["blocked/x.txt", f"{tmp_path / 'blocked'} is in the way of a directory"],
                               ["theirs.txt", files.CHANGED_MEANWHILE]]
    assert (tmp_path / "theirs.txt").read_text() == "the agent's"
    assert all((tmp_path / f"f{index}.txt").exists() for index in range(files.Staging.MIN_FILES))
    assert _left_parts(tmp_path) == []


def test_a_staging_directory_left_by_a_killed_request_is_never_listed(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("kept")
    left = tmp_path / f"{files.PART_PREFIX}0123456789abcdef"
    left.mkdir()
    (left / "1").write_text("half a file")
    listed = [entry[0] for entry in files.parse_manifest(files.raw_manifest(str(tmp_path), include_ignored=True))]
    assert listed == ["kept.txt"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert sorted(files.manifest_entries(str(tmp_path))) == ["kept.txt"]  # git's listing of untracked files


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_directory_on_another_file_system_gets_its_files_beside_them(tmp_path: Path) -> None:
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mounted)], check=True)
    try:
        paths = [f"mounted/f{index}.txt" for index in range(files.Staging.MIN_FILES)] + ["here.txt"]
        parts, blob = _request(paths)
        assert files.apply_write(str(tmp_path), [], [], parts, [], blob) == []
        for index, path in enumerate(paths):
            assert os.lstat(tmp_path / path).st_mtime_ns == MTIME_NS + index
        assert _left_parts(tmp_path) == []
    finally:
        subprocess.run(["umount", "-l", str(mounted)], check=False)
