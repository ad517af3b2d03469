"""Commands that touch many hosts: ask each concurrently, keep going when some fail.

Each host gets one ListAgents request; hosts are queried in parallel by a bounded thread
pool with a per-host timeout, and a host that fails shows up in ``errors`` without hiding
what the other hosts answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mngr.providers.base import HearsListings, ListingProblems, Provider

from .channel.protocol import AgentInfo, AgentList, HostIdle
from .errors import MngrError
from .hosts import HostHandle

# Hosts asked at once. Each is mostly waiting (on a socket, or on an ssh process doing its
# handshake), so this bounds open connections and ssh processes, not CPU.
MAX_PARALLEL_HOSTS = 64


def listing_seconds(timeout: float) -> float:
    """What one host gets to answer a listing in all: its requests are bounded by ``timeout``
    each (connecting may take a few); this catches what they cannot see (a connection that
    hangs before the helper is reached)."""
    return 2 * timeout + 5.0


@dataclass
class LocatedAgent:
    info: AgentInfo
    handle: HostHandle

    @property
    def host(self) -> str:
        return self.handle.host

    @property
    def provider(self) -> str:
        return self.handle.provider_name

    @property
    def agent_name(self) -> str:
        return self.info.name

    @property
    def agent_id(self) -> str:
        return self.info.id


@dataclass
class HostReport:
    """A host that answered, with its idle status (None from an older helper)."""

    handle: HostHandle
    idle: HostIdle | None


WHOLE_PROVIDER = "*"  # the host of a HostFailure that is the whole provider's


@dataclass
class HostFailure:
    host: str
    provider: str
    error: str


@dataclass
class FleetListing:
    agents: list[LocatedAgent] = field(default_factory=list)
    errors: list[HostFailure] = field(default_factory=list)
    handles: list[HostHandle] = field(default_factory=list)
    hosts: list[HostReport] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        for handle in self.handles:
            handle.close()

    def __enter__(self) -> FleetListing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def ask_host(handle: HostHandle, quiet_seconds: float) -> AgentList | HostFailure:
    """The host's agents, or why it did not answer."""
    try:
        found = handle.list_host(quiet_seconds)
        if isinstance(handle.provider, HearsListings):
            handle.provider.listed(handle.host, [agent.name for agent in found.agents])
        return found
    except MngrError as exc:
        detail = getattr(exc, "detail", str(exc))
        return HostFailure(handle.host, handle.provider_name, detail)
    except OSError as exc:
        return HostFailure(handle.host, handle.provider_name, str(exc))


def list_fleet(providers: Iterable[Provider], quiet_seconds: float, timeout: float,
               failed: Sequence[HostFailure] = (), drop_after: float | None = None,
               answer_within: float | None = None) -> FleetListing:
    """Every agent of ``providers``' hosts. Hosts in ``failed`` (just asked, without an
    answer) are not asked again: they are reported as failed once more.

    With ``answer_within``, hosts that have not answered after that many seconds are not
    waited for: they are reported as failed ("no answer within ..."), but not noted as
    unreachable (slow is not gone), and what mngr last saw of them is kept.

    With ``drop_after``, a remembered host that has not answered for that many seconds is
    reported once more, as dropped, and then not asked at all (host_registry.py); without
    it (`mngr host list`), every host is asked.
    """
    from . import host_registry

    providers = list(providers)
    already_failed = {(failure.provider, failure.host): failure for failure in failed}
    book = host_registry.read()
    now = time.time()
    handles = []
    problems = []
    dropping = set()
    for provider in providers:
        for host in provider.known_hosts():
            status = book.of(provider.name, host)
            if drop_after is not None and host not in provider.configured_hosts \
                    and status.unreachable_since is not None and status.unreachable_for(now) >= drop_after:
                if status.dropped:
                    continue
                dropping.add((provider.name, host))
            handles.append(HostHandle(provider, host, timeout))
        problem = provider.listing_problem() if isinstance(provider, ListingProblems) else ""
        if problem:
            problems.append(HostFailure(WHOLE_PROVIDER, provider.name, problem))
    listing = FleetListing(handles=handles, errors=problems)

    from .progress import Progress

    # Drawn only when the hosts take a while to answer (progress.DELAY_SECONDS).
    answers = Progress("asking hosts for their agents", total=len(handles), unit="hosts")

    def query(handle: HostHandle) -> AgentList | HostFailure:
        result = already_failed.get((handle.provider_name, handle.host)) or ask_host(handle, quiet_seconds)
        answers.advance()
        if listing.closed:  # answered after it was given up on (answer_within): nobody will close it
            handle.close()
        return result

    from .fanout import fan_out

    seconds = listing_seconds(timeout) if answer_within is None else answer_within
    with answers:
        outcomes = fan_out(query, handles, item_timeout=seconds, limit=MAX_PARALLEL_HOSTS)
    answered = []
    late = set()
    for handle, outcome in zip(handles, outcomes, strict=True):
        key = (handle.provider_name, handle.host)
        result = outcome.value
        if result is None:
            if answer_within is not None and outcome.timed_out:
                late.add(key)
            listing.errors.append(HostFailure(handle.host, handle.provider_name, outcome.error or "no answer"))
        elif isinstance(result, HostFailure):
            if key in dropping:
                since = book.of(*key).unreachable_since or now
                result = HostFailure(result.host, result.provider, (
                    f"{result.error}; not answering since {_when(since)}: no longer searched "
                    f"(`mngr host list` still shows it, `mngr host forget {handle.host}` removes it)"))
            listing.errors.append(result)
        else:
            answered.append(key)
            listing.agents.extend(LocatedAgent(info, handle) for info in result.agents)
            listing.hosts.append(HostReport(handle, result.host))
    host_registry.note(book, answered, [(error.provider, error.host) for error in listing.errors
                                        if error.host != WHOLE_PROVIDER and (error.provider, error.host) not in late],
                       dropping, now)
    from .completion import remember

    remember([provider.name for provider in providers],
             [(agent.info.name, agent.host, agent.provider) for agent in listing.agents],
             [(error.provider, error.host) for error in listing.errors])
    return listing


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def locate(listing: FleetListing, names: Sequence[str]) -> list[LocatedAgent]:
    """The agents named (NAME, NAME@HOST or an id: see agent_refs.py), in order; an unknown
    name is an error that lists what failed to answer."""
    from .agent_refs import parse_agent_ref, pick

    unanswered = ", ".join(f"{error.host} ({error.provider})" for error in listing.errors)
    return [pick(parse_agent_ref(name), listing.agents, unanswered) for name in names]


def existing_agent(listing: FleetListing, name: str) -> LocatedAgent | None:
    """An agent called ``name`` that ``listing`` found (the first, if an older mngr made several)."""
    return next((agent for agent in listing.agents if agent.info.name == name), None)
