"""The real claude and codex CLIs, driven through mngr against the model stand-in."""

from __future__ import annotations

import pytest

from tests.conftest import AgentUser


def _create(user: AgentUser, name: str, agent_type: str, *args: str) -> None:
    result = user.sandbox.mngr("create", name, "-t", agent_type, "--no-connect", *args, timeout=120)
    assert result.returncode == 0, result.stderr


def _with_screen(user: AgentUser, name: str, error: str) -> str:
    """A failure's error with the agent's screen, which shows what the CLI was doing."""
    return f"{error}\n--- screen of {name}:\n{user.sandbox.mngr('capture', name).stdout}"


@pytest.mark.parametrize("agent_type", ["claude", "codex"])
def test_a_message_of_any_length_reaches_the_model(agent_user: AgentUser, agent_type: str) -> None:
    _create(agent_user, "talker", agent_type)
    messages = ["x", "a line of sixty-three characters or more, which a CLI takes for a paste!!",
                "two\nlines with 'quotes' \"double\" $(echo no) `echo no` and ünïcødé ✓"]
    for text in messages:
        result = agent_user.sandbox.mngr("message", "talker", text, timeout=120)
        assert result.returncode == 0, _with_screen(agent_user, "talker", result.stderr)
        assert agent_user.standin.received(text), (text, agent_user.standin.received_texts())
