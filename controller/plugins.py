"""Loading plugins, and the registry of what they add: providers, agent types, commands,
list fields and listeners of lifecycle events.

Plugins come from the ``mngr`` entry-point group. One that fails to import, implements a
hook mngr does not have, or breaks inside a hook is named in one warning and left out;
the rest of mngr goes on. ``MNGR_DISABLE_PLUGINS=a,b`` or ``[plugins] disabled = ["a"]``
in config keeps plugins (built-in ones too) from loading.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import Config
from .entry_points import entry_points
from .errors import ConfigError, MngrError, UnknownAgentType, UnknownProvider

if TYPE_CHECKING:  # loaded when the registry is built: a by-name command may not need it
    import click
    import pluggy

    from mngr.providers.base import Provider

    from .agent_types import AgentType

ENTRY_POINT_GROUP = "mngr"
BUILTIN_PLUGINS = ("local", "ssh", "docker", "modal", "builtin_agent_types")
# The built-in plugins that add a provider, each of the provider's own name.
BUILTIN_PROVIDERS = ("local", "ssh", "docker", "modal")


@dataclass
class PluginRecord:
    """What ``mngr plugin list`` shows of one plugin."""

    name: str
    origin: str  # "built-in", or the distribution it came from
    status: str  # loaded, disabled, failed
    detail: str = ""  # where it was loaded from, or why it is not
    hooks: list[str] = field(default_factory=list)


def disabled_plugins(config: Config | None) -> set[str]:
    names = {name.strip() for name in os.environ.get("MNGR_DISABLE_PLUGINS", "").split(",") if name.strip()}
    if config is not None:
        listed = config.section("plugins").get("disabled", [])
        if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
            raise ConfigError("plugins.disabled must be a list of plugin names")
        names |= set(listed)
    return names


def builtin_provider_names(config: Config) -> list[str] | None:
    """The providers the registry would have, told without building it (that imports every
    provider module and pluggy): the built-in ones not disabled, when no plugin is installed.
    None when one is: only the registry can tell then, as a plugin may add or replace one."""
    if entry_points(ENTRY_POINT_GROUP):
        return None
    disabled = disabled_plugins(config)
    return [name for name in sorted(BUILTIN_PROVIDERS) if name not in disabled]


def builtin_provider_class(name: str) -> type[Provider]:
    """The class of built-in provider ``name`` (one of BUILTIN_PROVIDERS); imports only its module."""
    module = __import__(f"mngr.providers.{name}", fromlist=["mngr_providers"])
    (provider_class,) = (found for found in module.mngr_providers() if found.name == name)
    return provider_class


def make_provider(provider_class: type[Provider], config: Config) -> Provider:
    """An instance of ``provider_class`` with its config section and its ``[hosts.NAME]`` sections."""
    name = provider_class.name
    hosts = {
        host: section
        for host, section in config.section("hosts").items()
        if isinstance(section, dict) and section.get("provider", "ssh") == name
    }
    return provider_class(config.section(f"providers.{name}"), hosts)


def load_plugins(disabled: Iterable[str] = (), load_entry_points: bool = True
                 ) -> tuple[pluggy.PluginManager, list[PluginRecord]]:
    import pluggy

    from mngr.providers import docker, local, modal, ssh

    from . import agent_types as builtin_agent_types
    from . import plugin_spec

    manager = pluggy.PluginManager(plugin_spec.PROJECT)
    manager.add_hookspecs(plugin_spec)
    records: list[PluginRecord] = []
    blocked = set(disabled)
    builtins = {"local": local, "ssh": ssh, "docker": docker, "modal": modal,
                "builtin_agent_types": builtin_agent_types}
    # Built-ins go through the same hooks as third-party plugins, registered by name so an
    # entry point cannot register them a second time.
    for name, module in builtins.items():
        if name in blocked:
            manager.set_blocked(name)
            records.append(PluginRecord(name, "built-in", "disabled", "by MNGR_DISABLE_PLUGINS or plugins.disabled"))
        else:
            manager.register(module, name=name)
            records.append(PluginRecord(name, "built-in", "loaded", module.__name__))
    for name in blocked - set(builtins):
        manager.set_blocked(name)
    if load_entry_points:
        for entry_point in entry_points(ENTRY_POINT_GROUP):
            origin = entry_point.distribution
            if manager.has_plugin(entry_point.name) or any(r.name == entry_point.name for r in records):
                continue
            if manager.is_blocked(entry_point.name):
                records.append(PluginRecord(entry_point.name, origin, "disabled",
                                            "by MNGR_DISABLE_PLUGINS or plugins.disabled"))
                continue
            try:
                plugin = entry_point.load()
                manager.register(plugin, name=entry_point.name)
            except Exception as exc:  # a broken third-party plugin must not break mngr
                _warn(f"plugin {entry_point.name!r} from {origin} failed to load: {type(exc).__name__}: {exc}")
                records.append(PluginRecord(entry_point.name, origin, "failed", f"{type(exc).__name__}: {exc}"))
                continue
            records.append(PluginRecord(entry_point.name, origin, "loaded", _where(plugin)))
    while True:  # a misspelled hook disables that plugin, not mngr
        try:
            manager.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = manager.get_name(exc.plugin) or repr(exc.plugin)
            _warn(f"plugin {name!r} is disabled: {exc}")
            manager.unregister(exc.plugin)
            for record in records:
                if record.name == name:
                    record.status, record.detail = "failed", str(exc)
    for record in records:
        plugin = manager.get_plugin(record.name)
        if plugin is not None:
            record.hooks = sorted(impl_name for impl_name in dir(plugin) if impl_name.startswith("mngr_")
                                  and hasattr(getattr(plugin, impl_name), "mngr_impl"))
    return manager, records


def _where(plugin: object) -> str:
    module = sys.modules.get(getattr(plugin, "__name__", "") or type(plugin).__module__)
    return str(getattr(module, "__file__", "") or getattr(plugin, "__name__", repr(plugin)))


def _warn(message: str) -> None:
    from . import verbosity

    verbosity.warn(message)


@dataclass
class Registry:
    providers: dict[str, type[Provider]]
    agent_types: dict[str, AgentType]
    manager: pluggy.PluginManager | None = None
    records: list[PluginRecord] = field(default_factory=list)

    @classmethod
    def build(cls, config: Config) -> Registry:
        from .agent_types import from_config

        manager, records = load_plugins(disabled_plugins(config))
        registry = cls({}, {}, manager, records)
        for _plugin, provider_classes in reversed(registry._results("mngr_providers")):
            for provider_class in provider_classes:
                registry.providers[provider_class.name] = provider_class
        for _plugin, type_list in reversed(registry._results("mngr_agent_types")):
            for agent_type in type_list:
                registry.agent_types[agent_type.name] = agent_type
        known = dict(registry.agent_types)
        for name, section in config.section("agent_types").items():
            registry.agent_types[name] = from_config(name, section, known)
        return registry

    def _results(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """(plugin name, result) of each plugin's implementation of ``hook``, in pluggy's
        order (last registered first); a plugin that raises is named in a warning and skipped."""
        if self.manager is None:
            return []
        results = []
        for impl in getattr(self.manager.hook, hook).get_hookimpls()[::-1]:
            try:
                result = impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception as exc:  # one broken plugin must not break the command
                _warn(f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}")
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def provider(self, name: str, config: Config) -> Provider:
        provider_class = self.providers.get(name)
        if provider_class is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UnknownProvider(f"unknown provider {name!r} (known: {known})")
        return make_provider(provider_class, config)

    def agent_type(self, name: str) -> AgentType:
        agent_type = self.agent_types.get(name)
        if agent_type is None:
            known = ", ".join(sorted(self.agent_types)) or "none"
            raise UnknownAgentType(f"unknown agent type {name!r} (known: {known})")
        return agent_type

    def cli_commands(self, taken: Iterable[str]) -> dict[str, click.Command]:
        """Plugins' commands by name; one that takes a name mngr has is left out."""
        found: dict[str, click.Command] = {}
        taken = set(taken)
        for plugin, commands in self._results("mngr_cli_commands"):
            for command in commands:
                if not command.name or command.name in taken or command.name in found:
                    _warn(f"plugin {plugin!r}: command {command.name!r} is taken; left out")
                    continue
                found[command.name] = command
        return found

    def list_fields(self, taken: Iterable[str]) -> dict[str, Callable[[Mapping[str, Any]], object]]:
        """Plugins' fields of ``mngr list`` by name; one that takes a name mngr has is left out."""
        found: dict[str, Callable[[Mapping[str, Any]], object]] = {}
        taken = set(taken)
        for plugin, fields in self._results("mngr_list_fields"):
            for name, compute in dict(fields).items():
                if name in taken or name in found or not callable(compute):
                    _warn(f"plugin {plugin!r}: list field {name!r} is taken or not a function; left out")
                    continue
                found[name] = _guarded(plugin, name, compute)
        return found

    def on_agent(self, event: str, agent: str, host: str, provider: str) -> None:
        self._notify("mngr_on_agent", {"event": event, "agent": agent, "host": host, "provider": provider})

    def on_host(self, event: str, host: str, provider: str) -> None:
        self._notify("mngr_on_host", {"event": event, "host": host, "provider": provider})

    def on_agent_waiting(self, event: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Tell every listener of mngr_on_agent_waiting; (plugin, error) of each that raised."""
        failures: list[tuple[str, str]] = []
        if self.manager is None:
            return failures
        for impl in self.manager.hook.mngr_on_agent_waiting.get_hookimpls()[::-1]:
            try:
                impl.function(*((event,) if impl.argnames else ()))
            except Exception as exc:  # a listener's bug must not end the follow
                failures.append((impl.plugin_name, f"{type(exc).__name__}: {exc}"))
        return failures

    def _notify(self, hook: str, kwargs: dict[str, str]) -> None:
        """Tell every listener; in a ``before_`` event the first that raises cancels the
        action, with its message."""
        if self.manager is None:
            return
        for impl in getattr(self.manager.hook, hook).get_hookimpls()[::-1]:
            try:  # pluggy lets a listener take fewer arguments than the hook has
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception as exc:
                event = kwargs["event"]
                message = str(exc) or type(exc).__name__
                if event.startswith("before_"):
                    raise MngrError(f"plugin {impl.plugin_name!r} stopped {event[7:]}: {message}") from exc
                _warn(f"plugin {impl.plugin_name!r} failed in {event}: {type(exc).__name__}: {message}")


def _guarded(plugin: str, name: str, compute: Callable[[Mapping[str, Any]], object]
             ) -> Callable[[Mapping[str, Any]], object]:
    warned: list[bool] = []

    def field_value(row: Mapping[str, Any]) -> object:
        try:
            value = compute(row)
        except Exception as exc:  # a broken field is empty, not a failed listing
            if not warned:
                warned.append(True)
                _warn(f"plugin {plugin!r}: list field {name!r} failed: {type(exc).__name__}: {exc}")
            return None
        return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)

    return field_value
