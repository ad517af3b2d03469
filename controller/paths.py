"""Where mngr keeps its own files on this machine (stdlib only: loaded before most of mngr)."""

from __future__ import annotations

import contextlib
import os

# As typing.TYPE_CHECKING: a push loads this module before anything else (local_walk.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


def state_dir() -> str:
    """``$MNGR_STATE_DIR``, else ``$XDG_STATE_HOME/mngr`` (``~/.local/state/mngr``)."""
    # Defined beside the guard of pushes and pulls, which must give the same answer.
    from mngr.remote_helper.guarded import controller_state_dir

    return str(controller_state_dir())


def agent_clis_dir() -> str:
    """``<state dir>/agent-clis``: the agent CLI bundles that containers on a local engine
    share through a read-only mount (controller/cli_supply.py), each under its key."""
    return os.path.join(state_dir(), "agent-clis")


def read_state_json(name: str) -> object:
    """The JSON in ``<state dir>/name``; None when it is absent or unreadable."""
    import json

    try:
        with open(os.path.join(state_dir(), name), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def as_dict(content: object) -> dict[str, Any]:
    """What most state files hold: a JSON object (anything else, or nothing, reads as {})."""
    return content if isinstance(content, dict) else {}


def read_state_dict(name: str) -> dict[str, Any]:
    return as_dict(read_state_json(name))


@contextlib.contextmanager
def changing_state_json(name: str, normalise: Callable[[object], dict[str, Any]] = as_dict
                        ) -> Iterator[dict[str, Any]]:
    """Read-modify-write of ``<state dir>/name`` by concurrent mngr commands (and threads):
    under an exclusive lock, the block gets the content (``normalise``d from whatever was
    there, None if nothing) and changes it in place; a change is written atomically."""
    import fcntl
    import json
    import threading

    directory = state_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, name)
    # flock excludes other open files of the lock, in this process's threads too.
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        content = normalise(read_state_json(name))
        before = json.dumps(content, sort_keys=True)
        yield content
        if json.dumps(content, sort_keys=True) != before:
            temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=1, sort_keys=True)
            os.replace(temporary, path)
    finally:
        os.close(fd)
