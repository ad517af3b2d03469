"""``mngr create --extra-window NAME=CMD``: more windows in the agent's tmux session.

Each runs CMD with ``/bin/sh -c`` in the agent's work dir and environment, beside the
agent's own window (which is named ``agent`` once there are others); the record keeps
them, so every start brings them back, and stopping the agent ends their processes too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import UsageError

AGENT_WINDOW = "agent"  # as remote_helper/tmux.py names the agent's own window
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def parse(specs: Iterable[str]) -> dict[str, str]:
    """{name: command}, in the order given."""
    windows: dict[str, str] = {}
    for spec in specs:
        name, equals, command = spec.partition("=")
        if not equals:
            raise UsageError(f"--extra-window expects NAME=CMD, got {spec!r}")
        if not name:
            raise UsageError(f"--extra-window {spec!r}: empty window name")
        if not _NAME.match(name):
            raise UsageError(f"--extra-window {spec!r}: invalid window name {name!r}: lowercase letters, digits and "
                             f"hyphens, starting with a letter, up to 31 characters")
        if name == AGENT_WINDOW:
            raise UsageError(f"--extra-window {spec!r}: {AGENT_WINDOW!r} is the agent's own window")
        if name in windows:
            raise UsageError(f"--extra-window {name!r} given twice")
        if not command.strip():
            raise UsageError(f"--extra-window {spec!r}: no command after '='")
        windows[name] = command
    return windows
