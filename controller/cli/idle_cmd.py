"""``mngr limit`` and ``mngr keepalive``: a host's idle settings, its watcher's decisions, leases."""

from __future__ import annotations

from typing import Any

import click

from .. import output
from ..channel.protocol import IdleSettings
from ..commands import idle
from ..durations import format_duration, parse_duration
from ..idle_options import MODES_HELP, SOURCES_HELP
from .common import host_row
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


@click.command("limit", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--idle-timeout", metavar="DURATION",
              help="Stop the host's agents after this long without activity: seconds, or 30s, 5m, 1h.")
@click.option("--idle-mode", metavar="MODE", help=f"Which activity keeps the host up: {MODES_HELP}.")
@click.option("--activity-sources", metavar="LIST", help=f"Exactly which activity counts: {SOURCES_HELP}.")
@click.option("--stop-grace", metavar="DURATION",
              help="With every agent stopped or exited, stop the host after this long (default 30s).")
@click.option("--log", "log_lines", type=click.IntRange(0, 10000), default=0, metavar="N",
              help="Also print the watcher's last N decisions.")
@output.format_option("limit")
@pass_app
def limit(
    app: App,
    name: str,
    idle_timeout: str | None,
    idle_mode: str | None,
    activity_sources: str | None,
    stop_grace: str | None,
    log_lines: int,
    output_format: str,
) -> None:
    """Show or change the idle settings of the host that agent NAME runs on.

    The settings belong to the host, so they apply to every agent on it. The timeout
    counts from the newest activity that counts, or from when it was set.
    """
    request = idle.LimitRequest(name, idle_timeout, idle_mode, activity_sources, stop_grace, log_lines)
    result = idle.limit(app, request)
    _print(result.settings, host_row(result.idle, result.host, result.provider), result.log, output_format)


def _print(settings: IdleSettings, report: dict[str, Any], log: str, output_format: str) -> None:
    if output_format != "human":
        decisions = [output.from_json_line(line) for line in log.splitlines() if line.strip()]
        record = {
            **report,
            "idle_timeout": settings.timeout if settings.sources else None,
            "activity_sources": settings.sources,
            "idle_command": settings.command,
            "stop_grace": settings.stop_grace,
            "decisions": decisions,
        }
        output.emit(output_format, [record], lambda: None, single=True)
        return
    enabled = settings.timeout is not None and settings.sources
    lines = [
        ("host", f"{report['host']} ({report['provider']})"),
        ("idle timeout", format_duration(settings.timeout) if enabled else "off"),
        ("idle mode", settings.mode),
        ("activity sources", ", ".join(settings.sources) or "none"),
        ("idle command", settings.command or "none (the agents are stopped)"),
        ("idle for", format_duration(report["idle_seconds"])),
        ("last activity", (report["last_activity"] or "-")
         + (f" ({report['last_activity_agent']})" if report["last_activity_agent"] else "")),
        ("last shutdown", f"{report['last_shutdown_at']}: {report['last_shutdown_reason']}"
         if report["last_shutdown_at"] else "never"),
    ]
    for label, value in lines:
        click.echo(f"{label + ':':<18}{value}")
    if log:
        click.echo()
        for line in log.splitlines():
            entry = output.from_json_line(line)
            if isinstance(entry, dict):
                click.echo(f"{entry.get('time', '?')}  {entry.get('decision', '?'):<11} {entry.get('message') or entry.get('reason', '')}")


@click.command("keepalive", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--for", "duration", required=True, metavar="DURATION",
              help="How long the host counts as active from now: seconds, or 30s, 5m, 2h.")
@pass_app
def keepalive(app: App, name: str, duration: str) -> None:
    """Keep the host of agent NAME from stopping for idleness for a while (a lease).

    A longer lease already in place is kept. The lease counts as activity in the idle
    modes io, user, agent, ssh and run (not in start, create, boot or disabled).
    """
    result = idle.keepalive(app, idle.KeepaliveRequest(name, parse_duration(duration, "--for")))
    click.echo(f"{result.name}: host {result.host} counts as active for the next {format_duration(result.seconds)}")
