"""Marking an agent's work dir as trusted in its CLI's own config, so that it opens without
asking "do you trust this folder?".

Only done when the user asked for it (mngr create --trust-work-dir, or the trust_work_dirs
setting). The agent type says where its CLI keeps that answer (``interaction["trust"]``):

- ``{"kind": "json", "file": F, "keys": [...]}``: in the JSON document F, the nested key
  path (with ``{work_dir}`` standing for the work dir's real path) is set to true;
- ``{"kind": "toml", "file": F, "table": T, "key": K, "value": V}``: in the TOML file F, the
  table T (``{work_dir}`` as above, written as a TOML string) gets ``K = "V"``.

``file`` starts with ``~`` (the agent's home), or is relative to the directory named by the
environment variable ``dir_env`` when the agent has it. CLIs key trust by the real path
(symlinks resolved), so that is what is written.
"""

import json
import os
import re

from . import state


def _path(spec, env):
    directory_env = spec.get("dir_env")
    if directory_env and env.get(directory_env):
        return os.path.join(env[directory_env], spec.get("dir_file") or os.path.basename(spec["file"]))
    path = spec["file"]
    if path.startswith("~"):
        path = (env.get("HOME") or os.path.expanduser("~")) + path[1:]
    return path


def trust_work_dir(spec, work_dir, env):
    """Record in the CLI's config that ``work_dir`` is trusted (what answering its dialog does)."""
    real = os.path.realpath(work_dir)
    path = os.path.realpath(_path(spec, env))  # a config file that is a link stays one
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    with state.named_lock("trust-" + re.sub(r"[^A-Za-z0-9]", "-", path)[-100:]):
        if spec.get("kind") == "json":
            _trust_in_json(path, [key.replace("{work_dir}", real) for key in spec["keys"]])
        elif spec.get("kind") == "toml":
            table = spec["table"].replace("{work_dir}", json.dumps(real, ensure_ascii=False))
            _trust_in_toml(path, table, spec["key"], spec["value"])


def _trust_in_json(path, keys):
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read() or b"{}")
    except FileNotFoundError:
        document = {}
    if not isinstance(document, dict):
        return
    current = document
    for key in keys[:-1]:
        if not isinstance(current.get(key), dict):
            current[key] = {}
        current = current[key]
    if current.get(keys[-1]) is True:
        return
    current[keys[-1]] = True
    _write_keeping_mode(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _trust_in_toml(path, table, key, value):
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        text = ""
    setting = '%s = %s' % (key, json.dumps(value))
    lines = text.splitlines()
    header = "[%s]" % table
    if header in (line.strip() for line in lines):
        start = [line.strip() for line in lines].index(header) + 1
        end = start
        while end < len(lines) and not lines[end].lstrip().startswith("["):
            end += 1
        body = [line for line in lines[start:end] if not re.match(r"\s*%s\s*=" % re.escape(key), line)]
        lines[start:end] = [setting, *body]
        text = "\n".join(lines) + "\n"
    else:
        text = text + ("" if not text or text.endswith("\n") else "\n") + "\n%s\n%s\n" % (header, setting)
    _write_keeping_mode(path, text.encode("utf-8"))


def _write_keeping_mode(path, data):
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    state.atomic_write_bytes(path, data, mode)
