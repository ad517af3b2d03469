"""``mngr push`` and ``mngr pull`` without click, when their arguments are plain.

Loading click and building the command group costs about a third of a push that changes
nothing. Arguments made only of NAME, an optional LOCAL_PATH (absent, or a readable
directory), the four flags and ``--format human|json`` mean exactly one thing to click;
``parse`` reads those and nothing else. Anything else (help, another option, ``--``, a
value click would refuse, shell completion) returns None and goes to click, which parses
it and reports mistakes as always. Either way the command itself is sync_run.run_sync.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

_FLAGS = {"--delete": "delete", "--dry-run": "dry_run", "--include-gitignored": "include_gitignored",
          "--force": "force"}
_FORMATS = ("human", "json")
Parsed = tuple[str, str, "str | None", dict[str, "bool | str"]]


def parse(argv: Sequence[str]) -> Parsed | None:
    """(action, NAME, LOCAL_PATH or None, options as click passes them), or None when
    click must see the arguments."""
    if not argv or argv[0] not in ("push", "pull") or "_MNGR_COMPLETE" in os.environ:
        return None
    options: dict[str, bool | str] = {option: False for option in _FLAGS.values()}
    options["output_format"] = "human"
    positional: list[str] = []
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument in _FLAGS:
            options[_FLAGS[argument]] = True
        elif argument == "--format" or argument.startswith("--format="):
            value = next(arguments, None) if argument == "--format" else argument[len("--format="):]
            if value not in _FORMATS:
                return None
            options["output_format"] = value
        elif not argument or argument.startswith("-"):
            return None
        else:
            positional.append(argument)
    if not 1 <= len(positional) <= 2:
        return None
    local_path = positional[1] if len(positional) == 2 else None
    if local_path is not None and not _a_path_click_takes_as_is(local_path):
        return None
    return argv[0], positional[0], local_path, options


def _a_path_click_takes_as_is(path: str) -> bool:
    """click.Path(file_okay=False) returns a missing path or a readable directory unchanged."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return True
    return stat.S_ISDIR(mode) and os.access(path, os.R_OK)


def run(argv: Sequence[str]) -> int | None:
    """The exit status of a plain push or pull, run here; None if click must run it."""
    parsed = parse(argv)
    if parsed is None:
        return None
    action, name, local_path, options = parsed
    from .app import App
    from .exits import exit_status, fill_closed_standard_streams
    from .sync_run import run_sync

    def command() -> int:
        run_sync(App(), action, name, local_path, **options)  # type: ignore[arg-type]
        return 0

    fill_closed_standard_streams()
    return exit_status(command)
