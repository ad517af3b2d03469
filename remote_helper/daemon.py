"""The host daemon: the helper kept running, serving the same framed RPC on a unix socket.

Starting a helper costs an interpreter start and its imports on every command; the daemon
pays that once. Any helper started through the bootstrap makes sure a daemon of its own
version is running (starting one, detached, if not). Controllers that can reach the socket
use it; the others, and every controller when the daemon is gone, use the bootstrap path,
which is always correct on its own.

The daemon also runs the idle watcher (watcher.py) in a thread of its own.

One daemon per host dir, helper version and tmux server: the socket and lock live in the
host dir and their names carry the helper's hash and a checksum of TMUX_TMPDIR, so a
daemon of another version, or one talking to another tmux server, is never used. A daemon exits after
``IDLE_EXIT_SECONDS`` without a connection, or when its socket file disappears.
"""

import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
import time

from . import agents, change_feed, daemon_address, daemon_launch, manifest_cache, state, tmux
from .server import Server, redirect_stderr_to_log
from .watcher import Watcher

IDLE_EXIT_SECONDS = 15 * 60
HOUSEKEEPING_SECONDS = 5.0


def _agents_running():
    try:
        panes = tmux.list_sessions_panes()
    except tmux.TmuxError:
        return False
    return any(session.startswith(tmux.SESSION_PREFIX) for session in panes)
def _take_lock(path):
    """Hold the daemon's lock for the life of the process, or return None if another has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, ("%d\n" % os.getpid()).encode("ascii"))
    return fd


class Daemon(object):
    def __init__(self, helper_hash, listener, path, watcher):
        self._helper_hash = helper_hash
        self._watcher = watcher
        self._listener = listener
        self._path = path
        self._inode = os.stat(path).st_ino
        self._last_activity = time.monotonic()
        self._connections = 0
        self._guard = threading.Lock()

    def serve_forever(self):
        self._listener.settimeout(HOUSEKEEPING_SECONDS)
        while not self._should_exit():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                self._housekeeping()
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            with self._guard:
                self._connections += 1
                self._last_activity = time.monotonic()
            # Not a daemon thread: if the daemon exits (socket removed), work in progress on
            # open connections is finished first.
            worker = threading.Thread(target=self._serve_connection, args=(connection,))
            worker.start()

    def _serve_connection(self, connection):
        try:
            connection.setblocking(True)
            fd = connection.fileno()
            Server(fd, fd, self._helper_hash, _peer_pid(connection)).serve()
        except OSError:
            pass
        finally:
            connection.close()
            with self._guard:
                self._connections -= 1
                self._last_activity = time.monotonic()

    def remove_socket_if_ours(self):
        try:
            if os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)
        except OSError:
            pass

    def _housekeeping(self):
        try:
            agents.rotate_output_logs(agents.output_log_max_bytes())
        except Exception:
            import traceback

            traceback.print_exc()

    def _should_exit(self):
        try:
            if os.stat(self._path).st_ino != self._inode:
                return True
        except OSError:
            return True
        with self._guard:
            idle = self._connections == 0 and time.monotonic() - self._last_activity > IDLE_EXIT_SECONDS
        # Agents still running need their output logs kept in check, and a host with idle
        # shutdown on needs its watcher: stay while either holds.
        return idle and not self._watcher.needed and not _agents_running()


def _peer_pid(connection):
    """The pid of the process that connected (Linux), or None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        pid, _, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except (OSError, struct.error):
        return None
    return pid or None


def main(helper_hash):
    state.make_private()
    redirect_stderr_to_log("daemon.log")
    # Resolve a relative MNGR_HOST_DIR before leaving the directory it is relative to.
    os.environ["MNGR_HOST_DIR"] = state.host_dir()
    host_state = state.ensure_dir(os.path.join(state.host_dir(), "host"))
    # Long-lived: do not pin whatever directory the first command happened to run in.
    os.chdir(host_state)
    lock_fd = _take_lock(daemon_launch.pid_file(helper_hash))
    if lock_fd is None:
        return  # another daemon of this version serves this host already
    path = daemon_launch.socket_path(helper_hash)
    # A socket left by a daemon that died: we hold the lock, so it is not in use.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(path)
        if os.environ.get(daemon_address.SOCKET_DIR_VARIABLE):
            # The controller's user (maybe not this container's root) connects through a
            # directory of its own (mode 0700 on its side): that directory is the guard.
            os.chmod(path, 0o666)
    finally:
        os.umask(old_umask)
    os.environ["MNGR_HELPER_PID"] = str(os.getpid())
    tmux.use_control_mode()
    manifest_cache.enable()
    change_feed.enable()
    watcher = Watcher(helper_hash)
    watcher.start()
    daemon = Daemon(helper_hash, listener, path, watcher)
    # Listening only now: a connection before this would wait on a daemon still starting,
    # and a helper probing it (daemon_launch.answers) would take it for a hung one.
    listener.listen(64)
    try:
        daemon.serve_forever()
    finally:
        watcher.stop()
        listener.close()
        daemon.remove_socket_if_ours()
        tmux.stop_control_mode()
