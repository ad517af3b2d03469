"""The first word of a command line: a command, an alias, help or version, a mistyped
command (an error), or else the name of an agent to create."""

from __future__ import annotations

import click
import pytest

from mngr.controller.cli.main import ALIASES, cli, run


@pytest.mark.parametrize(("alias", "command"), sorted(ALIASES.items()))
def test_each_alias_is_its_command(alias: str, command: str) -> None:
    with click.Context(cli) as ctx:
        resolved = cli.get_command(ctx, alias)
        assert resolved is not None and resolved is cli.get_command(ctx, command)


@pytest.mark.parametrize(("typed", "meant"), [
    ("lsit", "list"), ("destory", "destroy"), ("stpo", "stop"), ("creat", "create"), ("copy", "clone"),
    ("cp", "clone"), ("delete", "destroy"), ("mesage", "message"), ("trasncript", "transcript")])
def test_a_mistyped_or_misnamed_command_is_an_error_that_says_which_one(typed: str, meant: str, capsys) -> None:
    assert run([typed, "some-agent"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"no command {typed!r}; did you mean 'mngr {meant}'?" in error
    assert f"mngr create {typed}" in error


def test_help_and_version_are_words_too(capsys) -> None:
    assert run(["help"]) == 0
    listing = capsys.readouterr().out
    assert "list (ls)" in listing and "destroy (rm)" in listing and "exec (x)" in listing
    assert run(["help", "ls"]) == 0
    assert capsys.readouterr().out.startswith("Usage: mngr list")
    assert run(["help", "nonesuch"]) == 2
    assert "no command 'nonesuch'" in capsys.readouterr().err
    assert run(["version"]) == 0
    assert capsys.readouterr().out.startswith("mngr, version ")


@pytest.mark.parametrize("name", ["my-task", "agent-1", "box", "fix_tests", "Refactor"])
def test_other_first_words_still_name_an_agent_to_create(name: str, capsys) -> None:
    assert run([name, "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage: mngr create")
