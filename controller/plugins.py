"""Loading plugins and building the registry of providers and agent types from them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

from . import agent_types, plugin_spec
from .config import Config
from .entry_points import entry_points
from .errors import UnknownAgentType, UnknownProvider

if TYPE_CHECKING:
    from mngr.providers.base import Provider

ENTRY_POINT_GROUP = "mngr"


def plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    from mngr.providers import local

    manager = pluggy.PluginManager(plugin_spec.PROJECT)
    manager.add_hookspecs(plugin_spec)
    # Built-ins go through the same hooks as third-party plugins, registered by name so an
    # entry point cannot register them a second time.
    manager.register(local, name="local")
    manager.register(agent_types, name="builtin_agent_types")
    for name in filter(None, os.environ.get("MNGR_DISABLE_PLUGINS", "").split(",")):
        manager.set_blocked(name.strip())
    if load_entry_points:
        for entry_point in entry_points(ENTRY_POINT_GROUP):
            if manager.is_blocked(entry_point.name) or manager.has_plugin(entry_point.name):
                continue
            try:
                manager.register(entry_point.load(), name=entry_point.name)
            except Exception as exc:  # a broken third-party plugin must not break mngr
                print(
                    f"mngr: warning: plugin {entry_point.name!r} from {entry_point.distribution} "
                    f"failed to load: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
    manager.check_pending()
    return manager


@dataclass
class Registry:
    providers: dict[str, type[Provider]]
    agent_types: dict[str, agent_types.AgentType]

    @classmethod
    def build(cls, config: Config) -> Registry:
        manager = plugin_manager()
        providers: dict[str, type[Provider]] = {}
        for provider_classes in reversed(manager.hook.mngr_providers()):
            for provider_class in provider_classes:
                providers[provider_class.name] = provider_class
        types: dict[str, agent_types.AgentType] = {}
        for type_list in reversed(manager.hook.mngr_agent_types()):
            for agent_type in type_list:
                types[agent_type.name] = agent_type
        for name, section in config.section("agent_types").items():
            types[name] = agent_types.from_config(name, section)
        return cls(providers, types)

    def provider(self, name: str, config: Config) -> Provider:
        provider_class = self.providers.get(name)
        if provider_class is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UnknownProvider(f"unknown provider {name!r} (known: {known})")
        return provider_class(config.section(f"providers.{name}"))

    def agent_type(self, name: str) -> agent_types.AgentType:
        agent_type = self.agent_types.get(name)
        if agent_type is None:
            known = ", ".join(sorted(self.agent_types))
            raise UnknownAgentType(f"unknown agent type {name!r} (known: {known})")
        return agent_type
