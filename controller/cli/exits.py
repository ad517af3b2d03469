"""How a command ends: every failure becomes one line on stderr and an exit status, and mngr
leaves without tearing the interpreter down. Free of click, for direct.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ..errors import MngrError


def exit_status(command: Callable[[], int]) -> int:
    """Run ``command``; its exit status, or that of what it raised (reported on stderr)."""
    try:
        return command()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MngrError as exc:
        print(f"mngr: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mngr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # this machine refused something: a full disk, a permission
        print(f"mngr: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:  # a defect in mngr: still one line, the rest on request
        from .. import verbosity
        from .entry import caused_by_ctrl_c

        if caused_by_ctrl_c(exc):
            print("mngr: interrupted", file=sys.stderr)
            return 130

        if verbosity.tracebacks():
            import traceback

            traceback.print_exc()
        detail = one_line(f"{type(exc).__name__}: {exc}")
        print(f"mngr: internal error: {detail} (--debug shows the traceback)", file=sys.stderr)
        return 1


def fill_closed_standard_streams() -> None:
    """Started with fd 0, 1 or 2 closed (`mngr destroy x <&-`), Python leaves that stream
    None, and the next file mngr opens would take the number: a child would read from it,
    or a message land in it. /dev/null takes each closed one's place instead."""
    for number, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            descriptor = os.open(os.devnull, os.O_RDWR)
            if descriptor != number:  # a lower one was closed too and took it: put it where it belongs
                os.dup2(descriptor, number)
                os.close(descriptor)
            setattr(sys, name, open(number, mode, closefd=False))  # noqa: SIM115 - lives as long as mngr


def leave(code: int, on_exit: Callable[[], None] | None = None) -> None:
    """Flush and leave with ``code`` without tearing the interpreter down.

    Nothing mngr needs happens at interpreter teardown (channels are closed by then, no
    atexit hooks), and skipping it saves 5 to 8 ms on every command.
    """
    if on_exit is not None:
        on_exit()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        code = code or 1
    os._exit(code)


def one_line(message: str) -> str:
    return " ".join(message.split())
