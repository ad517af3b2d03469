"""``mngr clone`` and ``mngr migrate``: another agent like this one, here or on another host."""

from __future__ import annotations

import tempfile

import click

from .. import sync
from ..agent_lookup import fleet_listing
from ..agent_types import Launch, interaction_for
from ..channel.protocol import AgentInfo
from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent, existing_agent, locate
from ..hosts import HostHandle
from ..names import validate_name
from .common import LIVE_STATES, check_format, print_agents, remove_emptied_hosts
from .completion_cmd import agent_names, host_names, provider_names
from .context import App, pass_app
from .create import work_dir_trusted

_HELP = {"help_option_names": ["-h", "--help"]}


def _copy(app: App, agent: LocatedAgent, target: HostHandle, new_name: str, work_dir: str | None) -> AgentInfo:
    """Create ``new_name`` on ``target`` from ``agent``: its spec and a copy of its work dir."""
    path = target.provider.resolve_work_dir(target.host, work_dir) if work_dir else ""
    target.connect()
    with tempfile.TemporaryDirectory(prefix="mngr-copy-") as scratch:
        spec, made = sync.copy_work_dir(agent.handle, agent.info.name, target, new_name, path, scratch)
    try:
        agent_type = app.registry.agent_types.get(spec.agent_type)
        launch = agent_type.relaunch(spec.command) if agent_type else Launch(spec.command)
        info = target.create_agent(name=new_name, agent_type=spec.agent_type, command=launch.command,
                                   binary=spec.binary, work_dir=made, env=spec.env, labels=spec.labels,
                                   interaction=interaction_for(app.registry.agent_types, spec.agent_type, launch,
                                                               work_dir_trusted(app, True)))
    except BaseException:
        target.prepare_work_dir(new_name, made, remove=True)
        raise
    target.provider.remember(target.host)
    return info


def _target(app: App, agent: LocatedAgent, provider_name: str | None, host: str | None,
            accept_new_host_key: bool) -> HostHandle:
    """The handle of the host to copy to: the agent's own unless told otherwise."""
    provider = app.provider(provider_name) if provider_name else agent.handle.provider
    host_name = host or (provider.default_host() if provider_name else agent.host)
    provider.check_host(host_name)
    if accept_new_host_key:
        provider.trust_new_host_keys()
    if provider.name == agent.provider and host_name == agent.host:
        return agent.handle
    return HostHandle(provider, host_name, app.host_timeout)


_TARGET_OPTIONS = [
    click.option("--in", "--provider", "provider_name", metavar="PROVIDER", shell_complete=provider_names,
                 help="Provider of the target host."),
    click.option("--work-dir", help="Work dir for the copy (default: $MNGR_HOST_DIR/work/NAME on the host)."),
    click.option("--accept-new-host-key", is_flag=True, help="Trust the target host's SSH key on first contact."),
    click.option("--format", "output_format", default="human", show_default=True,
                 help="human, json, jsonl, or a template like '{name} {state}'."),
]


def _with_target_options(function):  # type: ignore[no-untyped-def]
    for decorator in reversed(_TARGET_OPTIONS):
        function = decorator(function)
    return function


@click.command("clone", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.argument("new_name")
@click.option("--host", shell_complete=host_names, help="Host for the copy (default: the agent's own).")
@_with_target_options
@pass_app
def clone(app: App, name: str, new_name: str, host: str | None, provider_name: str | None,
          work_dir: str | None, accept_new_host_key: bool, output_format: str) -> None:
    """Create NEW_NAME as a copy of agent NAME and start it.

    The copy has NAME's type, command, environment (--env values) and labels, and a new
    work dir holding every file of NAME's (ignored ones included) and its git branches,
    with the same branch checked out. NAME is not changed.

    \b
    Examples:
      mngr clone my-task my-task-2                      on the same host
      mngr clone my-task try-b --in ssh --host gpu-box  on another host
    """
    check_format(output_format)
    validate_name(new_name)
    with fleet_listing(app) as listing:
        (agent,) = locate(listing, [name])
        existing = existing_agent(listing, new_name)
        if existing is not None:
            raise UsageError(f"agent {new_name!r} already exists on {existing.host} ({existing.provider})")
        target = _target(app, agent, provider_name, host, accept_new_host_key)
        try:
            info = _copy(app, agent, target, new_name, work_dir)
        finally:
            if target is not agent.handle:
                target.close()
    print_agents([(info, target.host, target.provider_name, "created")], output_format, single=True)


@click.command("migrate", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--to-host", "host", required=True, shell_complete=host_names, help="Host to move the agent to.")
@_with_target_options
@pass_app
def migrate(app: App, name: str, host: str, provider_name: str | None, work_dir: str | None,
            accept_new_host_key: bool, output_format: str) -> None:
    """Move agent NAME to another host: copy it there, check the copy, then destroy it here.

    NAME is stopped while its work dir is copied. The copy (same name, type, command,
    environment, labels, files and git branches) is compared with the original (every
    file's size, mode and modification time); only then is the original destroyed. If
    anything fails, the copy is removed and the original is started again as it was. The
    original's work dir stays on the old host.

    \b
    Example:
      mngr migrate my-task --to-host gpu-box --in ssh
    """
    check_format(output_format)
    with fleet_listing(app) as listing:
        (agent,) = locate(listing, [name])
        name = agent.info.name
        target = _target(app, agent, provider_name, host, accept_new_host_key)
        if target is agent.handle:
            raise UsageError(f"agent {name!r} is already on host {host!r}")
        was_running = agent.info.state in LIVE_STATES
        try:
            if was_running:
                agent.handle.stop_agent(name)
            try:
                info = _copy(app, agent, target, name, work_dir)
            except BaseException:
                if was_running:
                    agent.handle.start_agent(name)
                raise
            if not sync.same_tree(agent.handle, name, target, name):
                made = info.work_dir
                target.destroy_agent(name)
                target.prepare_work_dir(name, made, remove=True)
                if was_running:
                    agent.handle.start_agent(name)
                raise MngrError(f"the copy of {name} on {host} does not match the original; the original is kept")
            agent.handle.destroy_agent(name)
            remove_emptied_hosts([agent.handle], app.registry)
        finally:
            target.close()
    print_agents([(info, target.host, target.provider_name, "migrated")], output_format, single=True)
