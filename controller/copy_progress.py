"""How far a long copy to a host has got, on the user's terminal.

On a terminal (stderr a tty) one line is redrawn in place as the copy goes, e.g.
``copying claude 2.1.197 to box: 120/245 MB``, and cleared when it ends (done or failed),
so that what the command prints afterwards reads as it would without it. Elsewhere (a
pipe, a log, a script reading stderr) nothing is written: like push and pull, a command
whose stderr is not a terminal says only what failed.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

REDRAW_SECONDS = 0.1  # at most this often: a fast copy is not slowed by its own line


class CopyProgress:
    def __init__(self, what: str, total_bytes: int, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._live = _is_terminal(self._stream)
        self._what = what
        self._total = total_bytes
        self._done = 0
        self._drawn_at = 0.0
        self._lock = threading.Lock()  # parts finish on several threads

    def advance(self, landed_bytes: int) -> None:
        """``landed_bytes`` more of the copy reached the host."""
        with self._lock:
            self._done += landed_bytes
            if not self._live:
                return
            now = time.monotonic()
            if now - self._drawn_at < REDRAW_SECONDS and self._done < self._total:
                return
            self._drawn_at = now
            self._stream.write(f"\r{self.line()}\x1b[K")
            self._stream.flush()

    def line(self) -> str:
        return f"copying {self._what}: {self._done >> 20}/{self._total >> 20} MB"

    def close(self) -> None:
        with self._lock:
            if self._live and self._drawn_at:
                self._stream.write("\r\x1b[K")
                self._stream.flush()
            self._live = False

    def __enter__(self) -> CopyProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    from . import verbosity

    if verbosity.quiet():  # -q: no progress either
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False
