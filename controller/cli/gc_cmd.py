"""``mngr gc``: find and remove what interrupted operations left on every reachable host."""

from __future__ import annotations

import sys

import click

from .. import output, verbosity
from ..commands.gc import GcRequest, collect_garbage
from ..durations import parse_duration
from .completion_cmd import provider_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


@click.command("gc", context_settings=_HELP)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--older-than", "older_than", default="10m", show_default=True, metavar="DURATION",
              help="Leave files younger than this alone (a push in progress has part files).")
@click.option("--in", "--provider", "provider_names_", multiple=True, metavar="PROVIDER",
              shell_complete=provider_names, help="Only hosts of this provider. Repeatable.")
@output.format_option("gc", help="human, json, jsonl or a template such as '{host} {kind} {what}': a record per "
                                   "leftover.")
@pass_app
def gc(app: App, dry_run: bool, older_than: str, provider_names_: tuple[str, ...], output_format: str) -> None:
    """Remove what interrupted operations left on every reachable host.

    \b
    Leftovers: agent dirs without a record, unfinished atomic writes, tmux sessions named
    mngr-NAME with no agent, part files of pushes cut short, half-unpacked helpers.

    Each host is cleaned while no other mngr operation runs on it. Agents, their records and
    their work are never touched.
    """
    min_age = 0.0 if older_than in ("0", "0s") else parse_duration(older_than, "--older-than")
    result = collect_garbage(app, GcRequest(dry_run, min_age, provider_names_))
    errors = [{"host": error.host, "provider": error.provider, "error": error.error} for error in result.errors]
    rows = [{"host": row.host, "provider": row.provider, "kind": row.kind, "what": row.what}
            for row in result.leftovers]

    def human() -> None:
        for row in result.leftovers:
            click.echo(f"{'would remove' if dry_run else 'removed'} {row.kind} on {row.host}: {row.what}")
        if not verbosity.quiet():
            click.echo(f"{len(result.leftovers)} leftover(s) {'found' if dry_run else 'removed'} "
                       f"on {result.hosts_cleaned} host(s)")

    output.emit(output_format, rows, human,
                envelope=lambda leftovers: {"dry_run": dry_run, "leftovers": leftovers, "errors": errors})
    if output_format != "json":
        for error in errors:
            click.echo(f"mngr: error: host {error['host']!r} ({error['provider']}): {error['error']}", err=True)
    if errors:
        sys.exit(1)
