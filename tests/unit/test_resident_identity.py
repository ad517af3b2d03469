"""The resident's identity of a mngr (controller/cli/resident_client.py) follows its code
and nothing that tools write beside it: a linter's cache appearing in the package must not
make every client miss the resident it started."""

from __future__ import annotations

import os
from pathlib import Path

from mngr.controller.cli import resident_client


def _stated(root: Path) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    resident_client._stat_tree(str(root), found)
    return sorted(found)


def test_only_python_files_outside_caches_make_the_identity(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "sub" / "more.py").write_text("y = 2\n")
    before = _stated(tmp_path)
    assert [Path(path).name for path, _, _ in before] == ["code.py", "more.py"]
    for cache in (".ruff_cache/0.17/123", "__pycache__", ".mypy_cache/3.11"):
        (tmp_path / cache).mkdir(parents=True)
        (tmp_path / cache / "entry.py").write_text("cached")
    (tmp_path / "notes.txt").write_text("an editor's file")
    (tmp_path / ".code.py.swp").write_text("a swap file")
    assert _stated(tmp_path) == before
    os.utime(tmp_path / "sub" / "more.py", ns=(1, 1))  # the code itself changed
    assert _stated(tmp_path) != before
