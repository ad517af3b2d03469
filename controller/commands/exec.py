"""exec: run a shell command where agents work (their work dirs and environments), in parallel."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import MngrError
from ..fanout import Interruption, not_started_reason, per_agent, stopping_on_error
from ..fleet import LocatedAgent
from .agents import Bulk, Targets
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App

TIMED_OUT = 124  # as timeout(1)
_POLL_WAIT = 0.5

# Called with each piece of output as it arrives: (agent, stdout, stderr, whether it ended).
OutputListener = Callable[[LocatedAgent, bytes, bytes, bool], None]


@dataclass
class ExecRequest:
    names: Sequence[str]
    command: str
    timeout: float | None = None  # seconds; the command is killed after (exit code 124)
    on_output: OutputListener | None = None
    targets: Targets | None = None  # instead of names
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class ExecResult:
    name: str
    host: str
    provider: str
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None  # a command killed by signal N: -N
    error: str | None = None
    ran: bool = True  # False in a dry run: the agent it would run on

    @property
    def failed(self) -> bool:
        return self.ran and (self.error is not None or self.exit_code != 0)


def exec_command(app: App, request: ExecRequest) -> list[ExecResult]:
    """One result per agent named, in order; a failure is its result's ``error``."""
    if not request.command.strip():
        from ..errors import UsageError

        raise UsageError("the command is empty")
    targets = request.targets if request.targets is not None else Targets(request.names)
    with find_agents(app, targets.names, keep=targets.keep, piped=targets.piped) as found:
        if request.bulk.dry_run:
            return [ExecResult(agent.info.name, agent.host, agent.provider, ran=False) for agent in found.agents]
        # The command's own time, its reads' and a connection's: a host that stops
        # answering is given up on; with no --timeout only the requests' timeouts bound it.
        per_host = None if request.timeout is None else request.timeout + 2 * app.host_timeout
        # Every agent's command at once (a command may run for long). Ctrl-C ends them as ssh
        # ends its remote command: the helper kills a channel's commands when it closes.
        # With --on-error abort each host's first agent runs alone first, so that a command
        # that fails everywhere fails once per host rather than everywhere.
        stop_starting = Interruption()
        def run_one(agent: LocatedAgent) -> ExecResult:
            return _run(agent, request)

        run = stopping_on_error(run_one, request.bulk.on_error, stop_starting, failed=lambda result: result.failed)
        outcomes = per_agent(run, found.agents, host_timeout=lambda count: per_host,
                             first_alone=request.bulk.on_error == "abort",
                             interruption=stop_starting if request.bulk.on_error == "abort" else None)
    results = []
    for outcome in outcomes:
        agent = outcome.item
        result = outcome.value or ExecResult(agent.info.name, agent.host, agent.provider)
        if outcome.error is not None:
            result.error = not_started_reason(outcome.error, stop_starting)
        results.append(result)
    return results


def _run(agent: LocatedAgent, request: ExecRequest) -> ExecResult:
    result = ExecResult(agent.info.name, agent.host, agent.provider)
    try:
        exec_id = agent.handle.exec_start(agent.info.name, request.command)
        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        while True:
            wait = _POLL_WAIT if deadline is None else max(0.0, min(_POLL_WAIT, deadline - time.monotonic()))
            stdout, stderr, exit_code = agent.handle.exec_read(exec_id, wait)
            result.stdout += stdout
            result.stderr += stderr
            if request.on_output is not None:
                request.on_output(agent, stdout, stderr, exit_code is not None)
            if exit_code is not None:
                result.exit_code = exit_code
                return result
            if deadline is not None and time.monotonic() >= deadline:
                agent.handle.exec_kill(exec_id)
                result.exit_code = TIMED_OUT
                result.error = f"timed out after {request.timeout:g} s (killed)"
                return result
    except MngrError as exc:
        result.error = str(getattr(exc, "detail", exc))
        return result
