"""``mngr config``: read and change configuration files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .. import config as config_module
from .. import output
from ..errors import ConfigError, UsageError
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}
_SCOPE = click.option(
    "--scope", type=click.Choice(["user", "project"]), default="user", show_default=True,
    help="Which file: your user config or the current project's .mngr/config.toml.",
)


@click.group(context_settings=_HELP)
def config() -> None:
    """View and edit mngr configuration.

    Sources, later winning: built-in defaults, the user file, the project file
    (.mngr/config.toml at the project root), then MNGR_* environment variables.
    """


def _scope_path(scope: str) -> Path:
    """The file of one scope, found without loading (so a broken config can still be fixed)."""
    if scope == "user":
        return config_module.user_config_path()
    root = config_module.project_root()
    if root is None:
        raise UsageError("not inside a project (no .mngr/ folder or git repository above the current directory)")
    return root / ".mngr" / "config.toml"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


@config.command("get", context_settings=_HELP)
@click.argument("key")
@pass_app
def get(app: App, key: str) -> None:
    """Print the effective value of KEY (dotted, e.g. agent_types.bot.command)."""
    try:
        value = config_module.get_path(app.config.values, key.split("."))
    except KeyError:
        raise ConfigError(f"{key} is not set") from None
    click.echo(_show(value))


@config.command("set", context_settings={**_HELP, "ignore_unknown_options": True})  # VALUE may be -5
@click.argument("key")
@click.argument("value")
@_SCOPE
def set_(key: str, value: str, scope: str) -> None:
    """Set KEY to VALUE in the user (default) or project file.

    VALUE is read as a TOML value when it is one (42, true, [1, 2]), else as a string.
    The file is rewritten: comments in it are not kept.
    """
    import tomli_w

    parts = key.split(".")
    if not all(parts):
        raise UsageError(f"invalid key {key!r}")
    path = _scope_path(scope)
    document = config_module.read_toml(path)
    config_module.set_path(document, parts, config_module.parse_value(value))
    config_module.validate(document, str(path), strict_keys=True)
    _check_names(key, document, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(tomli_w.dumps(document), encoding="utf-8")
    temp.replace(path)
    click.echo(f"{key} = {_show(config_module.get_path(document, parts))}  ({path})")


def _check_names(key: str, document: dict[str, Any], path: Path) -> None:
    """A default agent type or provider must name one that exists, with the file as it
    would be (it may define the agent type): a typo here would break every later create."""
    if key not in ("default_agent_type", "default_provider"):
        return
    from ..config import Config
    from ..errors import UnknownAgentType, UnknownProvider
    from ..plugins import Registry

    current = Config.load()
    values = config_module.merge(current.values, document)
    registry = Registry.build(Config(values, current.user_file, current.project_file))
    try:
        if key == "default_agent_type":
            registry.agent_type(str(document[key]))
        elif str(document[key]) not in registry.providers:
            known = ", ".join(sorted(registry.providers))
            raise UnknownProvider(f"unknown provider {document[key]!r} (known: {known})")
    except (UnknownAgentType, UnknownProvider) as exc:
        raise ConfigError(f"{path}: {key}: {exc}") from None


@config.command("list", context_settings=_HELP)
@output.format_option("config list", help="human, json (the settings as nested tables), jsonl or a template "
                                             "such as '{key}={value}' (a record per setting).")
@pass_app
def list_(app: App, output_format: str) -> None:
    """Print every effective setting."""
    entries = [{"key": key, "value": value} for key, value in sorted(config_module.flatten(app.config.values))]

    def human() -> None:
        for entry in entries:
            click.echo(f"{entry['key']} = {_show(entry['value'])}")

    output.emit(output_format, entries, human,
                envelope=lambda _: {key: app.config.values[key] for key in sorted(app.config.values)})


@config.command("path", context_settings=_HELP)
@click.option("--scope", type=click.Choice(["user", "project"]), default=None,
              help="Print only this file's path.")
def path(scope: str | None) -> None:
    """Print where the config files are (whether or not they exist yet)."""
    if scope:
        click.echo(str(_scope_path(scope)))
        return
    click.echo(f"user: {config_module.user_config_path()}")
    project = config_module.project_config_path()
    click.echo(f"project: {project if project else '(not inside a project)'}")
