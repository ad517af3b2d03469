"""Where mngr keeps its own files on this machine (stdlib only: loaded before most of mngr)."""

from __future__ import annotations

import os


def state_dir() -> str:
    """``$MNGR_STATE_DIR``, else ``$XDG_STATE_HOME/mngr`` (``~/.local/state/mngr``)."""
    explicit = os.environ.get("MNGR_STATE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mngr")
