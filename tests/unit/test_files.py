"""The manifest of a tree, in its wire form and back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mngr.remote_helper import files


def _tree(root: Path) -> None:
    (root / "a" / "b c").mkdir(parents=True)
    (root / "a" / "b c" / "ünï.txt").write_text("x" * 100)
    (root / "exe").write_text("#!/bin/sh\n")
    (root / "exe").chmod(0o751)
    (root / "a" / "link").symlink_to("../exe")
    (root / "dangling").symlink_to("/nowhere/at/all")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "a" / ".mngr-part.half").write_text("partial")
    (root / "empty-dir").mkdir(mode=0o700)
    os.utime(root / "exe", ns=(1, 1700000000123456789))
    os.utime(root / "empty-dir", ns=(1, 1600000000987654321))


def test_the_manifest_lists_files_links_and_directories_but_not_git_or_parts(tmp_path: Path) -> None:
    _tree(tmp_path)
    from_python = sorted(files.parse_manifest(files.raw_manifest(str(tmp_path), include_ignored=True)))
    assert [entry[0] for entry in from_python] == [
        "a", "a/b c", "a/b c/ünï.txt", "a/link", "dangling", "empty-dir", "exe"]
    assert ["empty-dir", "d", 0o700, 0, 1600000000987654321, ""] in from_python
    paths = [entry[0] for entry in from_python]
    assert ".git" not in paths and ".git/HEAD" not in paths and "a/.mngr-part.half" not in paths
    assert ["exe", "f", 0o751, 10, 1700000000123456789, ""] in from_python
    assert ["dangling", "l", 0, 0, 0, "/nowhere/at/all"] in from_python


@pytest.mark.parametrize("raw", [b"a\0f\0644\0", b"a\0q\0644\0 1\0 1\0\0", b"a\0f\0xyz\0 1\0 1\0\0"])
def test_malformed_manifests_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        files.parse_manifest(raw)


def test_a_request_s_open_directories_never_go_through_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "plain").write_text("a file")
    with files.OpenDirs(str(root)) as dirs:
        dirs.MAX_OPEN = 3  # fewer than the directories below: descriptors are closed and opened again
        for depth in range(1, 6):
            path = "/".join(["made"] * depth) + "/f"
            files.write_part(str(root), path, b"x" * depth, 0, True, 0o640, 5_000_000_000, dirs=dirs)
        files.write_part(str(root), "real/g", b"g", 0, True, 0o600, 7, dirs=dirs)
        with pytest.raises(files.RequestFailed, match="symlink"):
            files.write_part(str(root), "escape/h", b"h", 0, True, 0o600, 7, dirs=dirs)
        with pytest.raises(files.RequestFailed, match="symlink"):
            files.open_regular(str(root), "escape/h", dirs)
        with pytest.raises(files.RequestFailed, match="in the way"):
            files.write_part(str(root), "plain/h", b"h", 0, True, 0o600, 7, dirs=dirs)
        assert len(dirs._fds) <= 3
        fd = files.open_regular(str(root), "made/made/f", dirs)
        assert os.read(fd, 10) == b"xx"
        os.close(fd)
    assert list(outside.iterdir()) == []
    info = (root / "made" / "made" / "made" / "f").stat()
    assert (info.st_size, info.st_mode & 0o777, info.st_mtime_ns) == (3, 0o640, 5_000_000_000)
    assert not [name for name in os.listdir(root / "real") if name.startswith(files.PART_PREFIX)]


def test_git_is_not_asked_about_a_tree_outside_any_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "sub" / "new.txt").write_text("untracked")
    monkeypatch.delenv("GIT_DIR", raising=False)
    assert files.outside_git(str(plain / "sub")) and not files.outside_git(str(repo / "sub"))
    # inside a repository, even below its top, git still answers as before
    assert files.uncommitted(str(repo)) == ["sub/new.txt"]
    assert files.git_paths_of(str(repo / "sub")) == {"new.txt"}
    assert files.is_repo_top(str(repo)) and not files.is_repo_top(str(repo / "sub"))
    # outside one, the same answers without a git process
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f"#!/bin/sh\n: > {tmp_path}/git-ran\nexit 1\n")
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # a git that leaves a mark when it runs
    assert files.uncommitted(str(plain)) == []
    assert files.git_paths_of(str(plain)) is None
    assert not files.is_repo_top(str(plain))
    assert not (tmp_path / "git-ran").exists()
    assert files.uncommitted(str(repo)) == [] and (tmp_path / "git-ran").exists()  # this one asks it


def _default_acl(directory: Path, user: int, group: int, other: int) -> bool:
    """Give ``directory`` a default ACL of these permission bits (the kernel's xattr form);
    False where the file system keeps no ACLs."""
    import struct

    undefined = 0xFFFFFFFF
    entries = ((0x01, user), (0x04, group), (0x20, other))  # ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, bits, undefined) for tag, bits in entries)
    try:
        os.setxattr(directory, "system.posix_acl_default", blob)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("acl", [False, True])
def test_a_whole_file_lands_with_its_own_mode_whatever_the_umask_or_a_default_acl(tmp_path: Path, acl: bool) -> None:
    # A file is made with its mode and the chmod spared where the umask leaves the mode
    # whole; a default ACL decides instead of the umask, so there it is set all the same.
    root = tmp_path / "root"
    root.mkdir()
    if acl and not _default_acl(root, 7, 5, 0):
        pytest.skip("no ACLs on this file system")
    modes = {"plain": 0o644, "exe": 0o755, "group-writable": 0o664, "private": 0o600, "read-only": 0o444,
             "setuid": 0o4755, "none": 0o000}
    (root / files.part_name("left-over")).write_bytes(b"a part left by a transfer cut short")
    modes["left-over"] = 0o640
    with files.OpenDirs(str(root)) as dirs:
        for name, mode in modes.items():
            files.write_part(str(root), name, name.encode(), 0, True, mode, 3_000_000_007, dirs=dirs)
    for name, mode in modes.items():
        info = (root / name).stat()
        assert (info.st_mode & 0o7777, info.st_mtime_ns, (root / name).read_bytes()) == (mode, 3_000_000_007,
                                                                                       name.encode()), name
    assert not [name for name in os.listdir(root) if name.startswith(files.PART_PREFIX)]


def test_whole_files_of_any_size_are_read_with_the_stat_of_their_bytes(tmp_path: Path) -> None:
    import time

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    sizes = [0, 1, files._FIRST_READ - 1, files._FIRST_READ, files._FIRST_READ + 1, 3 * files._FIRST_READ + 5]
    written = {}
    for index, size in enumerate(sizes):
        path = f"sub/f{index}"
        written[path] = os.urandom(size)
        (root / path).write_bytes(written[path])
        os.chmod(root / path, 0o640 + index % 2)
        os.utime(root / path, ns=(1_000_000_000 * (index + 1), 1_000_000_000 * (index + 1)))
    (root / "fresh").write_bytes(b"changed just now")  # read a moment later, once settled
    written["fresh"] = b"changed just now"
    time.sleep(2 * files.SETTLE_NS / 1e9)  # the others' last change is older than a read's start
    (root / "fresh").write_bytes(b"changed just now!")
    written["fresh"] = b"changed just now!"
    (root / "link").symlink_to("sub/f1")
    asked = [*written, "sub", "link", "missing"]
    entries, blob, skipped, versions = files.read_many(str(root), asked, compress=False)
    got = {entry[0]: (blob[entry[1]:entry[1] + entry[2]], entry[4], entry[5], entry[6]) for entry in entries}
    for path, data in written.items():
        info = (root / path).stat()
        assert got[path] == (data, info.st_mode & 0o777, info.st_mtime_ns, len(data)), path
    assert len(versions) == len(entries)
    reasons = dict(skipped)
    assert set(reasons) == {"sub", "link", "missing"}
    assert "not a regular file" in reasons["sub"] and "symlink" in reasons["link"]
    assert reasons["missing"] == files.VANISHED
