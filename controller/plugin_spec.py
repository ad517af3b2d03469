"""Hook specifications: how providers, agent types, commands and listeners plug into mngr.

A plugin is a module (or any object) with functions named after these hooks, each marked
``@hookimpl``; it is found through the ``mngr`` entry-point group of an installed
distribution (``[project.entry-points.mngr] NAME = "module"``). Every hook is optional.
The built-in providers and agent types register through the same hooks. docs/plugins.md is
the plugin author's guide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from mngr.providers.base import Provider

    from .agent_types import AgentType

PROJECT = "mngr"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# The events of mngr_on_agent; each comes as "before_EVENT" and "after_EVENT".
AGENT_EVENTS = ("create", "start", "stop", "destroy")
# The events of mngr_on_host, for hosts that mngr makes and removes (docker, modal).
HOST_EVENTS = ("create", "destroy")


@hookspec
def mngr_providers() -> list[type[Provider]]:  # type: ignore[empty-body]
    """Provider classes to register; each class's ``name`` is what ``--in`` selects."""


@hookspec
def mngr_agent_types() -> list[AgentType]:  # type: ignore[empty-body]
    """Agent types to register; a later registration of a name overrides an earlier one, and
    ``[agent_types.NAME]`` in config overrides them all."""


@hookspec
def mngr_cli_commands() -> list[click.Command]:  # type: ignore[empty-body]
    """Commands to add to ``mngr``, each run as ``mngr NAME``. A name mngr has already is
    skipped, with a warning naming the plugin."""


@hookspec
def mngr_list_fields() -> Mapping[str, Callable[[Mapping[str, Any]], object]]:  # type: ignore[empty-body]
    """Fields to add to every agent of ``mngr list``: name -> a function of the agent's row
    (the fields of ``mngr list --format json``), whose result (a string, number, bool or
    None) becomes the field, in JSON and in ``--format`` templates. A name mngr has already
    is skipped, with a warning."""


@hookspec
def mngr_on_agent(event: str, agent: str, host: str, provider: str) -> None:
    """An agent's lifecycle: ``event`` is ``before_`` or ``after_`` one of create, start,
    stop, destroy. A listener that raises in a ``before_`` event cancels the action (its
    message is the error); a failure in an ``after_`` event is a warning."""


@hookspec
def mngr_on_host(event: str, host: str, provider: str) -> None:
    """A host that mngr makes (``after_create``) or removes with its last agent
    (``before_destroy``, ``after_destroy``). Raising in ``before_destroy`` keeps the host."""


@hookspec
def mngr_on_agent_waiting(event: Mapping[str, Any]) -> None:
    """An agent started waiting for the user, as `mngr events --follow` saw it: ``event``
    is its ``state`` event (time, host, provider, agent, agent_id, event, state,
    waiting_reason, exit_status: docs/commands/events.md). A listener that raises is
    reported once (by the command running it), and the follow goes on."""


def events(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{phase}_{name}" for name in names for phase in ("before", "after"))
