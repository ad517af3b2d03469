"""The ``mngr`` console script. Before anything else loads, a push or pull starts listing
the local tree (local_walk.start_early) and asks the agent's recorded host its first
questions (early_channel.py), so that both overlap the ~40 ms it takes to import the rest
of mngr; a push or pull with plain arguments then runs without click (direct.py)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .. import early_channel
        from ..local_walk import early_known_tag, start_early

        start_early(sys.argv[1:])
        early_channel.start_early(sys.argv[1:], early_known_tag)
        from .direct import run

        code = run(sys.argv[1:])
        if code is None:
            from .main import run_and_exit
    except KeyboardInterrupt:  # Ctrl-C while mngr loads: nothing was done yet
        _interrupted()
    if code is not None:
        from .exits import leave

        leave(code, _discard_early)
    run_and_exit(on_exit=_discard_early)


def _discard_early() -> None:
    """What was started early and no command claimed (it failed before it could)."""
    from ..channel import early
    from ..local_walk import discard_early

    discard_early()
    early.discard()


def _interrupted() -> None:
    import os

    os.write(2, b"mngr: interrupted\n")
    os._exit(130)


if __name__ == "__main__":  # python -m mngr.controller.cli.entry, where the script is missing
    main()
