"""The one way an operation finds the agents it names.

Operations call ``find_agents`` only, so that how names resolve lives in one place: a name
(NAME, NAME@HOST, NAME@PROVIDER/HOST or an agent id, agent_refs.py) goes straight to the
host the record of where agents are places it on, and only then to every host
(agent_lookup.py); ``every`` lists every host as default listings do.

A filter (``keep``, from ``--include`` / ``--exclude``) narrows the agents named, or with
no names, selects among every agent in the states the operation acts on. Names read from
stdin (``piped``) may be none at all: a pipe that selected nothing does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
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
                states: Sequence[str] = EVERY_STATE, keep: Callable[[LocatedAgent], bool] | None = None,
                piped: bool = False) -> Iterator[Found]:
    """The agents ``names`` (or with ``every`` or only ``keep``, each agent in one of
    ``states``) that ``keep`` keeps, with their hosts' handles open until the end of the block."""
    if every and names:
        raise UsageError("give agent names or --all, not both")
    if not every and not names and keep is None and not piped:
        raise UsageError("name at least one agent (or use --all, or --include EXPR)")
    if piped and not names:
        yield Found([], None)
        return
    if every or not names:
        with fleet_listing(app) as listing:
            yield Found([agent for agent in listing.agents
                         if agent.info.state in states and (keep is None or keep(agent))], listing)
        return
    with found_agents(app, names) as agents:
        yield Found([agent for agent in agents if keep is None or keep(agent)], None)
