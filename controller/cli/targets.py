"""How a command that acts on agents is told which: names, ``-`` (names or ids on stdin, one
a line) and ``--include`` / ``--exclude`` filters; ``--dry-run`` and ``--on-error`` for
the commands that change many agents."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import UsageError

if TYPE_CHECKING:
    from ..commands.agents import Targets
    from ..fleet import LocatedAgent
    from .context import App

F = TypeVar("F", bound=Callable[..., Any])

_INCLUDE = click.option(
    "--include", "--filter", "includes", multiple=True, metavar="EXPR",
    help="Only agents for which EXPR holds, such as \"state == running && idle > 1h\" "
         "(the language: docs/commands/list.md). Repeatable: all must hold.")
_EXCLUDE = click.option(
    "--exclude", "excludes", multiple=True, metavar="EXPR",
    help="Leave out agents for which EXPR holds. Repeatable.")


def filter_options(command: F) -> F:
    """``--include`` (alias ``--filter``) and ``--exclude``."""
    return _INCLUDE(_EXCLUDE(command))


def dry_run_option(command: F) -> F:
    return click.option("--dry-run", is_flag=True,
                        help="Say which agents would be acted on, and do nothing.")(command)


def on_error_option(command: F) -> F:
    return click.option(
        "--on-error", type=click.Choice(("continue", "abort")), default="continue", show_default=True,
        help="When an agent fails: go on with the others, or start no other (those under way finish)."
    )(command)


def expand_names(names: Sequence[str]) -> tuple[list[str], bool]:
    """``names`` with ``-`` replaced by the words read from stdin (one a line; blank lines
    and lines starting with # left out), each agent once; and whether stdin was read."""
    if names.count("-") > 1:
        raise UsageError("'-' (names from stdin) given more than once")
    if "-" not in names:
        return list(dict.fromkeys(names)), False
    if sys.stdin.isatty():
        raise UsageError("'-' reads agent names from stdin, but stdin is a terminal")
    read = [line.strip() for line in sys.stdin.read().splitlines()]
    piped = [line for line in read if line and not line.startswith("#")]
    expanded: list[str] = []
    for name in names:
        expanded.extend(piped if name == "-" else [name])
    return list(dict.fromkeys(expanded)), True


def agent_test(app: App, includes: Sequence[str], excludes: Sequence[str]) -> Callable[[LocatedAgent], bool] | None:
    """The filters as a test of a found agent (None: no filter); a bad one is a usage error
    now, before any host is asked."""
    if not includes and not excludes:
        return None
    from ..agent_filter import Selection
    from .common import AGENT_FIELDS, agent_row

    plugin_fields = app.registry.list_fields(AGENT_FIELDS)
    test = Selection(tuple(includes), tuple(excludes)).compile((*AGENT_FIELDS, *plugin_fields))

    def keep(agent: LocatedAgent) -> bool:
        row = agent_row(agent.info, agent.host, agent.provider)
        row.update({name: compute(dict(row)) for name, compute in plugin_fields.items()})
        return test(row)

    return keep


def read_targets(app: App, names: Sequence[str], every: bool, includes: Sequence[str],
            excludes: Sequence[str]) -> Targets:
    """The agents a command is given, as the commands layer takes them."""
    from ..commands.agents import Targets

    if every and names:
        raise UsageError("give agent names or --all, not both")
    keep = agent_test(app, includes, excludes)
    expanded, piped = expand_names(names)
    return Targets(expanded, every, keep, piped)
