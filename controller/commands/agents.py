"""stop, start and destroy: change the state of agents found by name (or all of them).

Every agent named (or selected by a filter: lookup.find_agents) is acted on in parallel
(fanout.per_agent); one that fails is reported in the result's ``failed`` and the others
are done all the same, or with ``on_error`` "abort", no agent not started yet is started.
A ``dry_run`` finds the agents and says what would be done to each, and does nothing.

A Ctrl-C (on the main thread) starts no agent's change that was not started yet, and waits
for those under way, whose requests went out; a second stops waiting. The result then has
``interrupted`` set, and each agent not done is in ``failed`` saying which it was (not
started, or cut short with its outcome unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mngr.providers.base import AgentRegistry
from mngr.remote_helper import files

from .. import work_dirs
from ..channel.protocol import AgentInfo
from ..errors import MngrError
from ..fanout import per_agent
from ..fleet import LocatedAgent
from .lifecycle import EmptiedHosts, Lifecycle
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App

LIVE_STATES = ("RUNNING", "WAITING")  # the agent's process is there to talk to
RECORDED_STATES = (*LIVE_STATES, "DONE", "STOPPED")  # the agent has a record on a host that answered


class WorkWouldBeLost(MngrError):
    """A destroy refused (before anything was touched): a work dir mngr made has uncommitted
    changes or commits on no other branch; ``force`` destroys anyway."""


@dataclass
class Targets:
    """Which agents: ``names``, or ``every`` one, narrowed (or without names, selected) by
    ``keep``; ``piped``: the names were read from stdin, and none is no error."""

    names: Sequence[str] = ()
    every: bool = False
    keep: Callable[[LocatedAgent], bool] | None = None
    piped: bool = False


@dataclass
class Bulk:
    """How a change is done to many agents."""

    dry_run: bool = False  # say what would be done, do nothing
    on_error: str = "continue"  # "abort": once one fails, start no other


@dataclass
class StopRequest:
    names: Sequence[str] = ()
    every: bool = False  # every agent not stopped yet
    grace: float = 2.0  # seconds between SIGTERM and SIGKILL of its processes
    targets: Targets | None = None  # instead of names and every
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class StartRequest:
    names: Sequence[str] = ()
    every: bool = False  # every stopped agent
    targets: Targets | None = None
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class DestroyRequest:
    names: Sequence[str] = ()
    every: bool = False  # every agent on every host
    grace: float = 2.0
    keep_work_dir: bool = False
    delete_branch: bool = False  # a worktree agent's branch goes too
    force: bool = False  # destroy even what would lose work (uncommitted changes, commits nowhere else)
    # Called with the agents found, before any is touched: raising cancels the whole destroy.
    confirm: Callable[[Sequence[LocatedAgent]], None] | None = None
    targets: Targets | None = None
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class LabelRequest:
    add: Mapping[str, str] = field(default_factory=dict)  # labels set (a key's value changed)
    remove: Sequence[str] = ()  # label keys dropped
    targets: Targets = field(default_factory=Targets)
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class ArchiveRequest:
    archived: bool = True  # False: unarchive
    grace: float = 2.0  # an agent archived while it runs is stopped first, as by stop
    targets: Targets = field(default_factory=Targets)
    bulk: Bulk = field(default_factory=Bulk)


@dataclass
class Changed:
    """One agent acted on: its state now, and what happened (``verb``: "stopped",
    "already stopped", "started", "already running", "destroyed", "labelled", "already labelled",
    "archived", "already archived", "unarchived", "already unarchived"; in a dry run "would stop",
    "would start", "would destroy", "would label", "would archive", "would unarchive")."""

    info: AgentInfo
    host: str
    provider: str
    verb: str


@dataclass
class Failed:
    name: str
    host: str
    provider: str
    error: str


@dataclass
class AgentsResult:
    changed: list[Changed] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    emptied: EmptiedHosts = field(default_factory=EmptiedHosts)
    interrupted: bool = False  # by Ctrl-C: see the module's docstring


def stop(app: App, request: StopRequest) -> AgentsResult:
    lifecycle = Lifecycle(app.registry)

    def change(agent: LocatedAgent) -> Changed:
        if agent.info.state == "STOPPED":
            return _changed(agent, agent.info, "already stopped")
        with lifecycle.agent_event("stop", agent.info.name, agent.host, agent.provider):
            stopped = agent.handle.stop_agent(agent.info.name, request.grace)
        lifecycle.release_ports(agent.handle, agent.info.id)
        return _changed(agent, stopped, "stopped")

    def preview(agent: LocatedAgent) -> str:
        return "already stopped" if agent.info.state == "STOPPED" else "would stop"

    return _each(app, _targets(request), (*LIVE_STATES, "DONE"), change,
                 _time_per_agent(app, request.grace), what="the stops already under way",
                 bulk=request.bulk, preview=preview)


def start(app: App, request: StartRequest) -> AgentsResult:
    lifecycle = Lifecycle(app.registry)

    def change(agent: LocatedAgent) -> Changed:
        if agent.info.state in LIVE_STATES:
            return _changed(agent, agent.info, "already running")
        with lifecycle.agent_event("start", agent.info.name, agent.host, agent.provider):
            return _changed(agent, agent.handle.start_agent(agent.info.name), "started")

    def preview(agent: LocatedAgent) -> str:
        return "already running" if agent.info.state in LIVE_STATES else "would start"

    # An archived agent is refused a start by name (its host says how to unarchive it);
    # a selection (--all, a filter) passes it by, as a listing does.
    return _each(app, _selecting(_targets(request), archived=False), ("STOPPED",), change,
                 _time_per_agent(app, 0.0), what="the starts already under way", bulk=request.bulk,
                 preview=preview)


def label(app: App, request: LabelRequest) -> AgentsResult:
    add, remove = dict(request.add), list(request.remove)

    def changes(info: AgentInfo) -> bool:
        return any(info.labels.get(key) != value for key, value in add.items()) or \
            any(key in info.labels for key in remove)

    def change(agent: LocatedAgent) -> Changed:
        verb = "labelled" if changes(agent.info) else "already labelled"
        return _changed(agent, agent.handle.set_labels(agent.info.name, add, remove), verb)

    def preview(agent: LocatedAgent) -> str:
        return "would label" if changes(agent.info) else "already labelled"

    return _each(app, request.targets, RECORDED_STATES, change, _time_per_agent(app, 0.0),
                 what="the label changes already under way", bulk=request.bulk, preview=preview)


def archive(app: App, request: ArchiveRequest) -> AgentsResult:
    """Archive agents (each stopped first if it runs) or, with ``archived`` False, unarchive
    them (they stay stopped). Selected without names: the agents not archived yet, or for
    unarchive, the archived ones."""
    lifecycle = Lifecycle(app.registry)
    wanted = request.archived
    done, already = ("archived", "already archived") if wanted else ("unarchived", "already unarchived")

    def change(agent: LocatedAgent) -> Changed:
        if agent.info.archived == wanted:
            return _changed(agent, agent.info, already)
        if wanted and agent.info.state in (*LIVE_STATES, "DONE"):
            with lifecycle.agent_event("stop", agent.info.name, agent.host, agent.provider):
                info = agent.handle.set_archived(agent.info.name, True, request.grace)
            lifecycle.release_ports(agent.handle, agent.info.id)
        else:
            info = agent.handle.set_archived(agent.info.name, wanted, request.grace)
        return _changed(agent, info, done)

    def preview(agent: LocatedAgent) -> str:
        return already if agent.info.archived == wanted else f"would {done[:-1]}"

    return _each(app, _selecting(request.targets, archived=not wanted), RECORDED_STATES, change,
                 _time_per_agent(app, request.grace),
                 what=f"the {'archives' if wanted else 'unarchives'} already under way",
                 bulk=request.bulk, preview=preview)


def destroy(app: App, request: DestroyRequest) -> AgentsResult:
    lifecycle = Lifecycle(app.registry)

    def change(agent: LocatedAgent) -> Changed:
        with lifecycle.agent_event("destroy", agent.info.name, agent.host, agent.provider):
            if agent.info.state == "GONE":  # its host went away: only mngr's memory of it is left
                if isinstance(agent.handle.provider, AgentRegistry):
                    agent.handle.provider.forget_agent(agent.host, agent.info.name)
            else:
                agent.handle.destroy_agent(agent.info.name, keep_work_dir=request.keep_work_dir,
                                           grace=request.grace)
                work_dirs.after_destroy(agent.info, request.delete_branch, request.keep_work_dir)
                lifecycle.release_ports(agent.handle, agent.info.id)
        lifecycle.agent_destroyed(agent.info.name, agent.host, agent.provider)
        return _changed(agent, agent.info, "destroyed")

    def check(found: Sequence[LocatedAgent]) -> None:
        if not request.force:
            _refuse_lost_work(found, request)

    result = _each(app, _targets(request), ("RUNNING", "WAITING", "DONE", "STOPPED", "GONE"), change,
                   _time_per_agent(app, request.grace), what="the destroys already under way",
                   confirm=request.confirm, after=lifecycle, bulk=request.bulk,
                   preview=lambda agent: "would destroy", check=check)
    return result


def _targets(request: StopRequest | StartRequest | DestroyRequest) -> Targets:
    return request.targets if request.targets is not None else Targets(request.names, request.every)


def _selecting(targets: Targets, archived: bool) -> Targets:
    """``targets`` that, where they select agents (--all, a filter) rather than name them,
    select only the agents that are (or are not) ``archived``."""
    keep = targets.keep
    if targets.names or not (targets.every or keep is not None):
        return targets
    return replace(targets, keep=lambda agent: agent.info.archived == archived and (keep is None or keep(agent)))


def _refuse_lost_work(found: Sequence[LocatedAgent], request: DestroyRequest) -> None:
    """Refuse the whole destroy, before anything is touched, if it would lose work: a work
    dir mngr made with uncommitted changes, or commits on no other branch."""
    refusals = []
    for agent in found:
        if agent.info.state == "GONE" or agent.info.work_dir_origin.get("kind") not in ("worktree", "copy"):
            continue
        try:
            state = agent.handle.work_state(agent.info.name)
        except MngrError as exc:
            refusals.append(f"agent {agent.info.name}'s work dir could not be checked ({exc})")
            continue
        lost = work_dirs.lost_by_removal(agent.info, [files.path_from_wire(path) for path in state.uncommitted],
                                         state.heads, request.delete_branch, request.keep_work_dir, state.unpushed)
        if lost:
            refusals.append(f"agent {agent.info.name} has {lost}")
    if refusals:
        raise WorkWouldBeLost(f"refusing to destroy: {'; '.join(refusals)} (-f destroys anyway)")


def _changed(agent: LocatedAgent, info: AgentInfo, verb: str) -> Changed:
    return Changed(info, agent.host, agent.provider, verb)


def _time_per_agent(app: App, grace: float) -> float:
    """What one agent's change may take on its host: a request's timeout, the grace and the
    SIGKILL wait after it, and a connection's set-up."""
    return 2 * app.host_timeout + grace


def _each(app: App, targets: Targets, states: tuple[str, ...],
          change: Callable[[LocatedAgent], Changed], per_agent_seconds: float, what: str,
          preview: Callable[[LocatedAgent], str], bulk: Bulk,
          confirm: Callable[[Sequence[LocatedAgent]], None] | None = None,
          after: Lifecycle | None = None,
          check: Callable[[Sequence[LocatedAgent]], None] | None = None) -> AgentsResult:
    """``change`` for every agent ``targets`` select; ``check`` (raising refuses the whole
    change, in a dry run too) and then ``confirm`` (not in a dry run) see them all first."""
    from ..fanout import MAX_PARALLEL, interruptible, not_started_reason, stopping_on_error

    result = AgentsResult()
    with find_agents(app, targets.names, every=targets.every, states=states, keep=targets.keep,
                     piped=targets.piped) as found:
        if not found.agents:
            return result
        if check is not None:
            check(found.agents)
        if bulk.dry_run:
            result.changed = [_changed(agent, agent.info, preview(agent)) for agent in found.agents]
            return result
        if confirm is not None:
            confirm(found.agents)

        def host_seconds(count: int) -> float:
            waves = -(-count // MAX_PARALLEL)  # a host's agents beyond the limit wait their turn
            return per_agent_seconds * waves

        with interruptible(what) as interruption:
            outcomes = per_agent(stopping_on_error(change, bulk.on_error, interruption), found.agents,
                                 host_timeout=host_seconds, interruption=interruption)
        result.interrupted = interruption.by_user
        for outcome in outcomes:
            agent = outcome.item
            if outcome.value is not None:
                result.changed.append(outcome.value)
            else:
                error = not_started_reason(outcome.error, interruption) or "failed"
                result.failed.append(Failed(agent.info.name, agent.host, agent.provider, error))
        if after is not None and not interruption.abandoned:
            result.emptied = after.remove_emptied_hosts(agent.handle for agent in found.agents)
    return result
