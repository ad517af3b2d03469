"""Every command's --help ends with examples (controller/cli/examples.py) that mngr can
parse, and that its page in docs/commands/ shows too."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mngr.controller.cli import examples
from mngr.controller.cli.main import _COMMANDS, cli

DOCS = Path(__file__).resolve().parents[2] / "docs" / "commands"
_SEPARATORS = {"|", "||", "&&", ";", "&"}
_REDIRECTIONS = {">", ">>", "<", "2>"}


@pytest.fixture(autouse=True)
def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands are looked up (and plugins loaded) with an empty config of the test's own."""
    for name in ("MNGR_CONFIG_DIR", "MNGR_HOST_DIR", "MNGR_STATE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.chdir(tmp_path)


def _every_command_path() -> list[str]:
    """``mngr`` and each built-in command and subcommand, found through the click group
    itself: a command added later has no examples until it is given some."""
    context = click.Context(cli, info_name="mngr")
    found = [""]
    for name in _COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None, name
        found += [path for path, _ in examples.paths(command, name)]
    return found


def _mngr_invocations(line: str) -> list[list[str]]:
    """The words of each `mngr ...` in a shell line (pipes, &&, redirections, VAR=value
    before the command understood). A line that runs mngr other than as a command word
    (`xargs mngr`, `$(mngr ...)`) is refused: the test could not check it."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    words = list(lexer)
    index = 0
    while index < len(words):
        word = words[index]
        if word in _SEPARATORS:
            segments.append([])
        elif word in _REDIRECTIONS:
            index += 1  # and its target
        else:
            segments[-1].append(word)
        index += 1
    invocations = []
    for segment in segments:
        while segment and "=" in segment[0] and not segment[0].startswith("-"):
            segment = segment[1:]  # VAR=value for the command
        if segment and segment[0] == "mngr":
            invocations.append(segment[1:])
        else:
            assert "mngr" not in segment and not any("$(mngr" in word for word in segment), (
                f"{line!r}: mngr must be a command of its own here, for the test to check it")
    return invocations


def _parse(args: list[str]) -> click.Context:
    """What running ``mngr ARGS`` would parse, to the command it runs, without running it:
    an unknown command, option or choice, a missing argument, raise as they would."""
    context = cli.make_context("mngr", list(args))
    while isinstance(context.command, click.Group):
        rest = [*context._protected_args, *context.args]
        name, command, rest = context.command.resolve_command(context, rest)
        assert command is not None and name is not None
        context = command.make_context(name, rest, parent=context)
    return context


def _command_path(context: click.Context) -> str:
    names = []
    while context.parent is not None:
        names.append(context.info_name or "")
        context = context.parent
    return " ".join(reversed(names))


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("path", _every_command_path())
def test_every_command_has_examples_that_parse_and_are_documented(path: str) -> None:
    listed = examples.EXAMPLES.get(path, ())
    assert listed, f"`mngr {path} --help` has no examples: add some to controller/cli/examples.py"
    shown = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert shown.exit_code == 0, shown.output
    assert "\n  Examples:\n" in shown.output
    for line, note in listed:
        assert note and f"    {line}\n" in shown.output, line
        invocations = _mngr_invocations(line)
        assert invocations, f"{line!r} runs no mngr command"
        for args in invocations:
            try:
                _parse(args)
            except click.ClickException as exc:
                raise AssertionError(f"{line!r}: mngr {' '.join(args)}: {exc.format_message()}") from None
        page_name = path.split()[0] if path else _command_path(_parse(invocations[0])).split()[0]
        page = DOCS / f"{page_name}.md"
        assert _flat(line) in _flat(page.read_text()), f"{line!r} is not in {page.name}"


def test_an_example_with_a_mistake_fails_to_parse() -> None:
    with pytest.raises(click.NoSuchOption):
        _parse(_mngr_invocations("mngr stop --no-such-flag my-task")[0])
    with pytest.raises(click.BadParameter):
        _parse(_mngr_invocations("mngr stop --on-error sometimes my-task")[0])
    with pytest.raises(click.UsageError):
        _parse(_mngr_invocations("mngr config get")[0])  # KEY missing
    with pytest.raises(click.UsageError):
        _parse(_mngr_invocations("mngr host nosuch-subcommand")[0])
    assert _mngr_invocations("git diff | mngr message r --message-file - > out && mngr wait r") == [
        ["message", "r", "--message-file", "-"], ["wait", "r"]]
    with pytest.raises(AssertionError):
        _mngr_invocations("mngr list --ids | xargs mngr stop")


def test_a_group_given_no_subcommand_prints_its_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from mngr.controller.cli.main import run

    assert run(["host"]) == 2
    shown = capsys.readouterr().err
    assert shown.startswith("Usage: mngr host [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  Examples:\n    # Every host, asked now, with its state\n    mngr host list\n" in shown
