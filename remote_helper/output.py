"""Reading an agent's recorded output (or Claude's session log) from the end, or from an offset.

Logs can be large (tens of MB); a tail reads backwards in blocks until it has enough lines,
so `mngr transcript --tail 100` costs the same on a 50 MB log as on a small one.
"""

import glob
import json
import os

from . import agent_records, conversation, state
from .wire import RequestFailed

_BLOCK = 64 * 1024


def _file_id(stat_result):
    return "%d:%d" % (stat_result.st_dev, stat_result.st_ino)


def _tail_start(handle, size, lines, max_bytes):
    """Offset where the last ``lines`` lines of the file begin (or ``size - max_bytes``)."""
    position = size
    newlines = 0
    floor = max(0, size - max_bytes)
    # A final newline ends the last line; it does not start another.
    handle.seek(max(0, size - 1))
    wanted = lines + (1 if size and handle.read(1) == b"\n" else 0)
    while position > floor:
        block_start = max(floor, position - _BLOCK)
        handle.seek(block_start)
        block = handle.read(position - block_start)
        index = len(block)
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            newlines += 1
            if newlines == wanted:
                return block_start + index + 1
        position = block_start
    return floor


def read(path, offset, tail_lines, max_bytes):
    """Return (fields, blob) for a ReadOutput reply."""
    if not os.path.exists(path):
        return {"path": path, "start": 0, "end": 0, "file_id": ""}, b""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        size = info.st_size
        if offset is None:
            start = _tail_start(handle, size, tail_lines, max_bytes) if tail_lines else max(0, size - max_bytes)
        else:
            start = offset if 0 <= offset <= size else 0  # shrank: rotated or truncated
        end = min(size, start + max_bytes)
        handle.seek(start)
        blob = handle.read(end - start)
    return {"path": path, "start": start, "end": start + len(blob), "file_id": _file_id(info)}, blob


def session_log_path(name):
    """The agent CLI's log of this agent's own conversation."""
    agent_id, record = agent_records.require(name)
    if isinstance(record.get("interaction"), dict):
        path = conversation.session_log_path(agent_id, record)
        if path is None:
            raise RequestFailed("not_found", "agent %r has no session log yet (no conversation so far)" % name)
        return path
    return _newest_claude_log(agent_id, record, name)


def _newest_claude_log(agent_id, record, name):
    """For an agent made before its session was known: the newest log of its work dir."""
    work_dir = record.get("work_dir", "")
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")
    env_path = os.path.join(state.agent_dir(agent_id), "launch.json")
    try:
        with open(env_path) as handle:
            config_dir = json.load(handle)["env"].get("CLAUDE_CONFIG_DIR", config_dir)
    except (OSError, ValueError, KeyError):
        pass
    project = "".join(char if char.isalnum() else "-" for char in work_dir)
    candidates = glob.glob(os.path.join(config_dir, "projects", glob.escape(project), "*.jsonl"))
    if not candidates:
        raise RequestFailed("not_found", "no Claude session log for %r yet (looked in %s)" % (
            name, os.path.join(config_dir, "projects", project)))
    return max(candidates, key=os.path.getmtime)
