"""How a command's agent argument is read: NAME, NAME@HOST, NAME@PROVIDER/HOST or an id."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mngr.controller.agent_refs import AgentRef, parse_agent_ref, pick
from mngr.controller.errors import AgentNotFound, UsageError


@dataclass
class Found:
    agent_name: str
    host: str
    provider: str
    agent_id: str


TWINS = [
    Found("task", "box", "ssh", "agent-" + "a1" * 16),
    Found("task", "dev@other:2222", "ssh", "agent-" + "b2" * 16),
    Found("solo", "local", "local", "agent-" + "a1c3" * 8),
    Found("web", "box", "ssh", "agent-" + "c3" * 16),
    Found("web", "box", "docker", "agent-" + "d4" * 16),
]


@pytest.mark.parametrize(("text", "expected"), [
    ("task", AgentRef("task", "task")),
    ("task@box", AgentRef("task@box", "task", "box")),
    ("task@dev@other:2222", AgentRef("task@dev@other:2222", "task", "dev@other:2222")),
    ("web@docker/box", AgentRef("web@docker/box", "web", "box", "docker")),
])
def test_the_forms_are_read(text: str, expected: AgentRef) -> None:
    assert parse_agent_ref(text) == expected


@pytest.mark.parametrize("text", ["", "task@", "@box", "task@docker/", "task@/box"])
def test_a_malformed_reference_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_agent_ref(text)


def test_a_name_on_two_hosts_is_ambiguous_and_says_how_to_name_each() -> None:
    with pytest.raises(UsageError) as raised:
        pick(parse_agent_ref("task"), TWINS)
    assert str(raised.value) == ("agent name 'task' exists on several hosts: box (ssh), dev@other:2222 (ssh); "
                                 "name one as task@box or task@dev@other:2222")


def test_name_at_host_picks_one_of_them() -> None:
    assert pick(parse_agent_ref("task@box"), TWINS) is TWINS[0]
    assert pick(parse_agent_ref("task@dev@other:2222"), TWINS) is TWINS[1]
    assert pick(parse_agent_ref("solo"), TWINS) is TWINS[2]


def test_a_host_name_two_providers_have_needs_the_provider() -> None:
    with pytest.raises(UsageError) as raised:
        pick(parse_agent_ref("web@box"), TWINS)
    assert "name one as web@ssh/box or web@docker/box" in str(raised.value)
    assert pick(parse_agent_ref("web@docker/box"), TWINS) is TWINS[4]


def test_an_id_or_a_long_enough_prefix_of_one_names_the_agent() -> None:
    assert pick(parse_agent_ref(TWINS[1].agent_id), TWINS) is TWINS[1]
    assert pick(parse_agent_ref("agent-b2b2b2"), TWINS) is TWINS[1]
    with pytest.raises(AgentNotFound):
        pick(parse_agent_ref("agent-b2b2"), TWINS)  # too short to be taken for an id
    with pytest.raises(UsageError, match="several agents' ids"):
        pick(parse_agent_ref("agent-a1a1a1"), [*TWINS, Found("x", "h", "ssh", "agent-a1a1a1ff")])


def test_a_name_is_a_name_before_it_is_an_id() -> None:
    named_like_an_id = Found("agent-b2b2b2", "local", "local", "agent-" + "e5" * 16)
    assert pick(parse_agent_ref("agent-b2b2b2"), [*TWINS, named_like_an_id]) is named_like_an_id


def test_not_found_says_where_it_looked_and_what_did_not_answer() -> None:
    with pytest.raises(AgentNotFound) as raised:
        pick(parse_agent_ref("solo@box"), TWINS, unanswered="dead (ssh)")
    assert str(raised.value) == "no agent named 'solo' on host 'box'; hosts that did not answer: dead (ssh)"
