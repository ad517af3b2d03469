"""``mngr schedule``: agents (or messages to one) on a cron schedule, run unattended."""

from __future__ import annotations

import datetime
import sys

import click

from .. import output, schedules, verbosity
from ..commands import schedule as planned
from ..errors import UsageError
from .completion_cmd import agent_names, provider_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


class ScheduleGroup(click.Group):
    """`mngr schedule MESSAGE --cron ...` (no subcommand) adds a schedule."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


@click.group("schedule", cls=ScheduleGroup, context_settings=_HELP)
def schedule() -> None:
    """Create agents, or message one, on a cron schedule.

    \b
    mngr schedule --template my-daily-hook "look at any flaky tests" --cron "0 * * * *"
    mngr schedule list
    mngr schedule run NAME          # now, by hand
    mngr schedule remove NAME

    Adding a schedule puts one line in your crontab that runs `mngr schedule tick` every
    minute; `mngr schedule serve` does the same where there is no cron. A run missed while
    nothing ran schedules is made up once, if it is at most an hour old.
    """


@schedule.command("add", context_settings=_HELP)
@click.argument("message")
@click.option("--cron", "cron", required=True, metavar="EXPR", help="When: a cron expression, such as '0 * * * *'.")
@click.option("--timezone", "--tz", "timezone", metavar="ZONE",
              help="Time zone of the cron expression (default: this machine's).")
@click.option("--name", help="The schedule's name (default: from the template, or the agent, with a number).")
@click.option("--template", "-T", "templates", multiple=True, metavar="NAME",
              help="Create each agent with options from [templates.NAME]. Repeatable.")
@click.option("--agent", "agent", shell_complete=agent_names,
              help="Send the message to this existing agent (started if stopped) instead of creating one.")
@click.option("--in", "--provider", "provider", metavar="PROVIDER", shell_complete=provider_names,
              help="Provider of the agents it creates.")
@click.option("--agent-type", "-t", "agent_type", help="Agent type of the agents it creates.")
@click.option("--no-install", is_flag=True, help="Do not touch the crontab (run `mngr schedule serve` instead).")
@pass_app
def add(app: App, message: str, cron: str, timezone: str | None, name: str | None, templates: tuple[str, ...],
        agent: str | None, provider: str | None, agent_type: str | None, no_install: bool) -> None:
    """Add a schedule: MESSAGE is the initial message of each agent it creates (or the
    message it sends to --agent)."""
    request = planned.AddScheduleRequest(message, cron, timezone, name, templates, agent, provider, agent_type,
                                         install=not no_install)
    result = planned.add_schedule(app, request)
    entry = result.schedule
    click.echo(f"added schedule {entry.name}: {entry.cron} ({entry.timezone}), next at {result.next_at}")
    if not no_install and not result.crontab:
        verbosity.note("no crontab command here: run `mngr schedule serve` to run schedules")


@schedule.command("list", context_settings=_HELP)
@output.format_option("schedule list")
def list_schedules(output_format: str) -> None:
    """Every schedule: when, what, the next and the last run."""
    found = schedules.load()
    rows = []
    for entry in found:
        rows.append({
            "name": entry.name, "cron": entry.cron, "timezone": entry.timezone, "next": planned.next_run(entry),
            "does": f"message {entry.agent}" if entry.agent else "create" + "".join(f" -T {t}" for t in entry.templates),
            "message": entry.message, "last_run": entry.last_run or None,
        })
    if output_format != "human":
        output.emit(output_format, rows, lambda: None,
                    envelope=lambda records: {"schedules": records, "crontab": schedules.cron_installed()})
        return
    if not rows:
        click.echo("no schedules")
        return
    table = [[entry.name, entry.cron, entry.timezone, planned.next_run(entry), str(row["does"]),
              f"{entry.last_run['outcome']} at {entry.last_run['at'][:16]}" if entry.last_run else "-"]
             for entry, row in zip(found, rows, strict=True)]
    click.echo(output.table(["NAME", "CRON", "TIMEZONE", "NEXT", "DOES", "LAST RUN"], table))


@schedule.command("remove", context_settings=_HELP)
@click.argument("names", nargs=-1, required=True)
def remove(names: tuple[str, ...]) -> None:
    """Remove schedules (the crontab line goes with the last one)."""
    for name in names:
        schedules.remove(name)
        click.echo(f"removed schedule {name}")
    if not schedules.load():
        schedules.uninstall_cron()


@schedule.command("run", context_settings=_HELP)
@click.argument("name")
@pass_app
def run(app: App, name: str) -> None:
    """Run a schedule now, by hand (its regular runs are not changed)."""
    result = planned.run_schedule(app, planned.RunScheduleRequest(name))
    click.echo(result["detail"])
    if result["exit_status"] != 0:
        sys.exit(1)


@schedule.command("tick", context_settings=_HELP)
@click.option("--now", "at", metavar="TIME", help="Act as if it were this time (ISO 8601, with an offset).")
def tick(at: str | None) -> None:
    """Run the schedules that came due since the last tick (what cron runs every minute)."""
    when = schedules.now()
    if at:
        try:
            when = datetime.datetime.fromisoformat(at)
        except ValueError as exc:
            raise UsageError(f"--now {at!r} is not an ISO 8601 time") from exc
        if when.tzinfo is None:
            raise UsageError("--now needs a time zone offset, such as 2026-01-10T14:00:00+00:00")
    for result in schedules.tick(when, schedules.mngr_runner):
        click.echo(f"{result['schedule']}: {result['outcome']} (due {result['due']})")


@schedule.command("serve", context_settings=_HELP)
def serve() -> None:
    """Run schedules from this process, every minute, until Ctrl-C (instead of cron)."""
    schedules.serve(schedules.mngr_runner)


@schedule.command("log", context_settings=_HELP)
@click.argument("name", required=False)
@click.option("--tail", type=click.IntRange(1), default=20, show_default=True, help="Only the last N entries.")
@output.format_option("schedule log", default="jsonl")
def log(name: str | None, tail: int, output_format: str) -> None:
    """What the schedules did: every run, skip and failure (a JSON line each by default).

    \b
    Examples:
      mngr schedule log nightly --tail 5
      mngr schedule log --format '{at} {schedule} {outcome} {detail}'
    """
    entries = schedules.log_entries(name)[-tail:]

    def human() -> None:
        for entry in entries:
            line = f"{entry.get('at', '?')}  {entry.get('schedule', '?'):<16} {entry.get('outcome', '?'):<8}"
            click.echo(f"{line} {entry.get('detail') or ''}".rstrip())

    output.emit(output_format, entries, human)
