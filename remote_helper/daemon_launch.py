"""Reaching this host's daemon from a helper: its socket, whether it answers, and starting
one, detached (it then serves until idle; see daemon.py). Kept apart from daemon.py so
that the helper serving a command (server.py) need not load the daemon itself."""

import os
import signal
import socket
import subprocess
import sys
import time

from . import daemon_address, state, wire

# How long a daemon may take to answer a Ping before it counts as hung (it answers Pings on
# its reading thread, at once).
PROBE_SECONDS = 2.0


def socket_path(helper_hash):
    """This daemon's socket (see daemon_address.py), from this process's environment."""
    return daemon_address.socket_path(state.host_dir(), helper_hash, os.environ.get("TMUX_TMPDIR", ""),
                                      os.environ.get(daemon_address.SOCKET_DIR_VARIABLE, ""))


def pid_file(helper_hash):
    """Where the daemon of this helper version writes its pid (and holds its lock)."""
    key = daemon_address.daemon_key(helper_hash, os.environ.get("TMUX_TMPDIR", ""))
    return os.path.join(state.host_dir(), "host", "daemon-%s.pid" % key)


def answers(path, timeout=PROBE_SECONDS):
    """Whether a daemon listens at ``path`` (None: nothing does) and answers a Ping within
    ``timeout`` (False: it took the connection and said nothing, as a stopped one does)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            probe.connect(path)
        except OSError:
            return None
        probe.settimeout(timeout)
        try:
            probe.sendall(wire.encode_frame(1, wire.encode_body("Ping", {}), b""))
            return len(probe.recv(wire.HEADER.size)) > 0
        except OSError:  # socket.timeout included
            return False
    finally:
        probe.close()


def replace_hung(helper_hash):
    """End the daemon of this version that does not answer: SIGKILL, since a stopped
    process acts on nothing else. Only a process that is this helper's daemon is ended."""
    try:
        with open(pid_file(helper_hash)) as handle:
            pid = int(handle.read().strip() or 0)
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            command = handle.read()
    except (OSError, ValueError):
        return
    if pid <= 1 or b"mngr_remote_helper.daemon" not in command or helper_hash.encode() not in command:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
        try:
            with open("/proc/%d/stat" % pid) as handle:
                if handle.read().rpartition(")")[2].split()[0] == "Z":
                    break  # ended; its parent (init) reaps it
        except OSError:
            break
        time.sleep(0.02)


def ensure_running(helper_hash, helper_dir):
    """Start a detached daemon for this helper version unless one answers already; one
    that is there but does not answer (hung, or stopped) is replaced."""
    path = socket_path(helper_hash)
    if len(path) > daemon_address.MAX_SOCKET_PATH or os.environ.get("MNGR_HOST_DAEMON") == "0":
        return
    state_of_daemon = answers(path)
    if state_of_daemon:
        return
    if state_of_daemon is False:
        replace_hung(helper_hash)
    program = "import sys; sys.path.insert(0, %r); from mngr_remote_helper.daemon import main; main(%r)" % (
        helper_dir,
        helper_hash,
    )
    subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", program],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
    )
