"""``mngr create``: start an agent on a host (the default command)."""

from __future__ import annotations

import os
import sys

import click

from .. import agent_urls, templates, verbosity
from .. import extra_windows as extra_window_specs
from ..commands.create import CreatedThenInterrupted, CreateRequest
from ..commands.create import create as create_agent
from ..env_options import agent_env
from ..errors import UsageError
from ..idle_options import MODES_HELP, SOURCES_HELP
from ..names import generate_name, validate_name
from ..output import format_option
from ..uploads import collect as collect_uploads
from .common import (
    ENV_NAME_PATTERN,
    LABEL_KEY_PATTERN,
    attach,
    parse_pairs,
    print_agents,
)
from .completion_cmd import agent_type_names, host_names, provider_names
from .context import App, pass_app

AGENT_ARGS_KEY = "mngr.agent_args"

# Template key -> parameter of this command; these options win over templates when given.
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
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Run the agent in this directory, in place (it must exist on the host); with --transfer or "
                   "--source, where its new worktree or copy goes. Default: see --transfer.")
@click.option("--transfer", type=click.Choice(["worktree", "copy", "none"]),
              help="How the agent gets its work dir. worktree: a git worktree of your repository on a branch of its "
                   "own (local host); copy: a new dir on the host with the repository's history on that branch (outside "
                   "git, a copy of the directory); none: in place (the current directory locally, the host's own "
                   "default elsewhere). Default: from inside a git repository, worktree locally and copy on other "
                   "hosts; outside one, copy (refused for the home dir or a dir of over 10,000 files or 512 MiB).")
@click.option("--branch", metavar="BRANCH", help="The agent's branch (default: mngr/NAME); refused if it exists, "
                                                 "unless --reuse-branch.")
@click.option("--reuse-branch", is_flag=True, help="Work on the existing branch --branch (or mngr/NAME) as it is.")
@click.option("--clean", is_flag=True,
              help="Leave your uncommitted and untracked changes behind: the worktree or copy starts from the commit.")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="Environment variable for the agent; KEY alone passes your current value. Repeatable.")
@click.option("--env-file", "env_files", multiple=True, metavar="PATH",
              help="Environment variables for the agent from a dotenv file (KEY=VALUE lines, # comments, quoted "
                   "values). Repeatable; --pass-env and --env win over it.")
@click.option("--upload-file", "upload_specs", multiple=True, metavar="PATH[:DEST]",
              help="Copy a local file or directory onto the host before the agent starts, mode bits kept. DEST: "
                   "relative to the work dir, absolute, or ~/... on the host (default: its name in the work dir; "
                   "ending in /: into that dir). A file there already is refused unless --upload-overwrite. "
                   "Repeatable.")
@click.option("--upload-overwrite", is_flag=True, help="Let --upload-file replace files that are there already.")
@click.option("--extra-window", "window_specs", multiple=True, metavar="NAME=CMD",
              help="Another window in the agent's tmux session running CMD in the work dir with the agent's "
                   "environment (a dev server, a test watcher); stop ends it, start brings it back. Repeatable.")
@click.option("--port", "port_specs", multiple=True, metavar="PORT[:NAME]",
              help="A port the agent serves on its host (NAME defaults to the port): mngr list shows its URL, "
                   "mngr open NAME [NAME|PORT] opens it. Repeatable.")
@click.option("--reuse", is_flag=True,
              help="If an agent of this name exists and matches these options (host, type, command, in-place "
                   "work dir, labels, extra windows), print it (starting it if stopped) instead of creating one; "
                   "if it differs, an error says how.")
@click.option("--pass-env", "pass_names", multiple=True, metavar="VAR",
              help="Pass this variable from your environment to the agent (an error if it is not set). Repeatable.")
@click.option("--label", "label_pairs", multiple=True, metavar="KEY=VALUE", help="Label to attach to the agent (key: up to 63 letters, digits and _.-, starting with a letter or "
                   "digit). Repeatable.")
@click.option("--initial-message", help="Message to send once the agent is ready for input.")
@click.option("--trust-work-dir/--no-trust-work-dir", "trust_work_dir", default=None,
              help="Mark the work dir trusted in the agent CLI's config, so it does not ask. Default: the "
                   "trust_work_dirs setting (made: only work dirs mngr made: a worktree, a copy or a snapshot); on a host "
                   "other than the local one, a claude or codex agent's own config trusts it unless told not to.")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the agent to be ready for the initial message.")
@click.option("--connect/--no-connect", default=True, help="Attach to the agent after creating it (default: attach when on a terminal).")
@format_option("create")
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
@click.option("--source", metavar="PATH|AGENT|GIT-URL",
              help="Make the agent's worktree or copy from this directory instead of the current one (outside git: "
                   "a copy); from another agent's work dir as it is now; or from a git URL the host clones. It goes "
                   "to --work-dir, or $MNGR_HOST_DIR/work/NAME on the host.")
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
    transfer: str | None,
    branch: str | None,
    reuse_branch: bool,
    clean: bool,
    env_pairs: tuple[str, ...],
    env_files: tuple[str, ...],
    pass_names: tuple[str, ...],
    upload_specs: tuple[str, ...],
    upload_overwrite: bool,
    window_specs: tuple[str, ...],
    port_specs: tuple[str, ...],
    reuse: bool,
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
    A template is a [templates.NAME] table in config holding any of: agent_type,
    provider, host, work_dir, env, labels, initial_message, ready_timeout, connect,
    idle_timeout, idle_mode, activity_sources, args (the words after --). Options
    given on the command line win; env and labels merge per key.

    Idle settings belong to the host: they apply to every agent on it (see mngr limit).
    """
    if len(words) > 2:
        raise UsageError(f"too many arguments: {' '.join(words[2:])!r} (put agent arguments after '--')")
    name = _pick("name", words[0] if words else None, name_option) or generate_name()
    validate_name(name)
    template = templates.resolve(app.config.section("templates"), template_names)

    given = templates.explicit(ctx, _TEMPLATE_PARAMS)
    positional_type = _pick("agent type", words[1] if len(words) > 1 else None, type_option)
    if positional_type:
        given["agent_type"] = positional_type
    given["env"] = agent_env(env_files, pass_names, parse_pairs(env_pairs, "--env", ENV_NAME_PATTERN, allow_bare=True),
                             os.environ)
    given["labels"] = parse_pairs(label_pairs, "--label", LABEL_KEY_PATTERN)
    if port_specs:
        given["ports"] = agent_urls.parse_ports(port_specs)
    if AGENT_ARGS_KEY in ctx.meta:  # a '--' on the command line, even with nothing after it
        given["args"] = ctx.meta[AGENT_ARGS_KEY]
    options = templates.apply(template, given)
    extra_windows = extra_window_specs.parse(window_specs) if window_specs else None
    urls = options.get("ports") or None  # {name: URL}: the templates' with --port's over them
    if upload_overwrite and not upload_specs:
        raise UsageError("--upload-overwrite needs --upload-file")
    # Read now: a file that cannot be read stops the create before anything is made.
    uploads = collect_uploads(upload_specs) if upload_specs else None

    connect = bool(options.get("connect", connect))
    request = CreateRequest(
        name=name,
        # A snapshot brings its own type: a template's is not the user's choice.
        agent_type=positional_type if snapshot_id is not None else options.get("agent_type"),
        provider=options.get("provider"),
        host=options.get("host"),
        agent_args=options.get("args", []),
        args_given="args" in given,
        build_args=build_args,
        work_dir=options.get("work_dir"),
        env=options["env"],
        labels=options["labels"],
        initial_message=options.get("initial_message"),
        ready_timeout=float(options.get("ready_timeout", ready_timeout)),
        attaching=connect and sys.stdin.isatty() and sys.stdout.isatty(),
        trust_work_dir=trust_work_dir,
        accept_new_host_key=accept_new_host_key,
        idle_timeout=options.get("idle_timeout"),
        idle_mode=options.get("idle_mode"),
        activity_sources=options.get("activity_sources"),
        source=options.get("source"),
        snapshot=snapshot_id,
        transfer=transfer,
        branch=branch,
        reuse_branch=reuse_branch,
        clean=clean,
        extra_windows=extra_windows,
        urls=urls,
        uploads=uploads,
        overwrite_uploads=upload_overwrite,
        reuse=reuse,
    )
    try:
        result = create_agent(app, request)
    except CreatedThenInterrupted as exc:
        for warning in exc.result.warnings:
            verbosity.warn(warning)
        print_agents([(exc.result.info, exc.result.host, exc.result.provider, "created")], output_format,
                     single=True)
        raise
    for warning in result.warnings:
        verbosity.warn(warning)
    print_agents([(result.info, result.host, result.provider, result.verb)], output_format, single=True)
    if request.attaching:
        attach(app.provider(result.provider), result.host, name)
    elif connect:
        verbosity.note(f"not attaching: not a terminal (attach later with: mngr connect {name})")


def _pick(what: str, positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise UsageError(f"{what} given twice: {positional!r} and {option!r}")
    return positional or option
