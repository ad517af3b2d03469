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


def test_claude_runs_in_a_session_of_its_own_and_resumes_it_without_the_prompt() -> None:
    launch = TYPES["claude"].launch(["--model", "opus", "fix the tests"])
    session = launch.session_id
    assert len(session) == 36
    assert shlex.split(launch.command) == ["claude", "--session-id", session, "--model", "opus", "fix the tests"]
    assert shlex.split(launch.resume_command) == ["claude", "--resume", session, "--model", "opus"]
    assert shlex.split(launch.restart_command) == ["claude", "--session-id", session, "--model", "opus"]
    assert TYPES["claude"].launch([]).session_id != session


def test_claude_arguments_that_manage_the_session_are_left_alone() -> None:
    for args in (["--resume", "abc"], ["--continue"], ["-p", "hi"], ["--session-id=x"]):
        launch = TYPES["claude"].launch(args)
        assert (launch.session_id, launch.resume_command) == ("", "")
        assert shlex.split(launch.command) == ["claude", *args]


def test_a_copy_of_a_claude_agent_gets_a_new_session_with_the_same_arguments() -> None:
    original = TYPES["claude"].launch(["--model", "opus"])
    copy = TYPES["claude"].relaunch(original.command)
    assert copy.session_id not in ("", original.session_id)
    assert shlex.split(copy.command) == ["claude", "--session-id", copy.session_id, "--model", "opus"]
    assert TYPES["command"].relaunch("sleep 600").command == "sleep 600"


def test_codex_resumes_the_session_it_picks_without_the_prompt() -> None:
    launch = TYPES["codex"].launch(["-m", "o3", "--full-auto", "do it"])
    assert launch.session_id == ""
    assert launch.resume_command == "codex resume -m o3 --full-auto {session_id}"
    assert launch.restart_command == "codex -m o3 --full-auto"
    assert TYPES["codex"].launch(["exec", "do it"]).resume_command == ""  # not the interactive CLI


def test_a_config_table_named_after_a_built_in_keeps_its_interaction() -> None:
    opus = from_config("claude", {"command": "claude --model opus"}, TYPES)
    assert opus.interaction is TYPES["claude"].interaction
    assert shlex.split(opus.launch([]).command)[:2] == ["claude", "--model"]
    wrapper = from_config("mine", {"command": "wrap", "like": "codex"}, TYPES)
    assert wrapper.interaction is TYPES["codex"].interaction
    assert wrapper.launch(["x"]).restart_command == "wrap"
    with pytest.raises(ConfigError, match="unknown agent type 'nope'"):
        from_config("other", {"command": "x", "like": "nope"}, TYPES)


@pytest.mark.parametrize("interaction", [
    "not a table", {"busy_pattern": "x"}, {"ready_pattern": "("}, {"ready_pattern": "x", "colour": "red"},
    {"ready_pattern": "x", "dialogs": [{"reason": "r"}]}, {"ready_pattern": "x", "dialogs": [{"reason": "r", "pattern": "("}]},
])
def test_bad_interaction_tables_are_config_errors(interaction) -> None:
    with pytest.raises(ConfigError, match=r"agent_types\.bot\.interaction"):
        from_config("bot", {"command": "bot", "interaction": interaction})
