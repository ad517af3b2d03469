"""Commands that touch many hosts: ask each concurrently, keep going when some fail.

Each host gets one ListAgents request; hosts are queried in parallel by a bounded thread
pool with a per-host timeout, and a host that fails shows up in ``errors`` without hiding
what the other hosts answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from mngr.providers.base import HearsListings, ListingProblems, Provider

from .channel.protocol import AgentInfo, AgentList, HostIdle
from .errors import MngrError
from .hosts import HostHandle

# Hosts asked at once. Each is mostly waiting (on a socket, or on an ssh process doing its
# handshake), so this bounds open connections and ssh processes, not CPU.
MAX_PARALLEL_HOSTS = 64

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(function: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
    """``[function(item) for item in items]`` on up to ``limit`` threads, results in order.

    (concurrent.futures would do, but importing it pulls in logging: milliseconds on every
    `mngr list`.) ``function`` must not raise.
    """
    if len(items) <= 1:
        return [function(item) for item in items]
    import threading

    results: list[R | None] = [None] * len(items)
    next_index = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            results[index] = function(items[index])

    workers = [threading.Thread(target=work) for _ in range(min(limit, len(items)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results  # type: ignore[return-value]


def parallel_map_within(function: Callable[[T], R], items: Sequence[T], limit: int,
                        seconds: float) -> list[R | None]:
    """As ``parallel_map``, but waiting ``seconds`` at most: an item not done by then is
    None. Its thread (a daemon) is left to finish, or stay blocked on a host that does not
    answer, on its own; what it returns later is not seen."""
    import threading

    results: list[R | None] = [None] * len(items)
    done = [False] * len(items)
    next_index = iter(range(len(items)))
    changed = threading.Condition()
    deadline = time.monotonic() + seconds

    def work() -> None:
        while True:
            with changed:
                index = next(next_index, None) if time.monotonic() < deadline else None
            if index is None:
                return
            value = function(items[index])
            with changed:
                results[index], done[index] = value, True
                changed.notify_all()

    for _ in range(min(limit, len(items))):
        threading.Thread(target=work, daemon=True, name="mngr-host-query").start()
    with changed:
        while not all(done) and (left := deadline - time.monotonic()) > 0:
            changed.wait(left)
        return [result if finished else None for result, finished in zip(results, done, strict=True)]


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

    def query(handle: HostHandle) -> AgentList | HostFailure:
        result = already_failed.get((handle.provider_name, handle.host)) or ask_host(handle, quiet_seconds)
        if listing.closed:  # answered after it was given up on (answer_within): nobody will close it
            handle.close()
        return result

    results: Sequence[AgentList | HostFailure | None]
    if answer_within is None:
        results = parallel_map(query, handles, MAX_PARALLEL_HOSTS)
    else:
        results = parallel_map_within(query, handles, MAX_PARALLEL_HOSTS, answer_within)
    answered = []
    late = set()
    for handle, result in zip(handles, results, strict=True):
        key = (handle.provider_name, handle.host)
        if result is None:
            late.add(key)
            listing.errors.append(HostFailure(handle.host, handle.provider_name,
                                              f"no answer within {answer_within:g} s"))
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
