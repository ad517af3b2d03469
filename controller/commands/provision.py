"""provision: bring agents' own CLI config (and CLI) on their hosts up to date with the user's.

An agent on a host other than the user's own runs with what mngr gave it at create
(controller/agent_config.py): its CLI config dir, its credentials and their variables.
``provision`` makes that plan again from the user's files and environment as they are now,
asks the host what it holds (salted hashes, never a value), and writes what differs. Files
change at once; variables reach the agent's process only when it starts again, which
``restart`` does (stop, write, start: the conversation is resumed as by ``mngr start``).

An agent mngr provisions nothing for (a local agent, which runs with the user's own config;
a type with no CLI config, such as ``command``; a type in ``host_config_agent_types``) is
reported as such and left alone.

Agents are handled in parallel as stop and start are (fanout.per_agent), with the same
Ctrl-C semantics (commands/agents.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..agent_config import AgentConfigPlan, ConfigDifferences, differences, for_agent, why_none
from ..channel.protocol import AgentInfo
from ..errors import MngrError
from ..fanout import per_agent
from ..fleet import LocatedAgent
from .agents import LIVE_STATES, Failed
from .lifecycle import Lifecycle
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App
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
    dry_run: bool = False  # say what would change, change nothing
    restart: bool = False  # stop and start a running agent after writing


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
    restart: str = ""  # "", RESTARTED, RESTART_NEEDED or AT_NEXT_START

    def changes(self) -> list[str]:
        """What differed, one entry per file or variable: safe to print and log."""
        found = [f"file {name}" for name in self.config.files]
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
    with find_agents(app, request.names) as found:

        def host_seconds(count: int) -> float:
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
    if plan is None:
        reason = why_none(app.config, agent_type, handle) or ""
        return Provisioned(agent.info, agent.host, agent.provider, NOTHING, reason=reason)
    salt = secrets.token_hex(16)
    there = handle.read_agent_config(name, salt)
    found = differences(plan, there, salt)
    running = agent.info.state in LIVE_STATES
    result = Provisioned(agent.info, agent.host, agent.provider, UP_TO_DATE, config=found)
    if found.any:
        result.outcome = WOULD_CHANGE if request.dry_run else CHANGED
    if request.dry_run:
        result.restart = _restart_state(running, found, there.pending)
        return result
    if request.restart and running:
        with lifecycle.agent_event("stop", name, agent.host, agent.provider):
            handle.stop_agent(name, float(app.config.get("stop_grace_seconds")))
        _write(handle, name, plan, found)
        with lifecycle.agent_event("start", name, agent.host, agent.provider):
            result.info = handle.start_agent(name)
        result.restart = RESTARTED
        return result
    _write(handle, name, plan, found)
    result.restart = _restart_state(running, found, there.pending)
    return result


def _write(handle: HostHandle, name: str, plan: AgentConfigPlan, found: ConfigDifferences) -> None:
    if found.any:
        handle.write_agent_config(name, plan.wire())


def _restart_state(running: bool, found: ConfigDifferences, pending: bool) -> str:
    """For an agent not restarted: whether its process lacks what is (or would be) on the
    host. A running one has new files at once, not new variables; ``pending``: an earlier
    write's variables are not in its process yet either."""
    if running:
        return RESTART_NEEDED if found.variables or pending else ""
    return AT_NEXT_START if found.any else ""
