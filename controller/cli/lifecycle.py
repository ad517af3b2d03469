"""``mngr stop``, ``start``, ``destroy`` and ``connect``: act on agents found by name."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from ..commands import agents
from ..commands.agents import AgentsResult
from ..errors import UsageError
from ..fleet import LocatedAgent
from .common import attach, check_format, print_agents
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


def _report(result: AgentsResult, action: str, output_format: str) -> None:
    """Print what was done, each failure on stderr; exit 1 if any agent failed."""
    rows = [(changed.info, changed.host, changed.provider,
             f"{changed.verb}:" if changed.verb.startswith("already") else changed.verb)
            for changed in result.changed]
    print_agents(rows, output_format)
    _report_failures(result, action)


def _report_failures(result: AgentsResult, action: str) -> None:
    for host, provider in result.emptied.removed:
        click.echo(f"removed host {host} ({provider}): its last agent is gone")
    for warning in result.emptied.warnings:
        click.echo(f"mngr: warning: {warning}", err=True)
    for failed in result.failed:
        click.echo(f"mngr: error: {action} {failed.name}: {failed.error}", err=True)
    if result.interrupted:  # what was done is printed above, what was not named
        click.echo("mngr: interrupted", err=True)
        sys.exit(130)
    if result.failed:
        sys.exit(1)


_GRACE = click.option(
    "--grace", metavar="DURATION",
    help="How long the agent's processes get between SIGTERM and SIGKILL (such as 10s or 1m) "
         "[default: stop_grace_seconds in the config, 2s].")


def _grace_seconds(app: App, given: str | None) -> float:
    from ..durations import parse_duration

    if given is None:
        return float(app.config.get("stop_grace_seconds"))
    seconds = parse_duration(given, "--grace")
    if seconds > 3600:
        raise UsageError("--grace: at most an hour")
    return seconds


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--all", "every", is_flag=True, help="Stop every agent that is not stopped yet.")
@click.option("--format", "output_format", default="human", show_default=True, help="human, json, jsonl or a template.")
@_GRACE
@pass_app
def stop(app: App, names: tuple[str, ...], every: bool, output_format: str, grace: str | None) -> None:
    """Stop agents: their processes end, their records stay for `mngr start`.

    Every process an agent started gets SIGTERM, then, after the grace, SIGKILL; an agent
    is reported stopped only once none is left.
    """
    check_format(output_format)
    request = agents.StopRequest(names, every, _grace_seconds(app, grace))
    _report(agents.stop(app, request), "stop", output_format)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--all", "every", is_flag=True, help="Start every stopped agent.")
@click.option("--format", "output_format", default="human", show_default=True, help="human, json, jsonl or a template.")
@pass_app
def start(app: App, names: tuple[str, ...], every: bool, output_format: str) -> None:
    """Start stopped agents again, from their records (same command, work dir and env).

    An agent whose process exited (DONE) is started afresh; a running one is left alone.
    """
    check_format(output_format)
    _report(agents.start(app, agents.StartRequest(names, every)), "start", output_format)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--all", "every", is_flag=True, help="Destroy every agent on every host.")
@click.option("-f", "--force", is_flag=True,
              help="Do not ask for confirmation, and destroy even an agent whose work dir has uncommitted changes "
                   "or commits on no other branch.")
@click.option("--keep-work-dir", is_flag=True,
              help="Keep the work dir even where mngr made it (a worktree or copy, --snapshot, clone, an ssh host's "
                   "default).")
@click.option("--delete-branch", is_flag=True, help="Delete a worktree agent's branch too (kept by default).")
@_GRACE
@pass_app
def destroy(app: App, names: tuple[str, ...], every: bool, force: bool, keep_work_dir: bool, delete_branch: bool,
            grace: str | None) -> None:
    """Stop agents and delete their state (record, environment, event log) from their hosts,
    and the work dirs mngr made for them.

    Asks for confirmation on a terminal; without a terminal it refuses unless -f is given.
    """
    def confirm(found: Sequence[LocatedAgent]) -> None:
        if force:
            return
        if not sys.stdin.isatty():
            raise UsageError("refusing to destroy without confirmation: stdin is not a terminal (use -f)")
        listed = ", ".join(f"{agent.info.name} ({agent.host})" for agent in found)
        click.confirm(f"Destroy {listed}?", abort=True, err=True)

    request = agents.DestroyRequest(names, every, _grace_seconds(app, grace), keep_work_dir, delete_branch, force,
                                    confirm)
    result = agents.destroy(app, request)
    if not result.changed and not result.failed:
        click.echo("no agents to destroy")
    for changed in result.changed:
        click.echo(f"destroyed agent {changed.info.name} on {changed.host}")
    _report_failures(result, "destroy")


@click.command(context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--start", "start_first", is_flag=True, help="Start the agent first if it is stopped.")
@pass_app
def connect(app: App, name: str, start_first: bool) -> None:
    """Attach your terminal to an agent's tmux session (detach with C-b d)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("mngr connect needs a terminal (stdin and stdout must be a tty)")
    from ..commands.connect import ConnectRequest, prepare_connect

    target = prepare_connect(app, ConnectRequest(name, start_first))
    attach(target.provider, target.host, target.name)
