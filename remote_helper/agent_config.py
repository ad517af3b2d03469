"""An agent CLI's config dir of its own, inside the agent's dir.

On a host other than the user's own, a claude or codex agent does not use the CLI config it
finds there: the controller sends what it needs (CreateAgent.agent_config, made by
controller/agent_config.py) and this module writes it:

- ``<agent dir>/<dir>/`` (0700) with each file (0600), such as ``.claude.json`` or
  ``config.toml``: the CLI reads and writes its config and session logs there;
- ``<agent dir>/agent-config.json`` (0600): the variable that names the dir
  (``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``) and the environment values that go with it (API
  keys among them). Every launch of the agent adds them to its environment (``env``); the
  agent's ``--env`` values win over them.

The record keeps only names (``record_entry``). Everything goes with the agent's dir on
destroy. ``write`` replaces the files it is given and leaves the CLI's own (its session
logs, its state) in place, so it can be applied again to an existing agent.
"""

import os

from . import state
from .wire import RequestFailed

SETTINGS_FILE = "agent-config.json"


def _check_name(name, what):
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name
            or name == SETTINGS_FILE):
        raise RequestFailed("invalid", "agent_config: %s must be a plain file name, got %r" % (what, name))


def check(spec):
    """Refuse a malformed spec before anything is made (values are never quoted back)."""
    if not isinstance(spec, dict):
        raise RequestFailed("invalid", "agent_config must be an object")
    _check_name(spec.get("dir"), "dir")
    if not isinstance(spec.get("env_var"), str) or not spec["env_var"]:
        raise RequestFailed("invalid", "agent_config: env_var must be a variable name")
    for key in ("files", "env"):
        table = spec.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(value, str) for value in table.values()):
            raise RequestFailed("invalid", "agent_config: %s must map names to strings" % key)
    for name in spec.get("files", {}):
        _check_name(name, "a file name")


def write(agent_id, spec):
    """Make (or refresh) the agent's config dir and settings file from ``spec``."""
    check(spec)
    agent_dir = state.agent_dir(agent_id)
    directory = os.path.join(agent_dir, spec["dir"])
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o700)
    os.chmod(directory, 0o700)
    for name, text in sorted(spec.get("files", {}).items()):
        path = os.path.join(directory, name)
        state.atomic_write_bytes(path, text.encode("utf-8"), 0o600)
        os.chmod(path, 0o600)
    settings = os.path.join(agent_dir, SETTINGS_FILE)
    state.atomic_write_json(settings, {"dir": spec["dir"], "env_var": spec["env_var"],
                                       "env": dict(spec.get("env", {}))})
    os.chmod(settings, 0o600)


def record_entry(spec):
    """What the agent's record keeps of ``spec``: names, never values."""
    return {"dir": spec["dir"], "env_var": spec["env_var"], "files": sorted(spec.get("files", {})),
            "env_keys": sorted(spec.get("env", {}))}


def env(agent_id):
    """The variables the agent's config dir adds to its environment ({} for an agent without)."""
    agent_dir = state.agent_dir(agent_id)
    try:
        settings = state.read_json(os.path.join(agent_dir, SETTINGS_FILE))
    except (OSError, ValueError):
        return {}
    if not isinstance(settings, dict) or not isinstance(settings.get("env_var"), str):
        return {}
    values = settings.get("env") if isinstance(settings.get("env"), dict) else {}
    added = {str(key): str(value) for key, value in values.items()}
    added[settings["env_var"]] = os.path.join(agent_dir, str(settings.get("dir", "")))
    return added
