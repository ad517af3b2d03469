"""Finding the agents a command names: straight at their hosts when the record allows.

Listing every provider's hosts to find one agent costs more than most by-name commands
(every provider module loaded, every host asked, and a host that does not answer holds the
command up for its whole timeout). The record of where agents are (completion.py) usually
knows the answer: each agent named (NAME, NAME@HOST or an id: see agent_refs.py) that the
record holds on one host only is asked of that host alone, the hosts in parallel. An agent
its host has is the one used.

Anything else falls back to listing every host (in parallel, each with the host timeout),
which resolves the name exactly as it always did (not found, ambiguous, or the one agent)
and renews the record. A recorded host that did not answer is not asked again by the
fallback: it is reported as not answering, as a full listing would have, after one host
timeout rather than two.

Names are unique across hosts (``create`` refuses one that exists on any host that
answers, or that mngr's record places on a host that does not: ``ensure_name_free``), so
the record can only miss a second agent of a name made
by an older mngr, or made while this agent's host was out of reach; until a fallback or a
``mngr list`` lists everything again, the recorded agent (which exists: its host said so)
is the one used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .agent_refs import AgentRef, parse_agent_ref, pick
from .errors import AgentNotFound, MngrError
from .fanout import fan_out
from .fleet import (
    MAX_PARALLEL_HOSTS,
    WHOLE_PROVIDER,
    FleetListing,
    HostFailure,
    LocatedAgent,
    ask_host,
    existing_agent,
    list_fleet,
    listing_seconds,
)
from .hosts import HostHandle

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from .channel.protocol import AgentList
    from .cli.context import App


@contextlib.contextmanager
def found_agents(app: App, names: Sequence[str], with_state: bool = True) -> Iterator[list[LocatedAgent]]:
    """The agents ``names`` name, in order, each with an open handle on its host; the
    handles are closed at the end of the block.

    Without ``with_state`` a recorded host asked about one agent is asked only for the
    agent's record (FindAgent, no tmux): its AgentInfo then has an empty state, unless a
    full listing found it."""
    refs = [parse_agent_ref(name) for name in names]
    places = _recorded_places(app, refs)
    handles = {place: HostHandle(app.provider(place[1]), place[0], app.host_timeout)
               for place in dict.fromkeys(places.values())}
    asked_for: dict[tuple[str, str], list[str]] = {}
    for index, place in places.items():
        asked_for.setdefault(place, []).append(refs[index].name)
    listing: FleetListing | None = None
    from .progress import Progress

    # Drawn only when the hosts take a while to answer (progress.DELAY_SECONDS).
    answers_line = Progress(f"looking for {', '.join(ref.name for ref in refs)}", total=len(handles), unit="hosts")

    def confirm(place: tuple[str, str]) -> AgentList | HostFailure:
        wanted = asked_for[place]
        try:
            if not with_state and len(wanted) == 1:
                return _find_on_host(handles[place], wanted[0])
            return ask_host(handles[place], app.quiet_seconds)
        finally:
            answers_line.advance()

    try:
        with answers_line:
            outcomes = fan_out(confirm, list(handles), item_timeout=listing_seconds(app.host_timeout),
                               limit=MAX_PARALLEL_HOSTS)
        answers = {outcome.item: outcome.value if outcome.value is not None else
                   HostFailure(outcome.item[0], outcome.item[1], outcome.error or "no answer")
                   for outcome in outcomes}
        found: dict[int, LocatedAgent] = {}
        for index, place in places.items():
            answer = answers[place]
            if isinstance(answer, HostFailure):
                continue
            with contextlib.suppress(MngrError):  # not there (any more): the fallback looks everywhere
                found[index] = pick(refs[index], [LocatedAgent(info, handles[place]) for info in answer.agents])
        if len(found) < len(refs):
            failed = [answer for answer in answers.values() if isinstance(answer, HostFailure)]
            listing = fleet_listing(app, failed=failed)
            unanswered = ", ".join(f"{error.host} ({error.provider})" for error in listing.errors)
            for index, ref in enumerate(refs):
                if index not in found:
                    recorded = answers.get(places[index]) if index in places else None
                    try:
                        found[index] = pick(ref, listing.agents, unanswered)
                    except AgentNotFound:
                        if not isinstance(recorded, HostFailure):
                            raise
                        # Where it was last seen, and why that host cannot say: "no agent
                        # named" would tell the user that it is gone.
                        raise AgentNotFound(f"agent {ref.name!r} was last seen on host {recorded.host!r} "
                                            f"({recorded.provider}), which does not answer: {recorded.error}") from None
        yield [found[index] for index in range(len(refs))]
    finally:
        for handle in handles.values():
            handle.close()
        if listing is not None:
            listing.close()


def fleet_listing(app: App, providers: Sequence[Provider] | None = None,
                  failed: Sequence[HostFailure] = ()) -> FleetListing:
    """Every agent of ``app``'s providers (or of ``providers``), as default listings see
    them: a remembered host unreachable for longer than ``forget_unreachable_after_seconds``
    is reported once more, then left out (host_registry.py)."""
    return list_fleet(app.providers() if providers is None else providers, app.quiet_seconds, app.host_timeout,
                      failed, drop_after=float(app.config.get("forget_unreachable_after_seconds")))


@contextlib.contextmanager
def located_agent(app: App, name: str, with_state: bool = True) -> Iterator[LocatedAgent]:
    """Agent ``name`` with an open handle on its host, closed at the end of the block."""
    with found_agents(app, [name], with_state) as (agent,):
        yield agent


def _find_on_host(handle: HostHandle, name: str) -> AgentList | HostFailure:
    """As fleet.ask_host, for the agents recorded as ``name`` only."""
    try:
        return handle.find_agent(name)
    except MngrError as exc:
        return HostFailure(handle.host, handle.provider_name, getattr(exc, "detail", str(exc)))
    except OSError as exc:
        return HostFailure(handle.host, handle.provider_name, str(exc))


def _recorded_places(app: App, refs: Sequence[AgentRef]) -> dict[int, tuple[str, str]]:
    """Index of each ref -> the (host, provider) the record holds its agent on, for the refs
    the record places on one host only (of a provider this command has)."""
    from . import completion

    entries = completion.cached_agents()
    places = {}
    known_providers = app.provider_names()
    for index, ref in enumerate(refs):
        matches = {(host, provider) for name, host, provider in entries
                   if name == ref.name and ref.names_place(host, provider)}
        if len(matches) == 1:
            place = matches.pop()
            if place[1] in known_providers:
                places[index] = place
    return places


def ensure_name_free(app: App, name: str, refusal: type[MngrError] = MngrError) -> list[str]:
    """Refuse ``name`` for a new agent (raising ``refusal``) if an agent of that name exists
    on any of the user's hosts (names are unique across them), saying where.

    Every host is asked at once, but one that has not answered within ``name_check_seconds``
    is not waited for: for it, and for a host that could not be reached, mngr's record of
    where agents are (completion.py) decides. The result: one warning naming the hosts that
    could not be checked (none if every host answered)."""
    from . import completion

    wait = min(float(app.config.get("name_check_seconds")), app.host_timeout)
    with list_fleet(app.providers(), app.quiet_seconds, app.host_timeout,
                    drop_after=float(app.config.get("forget_unreachable_after_seconds")),
                    answer_within=wait) as listing:
        existing = existing_agent(listing, name)
    if existing is not None:
        raise refusal(f"agent {name!r} already exists on {existing.host} ({existing.provider})")
    unchecked = {(error.provider, error.host): error for error in listing.errors}
    for recorded, host, provider in completion.cached_agents():
        failure = unchecked.get((provider, host)) or unchecked.get((provider, WHOLE_PROVIDER))
        if recorded == name and failure is not None:
            raise refusal(f"agent {name!r} already exists on {host} ({provider}), as mngr last saw it "
                          f"({host} did not answer now: {failure.error})")
    if not unchecked:
        return []
    hosts = ", ".join(f"{host} ({provider})" if host != WHOLE_PROVIDER else f"every {provider} host"
                      for provider, host in unchecked)
    return [f"could not check {hosts} for an agent named {name!r} (no answer); mngr's record has none there"]
