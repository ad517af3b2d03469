"""connect: make an agent ready for a terminal to attach to its tmux session.

Attaching itself is the terminal's business (the CLI's): this finds the agent, starts it
first if asked (the plugins hear it as any start), and notes the attach as the user's activity (idle detection reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import MngrError
from .lifecycle import Lifecycle
from .lookup import find_agents

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from ..cli.app import App


@dataclass
class ConnectRequest:
    name: str
    start: bool = False  # start a stopped agent first (else a stopped one is refused)


@dataclass
class ConnectTarget:
    """Where to attach: the agent's session ``name`` on ``host`` of ``provider``."""

    name: str
    host: str
    provider: Provider
    started: bool  # it was stopped, and was started for this


def prepare_connect(app: App, request: ConnectRequest) -> ConnectTarget:
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        name = agent.info.name
        started = False
        if agent.info.state == "STOPPED":
            if not request.start:
                raise MngrError(f"agent {name!r} is stopped (start it with: mngr start {name}, or pass --start)")
            with Lifecycle(app.registry).agent_event("start", name, agent.host, agent.provider):
                agent.handle.start_agent(name)
            started = True
        # A stray session (no record, state UNKNOWN) has nowhere to note the attach.
        if agent.info.state != "UNKNOWN":
            agent.handle.note_activity(name, "attach")
    return ConnectTarget(name, agent.host, agent.handle.provider, started)
