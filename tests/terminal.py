"""Running mngr on a real pseudo-terminal, as a user at a terminal would."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import struct
import termios
import time
from collections.abc import Callable

from tests.conftest import MNGR_BIN


def run_in_pty(sandbox, args: list[str], until: Callable[[bytes, int], bool]) -> tuple[int, bytes]:
    """Run mngr on a new 120x40 pty and return (exit status, everything it drew).

    ``until(screen, terminal)`` is called with the output so far and the pty's master fd
    (to type into) until it returns true once; then mngr is left to finish.
    """
    pid, master = pty.fork()
    if pid == 0:  # child: becomes mngr with the pty as its terminal
        os.chdir(sandbox.work_dir)
        os.execve(str(MNGR_BIN), [str(MNGR_BIN), *args], sandbox.env)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    screen = bytearray()
    deadline = time.monotonic() + 30
    done = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                with contextlib.suppress(OSError):  # EIO once the child has gone
                    screen += os.read(master, 65536)
            if not done and until(bytes(screen), master):
                done = True
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                # What it wrote last may still be in the pty: read it before judging.
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: nothing more
                        break
                    if not chunk:
                        break
                    screen += chunk
                return os.waitstatus_to_exitcode(status), bytes(screen)
        raise AssertionError(f"mngr {' '.join(args)} did not finish; screen: {bytes(screen)[-500:]!r}")
    finally:
        os.close(master)
