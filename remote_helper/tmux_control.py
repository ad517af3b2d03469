"""A tmux control-mode client kept open by the host daemon, so a listing spawns no process.

Starting a tmux client costs ~2 ms of CPU (exec, identify, connect); a command sent over an
open control-mode client (``tmux -C``) costs ~40 us. Listings are the request every host
gets most, so the long-lived host daemon keeps one such client and sends ``list-panes`` over
it. Short-lived helpers (the bootstrap path) gain nothing from it and never start one.

tmux only keeps a control client connected while it is attached to a session, so the client
is attached to one of mngr's sessions with ``ignore-size`` (it never changes a window's
size) and ``no-output`` (pane output is not copied to it). It is not a user: whoever counts
attached users must skip control-mode clients. When its session ends, tmux detaches it and
it exits; the next listing goes through a plain tmux process and starts a new client.
Everything here is an optimisation: any failure answers None and the caller runs tmux.
"""

import contextlib
import queue
import re
import subprocess
import threading

REPLY_TIMEOUT_SECONDS = 5.0
# attach-session -f (ignore-size, no-output) arrived in tmux 3.2.
MIN_TMUX_VERSION = (3, 2)


def supports_control_flags(env):
    """True if ``tmux -V`` names 3.2 or later (or a development build, which says "next-")."""
    try:
        version = subprocess.run(
            ["tmux", "-V"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        ).stdout.decode("ascii", "replace")
    except OSError:
        return False
    match = re.search(r"(\d+)\.(\d+)", version)
    if match is None:
        return "next" in version or "master" in version
    return (int(match.group(1)), int(match.group(2))) >= MIN_TMUX_VERSION


class _Client(object):
    def __init__(self, argv, env):
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._replies = queue.Queue()
        self.alive = True
        reader = threading.Thread(target=self._read_forever, name="tmux-control")
        reader.daemon = True
        reader.start()

    def _read_forever(self):
        """Route replies to our commands to the queue; drop notifications and other output.

        A reply is the lines between ``%begin T N F`` and ``%end T N F`` (or ``%error``) with
        the same three words; F is 1 for commands this client sent. Lines inside a block are
        command output and may start with "%" themselves (a session named "%x").
        """
        block_id = None
        lines = []
        try:
            for line in self._process.stdout:
                if block_id is None:
                    if line.startswith(b"%begin "):
                        block_id = line.split()[1:4]
                        lines = []
                    elif line.startswith(b"%exit"):
                        break
                    continue
                words = line.split()
                if len(words) == 4 and words[0] in (b"%end", b"%error") and words[1:] == block_id:
                    if block_id[2] == b"1":
                        self._replies.put((words[0] == b"%end", b"".join(lines)))
                    block_id = None
                else:
                    lines.append(line)
        except (OSError, ValueError):
            pass
        finally:
            self.alive = False
            self._replies.put(None)

    def run(self, command_line):
        """Send one command line; return its output, or None if this client cannot answer."""
        if not self.alive:
            return None
        try:
            self._process.stdin.write(command_line.encode("utf-8") + b"\n")
            self._process.stdin.flush()
            reply = self._replies.get(timeout=REPLY_TIMEOUT_SECONDS)
        except (OSError, ValueError, queue.Empty):
            reply = None
        if reply is None or not reply[0]:
            # Out of step with tmux, or tmux refused: start afresh next time.
            self.close()
            return None
        return reply[1]

    def close(self):
        self.alive = False
        with contextlib.suppress(OSError):
            self._process.kill()
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.close()
        self._process.wait()
        self._process.stdout.close()


class ControlMode(object):
    """At most one control client at a time, shared by the daemon's request threads."""

    def __init__(self, env):
        self._env = env
        self._lock = threading.Lock()
        self._client = None

    def run(self, command_line):
        """The command's output through the open client, or None (no client, or it failed)."""
        with self._lock:
            client = self._client
            if client is None:
                return None
            output = client.run(command_line)
            if output is None:
                client.close()
                self._client = None
            return output

    def attach(self, session_target):
        """Start a client attached to ``session_target`` unless one is open already."""
        with self._lock:
            if self._client is not None and self._client.alive:
                return
            if self._client is not None:
                self._client.close()
                self._client = None
            argv = ["tmux", "-C", "attach-session", "-f", "ignore-size,no-output", "-t", session_target]
            with contextlib.suppress(OSError):
                self._client = _Client(argv, self._env)

    def close(self):
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
