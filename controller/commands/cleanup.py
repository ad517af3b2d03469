"""cleanup: stop or destroy the agents that are old, idle or in a state, in one go.

What to clean up is said as filter expressions (``age >= N``, ``idle >= N``, ``state in
[...]``) added to the command's own --include/--exclude, so the selection is the one every
bulk command makes (cli/targets.py, agent_filter.py); the action is stop's or destroy's,
with their fan-out, dry run, lost-work refusal and confirmation (agents.py).

Archived agents are left alone: archiving is how a user says "keep this one". They can
still be destroyed by name, or by ``mngr destroy --include archived``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..fleet import LocatedAgent
from . import agents
from .agents import AgentsResult, Bulk, Targets

if TYPE_CHECKING:
    from ..cli.app import App

ACTIONS = ("stop", "destroy")


def selection(older_than: float | None, idle_for: float | None, states: Sequence[str]) -> tuple[str, ...]:
    """The filter expressions that select what a cleanup asks for (seconds for durations)."""
    expressions = []
    if older_than is not None:
        expressions.append(f"age >= {older_than:g}")
    if idle_for is not None:
        expressions.append(f"idle >= {idle_for:g}")
    if states:
        expressions.append("state in [" + ", ".join(state.lower() for state in states) + "]")
    return tuple(expressions)


def check_criteria(criteria: Sequence[str], includes: Sequence[str]) -> None:
    """A cleanup needs something to go by: without it every agent would be taken."""
    if not criteria and not includes:
        raise UsageError("say what to clean up: --older-than, --idle-for, --state or --include")


@dataclass
class CleanupRequest:
    action: str  # one of ACTIONS
    targets: Targets  # the selection (see the module's docstring)
    bulk: Bulk = field(default_factory=Bulk)
    grace: float = 2.0
    force: bool = False  # destroy: past the lost-work refusal
    keep_work_dir: bool = False
    delete_branch: bool = False
    confirm: Callable[[Sequence[LocatedAgent]], None] | None = None  # destroy: asked before any is touched


def cleanup(app: App, request: CleanupRequest) -> AgentsResult:
    if request.action == "stop":
        return agents.stop(app, agents.StopRequest(grace=request.grace, targets=request.targets, bulk=request.bulk))
    if request.action == "destroy":
        return agents.destroy(app, agents.DestroyRequest(
            grace=request.grace, keep_work_dir=request.keep_work_dir, delete_branch=request.delete_branch,
            force=request.force, confirm=request.confirm, targets=request.targets, bulk=request.bulk))
    raise UsageError(f"--action: {request.action!r} is none of {', '.join(ACTIONS)}")
