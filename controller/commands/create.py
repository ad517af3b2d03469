"""create: start an agent on a host.

The request holds what the user asked for, templates already applied (the CLI does that:
it knows which options were given). The plugins hear ``before_create`` before anything is
made and may refuse; on success the lifecycle service does the bookkeeping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mngr.providers.base import ChecksHostKeys, MakesHosts, PortsAtMaking

from .. import agent_urls, work_dirs
from ..agent_lookup import ensure_name_free
from ..agent_types import AgentType, Launch, interaction_for
from ..channel.protocol import AgentInfo, SetIdleSettings
from ..errors import Interrupted, MissingBinary, MngrError, UsageError
from ..hosts import HostHandle
from ..names import validate_name
from .lifecycle import Lifecycle

if TYPE_CHECKING:
    from ..cli.app import App
    from ..uploads import Uploads

_Found = TypeVar("_Found")


@dataclass
class CreateRequest:
    name: str
    agent_type: str | None = None  # None: default_agent_type in the config
    provider: str | None = None  # None: default_provider in the config
    host: str | None = None  # None: the provider's host for a new agent
    agent_args: Sequence[str] = ()
    args_given: bool = False  # a '--' was given (a snapshot brings its own command)
    build_args: Sequence[str] = ()
    work_dir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    initial_message: str | None = None
    ready_timeout: float = 60.0
    # A terminal will attach to the agent: nobody needs to wait for its input box.
    attaching: bool = False
    trust_work_dir: bool | None = None  # None: the trust_work_dirs setting
    accept_new_host_key: bool = False
    idle_timeout: str | None = None
    idle_mode: str | None = None
    activity_sources: str | None = None
    source: str | None = None  # the local directory a worktree or copy is made from (default: here)
    snapshot: str | None = None  # a snapshot id to start from
    transfer: str | None = None  # "worktree", "copy" or "none"; None: work_dirs.choose decides
    branch: str | None = None  # the agent's branch (None: mngr/NAME)
    reuse_branch: bool = False  # work on an existing branch
    clean: bool = False  # leave the user's uncommitted changes behind
    extra_windows: Mapping[str, str] | None = None  # {name: command}; None: none given
    # The URLs it serves, {name: URL on its host} (agent_urls.parse_ports), over its type's
    # ports; None: none given.
    urls: Mapping[str, str] | None = None
    uploads: Uploads | None = None  # files landed before the agent starts
    overwrite_uploads: bool = False  # an upload may replace a file at its destination
    reuse: bool = False  # an agent of this name that matches is the result (commands/reuse.py)


@dataclass
class CreateResult:
    info: AgentInfo
    host: str
    provider: str
    # Hosts that could not be checked for the name (ensure_name_free).
    warnings: list[str] = field(default_factory=list)
    verb: str = "created"  # with --reuse: "reused", or "started" for an agent that was stopped


class CreatedThenInterrupted(Interrupted):
    """Ctrl-C once the agent existed: it was made, and the result says where."""

    def __init__(self, message: str, result: CreateResult) -> None:
        super().__init__(message)
        self.result = result


def create(app: App, request: CreateRequest) -> CreateResult:
    from ..idle_options import settings_requests
    from ..interrupts import deferred_interrupt

    name = request.name
    validate_name(name)
    if request.initial_message is not None and not request.initial_message.strip():
        raise UsageError("--initial-message is empty")
    lifecycle = Lifecycle(app.registry)
    type_name = request.agent_type or str(app.config.get("default_agent_type"))
    agent_type = _configured(app.registry.agent_type, type_name, "default_agent_type",
                             from_config=not request.agent_type)
    launch = agent_type.launch(list(request.agent_args))
    snapshot_id = request.snapshot
    provider_name = request.provider
    native_snapshot = None
    if snapshot_id is not None:
        from .. import snapshots

        native_snapshot = snapshots.native(snapshot_id, app.providers())
        if native_snapshot is not None:  # a provider's own (a docker image): on that provider
            if provider_name and provider_name != native_snapshot[0].name:
                raise UsageError(f"snapshot {snapshot_id} is the {native_snapshot[0].name} provider's: "
                                 f"create from it with --in {native_snapshot[0].name}")
            provider_name = native_snapshot[0].name
    provider = _configured(app.provider, provider_name or str(app.config.get("default_provider")),
                           "default_provider", from_config=not provider_name)
    host_name = request.host or provider.host_for_new_agent(name)
    provider.check_host(host_name)
    if request.accept_new_host_key and isinstance(provider, ChecksHostKeys):
        provider.trust_new_host_keys()
    if request.reuse:
        if snapshot_id is not None:
            raise UsageError("--reuse compares with the options given: not with --snapshot")
        from . import reuse

        wanted = reuse.Wanted(provider.name, host_name, agent_type, list(request.agent_args),
                              reuse.in_place_dir(provider, host_name, request.work_dir, request.source,
                                                 request.transfer),
                              dict(request.labels), request.extra_windows)
        reused = reuse.reuse(app, name, wanted)
        if reused is not None:
            return CreateResult(reused.info, reused.host, reused.provider, verb=reused.verb)
    if snapshot_id is not None:
        if request.source:
            raise UsageError("give --source or --snapshot, not both")
        if request.transfer or request.branch or request.reuse_branch or request.clean:
            raise UsageError("--snapshot brings its own work dir: no --transfer, --branch, --reuse-branch or --clean")
        if request.agent_type or request.args_given:
            raise UsageError("--snapshot brings its own agent type and command")
        choice = work_dirs.WorkDirChoice("host")
    else:
        source = request.source
        if source and work_dirs.source_kind(source) == "agent" and provider.name == "local":
            # Another local agent's work dir is a local directory: a worktree (or copy) of it,
            # as of now, its uncommitted changes included.
            source = _local_agent_work_dir(app, source) or source
        choice = work_dirs.choose(name, transfer=request.transfer, source=source, work_dir=request.work_dir,
                                  local_host=provider.name == "local", branch=request.branch,
                                  reuse_branch=request.reuse_branch, clean=request.clean, cwd=os.getcwd())
    fresh_dir = choice.made or snapshot_id is not None
    trusted = work_dir_trusted(app, fresh_dir) if request.trust_work_dir is None else request.trust_work_dir
    work_dir = request.work_dir
    # With a worktree, a copy or a snapshot and no --work-dir, the host picks the new work dir
    # (""); a provider whose default is "" (ssh) has the host make an empty one for the agent.
    directory = provider.resolve_work_dir(host_name, work_dir) if work_dir or not fresh_dir else ""
    made_dir = fresh_dir or not directory
    idle_requests = settings_requests(request.idle_timeout, request.idle_mode, request.activity_sources,
                                      provider.idle_defaults(host_name))
    env = dict(request.env)
    labels = dict(request.labels)
    extra_windows = request.extra_windows
    urls = agent_urls.declared(agent_type.ports, request.urls)

    warnings = ensure_name_free(app, name)
    lifecycle.before_create(name, host_name, provider.name)
    if isinstance(provider, MakesHosts):
        if isinstance(provider, PortsAtMaking) and urls:
            from .open import loopback_port

            ports = [loopback_port(url) for url in urls.values()]
            provider.ports_for_new_host(host_name, [port for port in dict.fromkeys(ports) if port is not None])
        made_host = provider.prepare_host(host_name, request.build_args,
                                          snapshot=snapshot_id if native_snapshot else "", agent=name)
    elif request.build_args:
        raise UsageError(f"provider {provider.name!r} takes no --build-arg")
    else:
        made_host = False
    try:
        if made_host:
            lifecycle.host_made(host_name, provider.name)
        with HostHandle(provider, host_name, app.host_timeout) as handle:
            binary = agent_type.binary(list(request.agent_args))
            handle.connect()
            import msgspec

            for idle_request in idle_requests:
                if not idle_request.only_if_unset:
                    # Checked before the agent exists: a host that refuses them gets no agent either.
                    handle.set_idle_settings(msgspec.structs.replace(idle_request, dry_run=True))
            type_name = agent_type.name
            spec = None  # a snapshot's: its agent's type, command, env and labels
            # Imported only when used: a plain create should not pay for tar and git plumbing.
            base = carried = ""
            if choice.transfer == "worktree":
                directory, base, carried = make_worktree(handle, name, choice, directory)
            elif choice.url:
                directory = handle.prepare_work_dir(
                    name, directory, clone_url=choice.url, branch=choice.branch if choice.reuse_branch else "",
                    new_branch="" if choice.reuse_branch else choice.branch)
            elif choice.agent:
                directory, base = _copy_agent_work_dir(app, choice.agent, handle, name, directory)
            elif choice.transfer == "copy":
                from ..progress import Progress
                from ..sync import seed_work_dir

                with Progress(f"copying the work dir to {handle.host}", unit="bytes") as line:
                    directory = seed_work_dir(handle, name, choice.source, directory, choice.branch,
                                              make_branch=not choice.reuse_branch, carry=not choice.clean,
                                              progress=line)
            elif native_snapshot is not None:  # the work dir came with the host's image
                spec = native_snapshot[1]["spec"]
                directory = directory or native_snapshot[1]["work_dir"]
            elif snapshot_id is not None:
                from .. import snapshots
                from ..progress import Progress

                with Progress(f"restoring snapshot {snapshot_id} on {handle.host}", unit="bytes") as line:
                    spec, directory = snapshots.restore(snapshot_id, handle, name, directory, line)
            elif not directory:
                directory = handle.prepare_work_dir(name, "")
            if spec is not None:
                type_name, binary = spec["agent_type"], spec.get("binary")
                launch = app.registry.agent_types[type_name].relaunch(spec["command"]) \
                    if type_name in app.registry.agent_types else Launch(spec["command"])
                env = {**spec.get("env", {}), **env}
                labels = {**spec.get("labels", {}), **labels}
                if extra_windows is None:
                    extra_windows = spec.get("extra_windows") or None
                if request.urls is None:  # the snapshotted agent's, its type's ports among them
                    urls = spec.get("urls") or urls
            try:
                from ..cli_supply import provide_for_agent

                path_dirs = provide_for_agent(handle, app.registry.agent_types.get(type_name), binary)
            except BaseException:
                if made_dir and native_snapshot is None:
                    discard_work_dir(handle, name, directory, choice)
                raise
            try:
                from ..agent_config import for_agent

                # Read from the user's files here, so that one that cannot be read takes back
                # the work dir (and host) made for the agent, as any failed create does.
                own_config = for_agent(app.config, app.registry.agent_types.get(type_name), handle)
                if own_config is not None and request.trust_work_dir is None:
                    # Its config is its own: trusting the work dir it was made for opens no other.
                    trusted = app.config.get("trust_work_dirs") != "never"
                with deferred_interrupt(f"the create of agent {name!r} on {host_name!r}") as interrupt:
                    info = handle.create_agent(
                        name=name,
                        agent_type=type_name,
                        command=launch.command,
                        binary=binary,
                        work_dir=directory,
                        env=env,
                        labels=labels,
                        interaction=interaction_for(app.registry.agent_types, type_name, launch, trusted),
                        path_dirs=path_dirs,
                        agent_config=own_config.wire() if own_config is not None else None,
                        work_dir_origin=work_dirs.origin(choice, base, carried) if snapshot_id is None else None,
                        extra_windows=extra_windows,
                        urls=urls,
                        uploads=request.uploads.entries if request.uploads else None,
                        upload_bytes=bytes(request.uploads.blob) if request.uploads else b"",
                        overwrite_uploads=request.overwrite_uploads,
                    )
            except KeyboardInterrupt:
                # A second Ctrl-C while the request was out: whether the agent exists is unknown.
                lifecycle.outcome_unknown(handle)
                raise Interrupted(f"interrupted while agent {name!r} was being created on {host_name!r}: "
                                  f"`mngr list` shows whether it was") from None
            except BaseException as exc:
                if made_dir and native_snapshot is None:  # the work dir was made for this agent only
                    discard_work_dir(handle, name, directory, choice)
                if isinstance(exc, MissingBinary):
                    raise MngrError(f"agent type {agent_type.name!r} needs {binary!r}, which was not found on PATH "
                                    f"on host {host_name!r}") from exc
                raise
            lifecycle.agent_created(handle, name)
            result = CreateResult(info, host_name, provider.name, warnings)
            made = f"agent {name!r} was created on {host_name!r} and runs (mngr destroy {name} removes it)"
            if interrupt.pending:
                raise CreatedThenInterrupted(f"interrupted: {made}", result)
            try:
                _finish_create(handle, name, agent_type, idle_requests, request)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted before it was ready: {made}") from None
            if request.attaching:
                handle.note_activity(name, "attach")  # on the channel already open
    except BaseException as exc:
        if made_host and isinstance(provider, MakesHosts) and not isinstance(exc, Interrupted):
            provider.discard_host(host_name)  # made for this agent: nothing of a failed create stays
        raise
    return result


def make_worktree(handle: HostHandle, name: str, choice: work_dirs.WorkDirChoice,
                   path: str) -> tuple[str, str, str]:
    """The agent's worktree in a new, empty dir the host made (``path``, or its default):
    its path, the commit it starts from, and the tree of what was carried into it ("" for
    nothing). On failure nothing of it is left."""
    from .. import worktrees

    made = handle.prepare_work_dir(name, path)
    # The user's changes are read while git checks the worktree out.
    changes = None if choice.clean else worktrees.UserChanges(choice.source)
    try:
        base = worktrees.add_worktree(choice.source, made, choice.branch, make_branch=not choice.reuse_branch,
                                      head=choice.head)
        tree = worktrees.carried_tree(made, changes.carry_into(made)) if changes is not None else ""
    except BaseException:
        # `git worktree add -b` makes the branch before the checkout that may fail.
        discard_work_dir(handle, name, made, choice)
        raise
    return made, base, tree


def _local_agent_work_dir(app: App, name: str) -> str:
    """The work dir of the local host's agent ``name``; "" when it is elsewhere."""
    from .lookup import find_agents

    with find_agents(app, [name]) as found:
        (agent,) = found.agents
        return agent.info.work_dir if agent.provider == "local" else ""


def _copy_agent_work_dir(app: App, source: str, target: HostHandle, name: str, path: str) -> tuple[str, str]:
    """A copy of agent ``source``'s work dir (every file, its repository with every branch)
    for ``name`` on ``target``: its path, and the branch checked out there."""
    import tempfile

    from .. import sync
    from ..progress import Progress
    from .lookup import find_agents

    with find_agents(app, [source]) as found, tempfile.TemporaryDirectory(prefix="mngr-copy-") as scratch, \
            Progress(f"copying {source}'s work dir", unit="bytes") as line:
        (agent,) = found.agents
        spec, made = sync.copy_work_dir(agent.handle, agent.info.name, target, name, path, scratch, line)
    return made, spec.branch


def discard_work_dir(handle: HostHandle, name: str, directory: str, choice: work_dirs.WorkDirChoice) -> None:
    """Take back the work dir a failed create made, and the branch it made with it."""
    handle.prepare_work_dir(name, directory, remove=True)
    if choice.transfer == "worktree":
        from .. import worktrees

        worktrees.prune(choice.repo)
        if not choice.reuse_branch and worktrees.branch_exists(choice.repo, choice.branch):
            worktrees.delete_branch(choice.repo, choice.branch)


def _finish_create(handle: HostHandle, name: str, agent_type: AgentType, idle_requests: list[SetIdleSettings],
                   request: CreateRequest) -> None:
    """What follows the agent's creation: its idle settings, then waiting for it to take
    input (or sending it the initial message)."""
    from ..progress import Progress

    for idle_request in idle_requests:
        handle.set_idle_settings(idle_request)
    if request.initial_message is None and not request.attaching and agent_type.interaction is not None:
        # Nobody will see its screen: a dialog it opened on must fail the create.
        try:
            with Progress(f"waiting for {name} to be ready (up to {request.ready_timeout:.0f} s)"):
                handle.await_input(name, request.ready_timeout)
        except MngrError as exc:
            detail = getattr(exc, "detail", str(exc))
            raise MngrError(f"agent {name!r} was created, but is not ready for input: {detail}") from exc
    if request.initial_message is not None:
        try:
            with Progress(f"waiting for {name} to be ready for the initial message "
                          f"(up to {request.ready_timeout:.0f} s)"):
                handle.send_message(
                    name,
                    request.initial_message,
                    wait_ready=True,
                    ready_pattern=agent_type.ready_pattern,
                    ready_quiet_seconds=agent_type.ready_quiet_seconds,
                    ready_timeout=request.ready_timeout,
                )
        except MngrError as exc:
            detail = getattr(exc, "detail", str(exc))
            raise MngrError(f"agent {name!r} was created, but the initial message was not sent: {detail}") from exc


def work_dir_trusted(app: App, made_by_mngr: bool) -> bool:
    """Whether the trust_work_dirs setting has an agent's work dir marked trusted for its CLI."""
    setting = app.config.get("trust_work_dirs")
    return setting == "always" or (setting == "made" and made_by_mngr)


def _configured(find: Callable[[str], _Found], name: str, key: str, from_config: bool) -> _Found:
    """``find(name)``; when the name came from the config, an unknown one names the key."""
    from ..errors import UnknownAgentType, UnknownProvider

    try:
        return find(name)
    except (UnknownAgentType, UnknownProvider) as exc:
        if not from_config:
            raise
        raise type(exc)(f"{key} in the config: {exc} (mngr config set {key} NAME)") from None
