"""Building providers without the plugin registry: only while no plugin is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller.config import Config
from mngr.controller.plugins import (
    Registry,
    builtin_provider_class,
    builtin_provider_names,
    make_provider,
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("MNGR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MNGR_DISABLE_PLUGINS", raising=False)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[hosts.box]\naddress = "u@h"\n')
    return Config.load(cwd=tmp_path)


def test_without_plugins_the_builtin_providers_are_the_registrys(config: Config) -> None:
    registry = Registry.build(config)
    assert builtin_provider_names(config) == sorted(registry.providers)
    for name in registry.providers:
        made = make_provider(builtin_provider_class(name), config)
        built = registry.provider(name, config)
        assert type(made) is type(built)
        assert (made.settings, made.configured_hosts) == (built.settings, built.configured_hosts)


def test_a_disabled_builtin_is_left_out(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_DISABLE_PLUGINS", "docker,modal")
    assert builtin_provider_names(config) == ["local", "ssh"]


def test_an_installed_plugin_leaves_it_to_the_registry(config: Config, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "site" / "someplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text("[mngr]\nsome = some_module\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert builtin_provider_names(config) is None
