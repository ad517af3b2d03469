"""The hosts mngr searches, how each behaved, and forgetting one (`mngr host list|forget`).

Where hosts come from is each provider's business: the config's ``[hosts]`` (configured),
the hosts a create made or reached (remembered: ssh_hosts.json for SSH hosts, the
provider's own registry for docker and Modal), and this machine. How they behaved (last
answer, unreachable since, dropped from default listings) is host_registry.py's.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mngr.providers.base import RemembersHosts

from . import completion, host_registry
from .errors import MngrError, UsageError
from .fleet import WHOLE_PROVIDER, list_fleet

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from .cli.context import App


@dataclass
class HostRow:
    host: str
    provider: str
    origin: str  # "configured", "remembered" or "local"
    state: str  # "answering", "unreachable" or "dropped" (unreachable, and left out of default listings)
    agents: int | None  # None: it did not answer
    cached_agents: int  # agents the last listings saw there
    last_seen: str | None  # ISO 8601 (UTC) of its last answer, if it ever answered
    unreachable_since: str | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="seconds")


def _origin(provider: Provider, host: str) -> str:
    if host in provider.configured_hosts:
        return "configured"
    return "local" if provider.name == "local" else "remembered"


def host_rows(app: App, provider_names: Sequence[str] = ()) -> list[HostRow]:
    """Every host of the providers (or of ``provider_names``), each asked now, dropped ones too."""
    providers = app.providers(provider_names)
    before = host_registry.read()
    with list_fleet(providers, app.quiet_seconds, app.host_timeout) as listing:
        counts: dict[tuple[str, str], int] = {}
        for agent in listing.agents:
            counts[(agent.provider, agent.host)] = counts.get((agent.provider, agent.host), 0) + 1
        errors = {(error.provider, error.host): error.error for error in listing.errors}
        handles = [(handle.provider, handle.host) for handle in listing.handles]
    cached: dict[tuple[str, str], int] = {}
    for _, host, provider_name in completion.cached_agents():
        cached[(provider_name, host)] = cached.get((provider_name, host), 0) + 1
    after = host_registry.read()
    rows = []
    for provider, host in handles:
        key = (provider.name, host)
        status = after.of(*key)
        failed = key in errors
        state = "answering"
        if failed:
            state = "dropped" if before.of(*key).dropped else "unreachable"
        rows.append(HostRow(
            host=host, provider=provider.name, origin=_origin(provider, host), state=state,
            agents=None if failed else counts.get(key, 0), cached_agents=cached.get(key, 0),
            last_seen=_iso(status.last_seen), unreachable_since=_iso(status.unreachable_since),
            error=errors.get(key, ""),
        ))
    for (provider_name, host), problem in errors.items():
        if host == WHOLE_PROVIDER:  # the provider could not tell its hosts
            rows.append(HostRow(host=host, provider=provider_name, origin="", state="unreachable", agents=None,
                                cached_agents=0, last_seen=None, unreachable_since=None, error=problem))
    return rows


def forget_hosts(app: App, names: Sequence[str], force: bool) -> list[tuple[str, str]]:
    """Forget the hosts ``names`` (HOST, or PROVIDER/HOST): (host, provider) of each, in
    order. Nothing is forgotten unless every one can be: a configured host is refused, and
    one with agents (that it reports, or that the last listings saw there if it does not
    answer) unless ``force``."""
    chosen = [_find_host(app, name) for name in names]
    for provider, host in chosen:
        if host in provider.configured_hosts:
            raise UsageError(f"host {host!r} is in the config ([hosts.{host}]): remove it there "
                             f"(mngr config edit) to stop searching it")
        if provider.name == "local":
            raise UsageError("the local host is this machine: it cannot be forgotten")
    if not force:
        for provider, host in chosen:
            names_there = _agents_on(app, provider, host)
            if names_there:
                listed = ", ".join(names_there)
                raise UsageError(
                    f"host {host!r} ({provider.name}) has agents: {listed}. Destroy them first "
                    f"(mngr destroy {' '.join(f'{name}@{host}' for name in names_there)}), or forget the "
                    f"host anyway with --force (the agents stay there; mngr stops finding them)")
    forgotten = []
    for provider, host in chosen:
        if isinstance(provider, RemembersHosts):
            provider.forget(host, math.inf)
        if host in provider.known_hosts():
            raise MngrError(f"host {host!r} is not remembered by mngr: the {provider.name} provider finds it "
                            f"by itself (remove it there)")
        host_registry.remove(provider.name, host)
        completion.host_removed(host, provider.name)
        forgotten.append((host, provider.name))
    return forgotten


def _find_host(app: App, name: str) -> tuple[Provider, str]:
    provider_name, slash, host = name.partition("/")
    if not slash:
        provider_name, host = "", name
    if not host:
        raise UsageError(f"cannot read host {name!r}: write HOST or PROVIDER/HOST")
    providers = [app.provider(provider_name)] if provider_name else app.providers()
    matches = [provider for provider in providers if host in provider.known_hosts()]
    if not matches:
        raise UsageError(f"no host named {host!r} is known (`mngr host list` shows the hosts mngr searches)")
    if len(matches) > 1:
        choices = " or ".join(f"{provider.name}/{host}" for provider in matches)
        raise UsageError(f"host {host!r} is a host of several providers: name one as {choices}")
    return matches[0], host


def _agents_on(app: App, provider: Provider, host: str) -> list[str]:
    """The agents of ``host`` as it says now, or as the last listings saw them if it does not answer."""
    from .fleet import HostFailure, ask_host
    from .hosts import HostHandle

    with HostHandle(provider, host, app.host_timeout) as handle:
        answer = ask_host(handle, app.quiet_seconds)
    if isinstance(answer, HostFailure):
        return sorted(name for name, cached_host, cached_provider in completion.cached_agents()
                      if cached_host == host and cached_provider == provider.name)
    return sorted(agent.name for agent in answer.agents)
