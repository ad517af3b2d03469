"""schedule add and run: agents (or messages to one) on a cron schedule.

A schedule is checked when it is added: everything it names (templates, provider, agent
type, the agent it messages) must exist now, and its cron expression must come due some
day (schedules.py), or every run would fail with nobody watching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .. import schedules
    from ..cli.app import App


@dataclass
class AddScheduleRequest:
    message: str  # each created agent's initial message, or what is sent to ``agent``
    cron: str
    timezone: str | None = None  # None: this machine's
    name: str | None = None  # None: from the template, or the agent, with a number if taken
    templates: Sequence[str] = ()
    agent: str | None = None  # message this existing agent instead of creating one
    provider: str | None = None
    agent_type: str | None = None
    install: bool = True  # put the tick in the crontab


@dataclass
class AddScheduleResult:
    schedule: schedules.Schedule
    next_at: str  # the next run, to the minute
    crontab: bool  # the tick is in the crontab (False: none here, or not asked to install)


@dataclass
class RunScheduleRequest:
    name: str


def add_schedule(app: App, request: AddScheduleRequest) -> AddScheduleResult:
    from .. import schedules

    if request.agent and (request.templates or request.provider or request.agent_type):
        raise UsageError("--agent messages an existing agent: no --template, --in or --agent-type with it")
    _check_what_it_names(app, request)
    name = request.name
    if not name:
        base = (request.templates[0] if request.templates else request.agent) or "schedule"
        taken = {existing.name for existing in schedules.load()}
        name = base if base not in taken else next(f"{base}-{n}" for n in range(2, 10_000) if f"{base}-{n}" not in taken)
    entry = schedules.Schedule(
        name=name, cron=request.cron, timezone=request.timezone or schedules.local_timezone(),
        message=request.message, agent=request.agent or "", templates=list(request.templates),
        provider=request.provider or "", agent_type=request.agent_type or "",
        created_at=schedules.now().isoformat(),
    )
    schedules.add(entry)
    try:
        installed = request.install and schedules.install_cron()
    except BaseException:
        schedules.remove(entry.name)  # not half-added: a schedule nothing would run
        raise
    return AddScheduleResult(entry, next_run(entry), installed)


def run_schedule(app: App, request: RunScheduleRequest) -> dict[str, Any]:
    """Run a schedule now, by hand (its regular runs are not changed): what came of it
    ("detail", "exit_status" and the rest of schedules.run_now's record)."""
    from .. import schedules

    entry = schedules.get(request.name)
    return schedules.run_now(entry, schedules.now(), schedules.mngr_runner, by="hand")


def next_run(entry: schedules.Schedule) -> str:
    from .. import schedules

    return entry.next_time(schedules.now()).isoformat(timespec="minutes")


def _check_what_it_names(app: App, request: AddScheduleRequest) -> None:
    """Everything a schedule names exists now: otherwise every run would fail, unseen."""
    defined = app.config.section("templates")
    for template in request.templates:
        if template not in defined:
            known = ", ".join(sorted(defined)) or "none defined"
            raise UsageError(f"no template {template!r} in the config (known: {known})")
    if request.provider:
        app.provider(request.provider)
    if request.agent_type:
        app.registry.agent_type(request.agent_type)
    if request.agent:
        from ..errors import AgentNotFound
        from .lookup import find_agents

        try:
            with find_agents(app, [request.agent]):
                pass
        except AgentNotFound as exc:
            raise UsageError(f"--agent: {exc}") from None
