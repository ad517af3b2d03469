"""What happened on this host, as one stream: the agents' event logs, the host's, the idle
watcher's decisions, and agents' state transitions.

Nothing else records an agent's state: `list` computes it when asked (agents.py). So the
transitions are noted here, as ``state`` events in the agent's own log, by whoever looks
first: the idle watcher on each poll (history exists when nobody follows) and every
``ReadEvents`` long poll (a follower sees a change within a quarter of a second). Several
processes may look at once (the host daemon's threads, per-connection helpers): the last
state logged is kept in ``agents/<id>/state.json``, compared and rewritten under one named
lock, so a transition is logged once, and not again after a restart.

A reader's cursor is opaque to the controller: for each log, its inode and the offset after
the last line handed out. A line not yet ended by a newline (a write in progress) is left
for the next read.
"""

import heapq
import json
import os
import threading
import time

from . import agent_records, agents, idle, state, tmux

STATE_FILE = "state.json"
# The quietness (seconds without output) after which a plain command's agent counts as
# WAITING, as the last follower's controller configured it; the watcher uses it too.
QUIET_FILE = "events-quiet-seconds"
DEFAULT_QUIET_SECONDS = 10.0
STATE_LOCK = agent_records.VIEW_LOCK
MAX_LINES = 1000  # events per reply at most; the cursor continues
_MAX_READ_BYTES = 1024 * 1024  # of one log per reply
POLL_SECONDS = 0.1  # a long poll looks at the logs' sizes this often
STATE_CHECK_SECONDS = 0.25  # and at the agents' states this often
END = "end"  # the cursor at the current end of every log


def quiet_seconds():
    try:
        with open(os.path.join(state.host_dir(), "host", QUIET_FILE)) as handle:
            return float(handle.read().strip())
    except (OSError, ValueError):
        return DEFAULT_QUIET_SECONDS


def set_quiet_seconds(seconds):
    if seconds == quiet_seconds():
        return
    path = os.path.join(state.ensure_dir(os.path.join(state.host_dir(), "host")), QUIET_FILE)
    state.atomic_write_bytes(path, ("%r\n" % float(seconds)).encode("ascii"))


class StateNoter(object):
    """Notes agents' state transitions in their event logs.

    A Claude or Codex agent's state comes from its screen. Capturing every such pane on
    every look is what this would cost; a pane whose last output (tmux's activity, whole
    seconds) is older than the screen kept from it has not changed, so that screen is
    used again and only panes with new output are captured.
    """

    def __init__(self):
        self._screens = {}  # agent id -> (pane activity, captured at, screen)
        self._guard = threading.Lock()
        self.captures = 0  # panes captured so far (for the benchmark)

    def note(self, quiet):
        with self._guard:
            self._note(quiet)

    def note_quietly(self, quiet):
        """note, for a reader: a failure to look (logged) does not fail the read."""
        try:
            self.note(quiet)
        except Exception:
            import traceback

            traceback.print_exc()

    def _note(self, quiet):
        # One view of sessions and records: a rename between the two reads would look
        # like its agent stopping and starting again.
        with state.named_lock(STATE_LOCK):
            try:
                panes = tmux.list_sessions_panes()
            except tmux.TmuxError:
                return
            found, _ = agent_records.read_all()
        now = time.time()
        listed = []
        for record in found.values():
            pane = panes.get(tmux.session_name(record["name"]))
            listed.append((agents.state_info(record, pane, quiet, now), record, pane))
        self._read_screens(listed, now)
        for agent_id in list(self._screens):
            if agent_id not in found:
                del self._screens[agent_id]
        for info, record, _ in listed:
            if info["state"] in (agents.RUNNING, agents.WAITING, agents.DONE, agents.STOPPED):
                # A record meant to run, with no session and no state noted yet: an agent
                # being created (the record comes first), not one that stopped.
                note_state(info, first_may_be_stopped=record.get("status") != "running")

    def _read_screens(self, listed, now):
        stale = []
        for info, record, pane in listed:
            if info["state"] not in (agents.RUNNING, agents.WAITING) or not isinstance(record.get("interaction"), dict):
                continue
            kept = self._screens.get(info["id"])
            activity = pane.activity if pane is not None else None
            # Activity is in whole seconds: a capture within that second may predate output.
            if kept is None or activity is None or kept[0] != activity or kept[1] < activity + 1:
                stale.append((info, record, activity))
        if stale:
            try:
                screens = tmux.capture_panes([tmux.session_name(record["name"]) for _, record, _ in stale])
            except tmux.TmuxError:
                screens = {}
            self.captures += len(stale)
            for info, record, activity in stale:
                screen = screens.get(tmux.session_name(record["name"]))
                if screen is not None:
                    self._screens[info["id"]] = (activity, now, screen)
                else:
                    self._screens.pop(info["id"], None)
        for info, record, _ in listed:
            kept = self._screens.get(info["id"])
            if kept is not None and info["state"] in (agents.RUNNING, agents.WAITING) \
                    and isinstance(record.get("interaction"), dict):
                agents.apply_screen(info, record, kept[2])


_noter = StateNoter()


def noter():
    """This process's noter (its screens kept are shared by every request it serves)."""
    return _noter


def _state_fields(info):
    return {"state": info["state"], "waiting_reason": info["waiting_reason"], "exit_status": info["exit_status"]}


def note_state(info, first_may_be_stopped=True):
    """Log ``info``'s state in its agent's log if it is not the last one logged there."""
    directory = state.agent_dir(info["id"])
    path = os.path.join(directory, STATE_FILE)
    current = _state_fields(info)
    last = _read_last(path)
    if last == current or (last is None and info["state"] == agents.STOPPED and not first_may_be_stopped):
        return False  # the common case, without the lock
    with state.named_lock(STATE_LOCK):
        if _read_last(path) == current or not os.path.isdir(directory):
            return False
        fields = dict(current)
        if info.get("waiting_detail"):
            fields["waiting_detail"] = info["waiting_detail"]
        try:
            state.append_event(os.path.join(directory, "events.jsonl"), "state", **fields)
            state.atomic_write_json(path, current)
        except FileNotFoundError:
            return False  # destroyed meanwhile (its dir moved out of the way)
    return True


def _read_last(path):
    try:
        return state.read_json(path)
    except (OSError, ValueError):
        return None


# -- reading ------------------------------------------------------------------------------


class _Log(object):
    __slots__ = ("agent", "agent_id", "key", "path")

    def __init__(self, key, path, agent, agent_id):
        self.key = key
        self.path = path
        self.agent = agent
        self.agent_id = agent_id


_names = {}  # (agent id, record's mtime) -> name: a record is read again only once it changed


def _logs():
    host = os.path.join(state.host_dir(), "host")
    logs = [_Log("host", os.path.join(host, "events.jsonl"), "", ""),
            _Log("watcher", idle.watcher_log_path(), "", "")]
    try:
        entries = sorted(os.listdir(state.agents_dir()))
    except FileNotFoundError:
        entries = []
    for agent_id in entries:
        if agent_id.startswith("."):
            continue
        record_path = os.path.join(state.agent_dir(agent_id), "record.json")
        try:
            changed = os.stat(record_path).st_mtime_ns
            name = _names.get((agent_id, changed))
            if name is None:
                name = state.read_json(record_path)["name"]
                for key in [key for key in _names if key[0] == agent_id]:
                    del _names[key]
                _names[(agent_id, changed)] = name
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half made or half removed: its log is read once its record is there
        logs.append(_Log("agent:" + agent_id, os.path.join(state.agent_dir(agent_id), "events.jsonl"), name,
                         agent_id))
    return logs


def _decode_cursor(cursor):
    if not cursor or cursor == END:
        return {}
    try:
        positions = json.loads(cursor)
    except ValueError:
        from .wire import RequestFailed

        raise RequestFailed("invalid", "not an events cursor: %r" % cursor[:80]) from None
    return positions if isinstance(positions, dict) else {}


def _stamp(logs):
    """What changes when a log grows, is replaced, or a log comes or goes."""
    found = []
    for log in logs:
        try:
            info = os.stat(log.path)
            found.append((log.key, info.st_ino, info.st_size))
        except OSError:
            found.append((log.key, 0, 0))
    return found


def _as_event(log, entry):
    """A log line as an event of the stream: agent and agent id named, a watcher's
    decision made an event like the others."""
    if log.key == "watcher":
        decision = entry.pop("decision", "")
        if decision == "shutdown":
            entry["event"] = "shutdown"
        else:
            entry["event"] = "idle_decision"
            entry["decision"] = decision
        entry.setdefault("agent", "")
        entry.setdefault("agent_id", "")
        return entry
    if log.key == "host":
        name = entry.pop("name", "") or entry.get("agent", "")
        session = entry.get("session", "")
        if not name and session.startswith(tmux.SESSION_PREFIX):
            name = session[len(tmux.SESSION_PREFIX):]
        entry["agent"] = name
        entry.setdefault("agent_id", "")
        return entry
    entry["agent"] = log.agent
    entry["agent_id"] = log.agent_id
    return entry


def _read_log(log, position, since):
    """(inode, start, lines, unread): lines are (time, end offset, event or None) from
    ``position`` ([inode, offset]) on, whole lines only; ``unread``: more is there than was read."""
    inode, offset = [*position, 0, 0][:2] if isinstance(position, list) else (0, 0)
    try:
        with open(log.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if inode != info.st_ino or offset > info.st_size:
                offset = 0  # replaced (a rotated log) or truncated: from its start
            handle.seek(offset)
            data = handle.read(_MAX_READ_BYTES)
    except OSError:
        return None, 0, [], False
    end = data.rfind(b"\n")
    lines = []
    last_time = ""
    at = offset
    for raw in data[:end + 1].splitlines(True) if end >= 0 else ():
        at += len(raw)
        try:
            entry = json.loads(raw.decode("utf-8"))
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("time"), str):
            lines.append((last_time, at, None))  # not an event: skipped, but read past
            continue
        last_time = entry["time"]
        lines.append((last_time, at, _as_event(log, entry) if last_time >= since else None))
    return info.st_ino, offset, lines, offset + len(data) < info.st_size


def read_events(cursor, since="", max_lines=MAX_LINES):
    """(events, cursor, more): the events after ``cursor`` in time order (each log's own
    order kept), at most ``max_lines``; ``since`` (an ISO time as the logs write it) leaves
    out older ones. ``more``: there are others already, ask again at once."""
    logs = _logs()
    if cursor == END:
        return [], _end_cursor(logs), False
    positions = _decode_cursor(cursor)
    new_positions = {}
    streams = []
    more = False
    for index, log in enumerate(logs):
        inode, offset, lines, unread = _read_log(log, positions.get(log.key), since)
        if inode is None:
            continue
        new_positions[log.key] = [inode, offset]
        more = more or unread
        streams.append([(line[0], index, line[1], line[2], log.key) for line in lines])
    events = []
    for _time, _index, end, event, key in heapq.merge(*streams):
        if event is not None and len(events) >= max_lines:
            more = True
            break
        new_positions[key][1] = end
        if event is not None:
            events.append(event)
    return events, json.dumps(new_positions, sort_keys=True, separators=(",", ":")), more


def _end_cursor(logs):
    """The cursor after the last whole line of each log (a line being written is read
    once it is whole)."""
    positions = {}
    for log in logs:
        try:
            with open(log.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                start = max(0, size - 65536)
                handle.seek(start)
                tail = handle.read(size - start)
                positions[log.key] = [os.fstat(handle.fileno()).st_ino, start + tail.rfind(b"\n") + 1]
        except OSError:
            continue
    return json.dumps(positions, sort_keys=True, separators=(",", ":"))


def wait_for_events(cursor, since, wait_seconds, quiet, max_lines=MAX_LINES, clock=time.monotonic):
    """read_events, but with nothing new, look again (and at the agents' states) until
    there is something or ``wait_seconds`` are up."""
    set_quiet_seconds(quiet)
    deadline = clock() + max(0.0, wait_seconds)
    _noter.note_quietly(quiet)
    events, cursor_after, more = read_events(cursor, since, max_lines)
    if cursor == END:
        cursor = cursor_after
    next_check = clock() + STATE_CHECK_SECONDS
    logs = _logs()
    stamp, exits = _stamp(logs), _exits(logs)
    owed = 0  # looks at the states due at once: an agent's command has just exited
    while not events and not more and clock() < deadline:
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - clock())))
        logs = _logs()
        now_exits = _exits(logs)
        if now_exits != exits:
            # Its pane dies a moment after the status is written: look until it shows.
            exits, owed = now_exits, 3
        if clock() >= next_check or owed:
            _noter.note_quietly(quiet)
            next_check = clock() + STATE_CHECK_SECONDS
            owed = max(0, owed - 1)
        now_stamp = _stamp(logs)
        if now_stamp != stamp:
            stamp = now_stamp
            events, cursor_after, more = read_events(cursor, since, max_lines)
    return events, cursor_after, more


def _exits(logs):
    """The exit statuses agents' commands left (agents.EXIT_STATUS), as stat results: one
    appears when a command exits, before its pane is seen dead."""
    found = []
    for log in logs:
        if log.agent_id:
            try:
                found.append((log.agent_id, os.stat(os.path.join(state.agent_dir(log.agent_id),
                                                                  agents.EXIT_STATUS)).st_mtime_ns))
            except OSError:
                continue
    return found
