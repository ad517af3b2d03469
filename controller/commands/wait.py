"""wait: block until agents reach one of the states asked for.

The agents are found once (lookup.find_agents), and their hosts' handles stay open while
the wait lasts: every ``interval`` each host that still has an agent being waited on is
asked for its listing (ListAgents, the hosts in parallel), and each such agent's state in it
decides. The state is the one `mngr list` shows, so a script that waits sees what a person
listing would.

An agent can stop being worth the wait: destroyed while waited on, or settled in a state
not asked for (DONE, STOPPED, GONE: its process is gone, and only someone's start, stop or
destroy changes that). The wait then ends, once a second look finds it the same (a stop or
destroy under way shows STOPPED for a moment), with that agent ``unreachable`` rather than
running out its timeout. A host that does not answer is asked
again on the next round; its error is kept for the report should the wait time out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..channel.protocol import AgentInfo
from ..errors import UsageError
from ..fanout import fan_out
from ..fleet import LocatedAgent, listing_seconds
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App
    from ..hosts import HostHandle

WAITABLE_STATES = ("RUNNING", "WAITING", "DONE", "STOPPED")
# An agent whose process is gone stays in one of these until someone acts on it (start,
# stop, destroy): waiting for another state would wait for that someone.
SETTLED_STATES = ("DONE", "STOPPED", "GONE")


@dataclass
class WaitRequest:
    names: Sequence[str]
    states: Sequence[str]  # any of WAITABLE_STATES
    timeout: float | None = None  # seconds; None: as long as it takes
    any_agent: bool = False  # done when the first agent gets there, not the last
    interval: float = 0.5  # seconds between two looks at the hosts
    # Narrows the agents named or, without names, picks them among all (--include/--exclude).
    keep: Callable[[LocatedAgent], bool] | None = None
    piped: bool = False  # the names were read from stdin: none is no error


@dataclass
class AgentOutcome:
    """One agent waited on, with its state as last seen."""

    info: AgentInfo
    host: str
    provider: str
    # "reached", "pending" (the wait ended first), or "unreachable" (see ``why``)
    outcome: str = "pending"
    why: str = ""
    # A settled state not asked for, seen once: it decides when the next look agrees (a
    # stop or destroy under way shows STOPPED just before the agent is gone).
    settling: str = ""


@dataclass
class WaitResult:
    agents: list[AgentOutcome] = field(default_factory=list)
    timed_out: bool = False
    host_errors: dict[str, str] = field(default_factory=dict)  # host -> its last error, while waiting

    @property
    def reached(self) -> list[AgentOutcome]:
        return [agent for agent in self.agents if agent.outcome == "reached"]

    @property
    def unreachable(self) -> list[AgentOutcome]:
        return [agent for agent in self.agents if agent.outcome == "unreachable"]


def parse_states(words: Sequence[str]) -> list[str]:
    """``--for`` values (repeatable, comma-separated, any case) as states."""
    states: list[str] = []
    for word in words:
        for part in word.split(","):
            state = part.strip().upper()
            if state not in WAITABLE_STATES:
                choices = ", ".join(s.lower() for s in WAITABLE_STATES)
                raise UsageError(f"--for {part.strip()!r}: not a state to wait for (choose from {choices})")
            if state not in states:
                states.append(state)
    if not states:
        raise UsageError("--for: name at least one state")
    return states


def wait(app: App, request: WaitRequest, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> WaitResult:
    """Wait for ``request.names`` to reach ``request.states``; what became of each."""
    wanted = frozenset(request.states)
    if not wanted <= frozenset(WAITABLE_STATES):
        raise UsageError(f"cannot wait for {sorted(wanted - frozenset(WAITABLE_STATES))}")
    deadline = None if request.timeout is None else clock() + request.timeout
    with find_agents(app, request.names, keep=request.keep, piped=request.piped) as found:
        located = _distinct(found.agents)
        result = WaitResult([AgentOutcome(agent.info, agent.host, agent.provider) for agent in located])
        for agent, outcome in zip(located, result.agents, strict=True):
            _judge(outcome, agent.info, wanted)
        while not _finished(result, request.any_agent):
            if deadline is not None and clock() >= deadline:
                result.timed_out = True
                break
            pause = request.interval if deadline is None else min(request.interval, max(0.0, deadline - clock()))
            sleep(pause)
            _look_again(app, located, result, wanted)
        return result


def _distinct(agents: list[LocatedAgent]) -> list[LocatedAgent]:
    """Each agent once, however often (or by however many names) it was named."""
    seen: dict[tuple[str, str, str], LocatedAgent] = {}
    for agent in agents:
        seen.setdefault((agent.provider, agent.host, agent.agent_id or agent.agent_name), agent)
    return list(seen.values())


def _finished(result: WaitResult, any_agent: bool) -> bool:
    if not result.agents or result.unreachable:
        return True
    if any_agent:
        return bool(result.reached)
    return all(agent.outcome == "reached" for agent in result.agents)


def _judge(outcome: AgentOutcome, info: AgentInfo | None, wanted: frozenset[str]) -> None:
    """Set ``outcome`` from the agent's state now (None: its host no longer has it)."""
    if info is None:
        outcome.outcome, outcome.why = "unreachable", "it no longer exists (destroyed while waited on)"
        return
    outcome.info = info
    if info.state in wanted:
        outcome.outcome, outcome.why = "reached", ""
    elif info.state == "GONE" or (info.state in SETTLED_STATES and outcome.settling == info.state):
        outcome.outcome = "unreachable"
        outcome.why = f"it is {info.state}, which it stays until someone acts on it"
    else:
        outcome.outcome, outcome.why = "pending", ""
    outcome.settling = info.state if outcome.outcome == "pending" and info.state in SETTLED_STATES else ""


def _look_again(app: App, located: list[LocatedAgent], result: WaitResult, wanted: frozenset[str]) -> None:
    """Ask each host that still has an agent pending for its listing; judge those agents."""
    pending: dict[int, list[int]] = {}
    handles: dict[int, HostHandle] = {}
    for index, (agent, outcome) in enumerate(zip(located, result.agents, strict=True)):
        if outcome.outcome == "pending":
            pending.setdefault(id(agent.handle), []).append(index)
            handles[id(agent.handle)] = agent.handle
    keys = list(pending)
    answers = fan_out(lambda key: handles[key].list_host(app.quiet_seconds), keys,
                      item_timeout=listing_seconds(app.host_timeout))
    for key, answer in zip(keys, answers, strict=True):
        handle = handles[key]
        if answer.value is None:
            result.host_errors[handle.host] = answer.error or "no answer"
            continue
        result.host_errors.pop(handle.host, None)
        by_id = {info.id: info for info in answer.value.agents}
        by_name = {info.name: info for info in answer.value.agents}
        for index in pending[key]:
            agent = located[index]
            now = by_id.get(agent.agent_id) if agent.agent_id else by_name.get(agent.agent_name)
            _judge(result.agents[index], now, wanted)
