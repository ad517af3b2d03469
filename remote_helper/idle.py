"""Idle detection on a host: its settings, the activity it has seen, and whether it is idle.

A host is idle when no activity of the kinds its settings count has happened for the
idle timeout. Each kind of activity (a "source") has a file under ``host/activity/``
whose mtime is the last time it happened (so ``touch`` works from scripts) and whose
content, when mngr wrote it, says which agent it was. Requests (create, start, message,
attach, keepalive) write them as they happen; the watcher (watcher.py) writes the
measured ones (output, CPU, attached clients, SSH sessions, live processes) as it sees
them. Settings live in ``host/idle.json``.
"""

import contextlib
import os
import time

from . import state
from .wire import RequestFailed

# Every source, in the order ties are reported.
SOURCES = ("user", "ssh", "message", "output", "cpu", "lease", "process", "start", "create", "boot")

# Idle modes: named sets of sources. "create" and "boot" count only what mngr itself records
# (an agent's creation, the host's boot), not what an agent's behaviour produces; see
# docs/concepts/idle.md for what an agent running as the same user can still do.
MODES = {
    "io": ("user", "ssh", "message", "output", "cpu", "lease", "start", "create", "boot"),
    "user": ("user", "ssh", "message", "lease", "start", "create", "boot"),
    "agent": ("output", "cpu", "ssh", "lease", "start", "create", "boot"),
    "ssh": ("ssh", "lease", "start", "create", "boot"),
    "run": ("process", "lease", "start", "create", "boot"),
    "start": ("start", "boot"),
    "create": ("create",),
    "boot": ("boot",),
    "disabled": (),
}
DEFAULT_MODE = "io"
# With every agent stopped (or none left), the host stops after this long.
DEFAULT_STOP_GRACE_SECONDS = 30.0
# An agent's process tree using more than this share of one CPU counts as busy.
DEFAULT_CPU_THRESHOLD = 0.05


def _host_state_dir(create=False):
    """``host/`` in the host dir; only writers create it (a listing writes nothing)."""
    path = os.path.join(state.host_dir(), "host")
    return state.ensure_dir(path) if create else path


def activity_dir(create=False):
    path = os.path.join(_host_state_dir(create), "activity")
    return state.ensure_dir(path) if create else path


def settings_path():
    return os.path.join(_host_state_dir(), "idle.json")


def watcher_log_path():
    return os.path.join(_host_state_dir(), "watcher.jsonl")


def shutdown_path():
    return os.path.join(_host_state_dir(), "shutdown.json")


def lease_path():
    return os.path.join(_host_state_dir(), "lease.json")


# -- settings ---------------------------------------------------------------------------


def default_settings():
    return {
        "timeout": None,
        "mode": DEFAULT_MODE,
        "sources": list(MODES[DEFAULT_MODE]),
        "command": "",
        "stop_grace": DEFAULT_STOP_GRACE_SECONDS,
        "cpu_threshold": DEFAULT_CPU_THRESHOLD,
    }


def read_settings():
    """The host's settings; idle shutdown is off on a host that has none."""
    settings = default_settings()
    try:
        stored = state.read_json(settings_path())
    except (OSError, ValueError):
        return settings
    if isinstance(stored, dict):
        # A hand-edited file gone wrong: stay with the safe default (never stop).
        with contextlib.suppress(RequestFailed):
            settings.update(_checked(stored))
    return settings


def _checked(fields):
    """The settings in ``fields`` that are present, validated; RequestFailed if any is bad."""
    checked = {}
    if fields.get("timeout") is not None:
        timeout = fields["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 10 ** 9:
            raise RequestFailed("invalid", "idle timeout must be a positive number of seconds, not %r" % (timeout,))
        checked["timeout"] = float(timeout)
    elif "timeout" in fields:
        checked["timeout"] = None
    mode = fields.get("mode")
    if mode is not None:
        if mode not in MODES and mode != "custom":
            raise RequestFailed(
                "invalid", "unknown idle mode %r (known: %s)" % (mode, ", ".join(sorted(MODES)))
            )
        checked["mode"] = mode
        if mode != "custom":
            checked["sources"] = list(MODES[mode])
    sources = fields.get("sources")
    if sources is not None:
        if not isinstance(sources, list) or not all(isinstance(source, str) for source in sources):
            raise RequestFailed("invalid", "activity sources must be a list of names")
        unknown = [source for source in sources if source not in SOURCES]
        if unknown:
            raise RequestFailed(
                "invalid", "unknown activity source %r (known: %s)" % (unknown[0], ", ".join(SOURCES))
            )
        checked["sources"] = [source for source in SOURCES if source in sources]
        checked["mode"] = _mode_of(checked["sources"])
    command = fields.get("command")
    if command is not None:
        if not isinstance(command, str) or "\0" in command:
            raise RequestFailed("invalid", "the idle command must be a string")
        checked["command"] = command
    for key in ("stop_grace", "cpu_threshold"):
        value = fields.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise RequestFailed("invalid", "%s must be a number >= 0, not %r" % (key, value))
            checked[key] = float(value)
    return checked


def _mode_of(sources):
    for name, mode_sources in MODES.items():
        if set(mode_sources) == set(sources):
            return name
    return "custom"


def update_settings(fields, only_if_unset=False, check=None, dry_run=False):
    """Apply the given settings on top of the stored ones; return the result.

    With ``only_if_unset``, a host that already has settings keeps them (a provider's
    default timeout never overrides what the user chose for that host). ``check`` may
    refuse the result (raising RequestFailed) before anything is written; with
    ``dry_run`` nothing is.
    """
    changes = _checked(fields)
    if not changes:
        return read_settings()  # a question, not a change: the idle clock keeps running
    _host_state_dir(create=True)
    with state.named_lock("idle-settings"):
        if only_if_unset and os.path.exists(settings_path()):
            return read_settings()
        settings = read_settings()
        if changes.get("timeout") is not None and "sources" not in changes and not settings["sources"]:
            # A timeout given to a host whose idle shutdown was turned off turns it back on.
            changes["mode"], changes["sources"] = DEFAULT_MODE, list(MODES[DEFAULT_MODE])
        settings.update(changes)
        if check is not None:
            check(settings)
        if dry_run:
            return settings
        state.atomic_write_json(settings_path(), settings)
    state.host_event("idle_settings", **{key: settings[key] for key in ("timeout", "mode", "sources")})
    return settings


def enabled(settings):
    return settings["timeout"] is not None and bool(settings["sources"])


# -- activity ---------------------------------------------------------------------------


def note(source, agent="", when=None):
    """Record activity from ``source`` (at ``when``, default now), attributed to ``agent``."""
    when = time.time() if when is None else when
    try:
        path = os.path.join(activity_dir(create=True), source)
    except OSError:
        return
    content = ('{"agent": %s, "time": %d}\n' % (_json_string(agent), when * 1000)).encode("utf-8")
    # Not written atomically or synced: the mtime is what counts, and a torn file only
    # loses the agent's name. Activity is advisory: a full disk must not fail the request.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        os.utime(path, (when, when))
    except OSError:
        pass


def _json_string(text):
    import json

    return json.dumps(text)


def last_activity(sources=SOURCES):
    """{source: time} for each of ``sources`` that has happened on this host."""
    seen = {}
    directory = activity_dir()
    for source in sources:
        if source == "lease":
            continue
        try:
            seen[source] = os.stat(os.path.join(directory, source)).st_mtime
        except OSError:
            continue
    if "lease" in sources:
        lease = read_lease()
        if lease is not None:
            # A lease is activity until it runs out.
            seen["lease"] = min(time.time(), lease["until"])
    return seen


def _agent_of(source):
    """The agent a source's newest activity came from, if mngr recorded it."""
    if source == "lease":
        lease = read_lease() or {}
        agent = lease.get("agent", "")
    else:
        try:
            agent = state.read_json(os.path.join(activity_dir(), source)).get("agent", "")
        except (OSError, ValueError, AttributeError):
            agent = ""
    return agent if isinstance(agent, str) else ""


def read_lease():
    try:
        lease = state.read_json(lease_path())
    except (OSError, ValueError):
        return None
    if isinstance(lease, dict) and isinstance(lease.get("until"), (int, float)):
        return lease
    return None


def keep_alive(agent, seconds):
    """Count the host as active for ``seconds`` from now (never shortening a longer lease)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 366 * 86400:
        raise RequestFailed("invalid", "a keepalive lasts more than 0 seconds and at most a year, not %r s" % (seconds,))
    _host_state_dir(create=True)
    with state.named_lock("idle-settings"):
        until = time.time() + seconds
        current = read_lease()
        if current is None or current["until"] < until:
            state.atomic_write_json(lease_path(), {"until": until, "agent": agent})
        else:
            until = current["until"]
    state.host_event("keepalive", agent=agent, until=until)
    return until


# -- status -----------------------------------------------------------------------------


def status(now=None, settings=None):
    """The host's idle status, as `mngr list` shows it (the fields of wire.HOST_IDLE_FIELDS)."""
    now = time.time() if now is None else now
    settings = read_settings() if settings is None else settings
    last_source, last_time = "", None
    for source, when in last_activity(settings["sources"]).items():
        if last_time is None or when > last_time:
            last_source, last_time = source, when
    # The clock also restarts when the settings change: a timeout counts from when it was set.
    try:
        changed = os.stat(settings_path()).st_mtime
    except OSError:
        changed = None
    if changed is not None and (last_time is None or changed > last_time):
        last_source, last_time = "settings", changed
    shutdown = last_shutdown() or {}
    return {
        "idle_timeout": settings["timeout"] if enabled(settings) else None,
        "idle_mode": settings["mode"],
        "idle_seconds": max(0.0, now - last_time) if last_time is not None else None,
        "last_activity": last_source,
        "last_activity_agent": _agent_of(last_source) if last_source in SOURCES else "",
        "last_shutdown_at": str(shutdown.get("time", "")),
        "last_shutdown_reason": str(shutdown.get("reason", "")),
    }


def last_shutdown():
    try:
        shutdown = state.read_json(shutdown_path())
    except (OSError, ValueError):
        return None
    return shutdown if isinstance(shutdown, dict) else None


def watcher_log_tail(lines):
    """The last ``lines`` lines of the watcher's decision log."""
    from . import output

    try:
        _, data = output.read(watcher_log_path(), None, max(1, min(lines, 10000)), 4 * 1024 * 1024)
    except (OSError, RequestFailed):
        return b""
    return data
