"""Agents' records on this host (``$MNGR_HOST_DIR/agents/<id>/record.json``): read,
found by name. Written by agents.py; read by everything that acts on agents (the
watcher, gc, output, the guard of transfers)."""

import os

from . import state
from .wire import RequestFailed

_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

# Held (state.named_lock) while agents' records and tmux sessions are looked at together
# (listings, the state noter of events.py) and while a rename changes both
# (record_changes.py): no look sees a record renamed without its session. The state noter
# also holds it while it compares and rewrites the last states logged.
VIEW_LOCK = "agent-states"


def check_name(name):
    # Same rule as the controller's pattern ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$, without
    # importing re: every helper start pays for its imports.
    valid = (
        0 < len(name) <= 63
        and not name.startswith("-")
        and not name.endswith("-")
        and all(char in _NAME_CHARACTERS for char in name)
    )
    if not valid:
        raise RequestFailed(
            "invalid",
            "invalid agent name %r: use lowercase letters, digits and hyphens (at most 63), "
            "starting and ending with a letter or digit" % name[:80],
        )


def named_pairs(record, key):
    """The record's ``key`` (a list of [name, value] string pairs, as extra windows and
    declared URLs are kept: JSON has no ordered mapping) as (name, value), in order; what is
    not such a pair is left out."""
    pairs = record.get(key)
    if not isinstance(pairs, list):
        return []
    return [(pair[0], pair[1]) for pair in pairs
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)]


def read_all():
    """Return (records by agent id, problems) for every agent dir on this host."""
    records = {}
    problems = []
    try:
        entries = os.listdir(state.agents_dir())
    except FileNotFoundError:
        return records, problems
    for entry in sorted(entries):
        if entry.startswith("."):
            continue
        path = os.path.join(state.agents_dir(), entry, "record.json")
        try:
            record = state.read_json(path)
            if not isinstance(record, dict) or not isinstance(record.get("name"), str):
                raise ValueError("record has no name")
        except FileNotFoundError:
            problems.append((entry, "agent dir %s has no record.json" % entry))
            continue
        except (OSError, ValueError) as exc:
            problems.append((entry, "unreadable agent record %s: %s" % (path, exc)))
            continue
        records[entry] = record
    return records, problems


def find(name):
    records, _ = read_all()
    for agent_id, record in records.items():
        if record.get("name") == name:
            return agent_id, record
    return None, None


def require(name):
    check_name(name)
    agent_id, record = find(name)
    if record is None:
        raise RequestFailed("not_found", "no agent named %r on this host" % name)
    return agent_id, record
