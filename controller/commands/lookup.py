"""The one way an operation finds the agents it names.

A name is looked up as ``fleet.locate`` and ``agent_lookup.located_agent`` have always
done it; operations call ``find_agents`` only, so that how names resolve can change in one
place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..fleet import FleetListing, LocatedAgent, list_fleet, locate

if TYPE_CHECKING:
    from ..cli.app import App

EVERY_STATE = ("RUNNING", "WAITING", "DONE", "STOPPED", "UNKNOWN", "GONE")


@dataclass
class Found:
    """The agents found, in the order named, and the listing they came from (None when the
    record of where agents are led straight to the one agent's host)."""

    agents: list[LocatedAgent]
    listing: FleetListing | None


@contextlib.contextmanager
def find_agents(app: App, names: Sequence[str], *, every: bool = False,
                states: Sequence[str] = EVERY_STATE, by_record: bool = False) -> Iterator[Found]:
    """The agents ``names`` (or with ``every``, each agent in one of ``states``), with their
    hosts' handles open until the end of the block.

    ``by_record``: one name, looked for first on the host the record of where agents are
    says holds it (agent_lookup.py); otherwise every host is listed.
    """
    if every and names:
        raise UsageError("give agent names or --all, not both")
    if not every and not names:
        raise UsageError("name at least one agent (or use --all)")
    if by_record and len(names) == 1 and not every:
        from ..agent_lookup import located_agent

        with located_agent(app, names[0]) as agent:
            yield Found([agent], None)
        return
    with list_fleet(app.providers(), app.quiet_seconds, app.host_timeout) as listing:
        if every:
            agents = [agent for agent in listing.agents if agent.info.state in states]
        else:
            agents = locate(listing, names)
        yield Found(agents, listing)
