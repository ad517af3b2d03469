"""Files mngr keeps on a host: where they live and how they are written.

Layout under the host dir (``$MNGR_HOST_DIR``, default ``~/.mngr``):

    agents/<agent id>/record.json   the agent's record (written atomically)
    agents/<agent id>/env.json      the agent's --env values (never listed)
    agents/<agent id>/launch.json   what the pane's launcher execs: env, command, umask
    agents/<agent id>/events.jsonl  the agent's event log (events.py reads every log)
    agents/<agent id>/state.json    the last state logged in it (events.py)
    host/events.jsonl               host-wide events (destroyed agents and stray sessions)
    host/helper.log, daemon.log     the helper's and the host daemon's stderr
    host/daemon-<key>.sock, .pid    the host daemon's socket and lock (see daemon.py)
    helper/<hash>/                  unpacked helpers, named by content hash
    locks/                          advisory lock files, one per agent name

The helper runs with umask 077 (``make_private``), so all of it is private to its user;
agents get the user's own umask back.
"""

import contextlib
import errno
import fcntl
import json
import os
import threading
import time

_original_umask = None


def make_private():
    """Create everything from here on 0700/0600; remember the umask the agents should get."""
    global _original_umask
    inherited = os.environ.get("MNGR_ORIGINAL_UMASK")
    previous = os.umask(0o077)
    _original_umask = int(inherited) if inherited and inherited.isdigit() else previous
    os.environ["MNGR_ORIGINAL_UMASK"] = str(_original_umask)


def original_umask():
    if _original_umask is None:
        return 0o022
    return _original_umask


def host_dir():
    return os.path.abspath(os.path.expanduser(os.environ.get("MNGR_HOST_DIR") or "~/.mngr"))


def agents_dir():
    return os.path.join(host_dir(), "agents")


def agent_dir(agent_id):
    return os.path.join(agents_dir(), agent_id)


def ensure_dir(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def now_iso():
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03d+00:00" % (int(now * 1000) % 1000)


def epoch_of(iso):
    """Seconds since the epoch of a now_iso() time; 0.0 for one that cannot be read."""
    import datetime

    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0


def new_agent_id():
    return "agent-" + os.urandom(16).hex()


def atomic_write_bytes(path, data, mode=0o600):
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The temp file sits beside the target (same file system, so the rename is atomic) and is
    fsynced before the rename; the directory is fsynced after it so the rename itself is durable.
    """
    directory = os.path.dirname(path)
    temp_path = os.path.join(
        directory, ".%s.tmp-%d-%s" % (os.path.basename(path), os.getpid(), os.urandom(4).hex())
    )
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory):
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_json(path, value):
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def read_json(path):
    with open(path, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


def append_event(path, event, **fields):
    """Append one JSON line; a single O_APPEND write keeps concurrent writers' lines whole."""
    entry = {"time": now_iso(), "event": event}
    entry.update(fields)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def host_event(event, **fields):
    append_event(os.path.join(ensure_dir(os.path.join(host_dir(), "host")), "events.jsonl"), event, **fields)


_thread_locks = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def named_lock(name):
    """Hold an exclusive lock shared by every helper process on this host.

    flock covers other processes; a per-name thread lock covers requests running
    concurrently in this process (flock on separate descriptors would not exclude them
    on every platform). The lock dies with the process, so a crash never leaves it held.
    """
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(name, threading.Lock())
    with thread_lock:
        lock_dir = ensure_dir(os.path.join(host_dir(), "locks"))
        fd = os.open(os.path.join(lock_dir, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    break
                except OSError as exc:
                    if exc.errno != errno.EINTR:
                        raise
            yield
        finally:
            os.close(fd)
