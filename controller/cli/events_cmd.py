"""``mngr events``: what happened to agents on every host, in time order; with --follow, as
it happens, running the notification hooks when an agent starts waiting for the user."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click

from .. import output, verbosity
from ..commands import events as feed
from ..errors import UsageError
from ..records import EVENT_TYPE_FIELDS
from .completion_cmd import agent_names
from .context import App, pass_app
from .targets import agent_test, expand_names, filter_options

_HELP = {"help_option_names": ["-h", "--help"]}
# Fields a --format template may name: every event's, then those of some types.
EVENT_FIELDS = (*feed.LEADING_FIELDS, *EVENT_TYPE_FIELDS)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they happen, until Ctrl-C.")
@click.option("--since", metavar="DURATION|ISO-TIME",
              help="Only events from this long ago (such as 10m, 2h) or this time on [default: every event kept; "
                   "with --follow, from now].")
@click.option("--event", "event_types", multiple=True, metavar="TYPE[,TYPE]",
              help="Only events of these types (repeatable, or comma-separated), such as state,message_sent.")
@output.format_option("events", default="jsonl",
                      help="jsonl, json (not with --follow), human, or a template such as '{time} {agent} {event}'.")
@click.option("--notify-only", "-n", "notify_only", is_flag=True,
              help="With --follow: print nothing, only run the notification hooks ([notify] on_waiting, plugins).")
@filter_options
@pass_app
def events(app: App, names: tuple[str, ...], follow: bool, since: str | None, event_types: tuple[str, ...],
           output_format: str, notify_only: bool, includes: tuple[str, ...], excludes: tuple[str, ...]) -> None:
    """Print what happened to agents on every host, merged in time order.

    Events: created, started, stopped, message_sent, state (RUNNING, WAITING with its
    reason, DONE with its exit status, STOPPED), idle decisions, shutdowns and more: see
    docs/commands/events.md. With NAMES ('-': read from stdin) or --include/--exclude,
    only the events of those agents (as they are when the command starts).

    With --follow, each agent that starts waiting for the user runs the [notify]
    on_waiting command (the event as JSON on its stdin) and the plugins'
    mngr_on_agent_waiting hook: keep one `mngr events --follow -n` running to be notified.
    """
    if notify_only and not follow:
        raise UsageError("--notify-only needs --follow")
    if follow and output_format == "json":
        raise UsageError("--format json is one document: it cannot follow (use jsonl)")
    keep = agent_test(app, includes, excludes)
    expanded, piped = expand_names(names)
    if piped and not expanded:
        return  # nothing came on stdin: no agent, so no event
    request = feed.EventsRequest(names=expanded, keep=keep, event_types=feed.parse_event_types(event_types),
                                 since=feed.since_time(since) if since else "", follow=follow)
    if not follow:
        try:
            result = feed.read_events(app, request)
        except feed.NothingSelected:
            return  # no agent matches: no event to print
        _print_rows(result.events, output_format)
        for host, provider, error in result.errors:
            click.echo(f"mngr: error: {host} ({provider}) did not answer: {error}", err=True)
        if result.errors:
            sys.exit(1)
        return
    from ..notify import WaitingNotifier

    command = str(app.config.section("notify").get("on_waiting") or "")
    notifier = WaitingNotifier(command, app.registry, _warn)

    def deliver(rows: list[dict[str, Any]], history: bool) -> None:
        if not notify_only:
            _print_rows(rows, output_format)
        if not history:
            for row in rows:
                notifier.offer(row)

    feed.follow_events(app, request, deliver, _warn)


def _warn(message: str) -> None:
    verbosity.warn(message)


def _print_rows(rows: list[dict[str, Any]], output_format: str) -> None:
    """The rows, written whole: a Ctrl-C never leaves half a line."""
    if output_format == "human":
        text = "".join(_human(row) + "\n" for row in rows)
    elif output_format in ("json", "jsonl"):
        text = output.render(output_format, rows)
    else:
        text = output.render(output_format, [{**dict.fromkeys(EVENT_FIELDS, ""), **row} for row in rows])
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _human(row: Mapping[str, Any]) -> str:
    detail = " ".join(f"{key}={value}" for key, value in row.items()
                      if key not in feed.LEADING_FIELDS and value not in (None, "", [], {}))
    agent = row["agent"] or "-"
    return f"{row['time']}  {row['host']:<12} {agent:<16} {row['event']:<14} {detail}".rstrip()
