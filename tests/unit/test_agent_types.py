"""Agent types turn the words after `--` into a command line without shell surprises."""

from __future__ import annotations

import shlex

import pytest

from mngr.controller.agent_types import BUILTIN_AGENT_TYPES, AgentType, from_config
from mngr.controller.errors import ConfigError, UsageError

TYPES = {t.name: t for t in BUILTIN_AGENT_TYPES}


def test_command_type_quotes_every_word() -> None:
    args = ["sh", "-c", "echo $HOME; rm -rf /", "it's"]
    line = TYPES["command"].command_line(args)
    assert shlex.split(line) == args
    assert TYPES["command"].binary(args) == "sh"


def test_command_type_needs_words() -> None:
    with pytest.raises(UsageError):
        TYPES["command"].command_line([])


def test_claude_and_codex_pass_arguments_through() -> None:
    assert shlex.split(TYPES["claude"].command_line(["--model", "opus"])) == ["claude", "--model", "opus"]
    assert TYPES["claude"].binary(["--model"]) == "claude"
    assert TYPES["codex"].command_line([]) == "codex"


def test_custom_type_from_config() -> None:
    bot = from_config("bot", {"command": "python3 -m bot --fast", "ready_pattern": "ready>"})
    assert bot.command_line(["x y"]) == "python3 -m bot --fast 'x y'"
    assert bot.binary([]) == "python3"
    assert bot.ready_pattern == "ready>"
    assert AgentType("env", "FOO=1 bot").binary([]) is None  # cannot tell the binary in advance


@pytest.mark.parametrize("section", [{}, {"command": ""}, {"command": 3}, "bot", {"command": "x", "ready_pattern": 1}])
def test_bad_custom_types_are_config_errors(section) -> None:
    with pytest.raises(ConfigError):
        from_config("bot", section)
