"""Finding the processes a test started, by what /proc says of them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def pids_where(matches: Callable[[list[bytes], bytes], bool]) -> list[int]:
    """Pids (other than this process) whose (environment entries, command line) match.

    Processes that end while being looked at are skipped.
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            command_line = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if matches(environ, command_line):
            pids.append(int(entry))
    return pids


def state_of(pid: int) -> str:
    """The process's state letter from /proc (R, S, T, Z, ...), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"
