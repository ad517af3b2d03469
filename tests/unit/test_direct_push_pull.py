"""direct.parse reads a push or pull's arguments only where click would read them the same."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mngr.controller.cli import direct
from mngr.controller.cli.sync_cmd import pull, push

TOKENS = ["task", "other", "--delete", "--dry-run", "--include-gitignored", "--force", "--format", "json", "human",
          "xml", "--format=json", "--format=human", "--format=", "--del", "-h", "--help", "--", "-", "", "-x",
          "DIR", "FILE", "MISSING"]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("places")
    (root / "dir").mkdir()
    (root / "file").write_text("x")
    return {"DIR": str(root / "dir"), "FILE": str(root / "file"), "MISSING": str(root / "missing")}


def _click_params(argv: list[str]) -> tuple[str, str, str | None, dict[str, object]] | None:
    command = push if argv[0] == "push" else pull
    try:
        with command.make_context(argv[0], list(argv[1:])) as context:
            params = dict(context.params)
    except click.exceptions.ClickException:
        return None
    except click.exceptions.Exit:  # --help
        return None
    name, local_path = params.pop("name"), params.pop("local_path")
    return argv[0], name, local_path, params


@settings(derandomize=True, deadline=None, max_examples=400)
@given(action=st.sampled_from(["push", "pull"]), words=st.lists(st.sampled_from(TOKENS), max_size=6))
def test_what_direct_reads_click_reads_the_same(places: dict[str, str], action: str, words: list[str]) -> None:
    argv = [action, *(places.get(word, word) for word in words)]
    parsed = direct.parse(argv)
    if parsed is not None:
        assert _click_params(argv) == parsed


@pytest.mark.parametrize("words", [
    ["task"], ["task", "DIR"], ["task", "MISSING", "--delete"], ["--dry-run", "task", "--format", "json"],
    ["task", "DIR", "--include-gitignored", "--force", "--format=human", "--force"],
])
def test_plain_arguments_are_read_directly(places: dict[str, str], words: list[str]) -> None:
    for action in ("push", "pull"):
        argv = [action, *(places.get(word, word) for word in words)]
        parsed = direct.parse(argv)
        assert parsed is not None and parsed == _click_params(argv)


@pytest.mark.parametrize("words", [
    [], ["task", "FILE"], ["task", "--help"], ["-h"], ["--", "task"], ["task", "--format", "xml"],
    ["task", "--format"], ["task", "DIR", "extra"], ["task", "--del"], ["task", ""], ["-"],
])
def test_anything_else_goes_to_click(places: dict[str, str], words: list[str]) -> None:
    assert direct.parse(["push", *(places.get(word, word) for word in words)]) is None


def test_other_commands_and_completion_go_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    assert direct.parse(["pair", "task"]) is None and direct.parse([]) is None
    monkeypatch.setenv("_MNGR_COMPLETE", "bash_complete")
    assert direct.parse(["push", "task"]) is None


def test_an_unreadable_directory_goes_to_click(tmp_path: Path) -> None:
    import os

    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    try:
        readable = os.access(locked, os.R_OK)  # root reads it anyway
        assert (direct.parse(["push", "task", str(locked)]) is not None) == readable
    finally:
        locked.chmod(0o755)
