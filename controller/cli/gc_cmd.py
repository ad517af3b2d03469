"""``mngr gc``: find and remove what interrupted operations left on every reachable host."""

from __future__ import annotations

import sys

import click

from .. import output
from ..agent_lookup import fleet_listing
from ..durations import parse_duration
from ..errors import MngrError
from ..fleet import parallel_map
from ..hosts import HostHandle
from .completion_cmd import provider_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


@click.command("gc", context_settings=_HELP)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--older-than", "older_than", default="10m", show_default=True, metavar="DURATION",
              help="Leave files younger than this alone (a push in progress has part files).")
@click.option("--in", "--provider", "provider_names_", multiple=True, metavar="PROVIDER",
              shell_complete=provider_names, help="Only hosts of this provider. Repeatable.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human", show_default=True)
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
    rows: list[dict[str, str]] = []
    providers = app.providers(provider_names_)
    with fleet_listing(app, providers) as listing:
        answered = [report.handle for report in listing.hosts]
        asked = {(handle.provider_name, handle.host) for handle in listing.handles}
        for provider in providers:  # a host with no agents left (local) may still hold leftovers
            try:
                host = provider.default_host()
            except MngrError:
                continue  # the provider has no host of its own (ssh, docker, modal)
            if (provider.name, host) not in asked:
                extra = HostHandle(provider, host, app.host_timeout)
                listing.handles.append(extra)
                answered.append(extra)

        def clean(handle: HostHandle) -> list[tuple[str, str]] | MngrError:
            try:
                return handle.collect_garbage(dry_run, min_age)
            except MngrError as exc:
                return exc

        results = parallel_map(clean, answered, 16)
        errors = [{"host": error.host, "provider": error.provider, "error": error.error} for error in listing.errors]
        for handle, result in zip(answered, results, strict=True):
            if isinstance(result, MngrError):
                errors.append({"host": handle.host, "provider": handle.provider_name,
                               "error": str(getattr(result, "detail", result))})
                continue
            rows += [{"host": handle.host, "provider": handle.provider_name, "kind": kind, "what": what}
                     for kind, what in result]
    if output_format == "json":
        click.echo(output.to_json({"dry_run": dry_run, "leftovers": rows, "errors": errors}))
    else:
        for row in rows:
            click.echo(f"{'would remove' if dry_run else 'removed'} {row['kind']} on {row['host']}: {row['what']}")
        hosts = len(answered) - sum(isinstance(result, MngrError) for result in results)
        click.echo(f"{len(rows)} leftover(s) {'found' if dry_run else 'removed'} on {hosts} host(s)")
        for error in errors:
            click.echo(f"mngr: error: host {error['host']!r} ({error['provider']}): {error['error']}", err=True)
    if errors:
        sys.exit(1)
