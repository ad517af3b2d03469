"""``mngr list``: every agent on every host, with filters and several output formats."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import output
from ..commands.listing import ListRequest, list_agents
from ..durations import format_duration
from .common import (
    AGENT_FIELDS,
    LABEL_KEY_PATTERN,
    STATES,
    agent_row,
    host_row,
    parse_pairs,
    state_cell,
)
from .completion_cmd import provider_names
from .context import App, pass_app
from .targets import filter_options


@click.command("list", context_settings={"help_option_names": ["-h", "--help"]})
@output.format_option("list", check_fields=False)
@click.option("--state", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Only agents in this state. Repeatable.")
@click.option("--provider", "--in", "provider_names", multiple=True, metavar="PROVIDER", shell_complete=provider_names,
              help="Only hosts of this provider. Repeatable.")
@click.option("--label", "label_pairs", multiple=True, metavar="KEY=VALUE",
              help="Only agents with this label. Repeatable; all must match.")
@filter_options
@click.option("--sort", "sort_by", metavar="FIELD[,-FIELD]...",
              help="Sort by these fields, the first first; -FIELD from the largest. [default: name]")
@click.option("--fields", "field_list", metavar="FIELD,...",
              help="Only these fields: the columns of the table, the keys of json and jsonl.")
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="At most N agents (after sorting).")
@click.option("--ids", "ids_only", is_flag=True, help="Only the agents' ids, one a line (for `mngr CMD -`).")
@click.option("-a", "--all", "with_archived", is_flag=True, help="Archived agents too (hidden by default).")
@click.option("--archived", "only_archived", is_flag=True, help="Only archived agents.")
@pass_app
def list_command(
    app: App,
    output_format: str,
    states: tuple[str, ...],
    provider_names: tuple[str, ...],
    label_pairs: tuple[str, ...],
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    sort_by: str | None,
    field_list: str | None,
    limit: int | None,
    ids_only: bool,
    with_archived: bool,
    only_archived: bool,
) -> None:
    """List agents on every host, with their state.

    \b
    States:
      RUNNING  alive and producing output recently
      WAITING  alive, no output for a while (usually waiting for input)
      DONE     the agent's process exited; its pane is kept for inspection
      STOPPED  not running; `mngr start NAME` runs it again
      UNKNOWN  something on the host breaks mngr's conventions (see the problem field)

    Archived agents (`mngr archive`) are left out unless -a/--all or --archived is given.

    \b
    Selecting (the language of EXPR: docs/commands/list.md):
      mngr list --include 'state == waiting && idle > 1h'
      mngr list --include "name ~ 'web-*'" --exclude 'labels.keep == yes'
      mngr list --sort host,-age --fields name,state,host,age --limit 10
      mngr list --ids --include 'state == done' | mngr destroy -f -

    With --format json the output is {"agents": [...], "hosts": [...], "errors": [...]}:
    hosts carry each host's idle status (timeout, seconds idle, the activity that last
    counted, the last idle shutdown). A host that cannot be reached appears in errors and
    the exit status is 1. The human format adds a table of hosts when any has idle
    shutdown on or was shut down.
    """
    plugin_fields = app.registry.list_fields(AGENT_FIELDS)
    shape = _shape(output_format, plugin_fields, includes, excludes, sort_by, field_list, ids_only)
    labels = parse_pairs(label_pairs, "--label", LABEL_KEY_PATTERN)
    archived = "only" if only_archived else "include" if with_archived else "hide"
    result = list_agents(app, ListRequest(states, provider_names, labels, archived))
    rows = [agent_row(agent.info, agent.host, agent.provider) for agent in result.agents]
    hosts = [host_row(host.idle, host.host, host.provider) for host in result.hosts]
    errors = [{"host": error.host, "provider": error.provider, "error": error.error} for error in result.errors]
    for row in rows:  # each plugin's field sees mngr's fields only
        row.update({name: compute(dict(row)) for name, compute in plugin_fields.items()})
    rows = shape.apply(rows, limit)
    if ids_only:
        for row in rows:
            click.echo(row["id"])
        for error in errors:
            click.echo(f"mngr: error: host {error['host']!r} ({error['provider']}): {error['error']}", err=True)
    elif shape.fields is not None:
        _print_fields(rows, shape.fields, hosts, errors, output_format)
    else:
        _print(rows, hosts, errors, output_format)
    if errors:
        sys.exit(1)


class _Shape:
    """What --include/--exclude, --sort and --fields ask of the rows, read before any host is."""

    def __init__(self, test: Any, sort_keys: list[Any], fields: list[str] | None) -> None:
        self.test = test
        self.sort_keys = sort_keys
        self.fields = fields

    def apply(self, rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
        if self.test is not None:
            rows = [row for row in rows if self.test(row)]
        if self.sort_keys:
            from ..agent_filter import sorted_rows

            rows = [dict(row) for row in sorted_rows(rows, self.sort_keys)]
        return rows if limit is None else rows[:limit]


def _shape(output_format: str, plugin_fields: dict[str, Any], includes: tuple[str, ...],
           excludes: tuple[str, ...], sort_by: str | None, field_list: str | None, ids_only: bool) -> _Shape:
    from ..errors import UsageError

    if ids_only and (output_format != "human" or field_list is not None):
        raise UsageError("--ids prints ids only: give it without --format and --fields")
    if field_list is not None and output_format not in ("human", "json", "jsonl"):
        raise UsageError("--fields goes with --format human, json or jsonl (a template names its own fields)")
    if field_list is None:  # the fields plugins add are known only now
        output.check_template(output_format, (*AGENT_FIELDS, *plugin_fields))
    if not (includes or excludes or sort_by or field_list):
        return _Shape(None, [], None)  # the language is not even loaded
    from ..agent_filter import Selection, parse_fields, parse_sort

    # a column the language gives no kind of its own (a plugin's) compares as its values do
    columns = (*AGENT_FIELDS, *plugin_fields)
    test = Selection(includes, excludes).compile(columns) if includes or excludes else None
    sort_keys = parse_sort(sort_by, columns) if sort_by else []
    fields = parse_fields(field_list, columns) if field_list else None
    return _Shape(test, sort_keys, fields)


def _print_fields(rows: list[dict[str, Any]], fields: list[str], hosts: list[dict[str, Any]],
                  errors: list[dict[str, str]], output_format: str) -> None:
    from ..agent_filter import field_value

    picked = [{field: field_value(row, field) for field in fields} for row in rows]
    for row in picked:
        if "age" in row and row["age"] is not None:
            row["age"] = round(row["age"], 1)
    # --fields: exactly the keys asked for in each agent (no schema_version: not a whole record)
    if output_format == "json":
        click.echo(output.to_json(output.versioned({"agents": picked, "hosts": hosts, "errors": errors})))
        return
    if output_format == "jsonl":
        for row in picked:
            click.echo(output.to_jsonl(row))
    else:
        cells = [[_cell(field, row[field]) for field in fields] for row in picked]
        click.echo(output.table([field.upper() for field in fields], cells) if cells else "no agents")
    for error in errors:
        click.echo(f"mngr: error: host {error['host']!r} ({error['provider']}): {error['error']}", err=True)


def _cell(field: str, value: Any) -> str:
    if value is None:
        return ""
    if field in ("idle", "age"):
        return format_duration(value)
    if isinstance(value, dict):
        return ",".join(f"{key}={item}" for key, item in sorted(value.items()))
    return str(value)


def _print(
    rows: list[dict[str, Any]], hosts: list[dict[str, Any]], errors: list[dict[str, str]], output_format: str
) -> None:
    if output_format == "json":
        output.emit(output_format, rows, _no_human, envelope=lambda agents: {"agents": agents, "hosts": hosts,
                                                                             "errors": errors})
        return
    if output_format == "jsonl":
        output.emit(output_format, rows, _no_human)
    elif output_format == "human":
        table_rows = [
            [row["name"], state_cell(row), row["type"], row["host"], row["provider"],
             output.age(row["created_at"]), row["work_dir"] or (row["problem"] or "")]
            for row in rows
        ]
        table_rows += [[f"! {e['host']}", "ERROR", "", e["host"], e["provider"], "", e["error"]] for e in errors]
        headers = ["NAME", "STATE", "TYPE", "HOST", "PROVIDER", "AGE", "WORK_DIR"]
        if any(row["urls"] for row in rows):  # their names, for mngr open: the URLs are the hosts'
            headers.append("URLS")
            for cells, row in zip(table_rows, [*rows, *({"urls": {}} for _ in errors)], strict=True):
                cells.append(",".join(row["urls"]))
        if table_rows:
            click.echo(output.table(headers, table_rows))
        else:
            click.echo("no agents")
        watched = [host for host in hosts if host["idle_timeout"] is not None or host["last_shutdown_at"]]
        if watched:
            click.echo()
            click.echo(output.table(["HOST", "PROVIDER", "IDLE", "TIMEOUT", "LAST ACTIVITY", "LAST SHUTDOWN"],
                                    [_host_cells(host) for host in watched]))
        return
    else:
        output.emit(output_format, rows, _no_human)
    for error in errors:
        click.echo(f"mngr: error: host {error['host']!r} ({error['provider']}): {error['error']}", err=True)


def _no_human() -> None:
    raise AssertionError("the human format is printed by _print")


def _host_cells(host: dict[str, Any]) -> list[str]:
    last = host["last_activity"] or "-"
    if host["last_activity_agent"]:
        last += f" ({host['last_activity_agent']})"
    shutdown = "-"
    if host["last_shutdown_at"]:
        shutdown = f"{output.age(host['last_shutdown_at'])} ago: {host['last_shutdown_reason']}"
    timeout = format_duration(host["idle_timeout"]) if host["idle_timeout"] is not None else "off"
    return [host["host"], host["provider"], format_duration(host["idle_seconds"]), timeout, last, shutdown]
