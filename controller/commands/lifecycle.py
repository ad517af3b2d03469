"""The lifecycle service: every plugin event and every piece of bookkeeping, for every path.

Whatever makes an agent (create, clone, migrate, a schedule) or removes one (destroy,
migrate) goes through here, so that plugins hear the same events and mngr remembers the
same things whichever command did it:

- ``before_EVENT`` is fired first, and a listener that raises cancels the action;
  ``after_EVENT`` only once the action succeeded (plugin_spec.mngr_on_agent);
- a host is remembered once an agent was made on it, so later listings search it;
- the completion record learns of agents made and forgets agents removed;
- a host made for its agents (docker) goes with its last agent (mngr_on_host events).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mngr.providers.base import AgentRegistry, MakesHosts, RemembersHosts

from ..errors import MngrError
from ..hosts import HostHandle

if TYPE_CHECKING:
    from ..plugins import Registry


@dataclass
class EmptiedHosts:
    """Hosts removed with their last agent, as (host, provider), and why others were not."""

    removed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Lifecycle:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @contextlib.contextmanager
    def agent_event(self, event: str, name: str, host: str, provider: str) -> Iterator[None]:
        """Plugins hear ``before_EVENT`` (any of them may cancel it) and, if the block
        succeeded, ``after_EVENT``."""
        self.before(event, name, host, provider)
        yield
        self.after(event, name, host, provider)

    def before(self, event: str, name: str, host: str, provider: str) -> None:
        """``before_EVENT``: a listener that raises cancels the action (a MngrError)."""
        self.registry.on_agent(f"before_{event}", name, host, provider)

    def after(self, event: str, name: str, host: str, provider: str) -> None:
        """``after_EVENT``: the action succeeded (a listener's failure is a warning)."""
        self.registry.on_agent(f"after_{event}", name, host, provider)

    # -- agents made ---------------------------------------------------------------------

    def before_create(self, name: str, host: str, provider: str) -> None:
        """Ask the plugins first: any of them may refuse the new agent (a MngrError)."""
        self.before("create", name, host, provider)

    def host_made(self, host: str, provider: str) -> None:
        self.registry.on_host("after_create", host, provider)

    def outcome_unknown(self, handle: HostHandle) -> None:
        """A create was cut short while its request was out: whether the agent exists is
        unknown, so its host stays findable (`mngr host forget` drops it if it has none)."""
        if isinstance(handle.provider, RemembersHosts):
            handle.provider.remember(handle.host)

    def agent_created(self, handle: HostHandle, name: str) -> None:
        from .. import completion

        # Only now: a host whose create failed is not searched by later commands.
        if isinstance(handle.provider, RemembersHosts):
            handle.provider.remember(handle.host)
        if isinstance(handle.provider, AgentRegistry):
            handle.provider.agent_created(handle.host, name)
        self.after("create", name, handle.host, handle.provider_name)
        completion.agent_added(name, handle.host, handle.provider_name)

    def agent_renamed(self, handle: HostHandle, old: str, new: str) -> None:
        """What mngr keeps of where agents are follows a rename."""
        from .. import completion

        if isinstance(handle.provider, AgentRegistry):
            handle.provider.agent_created(handle.host, new)  # first: the host's entry is never empty
            handle.provider.forget_agent(handle.host, old)
        completion.agent_removed(old, handle.host, handle.provider_name)
        completion.agent_added(new, handle.host, handle.provider_name)

    # -- agents removed ------------------------------------------------------------------

    def agent_destroyed(self, name: str, host: str, provider: str) -> None:
        from .. import completion

        completion.agent_removed(name, host, provider)

    def release_ports(self, handle: HostHandle, agent_id: str) -> None:
        """An agent stopped or was destroyed: what made its ports reachable here (mngr open)
        goes. Best effort: a forward left behind is never worth failing a stop for, and ends
        with the connection that holds it."""
        with contextlib.suppress(Exception):
            handle.provider.release_ports(handle.host, agent_id)

    def remove_emptied_hosts(self, handles: Iterable[HostHandle]) -> EmptiedHosts:
        """Hosts made for their agents (docker containers) go when their last agent does."""
        result = EmptiedHosts()
        for handle in {id(handle): handle for handle in handles}.values():
            provider = handle.provider
            if not isinstance(provider, MakesHosts):
                continue
            try:
                if handle.list_host(0.0).agents:
                    continue
                self.registry.on_host("before_destroy", handle.host, handle.provider_name)
                handle.close()
                provider.host_emptied(handle.host)
                result.removed.append((handle.host, handle.provider_name))
                self.registry.on_host("after_destroy", handle.host, handle.provider_name)
            except MngrError as exc:
                result.warnings.append(f"could not remove the empty host {handle.host}: {exc}")
        return result
