"""Reaching this host's daemon from a helper: its socket, whether it answers, and starting
one, detached (it then serves until idle; see daemon.py). Kept apart from daemon.py so
that the helper serving a command (server.py) need not load the daemon itself."""

import os
import socket
import subprocess
import sys

from . import daemon_address, state


def socket_path(helper_hash):
    """This daemon's socket (see daemon_address.py), from this process's environment."""
    return daemon_address.socket_path(state.host_dir(), helper_hash, os.environ.get("TMUX_TMPDIR", ""),
                                      os.environ.get(daemon_address.SOCKET_DIR_VARIABLE, ""))


def is_running(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def ensure_running(helper_hash, helper_dir):
    """Start a detached daemon for this helper version unless one answers already."""
    path = socket_path(helper_hash)
    if len(path) > daemon_address.MAX_SOCKET_PATH or os.environ.get("MNGR_HOST_DAEMON") == "0":
        return
    if is_running(path):
        return
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
