"""Names given to a bulk command: '-' reads them from stdin (as `mngr list --ids` prints them)."""

from __future__ import annotations

import io

import pytest

from mngr.controller.cli.targets import expand_names
from mngr.controller.errors import UsageError


def test_names_without_a_dash_are_kept_in_order_each_once() -> None:
    assert expand_names(("b", "a", "b")) == (["b", "a"], False)


def test_a_dash_is_replaced_by_the_lines_of_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("agent-1\n\n  web-2  \n# from a script\nagent-1\n"))
    assert expand_names(("first", "-", "last")) == (["first", "agent-1", "web-2", "last"], True)


def test_empty_stdin_gives_no_names_but_says_it_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert expand_names(("-",)) == ([], True)


def test_one_dash_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    with pytest.raises(UsageError, match="more than once"):
        expand_names(("-", "-"))
