"""Loading plugins and building the registry of providers and agent types from them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

from . import agent_types as builtin_agent_types
from . import plugin_spec
from .agent_types import AgentType, from_config
from .config import Config
from .entry_points import entry_points
from .errors import UnknownAgentType, UnknownProvider

if TYPE_CHECKING:
    from mngr.providers.base import Provider

ENTRY_POINT_GROUP = "mngr"


def plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    from mngr.providers import docker, local, modal, ssh

    manager = pluggy.PluginManager(plugin_spec.PROJECT)
    manager.add_hookspecs(plugin_spec)
    # Built-ins go through the same hooks as third-party plugins, registered by name so an
    # entry point cannot register them a second time.
    manager.register(local, name="local")
    manager.register(ssh, name="ssh")
    manager.register(docker, name="docker")
    manager.register(modal, name="modal")
    manager.register(builtin_agent_types, name="builtin_agent_types")
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
    while True:  # a misspelled hook disables that plugin, not mngr
        try:
            manager.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = manager.get_name(exc.plugin) or repr(exc.plugin)
            print(f"mngr: warning: plugin {name!r} is disabled: {exc}", file=sys.stderr)
            manager.unregister(exc.plugin)
    return manager


@dataclass
class Registry:
    providers: dict[str, type[Provider]]
    agent_types: dict[str, AgentType]

    @classmethod
    def build(cls, config: Config) -> Registry:
        manager = plugin_manager()
        providers: dict[str, type[Provider]] = {}
        for provider_classes in reversed(manager.hook.mngr_providers()):
            for provider_class in provider_classes:
                providers[provider_class.name] = provider_class
        types: dict[str, AgentType] = {}
        for type_list in reversed(manager.hook.mngr_agent_types()):
            for agent_type in type_list:
                types[agent_type.name] = agent_type
        for name, section in config.section("agent_types").items():
            types[name] = from_config(name, section)
        return cls(providers, types)

    def provider(self, name: str, config: Config) -> Provider:
        provider_class = self.providers.get(name)
        if provider_class is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UnknownProvider(f"unknown provider {name!r} (known: {known})")
        hosts = {
            host: section
            for host, section in config.section("hosts").items()
            if isinstance(section, dict) and section.get("provider", "ssh") == name
        }
        return provider_class(config.section(f"providers.{name}"), hosts)

    def agent_type(self, name: str) -> AgentType:
        agent_type = self.agent_types.get(name)
        if agent_type is None:
            known = ", ".join(sorted(self.agent_types)) or "none"
            raise UnknownAgentType(f"unknown agent type {name!r} (known: {known})")
        return agent_type
