"""Finding the one agent a command names: straight at its host when the record allows.

Listing every provider's hosts to find one agent costs more than the rest of a push that
changes nothing (every provider module loaded, every host asked). The record of where
agents are (completion.py) usually knows the answer, so a by-name command asks that host
alone, when all of these hold:

- the record holds the name on one host only;
- the last complete listing (every provider listed, every host answered) saw the name
  exactly once, and the providers and the ``[hosts]``/``[providers]`` config are what they
  were then (its scope);
- that host answers, and its answer has the agent.

Anything else falls back to listing every host, which resolves the name exactly as it
always did (not found, ambiguous, or the one agent) and renews the record. Creating an
agent through mngr withdraws its name's uniqueness until the next complete listing, so a
second agent of a name made here is reported as ambiguous as before. What the record
cannot know is an agent of the same name made since on another host by another machine's
mngr: until a fallback lists everything again, the recorded agent (which exists, its host
said so) is the one used.

A recorded host that does not answer is not asked again by the fallback: it is reported
as not answering, as a full listing would have, after one host timeout rather than two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .channel.protocol import AgentList
from .errors import MngrError
from .fleet import FleetListing, HostFailure, LocatedAgent, ask_host, list_fleet, locate
from .hosts import HostHandle

if TYPE_CHECKING:
    from .cli.context import App


@contextlib.contextmanager
def located_agent(app: App, name: str, with_state: bool = True) -> Iterator[LocatedAgent]:
    """Agent ``name`` with an open handle on its host, closed at the end of the block.

    Without ``with_state`` the recorded host is asked only for the agent's record
    (FindAgent, no tmux): its AgentInfo then has an empty state, unless a full listing
    found it."""
    from . import completion

    scope = listing_scope(app)
    failed: list[HostFailure] = []
    place = completion.sole_location(name, scope)
    if place is not None and place[1] in app.provider_names():
        host, provider = place
        handle = HostHandle(app.provider(provider), host, app.host_timeout)
        answer = ask_host(handle, app.quiet_seconds) if with_state else _find_on_host(handle, name)
        if isinstance(answer, HostFailure):
            failed.append(answer)
        else:
            found = [info for info in answer.agents if info.name == name]
            if found:
                with handle:
                    yield LocatedAgent(found[0], handle)
                return
        handle.close()
    with list_fleet(app.providers(), app.quiet_seconds, app.host_timeout, failed) as listing:
        if not listing.errors:
            completion.remember_unique(names_seen_once(listing), scope)
        (agent,) = locate(listing, [name])
        yield agent


def _find_on_host(handle: HostHandle, name: str) -> AgentList | HostFailure:
    """As fleet.ask_host, for the agents recorded as ``name`` only."""
    try:
        return handle.find_agent(name)
    except MngrError as exc:
        return HostFailure(handle.host, handle.provider_name, getattr(exc, "detail", str(exc)))
    except OSError as exc:
        return HostFailure(handle.host, handle.provider_name, str(exc))


def names_seen_once(listing: FleetListing) -> list[str]:
    counts: dict[str, int] = {}
    for agent in listing.agents:
        counts[agent.info.name] = counts.get(agent.info.name, 0) + 1
    return [name for name, count in counts.items() if count == 1]


def listing_scope(app: App) -> str:
    """What a complete listing covered: the providers, and the config that says which hosts
    they have. Kept as a checksum: any change means "list everything again"."""
    import json
    import zlib

    described = json.dumps([app.provider_names(), app.config.section("hosts"), app.config.section("providers")],
                           sort_keys=True, default=str)
    return f"{zlib.crc32(described.encode()):08x}"
