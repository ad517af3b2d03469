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
