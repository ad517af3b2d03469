"""What every command needs, built on first use: config, plugins, providers.

Free of click, so that a push or pull whose arguments need no parsing by click
(direct.py) runs without loading it."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded on first use: a command may have started work before that
    import click

    from mngr.providers.base import Provider

    from ..config import Config
    from ..plugins import Registry


class App:
    @functools.cached_property
    def config(self) -> Config:
        from ..config import Config

        return Config.load()

    @functools.cached_property
    def registry(self) -> Registry:
        from ..plugins import Registry

        return Registry.build(self.config)

    @functools.cache  # noqa: B019 - one App per invocation
    def plugin_commands(self, taken: tuple[str, ...]) -> dict[str, click.Command]:
        return self.registry.cli_commands(taken)

    @functools.cached_property
    def _builtin_provider_names(self) -> list[str] | None:
        from ..plugins import builtin_provider_names

        return builtin_provider_names(self.config)

    def provider_names(self) -> list[str]:
        """Every provider's name; without building the registry when no plugin is installed."""
        if "registry" not in self.__dict__ and self._builtin_provider_names is not None:
            return list(self._builtin_provider_names)
        return sorted(self.registry.providers)

    @functools.cache  # noqa: B019 - one App per invocation
    def provider(self, name: str) -> Provider:
        from ..plugins import builtin_provider_class, make_provider

        if "registry" not in self.__dict__ and name in (self._builtin_provider_names or ()):
            return make_provider(builtin_provider_class(name), self.config)
        return self.registry.provider(name, self.config)

    def providers(self, names: Iterable[str] = ()) -> list[Provider]:
        wanted = list(names) or self.provider_names()
        return [self.provider(name) for name in wanted]

    @property
    def quiet_seconds(self) -> float:
        return float(self.config.get("agent_quiet_seconds"))

    @property
    def host_timeout(self) -> float:
        return float(self.config.get("host_timeout_seconds"))
