"""The ``mngr`` console script. A plain push or pull is first offered to the resident mngr
(resident_client.py, controller/resident.py), which has the rest of mngr loaded already;
when there is none, or it declines, the command runs here (``run_here``), and, if none was
found, one is started for the next command.

Running here: before anything else loads, a push or pull starts listing the local tree
(local_walk.start_early) and asks the agent's recorded host its first questions
(early_channel.py), so that both overlap the ~40 ms it takes to import the rest of mngr;
a push or pull with plain arguments then runs without click (direct.py).

Its module body is as short as it can be, with no import to look up (not even __future__,
hence the quoted annotations): a Ctrl-C that lands before main() has its handler in place
shows a traceback, and the shorter this window the rarer that is."""

import sys

# As typing.TYPE_CHECKING (see local_walk.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .resident_client import Attempt


def main() -> None:
    argv = sys.argv[1:]
    try:
        from . import resident_client

        attempt = resident_client.run(argv)  # returns only if the command is to run here
    except BaseException as exc:  # Ctrl-C before anything was done
        if not caused_by_ctrl_c(exc):
            raise
        _interrupted()
    run_here(argv, attempt)


def run_here(argv: "Sequence[str]", attempt: "Attempt | None" = None) -> None:
    """Run ``mngr ARGV`` in this process and leave with its status (the resident's
    command process runs exactly this too)."""
    try:
        from .. import early_channel
        from ..local_walk import early_known_tag, start_early

        start_early(argv)
        early_channel.start_early(argv, early_known_tag)
        from .direct import run

        code = run(argv)
        if code is None:
            from .main import run_and_exit
    except BaseException as exc:  # Ctrl-C while mngr loads: nothing was done yet
        if not caused_by_ctrl_c(exc):
            raise
        _interrupted()
    if code is not None:
        from .exits import leave

        leave(code, _discard_early if attempt is None or not attempt.start_one else
              lambda: _start_resident_after(attempt))
    run_and_exit(on_exit=_discard_early)


def _discard_early() -> None:
    """What was started early and no command claimed (it failed before it could)."""
    from ..channel import early
    from ..local_walk import discard_early

    discard_early()
    early.discard()


def _start_resident_after(attempt: "Attempt") -> None:
    """Once the command's output is out: a resident for the next command, unless the
    config turns it off."""
    _discard_early()
    from .resident_client import start_resident

    try:
        sys.stdout.flush()
        sys.stderr.flush()
        from ..config import Config

        if Config.load().get("resident", True) is False:
            return
    except Exception:  # a bad config was the command's to report, not this
        return
    start_resident(attempt)


def caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt or came of one. A Ctrl-C that lands while a
    class is being made (in a ``__set_name__``: importing ``platform`` makes such a class)
    reaches mngr as a RuntimeError whose cause is the KeyboardInterrupt."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _interrupted() -> None:
    import os

    os.write(2, b"mngr: interrupted\n")
    os._exit(130)


if __name__ == "__main__":  # python -m mngr.controller.cli.entry, where the script is missing
    main()
