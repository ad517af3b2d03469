"""The distribution ships every package folder (an editable install would hide a missing one)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    on_disk = set()
    for package, folder in mapping.items():
        code = (ROOT / folder / "__init__.py").exists()
        # Code: the folders with an __init__.py. Data (docs/, for `mngr ask`): every folder
        # with files, each shipping them as package data.
        marks = (ROOT / folder).rglob("__init__.py") if code else (ROOT / folder).rglob("*.md")
        for mark in marks:
            name = ".".join([package, *mark.parent.relative_to(ROOT / folder).parts])
            on_disk.add(name)
            if not code:
                assert setuptools["package-data"].get(name) == ["*.md"], name
    assert on_disk == set(setuptools["packages"])


def test_console_script_points_at_the_entry() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"mngr": "mngr.controller.cli.entry:main"}
    from mngr.controller.cli import entry

    assert callable(entry.main)
    assert project["requires-python"] == ">=3.11"
