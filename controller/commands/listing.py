"""list: every agent on every host (or some providers' hosts), filtered by state and labels.

A listing is also where mngr learns what changed: a remembered host that answered with no
agents left is forgotten (a create remembers it again), and the record of where agents
are and the hosts' reachability are renewed (fleet.list_fleet).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mngr.providers.base import RemembersHosts

from ..agent_lookup import fleet_listing
from ..channel.protocol import AgentInfo, HostIdle

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class ListRequest:
    states: Sequence[str] = ()  # only agents in one of these (none: every state)
    providers: Sequence[str] = ()  # only these providers' hosts (none: every provider)
    labels: Mapping[str, str] = field(default_factory=dict)  # only agents with all of these
    archived: str = "hide"  # archived agents: "hide", "include" (with the others) or "only"


@dataclass
class ListedAgent:
    info: AgentInfo
    host: str
    provider: str


@dataclass
class ListedHost:
    host: str
    provider: str
    idle: HostIdle | None  # None: an older helper


@dataclass
class Unanswered:
    host: str  # fleet.WHOLE_PROVIDER: the whole provider's
    provider: str
    error: str


@dataclass
class ListResult:
    agents: list[ListedAgent] = field(default_factory=list)
    hosts: list[ListedHost] = field(default_factory=list)  # the hosts that answered
    errors: list[Unanswered] = field(default_factory=list)


def list_agents(app: App, request: ListRequest) -> ListResult:
    wanted_states = {state.upper() for state in request.states}
    providers = app.providers(request.providers)
    asked_at = time.time()
    result = ListResult()
    with fleet_listing(app, providers) as listing:
        failed = {(error.provider, error.host) for error in listing.errors}
        busy = {(agent.provider, agent.host) for agent in listing.agents}
        for handle in listing.handles:
            key = (handle.provider_name, handle.host)
            if key not in failed and key not in busy and isinstance(handle.provider, RemembersHosts):
                handle.provider.forget(handle.host, asked_at)  # answered, with no agents left
        result.errors = [Unanswered(error.host, error.provider, error.error) for error in listing.errors]
        result.hosts = [ListedHost(report.handle.host, report.handle.provider_name, report.idle)
                        for report in listing.hosts]
        result.agents = [
            ListedAgent(agent.info, agent.host, agent.provider) for agent in listing.agents
            if (not wanted_states or agent.info.state in wanted_states)
            and _archived_wanted(agent.info.archived, request.archived)
            and all(agent.info.labels.get(key) == value for key, value in request.labels.items())
        ]
    return result


def _archived_wanted(archived: bool, wanted: str) -> bool:
    if wanted == "only":
        return archived
    return wanted == "include" or not archived
