"""``mngr config``: read and change configuration files, as ``git config`` does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import config as config_module
from .. import output
from ..errors import ConfigError, UsageError
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}
_SCOPES = ("user", "project")
_Function = TypeVar("_Function", bound=Callable[..., Any])


def _scope_options(what: str) -> Callable[[_Function], _Function]:
    """``--scope user|project`` and its short forms ``--user`` and ``--project`` (git's
    ``--global`` and ``--local``)."""
    def decorate(function: _Function) -> _Function:
        function = click.option("--project", "project_flag", is_flag=True,
                                help="The project's file: --scope project.")(function)
        function = click.option("--user", "user_flag", is_flag=True, help="Your user file: --scope user.")(function)
        return click.option("--scope", type=click.Choice(_SCOPES), default=None, help=what)(function)
    return decorate


def _chosen_scope(scope: str | None, user_flag: bool, project_flag: bool) -> str | None:
    chosen = {name for name, given in (("user", user_flag), ("project", project_flag)) if given}
    if scope is not None:
        chosen.add(scope)
    if len(chosen) > 1:
        raise UsageError("give one scope: --user, --project or --scope")
    return chosen.pop() if chosen else None


@click.group(context_settings=_HELP)
def config() -> None:
    """View and edit mngr configuration.

    Sources, later winning: built-in defaults, the user file, the project file
    (.mngr/config.toml at the project root), then MNGR_* environment variables.
    set, unset and edit change one file (the user's unless --project) and keep its
    comments and layout.
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


def _key_parts(key: str) -> list[str]:
    parts = key.split(".")
    if not all(parts):
        raise UsageError(f"invalid key {key!r}")
    return parts


@config.command("get", context_settings=_HELP)
@click.argument("key")
@_scope_options("Read only this file (default: the effective value, every source merged).")
@click.option("--show-origin", is_flag=True, help="Say where the value comes from, before it.")
@pass_app
def get(app: App, key: str, scope: str | None, user_flag: bool, project_flag: bool, show_origin: bool) -> None:
    """Print the value of KEY (dotted, e.g. agent_types.bot.command)."""
    parts = _key_parts(key)
    scope = _chosen_scope(scope, user_flag, project_flag)
    if scope is not None:
        path = _scope_path(scope)
        values, origins = config_module.read_toml(path), {}
        where = f" in {path}"
    else:
        values, origins = app.config.values, _origins()
        where = ""
    try:
        value = config_module.get_path(values, parts)
    except KeyError:
        raise ConfigError(f"{key} is not set{where}") from None
    if show_origin:
        origin = origins.get(key) or (f"{scope}:{_scope_path(scope)}" if scope else _table_origin(key, origins))
        click.echo(f"{origin}\t{_show(value)}")
    else:
        click.echo(_show(value))


def _origins() -> dict[str, str]:
    """Dotted key -> where its effective value comes from: ``default``, ``user:PATH``,
    ``project:PATH`` or ``env:VARIABLE``."""
    origins = {key: "default" for key, _ in config_module.flatten(config_module.DEFAULTS)}
    for layer in config_module.read_layers():
        for key, _ in config_module.flatten(layer.values):
            if layer.scope == "environment":
                origins[key] = f"env:{layer.variables.get(key, 'MNGR_' + key.upper().replace('.', '__'))}"
            else:
                origins[key] = f"{layer.scope}:{layer.origin}"
    return origins


def _table_origin(key: str, origins: dict[str, str]) -> str:
    """A table's origin: its keys', when they all have one."""
    found = {origin for name, origin in origins.items() if name.startswith(key + ".")}
    return found.pop() if len(found) == 1 else ",".join(sorted(found))


@config.command("set", context_settings={**_HELP, "ignore_unknown_options": True})  # VALUE may be -5
@click.argument("key")
@click.argument("value")
@_scope_options("Which file: your user config (the default) or the project's .mngr/config.toml.")
def set_(key: str, value: str, scope: str | None, user_flag: bool, project_flag: bool) -> None:
    """Set KEY to VALUE in the user (default) or project file.

    VALUE is read as a TOML value when it is one (42, true, [1, 2]), else as a string.
    A key mngr does not know, or a value it would not accept, is refused and the file
    left as it was. The rest of the file (comments, blank lines, order) is kept.
    """
    from .. import config_document, config_file

    parts = _key_parts(key)
    path = _scope_path(_chosen_scope(scope, user_flag, project_flag) or "user")
    parsed = config_module.parse_value(value)
    _check_alone(parts, parsed, path)
    before = config_file.read_text(path)
    document = config_document.parse(before, path)
    config_document.set_value(document, parts, parsed)
    values = document.unwrap()
    _check_names(key, parsed, values)
    # The rest of the file may be wrong (a file is read leniently): not this command's input.
    config_module.validate(values, str(path), strict_keys=True)
    config_file.write(path, config_document.render(document, before))
    click.echo(f"{key} = {_show(parsed)}  ({path})")


def _check_alone(parts: list[str], value: Any, path: Path) -> None:
    """KEY = VALUE on its own, checked as the loader checks a file, and more strictly (no
    unknown key): a refusal here is the command line's mistake, a usage error."""
    alone: dict[str, Any] = {}
    config_module.set_path(alone, parts, value)
    try:
        config_module.validate(alone, str(path), strict_keys=True)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _check_names(key: str, value: Any, document: dict[str, Any]) -> None:
    """A default agent type or provider must name one that exists, with the file as it
    would be (it may define the agent type): a typo here would break every later create."""
    if key not in ("default_agent_type", "default_provider"):
        return
    from ..config import Config
    from ..errors import UnknownAgentType, UnknownProvider
    from ..plugins import Registry

    current = Config.load()
    merged = config_module.merge(current.values, document)
    registry = Registry.build(Config(merged, current.user_file, current.project_file))
    try:
        if key == "default_agent_type":
            registry.agent_type(str(value))
        elif str(value) not in registry.providers:
            known = ", ".join(sorted(registry.providers))
            raise UnknownProvider(f"unknown provider {value!r} (known: {known})")
    except (UnknownAgentType, UnknownProvider) as exc:
        raise UsageError(f"{key}: {exc}") from None


@config.command("unset", context_settings=_HELP)
@click.argument("key")
@_scope_options("Which file: your user config (the default) or the project's .mngr/config.toml.")
def unset(key: str, scope: str | None, user_flag: bool, project_flag: bool) -> None:
    """Remove KEY from the user (default) or project file.

    A table left empty goes too; the rest of the file is kept as it was.
    """
    from .. import config_document, config_file

    parts = _key_parts(key)
    path = _scope_path(_chosen_scope(scope, user_flag, project_flag) or "user")
    before = config_file.read_text(path)
    document = config_document.parse(before, path)
    if not config_document.unset_value(document, parts):
        raise ConfigError(f"{key} is not set in {path}")
    config_file.write(path, config_document.render(document, before))
    click.echo(f"unset {key}  ({path})")


@config.command("list", context_settings=_HELP)
@output.format_option("config list", help="human, json (the settings as nested tables; with --show-origin, "
                                           "each dotted key with its value and origin), jsonl or a template such "
                                           "as '{key}={value}' (a record per setting).")
@_scope_options("List only this file's settings (default: every effective setting).")
@click.option("--show-origin", is_flag=True, help="Say where each value comes from: default, user:FILE, "
              "project:FILE or env:VARIABLE.")
@pass_app
def list_(app: App, output_format: str, scope: str | None, user_flag: bool, project_flag: bool,
          show_origin: bool) -> None:
    """Print every effective setting (or one file's)."""
    scope = _chosen_scope(scope, user_flag, project_flag)
    if scope is not None:
        path = _scope_path(scope)
        values = config_module.read_toml(path)
        origins = {key: f"{scope}:{path}" for key, _ in config_module.flatten(values)}
    else:
        values = app.config.values
        origins = _origins() if show_origin else {}
    entries = [{"key": key, "value": value, **({"origin": origins.get(key, "default")} if show_origin else {})}
               for key, value in sorted(config_module.flatten(values))]

    def human() -> None:
        for entry in entries:
            prefix = f"{entry['origin']}\t" if show_origin else ""
            click.echo(f"{prefix}{entry['key']} = {_show(entry['value'])}")

    def envelope(_: list[dict[str, Any]]) -> dict[str, Any]:
        if show_origin:
            return {entry["key"]: {"value": entry["value"], "origin": entry["origin"]} for entry in entries}
        return {key: values[key] for key in sorted(values)}

    output.emit(output_format, entries, human, envelope=envelope)


@config.command("edit", context_settings=_HELP)
@_scope_options("Which file: your user config (the default) or the project's .mngr/config.toml.")
def edit(scope: str | None, user_flag: bool, project_flag: bool) -> None:
    """Open the user (default) or project file in $VISUAL or $EDITOR, then check it.

    The edit is made on a copy: the file is replaced only once the copy is valid, and an
    invalid copy is kept (its path is printed) so that nothing typed is lost.
    """
    from ..config_file import edit_file

    path = _scope_path(_chosen_scope(scope, user_flag, project_flag) or "user")
    outcome = edit_file(path, _check_names_in)
    click.echo(f"{outcome}  ({path})")


def _check_names_in(document: dict[str, Any]) -> None:
    for key in ("default_agent_type", "default_provider"):
        if key in document:
            _check_names(key, document[key], document)


@config.command("path", context_settings=_HELP)
@_scope_options("Print only this file's path.")
def path(scope: str | None, user_flag: bool, project_flag: bool) -> None:
    """Print where the config files are (whether or not they exist yet), with their scope."""
    scope = _chosen_scope(scope, user_flag, project_flag)
    if scope:
        click.echo(str(_scope_path(scope)))
        return
    click.echo(f"user: {config_module.user_config_path()}")
    project = config_module.project_config_path()
    click.echo(f"project: {project if project else '(not inside a project)'}")
