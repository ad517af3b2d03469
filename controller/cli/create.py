"""``mngr create``: start an agent on a host (the default command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

import click
import msgspec

from .. import completion, templates
from ..agent_lookup import ensure_name_free
from ..agent_types import AgentType, Launch, interaction_for
from ..channel.protocol import SetIdleSettings
from ..errors import Interrupted, MissingBinary, MngrError, UsageError
from ..hosts import HostHandle
from ..idle_options import MODES_HELP, SOURCES_HELP, settings_requests
from ..interrupts import deferred_interrupt
from ..names import generate_name, validate_name
from .common import (
    ENV_NAME_PATTERN,
    LABEL_KEY_PATTERN,
    attach,
    check_format,
    parse_pairs,
    print_agents,
)
from .completion_cmd import agent_type_names, host_names, provider_names
from .context import App, pass_app

AGENT_ARGS_KEY = "mngr.agent_args"

# Template key -> parameter of this command; these options win over templates when given.
_Found = TypeVar("_Found")

_TEMPLATE_PARAMS = {
    "agent_type": "type_option",
    "provider": "provider_name",
    "host": "host",
    "work_dir": "work_dir",
    "initial_message": "initial_message",
    "ready_timeout": "ready_timeout",
    "connect": "connect",
    "idle_timeout": "idle_timeout",
    "idle_mode": "idle_mode",
    "activity_sources": "activity_sources",
    "source": "source",
}


class CreateCommand(click.Command):
    """Everything after ``--`` belongs to the agent, untouched by option parsing."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta[AGENT_ARGS_KEY] = args[split + 1 :]
            args = args[:split]
        return super().parse_args(ctx, args)


@click.command(cls=CreateCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("words", nargs=-1, metavar="[NAME] [AGENT_TYPE] [-- AGENT_ARGS...]")
@click.option("--template", "-T", "template_names", multiple=True, metavar="NAME",
              help="Options from [templates.NAME] in config. Repeatable: later templates win; options given here win over all.")
@click.option("--name", "name_option", help="Agent name (generated when omitted).")
@click.option("--agent-type", "-t", "type_option", shell_complete=agent_type_names, help="Agent type: claude, codex, command, or one from config or a plugin.")
@click.option("--in", "--provider", "provider_name", metavar="PROVIDER", shell_complete=provider_names,
              help="Provider of the host (default from config: local).")
@click.option("--host", shell_complete=host_names, help="Host to create the agent on (default: the provider's default host; for docker and modal, a new host "
                   "named after the agent).")
@click.option("--build-arg", "build_args", multiple=True, metavar="ARGS",
              help="Options for a new host, for providers that make hosts (docker and modal: \"--dockerfile PATH\", "
                   "\"--image IMAGE\", \"--block-network\", \"--cpus 2\", \"--memory 4g\"; modal also "
                   "\"--cidr-allowlist CIDR\", \"--gpu A10G\", ...). Repeatable.")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Working directory of the agent (default: current directory; ~ on an SSH, docker or modal host); "
                   "must exist on the host.")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="Environment variable for the agent; KEY alone passes your current value. Repeatable.")
@click.option("--label", "label_pairs", multiple=True, metavar="KEY=VALUE", help="Label to attach to the agent (key: up to 63 letters, digits and _.-, starting with a letter or "
                   "digit). Repeatable.")
@click.option("--initial-message", help="Message to send once the agent is ready for input.")
@click.option("--trust-work-dir/--no-trust-work-dir", "trust_work_dir", default=None,
              help="Mark the work dir trusted in the agent CLI's config, so it does not ask. Default: the "
                   "trust_work_dirs setting (made: only work dirs mngr made, from --source or --snapshot).")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the agent to be ready for the initial message.")
@click.option("--connect/--no-connect", default=True, help="Attach to the agent after creating it (default: attach when on a terminal).")
@click.option("--format", "output_format", default="human", show_default=True, help="Output: human, json, jsonl, or a template like '{name} {state}'.")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust the host's SSH key if this is the first contact (a changed key is always refused).")
@click.option("--idle-timeout", metavar="DURATION",
              help="Stop the host's agents after this long without activity: seconds, or 30s, 5m, 1h "
                   "(default: the provider's; off for the local host).")
@click.option("--idle-mode", metavar="MODE", help=f"Which activity keeps the host up: {MODES_HELP} (default io).")
@click.option("--activity-sources", metavar="LIST",
              help=f"Exactly which activity counts, comma-separated: {SOURCES_HELP}.")
@click.option("--snapshot", "snapshot_id", metavar="ID",
              help="Start from a snapshot (mngr snapshot): its agent type, command, environment, labels and "
                   "work dir, in a new work dir.")
@click.option("--source", metavar="PATH",
              help="Copy this directory into a new work dir for the agent first (a git repository with its "
                   "history); the work dir is --work-dir, or $MNGR_HOST_DIR/work/NAME on the host.")
@click.pass_context
@pass_app
def create(
    app: App,
    ctx: click.Context,
    words: tuple[str, ...],
    template_names: tuple[str, ...],
    name_option: str | None,
    type_option: str | None,
    provider_name: str | None,
    host: str | None,
    build_args: tuple[str, ...],
    work_dir: str | None,
    env_pairs: tuple[str, ...],
    label_pairs: tuple[str, ...],
    initial_message: str | None,
    trust_work_dir: bool | None,
    ready_timeout: float,
    connect: bool,
    output_format: str,
    accept_new_host_key: bool,
    idle_timeout: str | None,
    idle_mode: str | None,
    activity_sources: str | None,
    source: str | None,
    snapshot_id: str | None,
) -> None:
    """Create and run an agent on a host.

    \b
    Examples:
      mngr create my-task                     claude (the default type) on the local host
      mngr create my-task codex               codex instead of claude
      mngr create --name job -t command -- python3 train.py
      mngr -- --model opus                    pass arguments to the agent
      mngr create --no-connect --initial-message "fix the flaky test"
      mngr create my-task -T gpu -T team-a    options from [templates.gpu], then [templates.team-a]

    \b
    A template is a [templates.NAME] table in config holding any of: agent_type,
    provider, host, work_dir, env, labels, initial_message, ready_timeout, connect,
    idle_timeout, idle_mode, activity_sources, args (the words after --). Options
    given on the command line win; env and labels merge per key.

    Idle settings belong to the host: they apply to every agent on it (see mngr limit).
    """
    check_format(output_format)
    if len(words) > 2:
        raise UsageError(f"too many arguments: {' '.join(words[2:])!r} (put agent arguments after '--')")
    name = _pick("name", words[0] if words else None, name_option) or generate_name()
    validate_name(name)
    template = templates.resolve(app.config.section("templates"), template_names)

    given = templates.explicit(ctx, _TEMPLATE_PARAMS)
    positional_type = _pick("agent type", words[1] if len(words) > 1 else None, type_option)
    if positional_type:
        given["agent_type"] = positional_type
    given["env"] = parse_pairs(env_pairs, "--env", ENV_NAME_PATTERN, allow_bare=True)
    given["labels"] = parse_pairs(label_pairs, "--label", LABEL_KEY_PATTERN)
    if AGENT_ARGS_KEY in ctx.meta:  # a '--' on the command line, even with nothing after it
        given["args"] = ctx.meta[AGENT_ARGS_KEY]
    options = templates.apply(template, given)

    type_name = options.get("agent_type") or str(app.config.get("default_agent_type"))
    provider_name = options.get("provider")
    host = options.get("host")
    work_dir = options.get("work_dir")
    env: dict[str, str] = options["env"]
    labels: dict[str, str] = options["labels"]
    agent_args: list[str] = options.get("args", [])
    initial_message = options.get("initial_message")
    ready_timeout = float(options.get("ready_timeout", ready_timeout))
    connect = bool(options.get("connect", connect))
    if initial_message is not None and not initial_message.strip():
        raise UsageError("--initial-message is empty")

    agent_type = _configured(app.registry.agent_type, type_name, "default_agent_type",
                             from_config=not options.get("agent_type"))
    launch = agent_type.launch(agent_args)
    native_snapshot = None
    if snapshot_id is not None:
        from .. import snapshots

        native_snapshot = snapshots.native(snapshot_id, app.providers())
        if native_snapshot is not None:  # a provider's own (a docker image): on that provider
            if provider_name and provider_name != native_snapshot[0].name:
                raise UsageError(f"snapshot {snapshot_id} is the {native_snapshot[0].name} provider's: "
                                 f"create from it with --in {native_snapshot[0].name}")
            provider_name = native_snapshot[0].name
    provider = _configured(app.provider, provider_name or str(app.config.get("default_provider")), "default_provider",
                           from_config=not provider_name)
    host_name = host or provider.host_for_new_agent(name)
    provider.check_host(host_name)
    if accept_new_host_key:
        provider.trust_new_host_keys()
    source_root = None
    if options.get("source"):
        source_root = os.path.abspath(os.path.expanduser(options["source"]))
        if not os.path.isdir(source_root):
            raise UsageError(f"--source {options['source']!r} is not a directory")
    if snapshot_id is not None:
        if source_root is not None:
            raise UsageError("give --source or --snapshot, not both")
        if positional_type or "args" in given:
            raise UsageError("--snapshot brings its own agent type and command")
    fresh_dir = source_root is not None or snapshot_id is not None
    trusted = work_dir_trusted(app, fresh_dir) if trust_work_dir is None else trust_work_dir
    # With --source or --snapshot and no --work-dir, the host picks the new work dir (""); a
    # provider whose default is "" (ssh) has the host make an empty one for the agent.
    directory = provider.resolve_work_dir(host_name, work_dir) if work_dir or not fresh_dir else ""
    made_dir = fresh_dir or not directory
    idle_requests = settings_requests(
        options.get("idle_timeout"), options.get("idle_mode"), options.get("activity_sources"),
        provider.idle_defaults(host_name),
    )

    ensure_name_free(app, name)
    app.registry.on_agent("before_create", name, host_name, provider.name)
    made_host = provider.prepare_host(host_name, build_args, snapshot=snapshot_id if native_snapshot else "",
                                      agent=name)
    try:
        if made_host:
            app.registry.on_host("after_create", host_name, provider.name)
        with HostHandle(provider, host_name, app.host_timeout) as handle:
            binary = agent_type.binary(agent_args)
            handle.connect()
            for request in idle_requests:
                if not request.only_if_unset:
                    # Checked before the agent exists: a host that refuses them gets no agent either.
                    handle.set_idle_settings(msgspec.structs.replace(request, dry_run=True))
            type_name = agent_type.name
            spec = None  # a snapshot's: its agent's type, command, env and labels
            # Imported only when used: a plain create should not pay for tar and git plumbing.
            if source_root is not None:
                from ..sync import seed_work_dir

                directory = seed_work_dir(handle, name, source_root, directory)
            elif native_snapshot is not None:  # the work dir came with the host's image
                spec = native_snapshot[1]["spec"]
                directory = directory or native_snapshot[1]["work_dir"]
            elif snapshot_id is not None:
                from .. import snapshots

                spec, directory = snapshots.restore(snapshot_id, handle, name, directory)
            elif not directory:
                directory = handle.prepare_work_dir(name, "")
            if spec is not None:
                type_name, binary = spec["agent_type"], spec.get("binary")
                launch = app.registry.agent_types[type_name].relaunch(spec["command"]) \
                    if type_name in app.registry.agent_types else Launch(spec["command"])
                env = {**spec.get("env", {}), **env}
                labels = {**spec.get("labels", {}), **labels}
            try:
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
                    )
            except KeyboardInterrupt:
                # A second Ctrl-C while the request was out: whether the agent exists is unknown,
                # so its host stays findable (`mngr host forget` drops it if it has none).
                provider.remember(host_name)
                raise Interrupted(f"interrupted while agent {name!r} was being created on {host_name!r}: "
                                  f"`mngr list` shows whether it was") from None
            except BaseException as exc:
                if made_dir and native_snapshot is None:  # the work dir was made for this agent only
                    handle.prepare_work_dir(name, directory, remove=True)
                if isinstance(exc, MissingBinary):
                    raise MngrError(f"agent type {agent_type.name!r} needs {binary!r}, which was not found on PATH "
                                    f"on host {host_name!r}") from exc
                raise
            # Only now: a host whose create failed is not searched by later commands.
            provider.remember(host_name)
            provider.agent_created(host_name, name)
            app.registry.on_agent("after_create", name, host_name, provider.name)
            completion.agent_added(name, host_name, provider.name)
            made = f"agent {name!r} was created on {host_name!r} and runs (mngr destroy {name} removes it)"
            if interrupt.pending:
                print_agents([(info, host_name, provider.name, "created")], output_format, single=True)
                raise Interrupted(f"interrupted: {made}")
            try:
                finished = _finish_create(handle, name, agent_type, idle_requests, connect, initial_message,
                                          ready_timeout)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted before it was ready: {made}") from None
            attaching = finished
            print_agents([(info, host_name, provider.name, "created")], output_format, single=True)
            if attaching:
                handle.note_activity(name, "attach")  # on the channel already open
    except BaseException as exc:
        if made_host and not isinstance(exc, Interrupted):  # made for this agent: nothing of a failed create stays
            provider.discard_host(host_name)
        raise

    if attaching:
        attach(provider, host_name, name)
    elif connect:
        click.echo(f"mngr: not attaching: not a terminal (attach later with: mngr connect {name})", err=True)


def _finish_create(handle: HostHandle, name: str, agent_type: AgentType, idle_requests: list[SetIdleSettings],
                   connect: bool, initial_message: str | None, ready_timeout: float) -> bool:
    """What follows the agent's creation: its idle settings, then waiting for it to take
    input (or sending it the initial message). Whether the terminal will attach to it."""
    for request in idle_requests:
        handle.set_idle_settings(request)
    attaching = connect and sys.stdin.isatty() and sys.stdout.isatty()
    if initial_message is None and not attaching and agent_type.interaction is not None:
        # Nobody will see its screen: a dialog it opened on must fail the create.
        try:
            handle.await_input(name, ready_timeout)
        except MngrError as exc:
            detail = getattr(exc, "detail", str(exc))
            raise MngrError(f"agent {name!r} was created, but is not ready for input: {detail}") from exc
    if initial_message is not None:
        try:
            handle.send_message(
                name,
                initial_message,
                wait_ready=True,
                ready_pattern=agent_type.ready_pattern,
                ready_quiet_seconds=agent_type.ready_quiet_seconds,
                ready_timeout=ready_timeout,
            )
        except MngrError as exc:
            detail = getattr(exc, "detail", str(exc))
            raise MngrError(f"agent {name!r} was created, but the initial message was not sent: {detail}") from exc
    return attaching


def work_dir_trusted(app: App, made_by_mngr: bool) -> bool:
    """Whether the trust_work_dirs setting has an agent's work dir marked trusted for its CLI."""
    setting = app.config.get("trust_work_dirs")
    return setting == "always" or (setting == "made" and made_by_mngr)


def _pick(what: str, positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise UsageError(f"{what} given twice: {positional!r} and {option!r}")
    return positional or option


def _configured(find: Callable[[str], _Found], name: str, key: str, from_config: bool) -> _Found:
    """``find(name)``; when the name came from the config, an unknown one names the key."""
    from ..errors import UnknownAgentType, UnknownProvider

    try:
        return find(name)
    except (UnknownAgentType, UnknownProvider) as exc:
        if not from_config:
            raise
        raise type(exc)(f"{key} in the config: {exc} (mngr config set {key} NAME)") from None
