"""Ctrl-C at the moment something is being made on a host.

A request that makes something (an agent) cannot be taken back once sent: cut short while
its reply is on the way, mngr would not know whether the agent exists, and would say
"interrupted" beside a running agent. Inside ``deferred_interrupt`` a first Ctrl-C is
held until the request is answered (and said so on stderr), and the caller, knowing then
what exists, reports it; a second one goes through at once (KeyboardInterrupt), for a
user who would rather not wait.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator


class Held:
    """Whether a Ctrl-C came while the block ran (and was held)."""

    def __init__(self) -> None:
        self.pending = False


@contextlib.contextmanager
def deferred_interrupt(what: str, on_hold: Callable[[], None] | None = None) -> Iterator[Held]:
    """Hold a first SIGINT until the block ends; ``.pending`` says whether one came.
    ``on_hold`` is called when it comes (on the main thread, in the signal handler)."""
    held = Held()
    if threading.current_thread() is not threading.main_thread():
        yield held  # only the main thread may set handlers; it gets the signal anyway
        return

    def hold(signum: int, frame: object) -> None:
        if held.pending:
            raise KeyboardInterrupt
        held.pending = True
        if on_hold is not None:
            on_hold()
        print(f"mngr: finishing {what} first (Ctrl-C again to stop waiting)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
