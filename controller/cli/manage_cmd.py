"""``mngr rename``, ``label``, ``archive``, ``unarchive`` and ``cleanup``: keeping a fleet of
agents in order."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .. import output
from ..commands import agents
from ..commands.agents import Bulk
from ..errors import UsageError
from ..fleet import LocatedAgent
from .common import LABEL_KEY_PATTERN, STATES, agent_row, parse_pairs
from .completion_cmd import agent_names
from .context import App, pass_app
from .lifecycle import NAMES_ARGUMENT, grace_seconds, report, result_format
from .targets import dry_run_option, filter_options, on_error_option, read_targets

_HELP = {"help_option_names": ["-h", "--help"]}
@click.command(context_settings=_HELP)
@click.argument("old", metavar="NAME", shell_complete=agent_names)
@click.argument("new", metavar="NEW_NAME")
@output.format_option("rename", help="human, json, jsonl or a template such as '{old_name} {name}'.")
@pass_app
def rename(app: App, old: str, new: str, output_format: str) -> None:
    """Give an agent a new name; a running agent goes on running.

    Its tmux session is renamed in place, and message, connect, capture, transcript and
    every other command find it by the new name at once. Its event log, output and work
    dir stay as they are; a worktree agent keeps its branch (mngr/OLD_NAME). The new name
    is refused if an agent of that name exists on any host. Schedules that message the
    agent follow it to its new name.
    """
    from ..commands.rename import rename as rename_agent

    result = rename_agent(app, old, new)
    for warning in result.warnings:
        click.echo(f"mngr: warning: {warning}", err=True)
    row = agent_row(result.info, result.host, result.provider)
    row.update(old_name=result.old_name, schedules=result.schedules)

    def human() -> None:
        click.echo(f"renamed agent {result.old_name} to {row['name']} on {row['host']} [{row['state']}]")
        for schedule in result.schedules:
            click.echo(f"schedule {schedule} now messages {row['name']}")

    output.emit(output_format, [row], human, single=True)


@click.command(context_settings=_HELP)
@NAMES_ARGUMENT
@click.option("--all", "every", is_flag=True, help="Label every agent.")
@click.option("-a", "--add", "add_pairs", multiple=True, metavar="KEY=VALUE",
              help="Set this label (a key it has gets the new value). Repeatable.")
@click.option("-r", "--remove", "remove_keys", multiple=True, metavar="KEY",
              help="Drop the label with this key (one the agent lacks is no error). Repeatable.")
@filter_options
@result_format("label")
@dry_run_option
@on_error_option
@pass_app
def label(app: App, names: tuple[str, ...], every: bool, add_pairs: tuple[str, ...], remove_keys: tuple[str, ...],
          includes: tuple[str, ...], excludes: tuple[str, ...], output_format: str, dry_run: bool,
          on_error: str) -> None:
    """Add, change or remove agents' labels.

    Labels are KEY=VALUE pairs that listings show and filters select on
    (--include 'labels.team == web'). Agents are named, read from stdin (`-`) or selected
    with --include/--exclude; all are labelled in parallel.
    """
    add = parse_pairs(add_pairs, "--add", LABEL_KEY_PATTERN)
    for key in remove_keys:
        if not LABEL_KEY_PATTERN.match(key):
            raise UsageError(f"invalid key {key!r} in --remove")
    if not add and not remove_keys:
        raise UsageError("give a label to --add (KEY=VALUE) or to --remove (KEY)")
    both = sorted(set(add) & set(remove_keys))
    if both:
        raise UsageError(f"label {both[0]!r} is both added and removed")
    request = agents.LabelRequest(add=add, remove=list(dict.fromkeys(remove_keys)),
                                  targets=read_targets(app, names, every, includes, excludes),
                                  bulk=Bulk(dry_run, on_error))
    report(agents.label(app, request), "label", output_format)


_ARCHIVE_GRACE = click.option(
    "--grace", metavar="DURATION",
    help="How long a running agent's processes get between SIGTERM and SIGKILL as it is stopped "
         "[default: stop_grace_seconds in the config, 2s].")


@click.command(context_settings=_HELP)
@NAMES_ARGUMENT
@click.option("--all", "every", is_flag=True, help="Archive every agent not archived yet.")
@filter_options
@result_format("archive")
@_ARCHIVE_GRACE
@dry_run_option
@on_error_option
@pass_app
def archive(app: App, names: tuple[str, ...], every: bool, includes: tuple[str, ...], excludes: tuple[str, ...],
            output_format: str, grace: str | None, dry_run: bool, on_error: str) -> None:
    """Put agents out of the way: stopped, kept, and left out of `mngr list`.

    A running agent is stopped first (as by `mngr stop`). Its record, work dir, branch and
    history stay; `mngr list -a` or `--archived` shows it, `mngr start` refuses it until
    `mngr unarchive`, and `mngr cleanup` leaves it alone. Agents are named, read from stdin
    (`-`) or selected with --include/--exclude (from the agents not archived yet).
    """
    request = agents.ArchiveRequest(archived=True, grace=grace_seconds(app, grace),
                                    targets=read_targets(app, names, every, includes, excludes),
                                    bulk=Bulk(dry_run, on_error))
    report(agents.archive(app, request), "archive", output_format)


@click.command(context_settings=_HELP)
@NAMES_ARGUMENT
@click.option("--all", "every", is_flag=True, help="Unarchive every archived agent.")
@filter_options
@result_format("unarchive")
@dry_run_option
@on_error_option
@pass_app
def unarchive(app: App, names: tuple[str, ...], every: bool, includes: tuple[str, ...], excludes: tuple[str, ...],
              output_format: str, dry_run: bool, on_error: str) -> None:
    """Bring archived agents back into listings; they stay stopped until `mngr start`.

    Agents are named, read from stdin (`-`) or selected with --include/--exclude (from the
    archived agents).
    """
    request = agents.ArchiveRequest(archived=False, targets=read_targets(app, names, every, includes, excludes),
                                    bulk=Bulk(dry_run, on_error))
    report(agents.archive(app, request), "unarchive", output_format)


@click.command(context_settings=_HELP)
@click.option("--older-than", metavar="DURATION", help="Agents created longer ago than this (such as 7d or 12h).")
@click.option("--idle-for", metavar="DURATION",
              help="Agents whose process runs and has been quiet at least this long (such as 2h).")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Agents in this state. Repeatable: any of them.")
@click.option("--action", type=click.Choice(("stop", "destroy")), default="destroy", show_default=True,
              help="What to do to each agent selected.")
@filter_options
@click.option("-y", "--yes", is_flag=True, help="Destroy without asking for confirmation.")
@click.option("-f", "--force", is_flag=True,
              help="Do not ask, and destroy even an agent whose work dir has uncommitted changes or commits "
                   "on no other branch.")
@click.option("--keep-work-dir", is_flag=True, help="destroy: keep the work dirs mngr made.")
@click.option("--delete-branch", is_flag=True, help="destroy: delete worktree agents' branches too.")
@click.option("--grace", metavar="DURATION",
              help="How long agents' processes get between SIGTERM and SIGKILL "
                   "[default: stop_grace_seconds in the config, 2s].")
@result_format("cleanup")
@dry_run_option
@on_error_option
@pass_app
def cleanup(app: App, older_than: str | None, idle_for: str | None, states: tuple[str, ...], action: str,
            includes: tuple[str, ...], excludes: tuple[str, ...], yes: bool, force: bool, keep_work_dir: bool,
            delete_branch: bool, grace: str | None, output_format: str, dry_run: bool, on_error: str) -> None:
    """Stop or destroy the agents that are old, idle or in a state, all at once.

    The conditions given must all hold (with --include/--exclude, too). Archived agents
    are left alone. Destroy asks for confirmation on a terminal (-y or -f to skip it,
    needed without a terminal) and refuses, as `mngr destroy` does, to lose work in a work
    dir mngr made (uncommitted changes, commits on no other branch) unless -f. --dry-run
    lists what would be done and changes nothing.
    """
    from ..commands.cleanup import CleanupRequest, check_criteria, selection
    from ..commands.cleanup import cleanup as clean_up
    from ..durations import parse_duration

    criteria = selection(None if older_than is None else parse_duration(older_than, "--older-than"),
                         None if idle_for is None else parse_duration(idle_for, "--idle-for"), states)
    check_criteria(criteria, includes)
    targets = read_targets(app, (), False, (*includes, *criteria), (*excludes, "archived"))

    def confirm(found: Sequence[LocatedAgent]) -> None:
        if yes or force:
            return
        if not sys.stdin.isatty():
            raise UsageError("refusing to destroy without confirmation: stdin is not a terminal (use -y)")
        listed = ", ".join(f"{agent.info.name} ({agent.host})" for agent in found)
        click.confirm(f"Destroy {listed}?", abort=True, err=True)

    request = CleanupRequest(action, targets, Bulk(dry_run, on_error), grace=grace_seconds(app, grace), force=force,
                             keep_work_dir=keep_work_dir, delete_branch=delete_branch,
                             confirm=confirm if action == "destroy" else None)
    report(clean_up(app, request), action, output_format)
