"""Hook specifications: how providers and agent types (built-in or third-party) plug into mngr.

Third-party plugins register under the ``mngr`` entry-point group and implement any of the
hooks below with ``@hookimpl``. The built-in providers and agent types use the same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from .agent_types import AgentType

PROJECT = "mngr"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mngr_providers() -> list[type[Provider]]:  # type: ignore[empty-body]
    """Return provider classes to register; each class's ``name`` is what ``--in`` selects."""


@hookspec
def mngr_agent_types() -> list[AgentType]:  # type: ignore[empty-body]
    """Return agent types to register; later registrations of a name override earlier ones."""
