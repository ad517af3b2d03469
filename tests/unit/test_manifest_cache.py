"""The host daemon's manifest cache: served without a walk while nothing changed, and never
stale: after every change (ours or anyone's) it equals a fresh walk."""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mngr.controller import plan
from mngr.remote_helper import files, inotify, manifest_cache


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Enables the cache and records the trees it listed from the disk."""
    manifest_cache.enable()
    if not manifest_cache._enabled:
        pytest.skip("no inotify here")
    seen: list[str] = []
    real = manifest_cache._Tree._build

    def counting(tree: manifest_cache._Tree) -> None:
        seen.append(tree.root)
        real(tree)

    monkeypatch.setattr(manifest_cache._Tree, "_build", counting)
    yield seen
    for tree in list(manifest_cache._trees.values()):
        tree.close()
    manifest_cache._trees.clear()
    manifest_cache._enabled = False


def _entries(packed: bytes) -> list[list[object]]:
    return sorted(files.parse_manifest(zlib.decompress(packed)))


def _fresh(root: Path, include_ignored: bool = True) -> list[list[object]]:
    return sorted(files.parse_manifest(files.raw_manifest(str(root), include_ignored)))


def _cached(root: Path, include_ignored: bool = True) -> list[list[object]]:
    return _entries(manifest_cache.packed_manifest(str(root), include_ignored)[0])


def _kept_with_changes(root: Path, kept: list[list[object]], tag: str) -> list[list[object]]:
    """A controller's copy ``kept`` (tagged ``tag``) brought up to date with what the host
    sends as changes since, as local_walk.py does."""
    blob, new_tag, unchanged, gone = manifest_cache.manifest_since(str(root), True, known=tag)
    assert gone is not None and new_tag != tag and not unchanged  # sent as changes, not whole
    return sorted(plan.with_changes(kept, plan.decode_manifest(blob), gone))


def _tree(root: Path) -> None:
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a = 1\n")
    (root / "src" / "deep" / "b.txt").write_text("b" * 100)
    (root / "top.md").write_text("# top\n")
    (root / "link").symlink_to("src/a.py")


def test_an_unchanged_tree_is_walked_once(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    first = _cached(tmp_path)
    assert first == _fresh(tmp_path)
    assert _cached(tmp_path) == first
    assert _cached(tmp_path) == first
    assert len(walks) == 1


@pytest.mark.parametrize("change", [
    "modify", "append", "create", "create-deep", "remove", "remove-dir", "rename", "chmod", "touch",
    "replace-dir-with-file", "new-link", "rename-dir", "move-dir-out",
])
def test_every_kind_of_change_is_seen(tmp_path: Path, walks: list[str], change: str) -> None:
    _tree(tmp_path)
    before = _cached(tmp_path)
    before_tag = manifest_cache.packed_manifest(str(tmp_path), True)[1]
    target = tmp_path / "src" / "a.py"
    if change == "modify":
        target.write_text("a = 2\n")  # same size
        os.utime(target, ns=(1, 1))
    elif change == "append":
        with target.open("a") as handle:
            handle.write("more\n")
    elif change == "create":
        (tmp_path / "src" / "new.py").write_text("")
    elif change == "create-deep":
        (tmp_path / "x" / "y").mkdir(parents=True)
        (tmp_path / "x" / "y" / "z").write_text("z")
    elif change == "remove":
        target.unlink()
    elif change == "remove-dir":
        (tmp_path / "src" / "deep" / "b.txt").unlink()
        (tmp_path / "src" / "deep").rmdir()
    elif change == "rename":
        target.rename(tmp_path / "src" / "renamed.py")
    elif change == "chmod":
        target.chmod(0o700)
    elif change == "touch":
        os.utime(target, ns=(5, 5))
    elif change == "replace-dir-with-file":
        (tmp_path / "src" / "deep" / "b.txt").unlink()
        (tmp_path / "src" / "deep").rmdir()
        (tmp_path / "src" / "deep").write_text("now a file")
    elif change == "new-link":
        (tmp_path / "src" / "deep" / "l").symlink_to("../../top.md")
    elif change == "rename-dir":
        (tmp_path / "src").rename(tmp_path / "moved")
    elif change == "move-dir-out":
        (tmp_path / "src" / "deep").rename(tmp_path.parent / f"{tmp_path.name}-out")
    after = _cached(tmp_path)
    assert after == _fresh(tmp_path)
    assert after != before
    assert len(walks) == 1  # what changed was read again, not the whole tree
    assert _kept_with_changes(tmp_path, before, before_tag) == after
    if change in ("rename-dir", "replace-dir-with-file"):  # changes below the new place are seen too
        for directory in ("moved", "moved/deep") if change == "rename-dir" else ("src",):
            (tmp_path / directory / "later.txt").write_text("after the move")
            assert _cached(tmp_path) == _fresh(tmp_path)
        assert len(walks) == 1


def test_a_directory_replaced_by_a_file_and_made_again_is_watched_again(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    _cached(tmp_path)
    deep = tmp_path / "src" / "deep"
    (deep / "b.txt").unlink()
    deep.rmdir()
    deep.write_text("a file now")
    assert _cached(tmp_path) == _fresh(tmp_path)
    deep.unlink()
    deep.mkdir()
    assert _cached(tmp_path) == _fresh(tmp_path)
    (deep / "c.txt").write_text("in the new directory")
    assert _cached(tmp_path) == _fresh(tmp_path)
    assert any(entry[0] == "src/deep/c.txt" for entry in _cached(tmp_path))


def test_changes_in_a_directory_made_after_the_walk_are_seen(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    _cached(tmp_path)
    (tmp_path / "later").mkdir()
    assert _cached(tmp_path) == _fresh(tmp_path)
    (tmp_path / "later" / "file").write_text("in a directory the first walk never saw")
    assert _cached(tmp_path) == _fresh(tmp_path)
    assert any(entry[0] == "later/file" for entry in _cached(tmp_path))


def _write(root: Path, dirs: list, links: list, parts: list[tuple[str, bytes]], deletes: list[str],
           known: str = "") -> str:
    """A WriteFiles request as the daemon carries it out; the tag it answers with."""
    blob = b"".join(data for _, data in parts)
    wire_parts, offset = [], 0
    for path, data in parts:
        wire_parts.append([path, 0o644, 1_700_000_000_000_000_000, offset, len(data), False, 0, True])
        offset += len(data)
    with manifest_cache.writing(str(root), known) as write:
        files.apply_write(str(root), dirs, links, wire_parts, deletes, blob)
        write.written.extend(entry[0] for entry in dirs + links + wire_parts)
        write.deleted.extend(deletes)
    return write.tag


def test_our_own_writes_are_taken_in_without_a_walk(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    _cached(tmp_path)
    _write(tmp_path, [["new", 0o750], ["new/sub", 0o700]], [["new/link", "../top.md"]],
           [("new/sub/f.txt", b"hello"), ("src/a.py", b"changed"), ("implicit/dir/g", b"g")],
           ["src/deep/b.txt", "src/deep"])  # a directory goes once what it holds went
    _write(tmp_path, [], [], [], ["top.md"])
    assert _cached(tmp_path) == _fresh(tmp_path)
    assert len(walks) == 1
    paths = [entry[0] for entry in _cached(tmp_path)]
    assert "implicit/dir/g" in paths and "src/deep/b.txt" not in paths and "top.md" not in paths
    # ... and the directories those writes made are watched like the rest.
    (tmp_path / "new" / "sub" / "later").write_text("by someone else")
    (tmp_path / "implicit" / "dir" / "g").write_text("rewritten by someone else")
    assert _cached(tmp_path) == _fresh(tmp_path)
    assert len(walks) == 1  # their changes too are taken in from the events


@pytest.mark.parametrize(("ours", "theirs"), [
    ("ours", "theirs"),  # a file beside what we write
    ("src", "src/theirs"),  # a file in a directory our write chmod's: not ours either
])
def test_a_change_by_someone_else_during_our_write_drops_the_cache(tmp_path: Path, walks: list[str],
                                                                   ours: str, theirs: str) -> None:
    _tree(tmp_path)
    _cached(tmp_path)
    with manifest_cache.writing(str(tmp_path)) as write:
        files.apply_write(str(tmp_path), [[ours, 0o700]], [], [], [], b"")
        write.written.append(ours)
        (tmp_path / theirs).write_text("written meanwhile")
    assert _cached(tmp_path) == _fresh(tmp_path)
    assert any(entry[0] == theirs for entry in _cached(tmp_path))
    assert len(walks) == 2


def test_a_failed_write_drops_the_cache(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    _cached(tmp_path)
    with pytest.raises(files.RequestFailed), manifest_cache.writing(str(tmp_path)):
        files.apply_write(str(tmp_path), [["fine", 0o755]], [], [], ["../escape"], b"")
    assert _cached(tmp_path) == _fresh(tmp_path)
    assert len(walks) == 2


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def test_a_git_tree_follows_gitignore_and_the_index(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "build.log").write_text("noise")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "start")
    assert _cached(tmp_path, False) == _fresh(tmp_path, False)
    assert not any(entry[0] == "build.log" for entry in _cached(tmp_path, False))
    assert len(walks) == 1
    _git(tmp_path, "add", "-f", "build.log")  # only the index changes: the tree has no event
    assert any(entry[0] == "build.log" for entry in _cached(tmp_path, False))
    (tmp_path / "notes.md").write_text("untracked, not ignored")
    assert any(entry[0] == "notes.md" for entry in _cached(tmp_path, False))
    (tmp_path / ".gitignore").write_text("notes.md\n")
    assert _cached(tmp_path, False) == _fresh(tmp_path, False)
    assert not any(entry[0] == "notes.md" for entry in _cached(tmp_path, False))
    # the same root with everything listed is a cache of its own
    assert _cached(tmp_path, True) == _fresh(tmp_path, True)


def test_a_tree_too_big_to_watch_is_walked_every_time(tmp_path: Path, walks: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)

    def refuse(self: object, path: str) -> None:
        raise inotify.Unwatchable("No space left on device")

    monkeypatch.setattr(inotify.Inotify, "add", refuse)
    assert _cached(tmp_path) == _fresh(tmp_path)
    (tmp_path / "top.md").write_text("changed, and no watch to say so")
    assert _cached(tmp_path) == _fresh(tmp_path)


def test_tags_name_states_of_the_manifest(tmp_path: Path, walks: list[str]) -> None:
    _tree(tmp_path)
    first = _cached(tmp_path)
    blob, tag, unchanged = manifest_cache.packed_manifest(str(tmp_path), True)
    assert blob and tag and not unchanged
    assert manifest_cache.packed_manifest(str(tmp_path), True, known=tag) == (b"", tag, True)
    assert manifest_cache.packed_manifest(str(tmp_path), True, known="other.1.1")[0] == blob
    # our write, made against the tag the writer knew: the new state has a new tag, and a
    # controller that applies the same write to its copy has the host's manifest
    new_tag = _write(tmp_path, [], [], [("src/a.py", b"changed")], [], known=tag)
    assert new_tag and new_tag != tag
    assert manifest_cache.packed_manifest(str(tmp_path), True, known=new_tag) == (b"", new_tag, True)
    # a writer that knew an older state gets no tag: its copy is not the host's
    assert _write(tmp_path, [], [], [("top.md", b"x")], [], known=tag) == ""
    current = manifest_cache.packed_manifest(str(tmp_path), True)[1]
    # someone else's change: a new state too
    (tmp_path / "top.md").write_text("theirs")
    blob, after, unchanged = manifest_cache.packed_manifest(str(tmp_path), True, known=current)
    assert blob and after != current and not unchanged
    assert _entries(blob) == _fresh(tmp_path)
    assert len(walks) == 1  # taken in from the events
    # a copy from before all of it, ours and theirs, is brought up to date with the changes alone
    assert _kept_with_changes(tmp_path, first, tag) == _fresh(tmp_path)
    assert manifest_cache.manifest_since(str(tmp_path), True, known="other.1.1")[3] is None
    # a tree walked again (its root replaced) forgets what changed before: the whole manifest
    renamed = tmp_path.parent / (tmp_path.name + "-old")
    tmp_path.rename(renamed)
    renamed.rename(tmp_path)
    assert manifest_cache.manifest_since(str(tmp_path), True, known=after)[3] is None
    assert _cached(tmp_path) == _fresh(tmp_path)


_NAMES = ["a", "b", "c"]
_OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["file", "append", "mkdir", "remove", "rename", "chmod", "link"]),
    st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3),
    st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3),
    st.booleans(),
), min_size=1, max_size=30)


def _apply(root: Path, operation: str, where: list[str], other: list[str]) -> None:
    import shutil

    path, to = root.joinpath(*where), root.joinpath(*other)
    try:
        if operation == "file":
            path.write_text("/".join(where))
        elif operation == "append":
            with path.open("a") as handle:
                handle.write("more\n")
        elif operation == "mkdir":
            path.mkdir()
        elif operation == "remove":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        elif operation == "rename":
            path.rename(to)
        elif operation == "chmod":
            path.chmod(0o700 if path.is_dir() else 0o600)
        elif operation == "link":
            path.symlink_to("/".join(other))
    except OSError:
        pass  # a parent missing, a directory not empty or in the way: the tree stays as it is


@settings(derandomize=True, deadline=None, max_examples=60)
@given(operations=_OPERATIONS)
def test_after_any_changes_the_cache_equals_a_fresh_walk(operations: list[tuple[str, list[str], list[str], bool]],
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    manifest_cache.enable()
    if not manifest_cache._enabled:
        pytest.skip("no inotify here")
    root = tmp_path_factory.mktemp("tree")
    try:
        _tree(root)
        kept, tag = _cached(root), manifest_cache.packed_manifest(str(root), True)[1]
        for operation, where, other, look in operations:
            _apply(root, operation, where, other)
            if look:
                assert _cached(root) == _fresh(root)
                blob, new_tag, unchanged, gone = manifest_cache.manifest_since(str(root), True, known=tag)
                if not unchanged:
                    assert gone is not None  # nothing walked again: the changes are known
                    kept, tag = sorted(plan.with_changes(kept, plan.decode_manifest(blob), gone)), new_tag
                assert kept == _fresh(root)
        assert _cached(root) == _fresh(root)
    finally:
        for tree in list(manifest_cache._trees.values()):
            tree.close()
        manifest_cache._trees.clear()
        manifest_cache._enabled = False
