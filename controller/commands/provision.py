"""provision: bring agents' own CLI config (and CLI) on their hosts up to date with the user's.

An agent on a host other than the user's own runs with what mngr gave it at create: its CLI
(controller/cli_supply.py: the host's own, or a copy of the user's first on its PATH) and
its CLI config dir, credentials and their variables (controller/agent_config.py).
``provision`` does both again from the user's install, files and environment as they are
now: the CLI is made sure of on the host (a newer version of the user's is copied there),
and the config is compared with what the host holds (salted hashes, never a value) and
what differs is written. Files change at once; variables and a new CLI reach the agent's
process only when it starts again, which ``restart`` does (stop, write, start: the
conversation is resumed as by ``mngr start``).

An agent mngr provisions nothing for (a local agent, which runs with the user's own config;
a type with no CLI config, such as ``command``; a type in ``host_config_agent_types``) is
reported as such and left alone.

Agents are handled in parallel as stop and start are (fanout.per_agent), with the same
Ctrl-C semantics (commands/agents.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..agent_config import AgentConfigPlan, ConfigDifferences, differences, for_agent, why_none
from ..channel.protocol import AgentConfigState, AgentInfo
from ..errors import MngrError
from ..fanout import per_agent
from ..fleet import LocatedAgent
from .agents import LIVE_STATES, Failed
from .lifecycle import Lifecycle
from .lookup import find_agents

if TYPE_CHECKING:
    from ..agent_types import AgentType
    from ..cli.app import App
    from ..cli_supply import Supply
    from ..hosts import HostHandle

# What became of one agent (Provisioned.outcome).
NOTHING = "nothing to provision"
UP_TO_DATE = "up to date"
CHANGED = "changed"
WOULD_CHANGE = "would change"

# Whether its process has what was written (Provisioned.restart).
RESTARTED = "restarted"
RESTART_NEEDED = "restart needed"  # running with variables (or a CLI) older than what is there now
AT_NEXT_START = "at next start"  # not running: it gets everything when it starts


@dataclass
class ProvisionRequest:
    names: Sequence[str] = ()
    every: bool = False  # every agent on every host (but those whose host is gone)
    dry_run: bool = False  # say what would change, change nothing
    restart: bool = False  # stop and start a running agent after writing
    # a filter (--include/--exclude): narrows the names, or without names selects among all
    keep: Callable[[LocatedAgent], bool] | None = None
    piped: bool = False  # the names were read from stdin: none is no error


@dataclass(frozen=True)
class CliChange:
    """The agent's CLI on its host, where it differs from what the agent runs with."""

    program: str
    source: str  # as cli_supply.Supply: "host", "cache", "copy" or "none"
    version: str  # the user's (the host's own for "host")
    path_dirs: tuple[str, ...]  # what goes first on its PATH
    bytes_sent: int = 0  # (with a dry run: that would be sent)

    def describe(self, dry_run: bool) -> str:
        if self.source == "copy":
            verb = "would copy" if dry_run else "copied"
            return f"cli {self.program} {self.version} ({verb} {self.bytes_sent >> 20} MB)"
        if self.source == "cache":
            return f"cli {self.program} {self.version} (already on the host)"
        if self.source == "host":
            return f"cli {self.program}: the host's own {self.version}"
        return f"cli {self.program}: whatever the host's PATH finds (cli = \"host\")"


@dataclass
class Provisioned:
    """One agent: what differed from the user's current config (by name only), and
    whether its process has it."""

    info: AgentInfo
    host: str
    provider: str
    outcome: str  # NOTHING, UP_TO_DATE, CHANGED or WOULD_CHANGE
    reason: str = ""  # why NOTHING
    config: ConfigDifferences = field(default_factory=ConfigDifferences)
    cli: CliChange | None = None  # None: the CLI is as the agent has it (or not mngr's to provide)
    restart: str = ""  # "", RESTARTED, RESTART_NEEDED or AT_NEXT_START
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return self.config.any or self.cli is not None

    def changes(self) -> list[str]:
        """What differed, one entry per file, variable or CLI: safe to print and log."""
        found = [self.cli.describe(self.dry_run)] if self.cli is not None else []
        found += [f"file {name}" for name in self.config.files]
        found += [f"file {name} (removed)" for name in self.config.removed_files]
        found += [f"env {key}" for key in self.config.env]
        found += [f"env {key} (removed)" for key in self.config.removed_env]
        return found


@dataclass
class ProvisionResult:
    provisioned: list[Provisioned] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    interrupted: bool = False  # by Ctrl-C: see commands/agents.py


def provision(app: App, request: ProvisionRequest) -> ProvisionResult:
    lifecycle = Lifecycle(app.registry)

    def one(agent: LocatedAgent) -> Provisioned:
        return _provision_one(app, lifecycle, agent, request)

    from ..fanout import MAX_PARALLEL, interruptible

    # read, write; with a restart also the stop (its grace and SIGKILL wait) and the start
    per_agent_seconds = (4 * app.host_timeout + float(app.config.get("stop_grace_seconds"))
                         if request.restart else 2 * app.host_timeout)
    result = ProvisionResult()
    states = ("RUNNING", "WAITING", "DONE", "STOPPED")
    with find_agents(app, request.names, every=request.every, states=states, keep=request.keep,
                     piped=request.piped) as found:

        def host_seconds(count: int) -> float | None:
            if not request.dry_run:
                return None  # a CLI copy takes what it takes; each request has the host timeout
            return per_agent_seconds * -(-count // MAX_PARALLEL)

        with interruptible("the provisions already under way") as interruption:
            outcomes = per_agent(one, found.agents, host_timeout=host_seconds, interruption=interruption)
        result.interrupted = interruption.happened
        for outcome in outcomes:
            if outcome.value is not None:
                result.provisioned.append(outcome.value)
            else:
                agent = outcome.item
                result.failed.append(Failed(agent.info.name, agent.host, agent.provider, outcome.error or "failed"))
    return result


def _provision_one(app: App, lifecycle: Lifecycle, agent: LocatedAgent, request: ProvisionRequest) -> Provisioned:
    name, handle = agent.info.name, agent.handle
    if agent.info.state == "GONE":
        raise MngrError(f"its host {agent.host!r} is gone")
    agent_type = app.registry.agent_types.get(agent.info.type)
    plan = for_agent(app.config, agent_type, handle)
    may_supply = agent_type is not None and bool(agent_type.cli_program) and handle.provider_name != "local"
    if plan is None and not may_supply:
        return _nothing(app, agent, agent_type)
    salt = secrets.token_hex(16)
    there = handle.read_agent_config(name, salt)
    program = _cli_program(agent_type, handle, there.binary)
    if plan is None and program is None:
        return _nothing(app, agent, agent_type)
    # The CLI first: a copy that fails leaves the agent's config as it was.
    cli = _cli_change(handle, program, agent_type, there, request.dry_run) if program and agent_type else None
    found = differences(plan, there, salt) if plan is not None else ConfigDifferences()
    running = agent.info.state in LIVE_STATES
    result = Provisioned(agent.info, agent.host, agent.provider, UP_TO_DATE, config=found, cli=cli,
                         dry_run=request.dry_run)
    if result.changed:
        result.outcome = WOULD_CHANGE if request.dry_run else CHANGED
    behind = found.variables or cli is not None or there.pending
    if request.dry_run:
        result.restart = _restart_state(running, result.changed, behind)
        return result
    if request.restart and running:
        # Written while it is stopped: nothing of the CLI's running state can undo it.
        with lifecycle.agent_event("stop", name, agent.host, agent.provider):
            handle.stop_agent(name, float(app.config.get("stop_grace_seconds")))
        try:
            _write(handle, name, plan, found, cli)
        finally:  # a write that failed leaves it running as it was, and is reported
            with lifecycle.agent_event("start", name, agent.host, agent.provider):
                result.info = handle.start_agent(name)
        result.restart = RESTARTED
        return result
    _write(handle, name, plan, found, cli)
    result.restart = _restart_state(running, result.changed, behind)
    return result


def _nothing(app: App, agent: LocatedAgent, agent_type: AgentType | None) -> Provisioned:
    if agent_type is None:
        reason = f"its agent type {agent.info.type!r} is not one this mngr knows"
    else:
        reason = why_none(app.config, agent_type, agent.handle) or ""
    return Provisioned(agent.info, agent.host, agent.provider, NOTHING, reason=reason)


def _cli_program(agent_type: AgentType | None, handle: HostHandle, binary: str | None) -> str | None:
    """The CLI mngr provides for the agent on its host, as at create (cli_supply.provide_for_agent)."""
    from ..cli_supply import cli_program

    if agent_type is None or handle.provider_name == "local":
        return None
    return cli_program(agent_type.cli_program, binary)


def _cli_change(handle: HostHandle, program: str, agent_type: AgentType, there: AgentConfigState,
                dry_run: bool) -> CliChange | None:
    """The CLI made sure of on the host (with ``dry_run``, only asked about); None when the
    agent already runs with it."""
    from ..cli_supply import ensure_cli

    supply: Supply = ensure_cli(handle, program, agent_type.cli, dry_run=dry_run)
    if list(supply.path_dirs) == list(there.path_dirs):
        return None
    version = supply.host_version if supply.source == "host" else supply.version
    return CliChange(program, supply.source, version, tuple(supply.path_dirs), supply.bytes_to_send)


def _write(handle: HostHandle, name: str, plan: AgentConfigPlan | None, found: ConfigDifferences,
           cli: CliChange | None) -> None:
    config = plan.wire() if plan is not None and found.any else None
    if config is not None or cli is not None:
        handle.write_agent_config(name, config, list(cli.path_dirs) if cli is not None else None)


def _restart_state(running: bool, changed: bool, behind: bool) -> str:
    """For an agent not restarted: whether its process lacks what is (or would be) on the
    host. A running one has new files at once, not new variables or a new CLI; ``behind``
    says whether either changed now or an earlier provision's is not in its process yet."""
    if running:
        return RESTART_NEEDED if behind else ""
    return AT_NEXT_START if changed else ""
