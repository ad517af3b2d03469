"""Configuration: a user file, a project file and MNGR_* environment variables, later winning.

1. user file     ``$MNGR_CONFIG_DIR/config.toml`` (default ``~/.config/mngr/config.toml``,
                 honouring ``$XDG_CONFIG_HOME``)
2. project file  ``.mngr/config.toml`` in the nearest directory at or above the current one
                 that has a ``.mngr/`` folder or is a git repository's root
3. environment   ``MNGR_<KEY>`` for a top-level key, ``__`` between nested keys:
                 ``MNGR_DEFAULT_PROVIDER=local``, ``MNGR_AGENT_TYPES__BOT__COMMAND="bot --x"``,
                 ``MNGR_TEMPLATES__GPU__PROVIDER=local``.
                 Values are read as TOML values when they parse as one, else as strings.

Tables merge key by key; any other value from a later source replaces the earlier one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # pathlib (and urllib.parse with it) costs a push or pull a few ms: not loaded for them
    from pathlib import Path

DEFAULTS: dict[str, Any] = {
    "default_provider": "local",
    "default_agent_type": "claude",
    "agent_quiet_seconds": 10.0,
    "host_timeout_seconds": 30.0,
    "stop_grace_seconds": 2.0,  # between SIGTERM and SIGKILL of an agent's processes
    # A remembered host that has not answered for this long is reported once more, then no
    # longer searched by default listings (`mngr host list` still shows it).
    "forget_unreachable_after_seconds": 7 * 86400.0,
    # How long create and clone wait for each host to say whether it has an agent
    # of the new name; for hosts that have not answered by then, mngr's record decides.
    "name_check_seconds": 3.0,
    # Mark an agent's work dir trusted in its CLI's config: "made" (the work dirs mngr made,
    # from --source, --snapshot or a clone), "always", or "never".
    "trust_work_dirs": "made",
    # Agent types (claude, codex, or one `like` them) whose agents on a host other than the
    # local one use the CLI config found there, rather than one of their own that mngr writes
    # from the user's (controller/agent_config.py).
    "host_config_agent_types": [],
    # A resident process keeps mngr loaded for plain pushes and pulls (controller/resident.py).
    "resident": True,
}

# Top-level keys environment variables may set. Other MNGR_* variables (MNGR_HOST_DIR,
# MNGR_CONFIG_DIR, ...) steer mngr directly and are not configuration keys.
ENV_KEYS = frozenset(
    ["default_provider", "default_agent_type", "agent_quiet_seconds", "host_timeout_seconds", "stop_grace_seconds",
     "forget_unreachable_after_seconds", "name_check_seconds", "trust_work_dirs",
     "host_config_agent_types",
     "agent_types", "providers", "templates", "hosts", "plugins", "notify"]
)

TRUST_WORK_DIRS = ("made", "always", "never")

_TYPES: dict[str, type | tuple[type, ...]] = {
    "default_provider": str,
    "default_agent_type": str,
    "agent_quiet_seconds": (int, float),
    "host_timeout_seconds": (int, float),
    "stop_grace_seconds": (int, float),
    "forget_unreachable_after_seconds": (int, float),
    "name_check_seconds": (int, float),
    "trust_work_dirs": str,
    "host_config_agent_types": list,
    "resident": bool,
    "agent_types": dict,
    "providers": dict,
    "templates": dict,
    "hosts": dict,
    "plugins": dict,
    "notify": dict,
}

# [notify]: what `mngr events --follow` runs when an agent starts waiting for the user.
_NOTIFY_FIELDS: dict[str, type | tuple[type, ...]] = {"on_waiting": str}

_HOST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "address": str,
    "provider": str,
    "python": str,
    "env": dict,
    "idle_timeout": (str, int, float),
    "idle_command": str,
}


def user_config_path() -> Path:
    from pathlib import Path

    return Path(_user_config_file())


def _user_config_file() -> str:
    explicit = os.environ.get("MNGR_CONFIG_DIR")
    if explicit:
        return os.path.join(os.path.expanduser(explicit), "config.toml")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mngr", "config.toml")


def project_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    from pathlib import Path

    root = _project_root(start)
    return Path(root) if root is not None else None


def _project_root(start: str | os.PathLike[str] | None = None) -> str | None:
    directory = os.path.realpath(os.fspath(start) if start is not None else os.getcwd())
    while True:
        if os.path.isdir(os.path.join(directory, ".mngr")) or os.path.exists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def project_config_path(start: str | os.PathLike[str] | None = None) -> Path | None:
    from pathlib import Path

    found = _project_config_file(start)
    return Path(found) if found is not None else None


def _project_config_file(start: str | os.PathLike[str] | None = None) -> str | None:
    root = _project_root(start)
    return os.path.join(root, ".mngr", "config.toml") if root is not None else None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    import tomllib  # only when there is a file: most commands on a fresh machine have none

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from exc


def parse_value(text: str) -> Any:
    """A TOML value if ``text`` is one (42, true, [1, 2], "quoted"), else the text itself."""
    import tomllib

    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _env_layer(environ: Mapping[str, str], variables: dict[str, str] | None = None) -> dict[str, Any]:
    """The configuration the MNGR_* variables give; ``variables``, when given, receives the
    variable behind each dotted key set."""
    layer: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("MNGR_"):
            continue
        parts = [part.lower() for part in name[len("MNGR_"):].split("__")]
        if parts[0] not in ENV_KEYS or not all(parts):
            continue
        value = parse_value(raw)
        set_path(layer, parts, value)
        if variables is not None:
            prefix = ".".join(parts)
            if isinstance(value, Mapping) and value:
                variables.update((f"{prefix}.{key}", name) for key, _ in flatten(value))
            else:
                variables[prefix] = name
    return layer


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def set_path(table: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = table.get(part)
        if not isinstance(child, dict):
            child = table[part] = {}
        table = child
    table[parts[-1]] = value


def get_path(table: Mapping[str, Any], parts: list[str]) -> Any:
    current: Any = table
    for part in parts:
        if not isinstance(current, Mapping) or part not in current:
            raise KeyError(".".join(parts))
        current = current[part]
    return current


def flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, path + ".")
        else:
            yield path, value


_AGENT_TYPE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "command": str,
    "ready_pattern": str,
    "ready_quiet_seconds": (int, float),
    "description": str,
    "like": str,
    "cli": str,
    "interaction": dict,
    "ports": list,
}


# What a ``[templates.NAME]`` table may hold: create options, named as in ``mngr create``
# (``provider`` is ``--in``, ``args`` the words after ``--``). controller/templates.py
# applies them.
TEMPLATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "agent_type": str,
    "provider": str,
    "host": str,
    "work_dir": str,
    "env": dict,
    "labels": dict,
    "initial_message": str,
    "ready_timeout": (int, float),
    "connect": bool,
    "args": list,
    "idle_timeout": (str, int, float),
    "idle_mode": str,
    "activity_sources": list,
    "source": str,
    "ports": list,  # as --port takes them: "PORT[:NAME]" (or a bare port number)
}
# The same patterns as --env and --label (controller/cli/common.py), kept here so that
# loading the configuration does not import the CLI.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_type(origin: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    # bool is an int subclass, but `agent_quiet_seconds = true` is a mistake, not 1.
    if expected is bool:
        wrong = not isinstance(value, bool)
    else:
        wrong = isinstance(value, bool) or not isinstance(value, expected)
    if wrong:
        if isinstance(expected, type):
            type_name = expected.__name__
        else:
            type_name = "duration (seconds, or such as \"1h\")" if str in expected else "number"
        type_name = {"dict": "table", "bool": "boolean (true or false)"}.get(type_name, type_name)
        raise ConfigError(f"{origin}: {key} must be a {type_name}, got {value!r}")


# Numbers with a range: (least, whether the least itself is allowed).
_RANGES: dict[str, tuple[float, bool]] = {
    "host_timeout_seconds": (0.0, False),
    "agent_quiet_seconds": (0.0, True),
    "stop_grace_seconds": (0.0, True),
    "forget_unreachable_after_seconds": (0.0, True),
    "name_check_seconds": (0.0, False),
}


def _check_range(origin: str, key: str, value: float) -> None:
    import math

    least, inclusive = _RANGES[key]
    if not math.isfinite(value) or value < least or (value == least and not inclusive):
        bound = f"at least {least:g}" if inclusive else f"more than {least:g}"
        raise ConfigError(f"{origin}: {key} must be a number of seconds {bound}, got {value!r}")


def validate(values: Mapping[str, Any], origin: str, strict_keys: bool = False) -> None:
    """Check the types of every known key; with ``strict_keys``, reject unknown ones too.

    Files are read leniently (a plugin may add keys mngr does not know); ``config set``
    is strict, so that a typo never lands in a file.
    """
    for key, value in values.items():
        expected = _TYPES.get(key)
        if expected is None:
            if strict_keys:
                raise ConfigError(f"{origin}: unknown config key {key!r} (known: {', '.join(sorted(_TYPES))})")
            continue
        _check_type(origin, key, value, expected)
        if key in _RANGES:
            _check_range(origin, key, value)
        elif expected is str and not value.strip():
            raise ConfigError(f"{origin}: {key} is empty")
    if values.get("trust_work_dirs", "made") not in TRUST_WORK_DIRS:
        raise ConfigError(f"{origin}: trust_work_dirs must be one of {', '.join(TRUST_WORK_DIRS)}, "
                          f"got {values['trust_work_dirs']!r}")
    if not all(isinstance(name, str) for name in values.get("host_config_agent_types", [])):
        raise ConfigError(f"{origin}: host_config_agent_types must be a list of agent type names")
    for name, section in values.get("agent_types", {}).items():
        _check_fields(origin, f"agent_types.{name}", section, _AGENT_TYPE_FIELDS)
    for name, section in values.get("providers", {}).items():
        _check_type(origin, f"providers.{name}", section, dict)
    for name, section in values.get("templates", {}).items():
        _check_template(origin, f"templates.{name}", section)
    for name, section in values.get("hosts", {}).items():
        _check_fields(origin, f"hosts.{name}", section, _HOST_FIELDS)
    if "notify" in values:
        _check_fields(origin, "notify", values["notify"], _NOTIFY_FIELDS)


def _check_fields(
    origin: str, prefix: str, section: Any, fields: Mapping[str, type | tuple[type, ...]]
) -> None:
    """``section`` is a table whose keys are all in ``fields``, each of its type; ``env`` and
    ``labels`` tables are further checked key by key."""
    _check_type(origin, prefix, section, dict)
    for field_name, value in section.items():
        key = f"{prefix}.{field_name}"
        field_type = fields.get(field_name)
        if field_type is None:
            raise ConfigError(f"{origin}: unknown key {key} (known: {', '.join(sorted(fields))})")
        _check_type(origin, key, value, field_type)
        if field_name in ("env", "labels"):
            pattern = _ENV_NAME if field_name == "env" else _LABEL_KEY
            for item_key, item in value.items():
                if not pattern.match(item_key):
                    raise ConfigError(f"{origin}: invalid key {item_key!r} in {key}")
                _check_type(origin, f"{key}.{item_key}", item, str)


def _check_template(origin: str, prefix: str, section: Any) -> None:
    if isinstance(section, dict) and "name" in section:
        raise ConfigError(
            f"{origin}: {prefix}.name: a template cannot set the agent name "
            "(two agents cannot share one; give NAME or --name to mngr create)"
        )
    _check_fields(origin, prefix, section, TEMPLATE_FIELDS)
    for field_name, value in section.items():
        key = f"{prefix}.{field_name}"
        if field_name == "args":
            for index, item in enumerate(value):
                _check_type(origin, f"{key}[{index}]", item, str)
        elif field_name == "initial_message" and not value.strip():
            raise ConfigError(f"{origin}: {key} is empty")


@dataclass(frozen=True)
class Layer:
    """One source of configuration, before merging."""

    scope: str  # "user", "project" or "environment"
    origin: str  # the file's path, or "environment"
    values: dict[str, Any]
    variables: dict[str, str] = field(default_factory=dict)  # dotted key -> MNGR_* variable


def read_layers(environ: Mapping[str, str] | None = None,
                cwd: str | os.PathLike[str] | None = None) -> list[Layer]:
    """The user file, the project file and the environment, in the order they apply
    (after DEFAULTS); a file that does not exist is an empty layer. Not validated."""
    environ = os.environ if environ is None else environ
    layers = [Layer("user", _user_config_file(), read_toml(_user_config_file()))]
    project_path = _project_config_file(cwd)
    if project_path is not None:
        layers.append(Layer("project", project_path, read_toml(project_path)))
    variables: dict[str, str] = {}
    layers.append(Layer("environment", "environment", _env_layer(environ, variables), variables))
    return layers


@dataclass
class Config:
    values: dict[str, Any]
    user_file: str
    project_file: str | None
    sources: list[str] = field(default_factory=list)

    @property
    def user_path(self) -> Path:
        from pathlib import Path

        return Path(self.user_file)

    @property
    def project_path(self) -> Path | None:
        from pathlib import Path

        return Path(self.project_file) if self.project_file is not None else None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        values = dict(DEFAULTS)
        sources = ["defaults"]
        for layer in read_layers(environ, cwd):
            if layer.values:
                validate(layer.values, layer.origin)
                values = merge(values, layer.values)
                sources.append(layer.origin)
        return cls(values, _user_config_file(), _project_config_file(cwd), sources)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return get_path(self.values, key.split("."))
        except KeyError:
            return default

    def section(self, key: str) -> Mapping[str, Any]:
        value = self.get(key, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table")
        return value
