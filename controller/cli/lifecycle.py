"""``mngr stop``, ``start``, ``destroy`` and ``connect``: act on agents found by name."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from .. import output, verbosity
from ..commands import agents
from ..commands.agents import AgentsResult, Bulk
from ..errors import UsageError
from ..fleet import LocatedAgent
from .common import agent_row, attach
from .completion_cmd import agent_names
from .context import App, pass_app
from .targets import dry_run_option, filter_options, on_error_option, read_targets

_HELP = {"help_option_names": ["-h", "--help"]}
NAMES_ARGUMENT = click.argument("names", nargs=-1, metavar="[NAME|-]...", shell_complete=agent_names)


def report(result: AgentsResult, action: str, output_format: str) -> None:
    """Print what was done to each agent (in json and jsonl, also each failure, with
    ``result`` "failed"), each failure on stderr; exit 1 if any agent failed."""
    rows: list[dict[str, Any]] = []
    for changed in result.changed:
        row = agent_row(changed.info, changed.host, changed.provider)
        row.update(result=changed.verb, error=None)
        rows.append(row)
    failed_rows = [{"name": failed.name, "host": failed.host, "provider": failed.provider,
                    "result": "failed", "error": failed.error} for failed in result.failed]
    def human() -> None:
        if not rows and not failed_rows:
            click.echo(f"no agents to {action}")
        for row in rows:
            verb = f"{row['result']}:" if row["result"].startswith("already") else row["result"]
            click.echo(f"{verb} agent {row['name']} ({row['type']}) on {row['host']} [{row['state']}]")

    # a template renders the agents acted on; a failure is on stderr
    output.emit(output_format, rows + failed_rows if output_format in ("json", "jsonl") else rows, human)
    _report_failures(result, action, output_format)


def _report_failures(result: AgentsResult, action: str, output_format: str) -> None:
    for host, provider in result.emptied.removed:
        output.say(output_format, f"removed host {host} ({provider}): its last agent is gone")
    for warning in result.emptied.warnings:
        verbosity.warn(warning)
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


def grace_seconds(app: App, given: str | None) -> float:
    from ..durations import parse_duration

    if given is None:
        return float(app.config.get("stop_grace_seconds"))
    seconds = parse_duration(given, "--grace")
    if seconds > 3600:
        raise UsageError("--grace: at most an hour")
    return seconds


def result_format(command: str):  # type: ignore[no-untyped-def]
    return output.format_option(command, help="human, json, jsonl or a template such as '{name} {result}'; json "
                                              "and jsonl have each agent's result (and error).")


@click.command(context_settings=_HELP)
@NAMES_ARGUMENT
@click.option("--all", "every", is_flag=True, help="Stop every agent that is not stopped yet.")
@filter_options
@result_format("stop")
@_GRACE
@dry_run_option
@on_error_option
@pass_app
def stop(app: App, names: tuple[str, ...], every: bool, includes: tuple[str, ...], excludes: tuple[str, ...],
         output_format: str, grace: str | None, dry_run: bool, on_error: str) -> None:
    """Stop agents: their processes end, their records stay for `mngr start`.

    Every process an agent started gets SIGTERM, then, after the grace, SIGKILL; an agent
    is reported stopped only once none is left. Agents are named, read from stdin (`-`,
    one a line, as `mngr list --ids` prints them) or selected with --include/--exclude
    (from every agent not stopped yet when no name is given); all are stopped in parallel.
    """
    request = agents.StopRequest(grace=grace_seconds(app, grace),
                                 targets=read_targets(app, names, every, includes, excludes),
                                 bulk=Bulk(dry_run, on_error))
    report(agents.stop(app, request), "stop", output_format)


@click.command(context_settings=_HELP)
@NAMES_ARGUMENT
@click.option("--all", "every", is_flag=True, help="Start every stopped agent.")
@filter_options
@result_format("start")
@dry_run_option
@on_error_option
@pass_app
def start(app: App, names: tuple[str, ...], every: bool, includes: tuple[str, ...], excludes: tuple[str, ...],
          output_format: str, dry_run: bool, on_error: str) -> None:
    """Start stopped agents again, from their records (same command, work dir and env).

    An agent whose process exited (DONE) is started afresh; a running one is left alone.
    Agents are named, read from stdin (`-`) or selected with --include/--exclude (from
    every stopped agent when no name is given).
    """
    request = agents.StartRequest(targets=read_targets(app, names, every, includes, excludes),
                                  bulk=Bulk(dry_run, on_error))
    report(agents.start(app, request), "start", output_format)


@click.command(context_settings=_HELP)
@NAMES_ARGUMENT
@click.option("--all", "every", is_flag=True, help="Destroy every agent on every host.")
@filter_options
@click.option("-f", "--force", is_flag=True,
              help="Do not ask for confirmation, and destroy even an agent whose work dir has uncommitted changes "
                   "or commits on no other branch.")
@click.option("--keep-work-dir", is_flag=True,
              help="Keep the work dir even where mngr made it (a worktree or copy, --snapshot, clone, an ssh host's "
                   "default).")
@click.option("--delete-branch", is_flag=True, help="Delete a worktree agent's branch too (kept by default).")
@_GRACE
@result_format("destroy")
@dry_run_option
@on_error_option
@pass_app
def destroy(app: App, names: tuple[str, ...], every: bool, includes: tuple[str, ...], excludes: tuple[str, ...],
            force: bool, keep_work_dir: bool, delete_branch: bool, grace: str | None, output_format: str,
            dry_run: bool, on_error: str) -> None:
    """Stop agents and delete their state (record, environment, event log) from their hosts,
    and the work dirs mngr made for them.

    Asks for confirmation on a terminal; without a terminal it refuses unless -f is given
    (names read from stdin with `-` leave no terminal to ask on: give -f). Agents are
    named, read from stdin or selected with --include/--exclude (from every agent when no
    name is given). --dry-run lists what would be destroyed and needs no confirmation.
    """
    def confirm(found: Sequence[LocatedAgent]) -> None:
        if force:
            return
        if not sys.stdin.isatty():
            raise UsageError("refusing to destroy without confirmation: stdin is not a terminal (use -f)")
        listed = ", ".join(f"{agent.info.name} ({agent.host})" for agent in found)
        click.confirm(f"Destroy {listed}?", abort=True, err=True)

    request = agents.DestroyRequest(grace=grace_seconds(app, grace), keep_work_dir=keep_work_dir,
                                    delete_branch=delete_branch, force=force, confirm=confirm,
                                    targets=read_targets(app, names, every, includes, excludes),
                                    bulk=Bulk(dry_run, on_error))
    result = agents.destroy(app, request)
    if output_format != "human" or dry_run:
        report(result, "destroy", output_format)
        return
    if not result.changed and not result.failed:
        click.echo("no agents to destroy")
    for changed in result.changed:
        click.echo(f"destroyed agent {changed.info.name} on {changed.host}")
    _report_failures(result, "destroy", output_format)


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
