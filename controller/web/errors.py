"""A failure as the CLI prints it on stderr: the page shows the same line."""

from __future__ import annotations

from ..cli.exits import one_line
from ..errors import MngrError


def error_line(exc: BaseException) -> str:
    """The line cli/exits.exit_status prints for ``exc``."""
    if isinstance(exc, MngrError | OSError):
        return f"mngr: error: {one_line(str(exc))}"
    return f"mngr: internal error: {one_line(f'{type(exc).__name__}: {exc}')}"


def failure_line(action: str, name: str, error: str) -> str:
    """The line an operation on many agents prints for one that failed (cli/lifecycle.report)."""
    return f"mngr: error: {action} {name}: {error}"
