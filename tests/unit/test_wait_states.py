"""What `mngr wait` makes of the states asked for and of each agent's state: in-process."""

from __future__ import annotations

import pytest

from mngr.controller.channel.protocol import AgentInfo
from mngr.controller.commands.wait import AgentOutcome, WaitResult, _finished, _judge, parse_states
from mngr.controller.errors import UsageError


def info(state: str) -> AgentInfo:
    return AgentInfo(id="agent-1", name="a", type="command", state=state, command="x", work_dir="/w",
                     created_at="", labels={}, pid=None, exit_status=None, idle_seconds=None, problem=None)


def test_states_are_any_case_comma_separated_and_repeatable_once_each() -> None:
    assert parse_states(["Waiting,done", "DONE", " stopped "]) == ["WAITING", "DONE", "STOPPED"]
    with pytest.raises(UsageError, match="not a state to wait for"):
        parse_states(["unknown"])
    with pytest.raises(UsageError, match="not a state to wait for"):
        parse_states(["gone"])  # GONE is nothing an agent reaches by itself
    with pytest.raises(UsageError):
        parse_states([","])


@pytest.mark.parametrize(("now", "wanted", "outcome"), [
    ("WAITING", {"WAITING"}, "reached"),
    ("RUNNING", {"WAITING"}, "pending"),
    ("UNKNOWN", {"WAITING"}, "pending"),  # a record without its session yet: look again
    ("DONE", {"WAITING"}, "unreachable"),
    ("STOPPED", {"RUNNING", "WAITING"}, "unreachable"),
    ("GONE", {"DONE"}, "unreachable"),
    ("DONE", {"STOPPED"}, "unreachable"),  # only a `mngr stop` would make it STOPPED
    ("STOPPED", {"DONE", "STOPPED"}, "reached"),
])
def test_an_agent_is_reached_pending_or_unreachable(now: str, wanted: set[str], outcome: str) -> None:
    judged = AgentOutcome(info("RUNNING"), "local", "local")
    _judge(judged, info(now), frozenset(wanted))
    if outcome == "unreachable" and now in ("DONE", "STOPPED"):
        # Settled only once a second look agrees (a stop or destroy under way shows STOPPED).
        assert (judged.outcome, judged.why) == ("pending", "")
        _judge(judged, info(now), frozenset(wanted))
    assert judged.outcome == outcome
    assert judged.info.state == now
    assert bool(judged.why) == (outcome == "unreachable")


def test_a_settled_state_seen_once_then_gone_is_a_destroy() -> None:
    judged = AgentOutcome(info("RUNNING"), "local", "local")
    _judge(judged, info("STOPPED"), frozenset({"DONE"}))
    assert judged.outcome == "pending"
    _judge(judged, None, frozenset({"DONE"}))
    assert (judged.outcome, judged.why) == ("unreachable", "it no longer exists (destroyed while waited on)")


def test_a_settled_state_seen_once_then_running_again_is_pending() -> None:
    judged = AgentOutcome(info("RUNNING"), "local", "local")
    _judge(judged, info("STOPPED"), frozenset({"WAITING"}))
    _judge(judged, info("RUNNING"), frozenset({"WAITING"}))
    _judge(judged, info("STOPPED"), frozenset({"WAITING"}))
    assert judged.outcome == "pending"  # two looks apart, not two in a row


def test_an_agent_its_host_no_longer_has_is_unreachable() -> None:
    judged = AgentOutcome(info("RUNNING"), "local", "local")
    _judge(judged, None, frozenset({"DONE"}))
    assert (judged.outcome, judged.why) == ("unreachable", "it no longer exists (destroyed while waited on)")


def test_the_wait_ends_with_all_there_or_one_with_any_or_one_unreachable() -> None:
    def result(*outcomes: str) -> WaitResult:
        return WaitResult([AgentOutcome(info("RUNNING"), "h", "p", outcome) for outcome in outcomes])

    assert _finished(result("reached", "reached"), any_agent=False)
    assert not _finished(result("reached", "pending"), any_agent=False)
    assert _finished(result("reached", "pending"), any_agent=True)
    assert not _finished(result("pending", "pending"), any_agent=True)
    assert _finished(result("pending", "unreachable"), any_agent=False)
