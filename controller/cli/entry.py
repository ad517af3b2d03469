"""The ``mngr`` console script. Before anything else loads, a push or pull starts listing
the local tree (local_walk.start_early), so that the listing overlaps the ~40 ms it takes
to import click and the rest of mngr."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from ..local_walk import discard_early, start_early

        start_early(sys.argv[1:])
        from .main import run_and_exit
    except KeyboardInterrupt:  # Ctrl-C while mngr loads: nothing was done yet
        _interrupted()
    run_and_exit(on_exit=discard_early)


def _interrupted() -> None:
    import os

    os.write(2, b"mngr: interrupted\n")
    os._exit(130)


if __name__ == "__main__":  # python -m mngr.controller.cli.entry, where the script is missing
    main()
