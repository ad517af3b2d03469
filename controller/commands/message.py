"""message: type a text into agents, exactly as given, all of them in parallel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import MngrError
from ..fanout import MAX_PARALLEL, interruptible, not_started_reason, per_agent, stopping_on_error
from ..fleet import LocatedAgent
from .agents import LIVE_STATES, Bulk, Failed, Targets
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App

# The helper's own wait for a message to show in the agent's session log, and some to spare.
_CONFIRM_ALLOWANCE = 20.0


@dataclass
class MessageRequest:
    names: Sequence[str]
    text: str
    start_first: bool = False  # start stopped agents first
    ready_timeout: float = 60.0
    targets: Targets | None = None  # instead of names
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class Reached:
    name: str
    host: str
    provider: str


@dataclass
class MessageResult:
    sent: list[str] = field(default_factory=list)  # the names of the agents that took it
    reached: list[Reached] = field(default_factory=list)  # the same agents, with their hosts
    dry_run: bool = False  # ``reached``: the agents it would be sent to; nothing was sent
    failed: list[Failed] = field(default_factory=list)
    # By Ctrl-C: deliveries under way were waited for (a second Ctrl-C: not), none started
    # after it; ``failed`` names each agent that did not get the message or may not have.
    interrupted: bool = False


def message(app: App, request: MessageRequest) -> MessageResult:
    if not request.text.strip():
        from ..errors import UsageError

        raise UsageError("the message is empty")
    result = MessageResult()
    per_message = 2 * app.host_timeout + request.ready_timeout + _CONFIRM_ALLOWANCE
    targets = request.targets if request.targets is not None else Targets(request.names)
    with find_agents(app, targets.names, states=(*LIVE_STATES, "DONE", "STOPPED", "UNKNOWN"), keep=targets.keep,
                     piped=targets.piped) as found:
        if request.bulk.dry_run:
            result.dry_run = True
            result.reached = [Reached(agent.info.name, agent.host, agent.provider) for agent in found.agents]
            return result
        with interruptible("the messages already under way") as interruption:
            def deliver(agent: LocatedAgent) -> None:
                _send_one(app, agent, request)

            send = stopping_on_error(deliver, request.bulk.on_error, interruption)
            outcomes = per_agent(send, found.agents,
                                 host_timeout=lambda count: per_message * -(-count // MAX_PARALLEL),
                                 interruption=interruption)
    result.interrupted = interruption.by_user
    for outcome in outcomes:
        agent = outcome.item
        if outcome.ok:
            result.sent.append(agent.info.name)
            result.reached.append(Reached(agent.info.name, agent.host, agent.provider))
        else:
            error = not_started_reason(outcome.error, interruption) or "failed"
            result.failed.append(Failed(agent.info.name, agent.host, agent.provider, error))
    return result


def _send_one(app: App, agent: LocatedAgent, request: MessageRequest) -> None:
    name = agent.info.name
    wait_ready = False
    if agent.info.state == "UNKNOWN":
        raise MngrError(f"{name!r} is not a working agent: {agent.info.problem or 'state UNKNOWN'}")
    if agent.info.state not in LIVE_STATES:
        if not request.start_first:
            verb = "has exited (DONE)" if agent.info.state == "DONE" else "is stopped"
            raise MngrError(f"agent {name!r} {verb}: start it with `mngr start {name}` or pass --start")
        agent.handle.start_agent(name)
        wait_ready = True
    agent_type = app.registry.agent_types.get(agent.info.type)
    agent.handle.send_message(
        name,
        request.text,
        wait_ready=wait_ready,
        ready_pattern=agent_type.ready_pattern if agent_type else None,
        ready_quiet_seconds=agent_type.ready_quiet_seconds if agent_type else 1.0,
        ready_timeout=request.ready_timeout,
    )
