"""clone and migrate: another agent like this one, here or on another host.

Both make an agent, so both go through the lifecycle service as create does: plugins hear
``before_create`` first (and may refuse), mngr remembers the host and the new agent. A
migrate also removes the original: ``before_destroy`` is asked before anything is copied,
so a refusal changes nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mngr.providers.base import ChecksHostKeys

from .. import work_dirs
from ..agent_lookup import ensure_name_free
from ..agent_types import Launch, interaction_for
from ..channel.protocol import AgentInfo
from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent
from ..hosts import HostHandle
from ..names import validate_name
from .agents import LIVE_STATES
from .lifecycle import EmptiedHosts, Lifecycle
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class CopyTarget:
    """Where the copy goes: the original's host unless told otherwise."""

    provider: str | None = None
    host: str | None = None
    work_dir: str | None = None  # default: $MNGR_HOST_DIR/work/NAME on the host
    accept_new_host_key: bool = False


@dataclass
class CloneRequest:
    name: str
    new_name: str
    target: CopyTarget = field(default_factory=CopyTarget)
    env: Mapping[str, str] = field(default_factory=dict)  # over the original's


@dataclass
class MigrateRequest:
    name: str
    to_host: str
    target: CopyTarget = field(default_factory=CopyTarget)


@dataclass
class CopyResult:
    info: AgentInfo
    host: str
    provider: str
    emptied: EmptiedHosts = field(default_factory=EmptiedHosts)
    warnings: list[str] = field(default_factory=list)  # hosts that could not be checked for the name


def clone(app: App, request: CloneRequest) -> CopyResult:
    validate_name(request.new_name)
    warnings = ensure_name_free(app, request.new_name, UsageError)
    lifecycle = Lifecycle(app.registry)
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        target = _target(app, agent, request.target, request.target.host)
        try:
            lifecycle.before_create(request.new_name, target.host, target.provider_name)
            info = _copy(app, lifecycle, agent, target, request.new_name, request.target.work_dir,
                         env=request.env, as_worktree=True)
        finally:
            if target is not agent.handle:
                target.close()
    return CopyResult(info, target.host, target.provider_name, warnings=warnings)


def migrate(app: App, request: MigrateRequest) -> CopyResult:
    lifecycle = Lifecycle(app.registry)
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        name = agent.info.name
        target = _target(app, agent, request.target, request.to_host)
        try:
            if target is agent.handle:
                raise UsageError(f"agent {name!r} is already on host {request.to_host!r}")
            lifecycle.before_create(name, target.host, target.provider_name)
            lifecycle.before("destroy", name, agent.host, agent.provider)
            was_running = agent.info.state in LIVE_STATES
            if was_running:
                agent.handle.stop_agent(name)
            try:
                # Not made in mngr's eyes (no after_create, host not remembered) until checked.
                info = _copy(app, lifecycle, agent, target, name, request.target.work_dir, record=False)
            except BaseException:
                if was_running:
                    agent.handle.start_agent(name)
                raise
            from .. import sync

            try:
                same = sync.same_tree(agent.handle, name, target, name)
                if not same:
                    raise MngrError(f"the copy of {name} on {request.to_host} does not match the original; "
                                    "the original is kept")
            except BaseException:
                # Never made in the plugins' eyes: the copy goes without destroy events.
                target.destroy_agent(name)
                target.prepare_work_dir(name, info.work_dir, remove=True)
                if was_running:
                    agent.handle.start_agent(name)
                raise
            lifecycle.agent_created(target, name)
            agent.handle.destroy_agent(name)
            lifecycle.release_ports(agent.handle, agent.info.id)
            # A worktree agent's repository forgets the worktree; its branch stays there.
            work_dirs.after_destroy(agent.info, delete_branch=False, keep_work_dir=False)
            lifecycle.after("destroy", name, agent.host, agent.provider)
            lifecycle.agent_destroyed(name, agent.host, agent.provider)
            emptied = lifecycle.remove_emptied_hosts([agent.handle])
        finally:
            if target is not agent.handle:
                target.close()
    return CopyResult(info, target.host, target.provider_name, emptied)


def _copy(app: App, lifecycle: Lifecycle, agent: LocatedAgent, target: HostHandle, new_name: str,
          work_dir: str | None, record: bool = True, env: Mapping[str, str] | None = None,
          as_worktree: bool = False) -> AgentInfo:
    """Create ``new_name`` on ``target`` from ``agent``: its spec (``env`` over its environment)
    and a copy of its work dir; with ``as_worktree``, a worktree agent's clone on this
    machine gets a worktree of its own instead (see _worktree_choice).
    With ``record``, the new agent is made in the lifecycle's eyes (after_create) at once;
    without, the caller does that once it has checked the copy."""
    from .. import sync
    from .create import discard_work_dir, make_worktree, work_dir_trusted

    path = target.provider.resolve_work_dir(target.host, work_dir) if work_dir else ""
    target.connect()
    choice = _worktree_choice(agent, target, new_name) if as_worktree else None
    origin: dict[str, str] | None = None
    if choice is not None:
        spec = agent.handle.agent_spec(agent.info.name)
        made, base, carried = make_worktree(target, new_name, choice, path)
        origin = work_dirs.origin(choice, base, carried)
    else:
        from ..progress import Progress

        with tempfile.TemporaryDirectory(prefix="mngr-copy-") as scratch, \
                Progress(f"copying {agent.info.name}'s work dir", unit="bytes") as line:
            spec, made = sync.copy_work_dir(agent.handle, agent.info.name, target, new_name, path, scratch, line)
    try:
        from ..agent_config import for_agent
        from ..cli_supply import provide_for_agent

        agent_type = app.registry.agent_types.get(spec.agent_type)
        launch = agent_type.relaunch(spec.command) if agent_type else Launch(spec.command)
        # The target host may lack the agent's CLI (the source had it, or was this machine).
        path_dirs = provide_for_agent(target, agent_type, spec.binary)
        own_config = for_agent(app.config, agent_type, target)  # made anew from the user's, as by create
        info = target.create_agent(name=new_name, agent_type=spec.agent_type, command=launch.command,
                                   binary=spec.binary, work_dir=made, env={**spec.env, **(env or {})}, labels=spec.labels,
                                   interaction=interaction_for(app.registry.agent_types, spec.agent_type, launch,
                                                               work_dir_trusted(app, True)),
                                   path_dirs=path_dirs,
                                   agent_config=own_config.wire() if own_config is not None else None,
                                   work_dir_origin=origin, extra_windows=spec.extra_windows,
                                   urls=spec.urls)
    except BaseException:
        if choice is not None:
            discard_work_dir(target, new_name, made, choice)  # and the branch made with it
        else:
            target.prepare_work_dir(new_name, made, remove=True)
        raise
    if record:
        lifecycle.agent_created(target, new_name)
    return info


def _worktree_choice(agent: LocatedAgent, target: HostHandle, new_name: str) -> work_dirs.WorkDirChoice | None:
    """How a clone of a worktree agent on this machine is made: a worktree of the same
    repository on a new branch mngr/NEW_NAME at the original's HEAD, its uncommitted (not
    ignored) work carried, as ``mngr create --source NAME`` does; None for any other agent
    or host (a copy of every file, as before)."""
    from .. import worktrees

    if agent.info.work_dir_origin.get("kind") != "worktree" or agent.provider != "local" \
            or target.provider_name != "local" or not worktrees.repository_top(agent.info.work_dir):
        return None
    return work_dirs.choose(new_name, transfer="worktree", source=agent.info.work_dir, work_dir=None,
                            local_host=True, branch=None, reuse_branch=False, clean=False, cwd=agent.info.work_dir)


def _target(app: App, agent: LocatedAgent, where: CopyTarget, host: str | None) -> HostHandle:
    """The handle of the host to copy to: the agent's own unless told otherwise."""
    provider = app.provider(where.provider) if where.provider else agent.handle.provider
    host_name = host or (provider.default_host() if where.provider else agent.host)
    provider.check_host(host_name)
    if where.accept_new_host_key and isinstance(provider, ChecksHostKeys):
        provider.trust_new_host_keys()
    if provider.name == agent.provider and host_name == agent.host:
        return agent.handle
    return HostHandle(provider, host_name, app.host_timeout)
