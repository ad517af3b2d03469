"""How much mngr says on stderr beyond its records and errors.

    -q        errors and the records asked for, nothing else (no warnings, notes or progress)
    (default) errors, warnings and notes
    -v        also each action on a host (opening its channel, bootstrapping its helper,
              every request with its size) and the time spent per host
    --debug   -v, and the traceback of an internal error

MNGR_DEBUG=1 in the environment asks for the traceback alone (and says whether the resident
mngr ran the command), where the command line is not one's to change.

Standard library only and cheap to import: every command loads it, and so do providers
(it is how they show their own actions)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

QUIET = -1
NORMAL = 0
VERBOSE = 1
DEBUG = 2

# The options that set the level, on every command: global_options makes them click options,
# and push/pull's early walk (local_walk.start_early, before click is loaded) skips them.
OPTIONS = {"quiet": ("-q", "--quiet"), "verbose": ("-v", "--verbose"), "debug": ("--debug",)}
OPTION_NAMES = frozenset(name for names in OPTIONS.values() for name in names)

_level = NORMAL
_write_lock = threading.Lock()  # lines from hosts worked on in parallel never interleave


def level() -> int:
    return _level


def set_level(value: int) -> None:
    """Set by -q, -v and --debug (the last given wins); NORMAL again for the next command
    of a process that runs several."""
    global _level
    _level = value


def quiet() -> bool:
    return level() <= QUIET


def verbose() -> bool:
    return level() >= VERBOSE


def tracebacks() -> bool:
    """Whether an internal error shows its traceback: --debug, or MNGR_DEBUG set."""
    return level() >= DEBUG or bool(os.environ.get("MNGR_DEBUG"))


def _write(line: str) -> None:
    stream = sys.stderr
    if stream is None:
        return
    with _write_lock:
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # stderr gone (closed pipe): what was to be said is lost, not the command


def warn(message: str) -> None:
    """``mngr: warning: MESSAGE`` on stderr, unless -q."""
    if not quiet():
        _write(f"mngr: warning: {message}")


def note(message: str) -> None:
    """``mngr: MESSAGE`` on stderr, unless -q: what a user may want to know, not a record."""
    if not quiet():
        _write(f"mngr: {message}")


def trace(message: str) -> None:
    """``mngr: MESSAGE`` on stderr with -v or --debug only."""
    if verbose():
        _write(f"mngr: {message}")


@contextmanager
def timed(what: str) -> Iterator[None]:
    """With -v, ``mngr: WHAT (0.123 s)`` once the block is done (``failed`` if it raised)."""
    if not verbose():
        yield
        return
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        _write(f"mngr: {what} failed after {time.monotonic() - started:.3f} s ({type(exc).__name__})")
        raise
    _write(f"mngr: {what} ({time.monotonic() - started:.3f} s)")
