"""The one way an operation finds the agents it names.

Operations call ``find_agents`` only, so that how names resolve lives in one place: a name
(NAME, NAME@HOST, NAME@PROVIDER/HOST or an agent id, agent_refs.py) goes straight to the
host the record of where agents are places it on, and only then to every host
(agent_lookup.py); ``every`` lists every host as default listings do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..agent_lookup import fleet_listing, found_agents
from ..errors import UsageError
from ..fleet import FleetListing, LocatedAgent

if TYPE_CHECKING:
    from ..cli.app import App

EVERY_STATE = ("RUNNING", "WAITING", "DONE", "STOPPED", "UNKNOWN", "GONE")


@dataclass
class Found:
    """The agents found, in the order named, and with ``every`` the listing they came from
    (None when they were looked for by name)."""

    agents: list[LocatedAgent]
    listing: FleetListing | None


@contextlib.contextmanager
def find_agents(app: App, names: Sequence[str], *, every: bool = False,
                states: Sequence[str] = EVERY_STATE) -> Iterator[Found]:
    """The agents ``names`` (or with ``every``, each agent in one of ``states``), with their
    hosts' handles open until the end of the block."""
    if every and names:
        raise UsageError("give agent names or --all, not both")
    if not every and not names:
        raise UsageError("name at least one agent (or use --all)")
    if every:
        with fleet_listing(app) as listing:
            yield Found([agent for agent in listing.agents if agent.info.state in states], listing)
        return
    with found_agents(app, names) as agents:
        yield Found(agents, None)
