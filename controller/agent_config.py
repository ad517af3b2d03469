"""What a claude or codex agent needs on a host that is not the user's own, and nothing more.

An agent on the local host runs with the user's own CLI config (``~/.claude.json``,
``~/.codex``). On any other host it gets a config dir of its own inside its agent dir,
named by the CLI's variable (``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``), holding only what it
needs to run unattended; the plan of it is made here, on the user's side, from the user's
files and environment:

- claude: ``.claude.json`` with onboarding done and the API key's last 20 characters
  approved (when a key is passed); ``.credentials.json`` when the user logs in that way
  (with the account's ``oauthAccount`` entry); ``settings.json`` with only the user's model
  and permission mode; the variables of ``CLAUDE_ENV``.
- codex: ``config.toml`` with only the model, the provider in use and its
  ``[model_providers.X]`` table, the approval and sandbox settings and
  ``disable_paste_burst``; ``auth.json`` when the user has one; the provider's ``env_key``
  variable (``OPENAI_API_KEY`` for the built-in provider, with ``OPENAI_BASE_URL``).

The work dir's trust is added on the host by the helper (remote_helper/trust.py), which
knows the work dir's real path there. The helper writes the files (0600, in 0700 dirs:
remote_helper/agent_config.py); the variables reach it inside a frame and live in a 0600
file of the agent's dir. ``describe`` names files and variables, never a value.

To bring a running agent's config up to date (what ``mngr provision`` does): ``for_agent``
gives the plan, ``differences`` names what of it differs from what the host holds
(``HostHandle.read_agent_config``, salted hashes: no value travels for the comparison), and
``HostHandle.write_agent_config(name, plan.wire())`` writes it again; files change at once,
variables at the agent's next start. Claude's ``.claude.json`` also holds the CLI's own
state, so the plan's keys are merged into it (``merge_json``) rather than replacing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import MngrError

if TYPE_CHECKING:
    from .agent_types import AgentType
    from .channel.protocol import AgentConfigState
    from .config import Config
    from .hosts import HostHandle

# Claude's variables that pass from the user's environment, and why each:
CLAUDE_ENV = (
    "ANTHROPIC_API_KEY",  # the key the CLI authenticates with
    "ANTHROPIC_AUTH_TOKEN",  # a bearer token instead of a key (gateways)
    "ANTHROPIC_CUSTOM_HEADERS",  # headers a gateway at ANTHROPIC_BASE_URL requires
    "ANTHROPIC_BASE_URL",  # where the key is valid: a gateway or proxy instead of api.anthropic.com
    "ANTHROPIC_MODEL",  # the user's choice of model
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    # What the user turned off for their own CLI stays off for the agent's.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
)

# Codex's top-level settings that are kept: the model, and how much the agent may do alone.
CODEX_KEYS = ("model", "model_provider", "model_reasoning_effort", "approval_policy", "sandbox_mode",
              "sandbox_workspace_write", "disable_paste_burst")

CONFIG_DIR_NAME = "cli-config"  # in the agent's dir on the host


@dataclass(frozen=True)
class AgentConfigPlan:
    """The config dir an agent gets on its host: files by name, and environment values."""

    cli: str  # "claude" or "codex"
    env_var: str  # the CLI's variable naming its config dir
    files: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    merge_json: tuple[str, ...] = ()  # files whose keys are merged into the host's copy

    def describe(self) -> list[str]:
        """What the plan puts on the host, by name only: safe to print and log."""
        lines = [f"{self.env_var}=<agent dir>/{CONFIG_DIR_NAME} (0700)"]
        lines += [f"file {CONFIG_DIR_NAME}/{name} (0600)" for name in sorted(self.files)]
        lines += [f"env {key}" for key in sorted(self.env)]
        return lines

    def wire(self) -> dict[str, Any]:
        """CreateAgent.agent_config: what the helper writes (remote_helper/agent_config.py)."""
        wired: dict[str, Any] = {"dir": CONFIG_DIR_NAME, "env_var": self.env_var, "files": dict(self.files),
                                 "env": dict(self.env)}
        if self.merge_json:
            wired["merge_json"] = list(self.merge_json)
        return wired


@dataclass(frozen=True)
class ConfigDifferences:
    """What writing a plan would change on the host, by name only."""

    files: tuple[str, ...] = ()  # written anew (or merged into)
    removed_files: tuple[str, ...] = ()  # written by an earlier plan, in none now
    env: tuple[str, ...] = ()  # set anew or changed
    removed_env: tuple[str, ...] = ()
    env_var_changed: bool = False

    @property
    def any(self) -> bool:
        return bool(self.files or self.removed_files or self.env or self.removed_env or self.env_var_changed)

    @property
    def variables(self) -> bool:
        """Whether the agent's environment changes (at its next start)."""
        return bool(self.env or self.removed_env or self.env_var_changed)


def differences(plan: AgentConfigPlan, host: AgentConfigState, salt: str) -> ConfigDifferences:
    """What of ``plan`` differs from what the host holds (``host``, hashed with ``salt``).
    A file differs if it is gone, or is not what mngr last wrote there; for an agent whose
    host does not say what that was, if the plan's file (for a merged one: its keys) is
    not what the file holds."""
    from mngr.remote_helper.agent_config import hashed_tree, salted_hash

    if not host.configured:
        return ConfigDifferences(tuple(sorted(plan.files)), (), tuple(sorted(plan.env)), (), True)
    files = []
    for name, text in sorted(plan.files.items()):
        there = host.files.get(name)
        if not isinstance(there, dict):
            files.append(name)
        elif there.get("written"):  # what mngr wrote last, whatever the CLI did to it since
            if there["written"] != salted_hash(salt, hashlib.sha256(text.encode("utf-8")).hexdigest()):
                files.append(name)
        elif name in plan.merge_json:
            if not _holds(there.get("tree"), hashed_tree(salt, json.loads(text))):
                files.append(name)
        elif there.get("sha256") != salted_hash(salt, text):
            files.append(name)
    removed_files = sorted(name for name in host.written_files if name not in plan.files and name in host.files)
    env = [key for key, value in sorted(plan.env.items()) if host.env.get(key) != salted_hash(salt, value)]
    removed_env = sorted(key for key in host.env if key not in plan.env)
    return ConfigDifferences(tuple(files), tuple(removed_files), tuple(env), tuple(removed_env),
                             host.env_var != plan.env_var)


def _holds(there: Any, wanted: Any) -> bool:
    """Whether merging ``wanted`` into ``there`` (both hashed trees) would leave it as it is."""
    if isinstance(wanted, dict):
        return isinstance(there, dict) and all(_holds(there.get(key), value) for key, value in wanted.items())
    return there == wanted


def for_agent(config: Config, agent_type: AgentType | None, handle: HostHandle) -> AgentConfigPlan | None:
    """The plan for an agent of ``agent_type`` on ``handle``'s host; None where the agent is to
    use the CLI config it finds: an agent type mngr writes no config for, a host whose agents
    run with the user's own environment (the local host), or a type the user listed in the
    ``host_config_agent_types`` setting."""
    if why_none(config, agent_type, handle) is not None:
        return None
    assert agent_type is not None and agent_type.interaction is not None
    return plan(agent_type.interaction.config_kind, os.environ)


def why_none(config: Config, agent_type: AgentType | None, handle: HostHandle) -> str | None:
    """Why an agent of ``agent_type`` on ``handle``'s host gets no config of its own (None:
    it does), in words for the user."""
    kind = agent_type.interaction.config_kind if agent_type is not None and agent_type.interaction else ""
    if not kind:
        return f"mngr writes no CLI config for agents of type {agent_type.name if agent_type else 'unknown'!r}"
    assert agent_type is not None
    if handle.agents_get_users_environment():
        return f"it runs with your own {kind} config on host {handle.host!r}"
    if agent_type.name in (config.get("host_config_agent_types") or ()):
        return f"type {agent_type.name!r} uses the host's own config (host_config_agent_types)"
    return None


def plan(cli: str, user_env: Mapping[str, str]) -> AgentConfigPlan:
    """The plan for an agent of CLI kind ``cli`` from the user whose environment is ``user_env``."""
    home = user_env.get("HOME") or os.path.expanduser("~")
    if cli == "claude":
        return _claude(user_env, home)
    if cli == "codex":
        return _codex(user_env, home)
    raise MngrError(f"no config of its own is known for CLI kind {cli!r}")


def _claude(user_env: Mapping[str, str], home: str) -> AgentConfigPlan:
    own_dir = user_env.get("CLAUDE_CONFIG_DIR")
    config_dir = own_dir or os.path.join(home, ".claude")
    user_state = _read_json(os.path.join(own_dir, ".claude.json") if own_dir else os.path.join(home, ".claude.json"))
    env = {key: user_env[key] for key in CLAUDE_ENV if user_env.get(key)}
    state: dict[str, Any] = {"hasCompletedOnboarding": True, "projects": {}}
    if env.get("ANTHROPIC_API_KEY"):
        # What answering "Do you want to use this API key?" with Yes records.
        state["customApiKeyResponses"] = {"approved": [env["ANTHROPIC_API_KEY"][-20:]], "rejected": []}
    if user_state.get("bypassPermissionsModeAccepted") is True:
        state["bypassPermissionsModeAccepted"] = True
    files = {}
    credentials = _read_text(os.path.join(config_dir, ".credentials.json"))
    if credentials is not None:
        files[".credentials.json"] = credentials
        if isinstance(user_state.get("oauthAccount"), dict):
            state["oauthAccount"] = user_state["oauthAccount"]
    files[".claude.json"] = json.dumps(state, indent=2) + "\n"
    settings = _read_json(os.path.join(config_dir, "settings.json"))
    kept: dict[str, Any] = {}
    if isinstance(settings.get("model"), str):
        kept["model"] = settings["model"]
    permissions = settings.get("permissions")
    if isinstance(permissions, dict) and isinstance(permissions.get("defaultMode"), str):
        kept["permissions"] = {"defaultMode": permissions["defaultMode"]}
    if kept:
        files["settings.json"] = json.dumps(kept, indent=2) + "\n"
    return AgentConfigPlan("claude", "CLAUDE_CONFIG_DIR", files, env, merge_json=(".claude.json",))


def _codex(user_env: Mapping[str, str], home: str) -> AgentConfigPlan:
    import tomllib

    codex_home = user_env.get("CODEX_HOME") or os.path.join(home, ".codex")
    config_path = os.path.join(codex_home, "config.toml")
    text = _read_text(config_path)
    try:
        config = tomllib.loads(text) if text is not None else {}
    except tomllib.TOMLDecodeError as exc:
        raise MngrError(f"cannot read {config_path}: {exc}") from None
    kept = {key: config[key] for key in CODEX_KEYS if key in config}
    provider = config.get("model_provider") or "openai"
    table = (config.get("model_providers") or {}).get(provider)
    env_key = "OPENAI_API_KEY" if provider == "openai" else None
    if isinstance(table, dict):
        kept["model_providers"] = {provider: table}
        env_key = table.get("env_key") if isinstance(table.get("env_key"), str) else None
    wanted = [env_key] if env_key else []
    if provider == "openai":
        wanted.append("OPENAI_BASE_URL")
    env = {key: user_env[key] for key in wanted if user_env.get(key)}
    files = {"config.toml": toml_document(kept)}
    auth = _read_text(os.path.join(codex_home, "auth.json"))
    if auth is not None:
        files["auth.json"] = auth
    return AgentConfigPlan("codex", "CODEX_HOME", files, env)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise MngrError(f"cannot read {path}: {exc.__class__.__name__}") from None


def _read_json(path: str) -> dict[str, Any]:
    text = _read_text(path)
    if text is None or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise MngrError(f"cannot read {path}: not JSON ({exc})") from None
    return document if isinstance(document, dict) else {}


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_document(document: Mapping[str, Any]) -> str:
    """``document`` as TOML: plain values first, then one ``[table]`` per nested table."""
    lines: list[str] = []
    _toml_table(document, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    plain = [(key, value) for key, value in table.items() if not isinstance(value, Mapping)]
    nested = [(key, value) for key, value in table.items() if isinstance(value, Mapping)]
    if path and (plain or not nested):
        lines += ["", "[" + ".".join(_toml_key(part) for part in path) + "]"]
    lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in plain]
    for key, value in nested:
        _toml_table(value, [*path, key], lines)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string (the same escapes, \uXXXX included), but for
        # DEL, which TOML wants escaped too.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(key)} = {_toml_value(item)}" for key, item in value.items()) + "}"
    # Dates and times (tomllib gives datetime objects) are written as TOML writes them.
    return value.isoformat() if hasattr(value, "isoformat") else json.dumps(str(value))
