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
logs, its state) in place, so it can be applied again to an existing agent. A file named in
``merge_json`` (claude's ``.claude.json``, where the CLI keeps state of its own) gets the
spec's keys merged into what is there instead of replacing it. A file or settings file
whose content would not change is not written.

``state_of`` tells the controller what is there without sending it a value: every file's
and variable's hash with a salt the controller chose (``mngr provision`` compares them with
its own plan's), a file's as mngr last wrote it too (``written``: the CLI changes its own
files as it runs), and whether the agent's process was launched without the variables
now there (it does not have them yet).
"""

import contextlib
import hashlib
import json
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
    merged = spec.get("merge_json", [])
    if not isinstance(merged, list) or not all(isinstance(name, str) and name in spec.get("files", {})
                                               for name in merged):
        raise RequestFailed("invalid", "agent_config: merge_json must list names of its files")


def write(agent_id, spec, dropped=()):
    """Make (or refresh) the agent's config dir and settings file from ``spec``; remove the
    files of ``dropped`` (written by an earlier spec, in none now)."""
    check(spec)
    agent_dir = state.agent_dir(agent_id)
    directory = os.path.join(agent_dir, spec["dir"])
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o700)
    os.chmod(directory, 0o700)
    merged = set(spec.get("merge_json", []))
    contents = []  # all made before any is written: a file that cannot be read changes none
    for name, text in sorted(spec.get("files", {}).items()):
        path = os.path.join(directory, name)
        old = _read_bytes(path)
        contents.append((path, old, _merged(old, text) if name in merged else text.encode("utf-8")))
    for path, old, data in contents:
        if data != old:
            state.atomic_write_bytes(path, data, 0o600)
        os.chmod(path, 0o600)
    for name in dropped:
        if name not in spec.get("files", {}) and name != SETTINGS_FILE and "/" not in name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
    settings = os.path.join(agent_dir, SETTINGS_FILE)
    # "written": each file's sha256 as mngr last wrote it, which is what a later spec is
    # compared with: the CLI changes its own files as it runs (its state, its notices).
    wanted = {"dir": spec["dir"], "env_var": spec["env_var"], "env": dict(spec.get("env", {})),
              "written": {name: _sha256(text) for name, text in spec.get("files", {}).items()}}
    try:
        current = state.read_json(settings)
    except (OSError, ValueError):
        current = None
    if current != wanted:
        state.atomic_write_json(settings, wanted)
    os.chmod(settings, 0o600)


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _merged(old, text):
    """``text`` (a JSON object) merged into the JSON object ``old``: its values win, objects
    in both are merged key by key. ``old`` that is not a JSON object is replaced."""
    new = json.loads(text)
    try:
        document = json.loads(old.decode("utf-8")) if old is not None else None
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(new, dict):
        return text.encode("utf-8")
    return (json.dumps(_merge(document, new), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _merge(into, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def salted_hash(salt, text):
    """What stands for a value in ``state``: nobody without the salt can test a guess."""
    return hashlib.sha256((salt + "\0" + text).encode("utf-8")).hexdigest()


def hashed_tree(salt, value):
    """A JSON object with each value that is not an object replaced by its salted hash."""
    if isinstance(value, dict):
        return {str(key): hashed_tree(salt, item) for key, item in value.items()}
    return salted_hash(salt, json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def state_of(agent_id, record, salt):
    """What the agent's config dir holds, as salted hashes (see the module's docstring)."""
    agent_dir = state.agent_dir(agent_id)
    entry = record.get("agent_config") if isinstance(record.get("agent_config"), dict) else {}
    found = {"configured": bool(entry), "env_var": str(entry.get("env_var", "")), "files": {}, "env": {},
             "written_files": [str(name) for name in entry.get("files", [])], "pending": False}
    if not entry:
        return found
    settings = _read_dict(os.path.join(agent_dir, SETTINGS_FILE))
    written = settings.get("written") if isinstance(settings.get("written"), dict) else {}
    directory = os.path.join(agent_dir, str(entry.get("dir", "")))
    for name in found["written_files"]:
        try:
            data = _read_bytes(os.path.join(directory, name)) if "/" not in name else None
        except OSError:  # not a file it can read: reported as not there, so written again
            data = None
        if data is None:
            continue
        text = data.decode("utf-8", "replace")
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        found["files"][name] = {"sha256": salted_hash(salt, text),
                                "tree": hashed_tree(salt, document) if isinstance(document, dict) else None,
                                "written": salted_hash(salt, str(written[name])) if name in written else None}
    values = settings.get("env") if isinstance(settings.get("env"), dict) else {}
    found["env"] = {str(key): salted_hash(salt, str(value)) for key, value in values.items()}
    # Whether the agent's process was launched without these: its --env values win, as at launch.
    expected = {str(key): str(value) for key, value in values.items()}
    expected[found["env_var"]] = os.path.join(agent_dir, str(entry.get("dir", "")))
    expected.update({str(key): str(value) for key, value in _read_dict(os.path.join(agent_dir, "env.json")).items()})
    launched = _read_dict(os.path.join(agent_dir, "launch.json")).get("env")
    if isinstance(launched, dict):
        found["pending"] = any(launched.get(key) != value for key, value in expected.items())
    return found


def _read_dict(path):
    try:
        document = state.read_json(path)
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


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
