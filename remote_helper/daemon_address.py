"""Where a host daemon listens: one daemon per host dir, helper version and tmux server.

Its socket is ``daemon-<first 16 hex of the helper's hash>-<CRC-32 of TMUX_TMPDIR>.sock``
in ``$MNGR_HOST_DIR/host`` (or in ``$MNGR_DAEMON_SOCKET_DIR``, a directory a container
shares with the controller's machine). The helper computes it to listen, the controller
to connect (controller/channel/bootstrap.py): both import this module.
"""

import os
import zlib

SOCKET_DIR_VARIABLE = "MNGR_DAEMON_SOCKET_DIR"
# sun_path holds 108 bytes on Linux; past that, there is simply no warm path.
MAX_SOCKET_PATH = 100


def tmux_key(tmux_tmpdir):
    """Which tmux server a daemon talks to: the CRC-32 of its TMUX_TMPDIR, in hex."""
    return "%08x" % zlib.crc32(tmux_tmpdir.encode("utf-8"))


def daemon_key(helper_hash, tmux_tmpdir):
    return "%s-%s" % (helper_hash[:16], tmux_key(tmux_tmpdir))


def socket_path(host_dir, helper_hash, tmux_tmpdir, socket_dir=""):
    return os.path.join(socket_dir or os.path.join(host_dir, "host"),
                        "daemon-%s.sock" % daemon_key(helper_hash, tmux_tmpdir))
