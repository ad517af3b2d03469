"""Entry points kept by a process (the resident mngr) are used only while sys.path is unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mngr.controller import entry_points


def _distribution(site: Path, name: str) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(f"[mngr]\n{name} = {name}_module\n")


def test_kept_entry_points_are_used_while_sys_path_is_the_same(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry_points, "_kept", {})
    site = tmp_path / "site"
    _distribution(site, "first")
    monkeypatch.setattr(sys, "path", [str(site)])
    entry_points.keep("mngr")
    _distribution(site, "second")  # the resident's identity (its sys.path's mtimes) changed by this
    assert [point.name for point in entry_points.entry_points("mngr")] == ["first"]
    assert [point.name for point in entry_points.entry_points("mngr", [str(site)])] == ["first", "second"]
    assert entry_points.entry_points("other") == []  # another group is never taken from the kept one
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "elsewhere")])
    assert [point.name for point in entry_points.entry_points("mngr")] == ["first", "second"]
