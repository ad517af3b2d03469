"""``mngr stop``, ``start``, ``destroy`` and ``connect``: act on agents found by name."""

from __future__ import annotations

import sys

import click

from ..errors import MngrError, UsageError
from ..fleet import FleetListing, LocatedAgent, list_fleet, locate
from .common import attach, print_agents
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


def _find(app: App, names: tuple[str, ...], every: bool) -> tuple[FleetListing, list[LocatedAgent]]:
    if every and names:
        raise UsageError("give agent names or --all, not both")
    if not every and not names:
        raise UsageError("name at least one agent (or use --all)")
    listing = list_fleet(app.providers(), app.quiet_seconds, app.host_timeout)
    try:
        agents = [a for a in listing.agents if a.info.state != "UNKNOWN"] if every else locate(listing, names)
    except BaseException:
        listing.close()
        raise
    return listing, agents


def _each(agents: list[LocatedAgent], action: str, run: object) -> None:
    """Run ``run(agent)`` for every agent; report each failure, exit 1 if any failed."""
    failed = 0
    for agent in agents:
        try:
            run(agent)  # type: ignore[operator]
        except MngrError as exc:
            failed += 1
            click.echo(f"mngr: error: {action} {agent.info.name}: {getattr(exc, 'detail', exc)}", err=True)
    if failed:
        sys.exit(1)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Stop every agent on every host.")
@click.option("--format", "output_format", default="human", show_default=True, help="human, json, jsonl or a template.")
@pass_app
def stop(app: App, names: tuple[str, ...], every: bool, output_format: str) -> None:
    """Stop agents: their processes end, their records stay for `mngr start`."""
    listing, agents = _find(app, names, every)
    with listing:
        def run(agent: LocatedAgent) -> None:
            info = agent.handle.stop_agent(agent.info.name)
            print_agents([(info, agent.host, agent.provider)], output_format, verb="stopped")

        _each(agents, "stop", run)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Start every stopped agent on every host.")
@click.option("--format", "output_format", default="human", show_default=True, help="human, json, jsonl or a template.")
@pass_app
def start(app: App, names: tuple[str, ...], every: bool, output_format: str) -> None:
    """Start stopped agents again, from their records (same command, work dir and env)."""
    listing, agents = _find(app, names, every)
    with listing:
        def run(agent: LocatedAgent) -> None:
            info = agent.handle.start_agent(agent.info.name)
            print_agents([(info, agent.host, agent.provider)], output_format, verb="started")

        _each(agents, "start", run)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Destroy every agent on every host.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def destroy(app: App, names: tuple[str, ...], every: bool, force: bool) -> None:
    """Stop agents and delete their state (record, event log, output) from their hosts.

    Asks for confirmation on a terminal; without a terminal it refuses unless -f is given.
    """
    listing, agents = _find(app, names, every)
    with listing:
        if not agents:
            click.echo("no agents to destroy")
            return
        if not force:
            if not sys.stdin.isatty():
                raise UsageError("refusing to destroy without confirmation: stdin is not a terminal (use -f)")
            listed = ", ".join(f"{a.info.name} ({a.host})" for a in agents)
            click.confirm(f"Destroy {listed}?", abort=True, err=True)

        def run(agent: LocatedAgent) -> None:
            agent.handle.destroy_agent(agent.info.name)
            click.echo(f"destroyed agent {agent.info.name} on {agent.host}")

        _each(agents, "destroy", run)


@click.command(context_settings=_HELP)
@click.argument("name")
@pass_app
def connect(app: App, name: str) -> None:
    """Attach your terminal to an agent's tmux session (detach with C-b d)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("mngr connect needs a terminal (stdin and stdout must be a tty)")
    with list_fleet(app.providers(), app.quiet_seconds, app.host_timeout) as listing:
        (agent,) = locate(listing, (name,))
        if agent.info.state == "STOPPED":
            raise MngrError(f"agent {name!r} is stopped (start it with: mngr start {name})")
    attach(agent.handle.provider, agent.host, name)
