"""``mngr stop``, ``start``, ``destroy`` and ``connect``: act on agents found by name."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import click

from .. import completion
from ..agent_lookup import fleet_listing, found_agents
from ..channel.protocol import AgentInfo
from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent
from .common import (
    LIVE_STATES,
    agent_event,
    attach,
    check_format,
    print_agents,
    remove_emptied_hosts,
)
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


def _find(
    app: App, names: tuple[str, ...], every: bool, selected_states: tuple[str, ...]
) -> tuple[contextlib.ExitStack, list[LocatedAgent]]:
    """The agents named, or with --all every agent in one of ``selected_states``; their
    hosts' handles are closed when the returned stack is."""
    if every and names:
        raise UsageError("give agent names or --all, not both")
    if not every and not names:
        raise UsageError("name at least one agent (or use --all)")
    stack = contextlib.ExitStack()
    try:
        if every:
            listing = stack.enter_context(fleet_listing(app))
            agents = [a for a in listing.agents if a.info.state in selected_states]
        else:
            agents = stack.enter_context(found_agents(app, names))
    except BaseException:
        stack.close()
        raise
    return stack, agents


def _each(agents: list[LocatedAgent], action: str, run: Callable[[LocatedAgent], None]) -> int:
    """Run ``run(agent)`` for every agent, reporting each failure; return how many failed."""
    failed = 0
    for agent in agents:
        try:
            run(agent)
        except MngrError as exc:
            failed += 1
            click.echo(f"mngr: error: {action} {agent.info.name}: {getattr(exc, 'detail', exc)}", err=True)
    return failed


def _change_state(
    app: App,
    names: tuple[str, ...],
    every: bool,
    output_format: str,
    action: str,
    selected_states: tuple[str, ...],
    change: Callable[[LocatedAgent], tuple[AgentInfo, str]],
) -> None:
    check_format(output_format)
    listing, agents = _find(app, names, every, selected_states)
    results: list[tuple[AgentInfo, str, str, str]] = []
    with listing:
        def run(agent: LocatedAgent) -> None:
            info, verb = change(agent)
            results.append((info, agent.host, agent.provider, verb))

        failed = _each(agents, action, run)
    print_agents(results, output_format)
    if failed:
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
    seconds = _grace_seconds(app, grace)

    def change(agent: LocatedAgent) -> tuple[AgentInfo, str]:
        if agent.info.state == "STOPPED":
            return agent.info, "already stopped:"
        with agent_event(app.registry, "stop", agent.info.name, agent.host, agent.provider):
            return agent.handle.stop_agent(agent.info.name, seconds), "stopped"

    _change_state(app, names, every, output_format, "stop", (*LIVE_STATES, "DONE"), change)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--all", "every", is_flag=True, help="Start every stopped agent.")
@click.option("--format", "output_format", default="human", show_default=True, help="human, json, jsonl or a template.")
@pass_app
def start(app: App, names: tuple[str, ...], every: bool, output_format: str) -> None:
    """Start stopped agents again, from their records (same command, work dir and env).

    An agent whose process exited (DONE) is started afresh; a running one is left alone.
    """

    def change(agent: LocatedAgent) -> tuple[AgentInfo, str]:
        if agent.info.state in LIVE_STATES:
            return agent.info, "already running:"
        with agent_event(app.registry, "start", agent.info.name, agent.host, agent.provider):
            return agent.handle.start_agent(agent.info.name), "started"

    _change_state(app, names, every, output_format, "start", ("STOPPED",), change)


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--all", "every", is_flag=True, help="Destroy every agent on every host.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep-work-dir", is_flag=True,
              help="Keep the work dir even where mngr made it (--source, --snapshot, clone, an ssh host's default).")
@_GRACE
@pass_app
def destroy(app: App, names: tuple[str, ...], every: bool, force: bool, keep_work_dir: bool,
            grace: str | None) -> None:
    """Stop agents and delete their state (record, environment, event log) from their hosts,
    and the work dirs mngr made for them.

    Asks for confirmation on a terminal; without a terminal it refuses unless -f is given.
    """
    seconds = _grace_seconds(app, grace)
    listing, agents = _find(app, names, every, ("RUNNING", "WAITING", "DONE", "STOPPED", "GONE"))
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
            with agent_event(app.registry, "destroy", agent.info.name, agent.host, agent.provider):
                if agent.info.state == "GONE":  # its host went away: only mngr's memory of it is left
                    agent.handle.provider.forget_agent(agent.host, agent.info.name)
                else:
                    agent.handle.destroy_agent(agent.info.name, keep_work_dir=keep_work_dir, grace=seconds)
            completion.agent_removed(agent.info.name, agent.host, agent.provider)
            click.echo(f"destroyed agent {agent.info.name} on {agent.host}")

        failed = _each(agents, "destroy", run)
        remove_emptied_hosts([agent.handle for agent in agents], app.registry)
    if failed:
        sys.exit(1)


@click.command(context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--start", "start_first", is_flag=True, help="Start the agent first if it is stopped.")
@pass_app
def connect(app: App, name: str, start_first: bool) -> None:
    """Attach your terminal to an agent's tmux session (detach with C-b d)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("mngr connect needs a terminal (stdin and stdout must be a tty)")
    from ..agent_lookup import located_agent

    with located_agent(app, name) as agent:
        name = agent.info.name
        if agent.info.state == "STOPPED":
            if not start_first:
                raise MngrError(f"agent {name!r} is stopped (start it with: mngr start {name}, or pass --start)")
            agent.handle.start_agent(name)
        # Attaching is the user at work: it counts as activity (idle detection reads it).
        # A stray session (no record, state UNKNOWN) has nowhere to note it.
        if agent.info.state != "UNKNOWN":
            agent.handle.note_activity(name, "attach")
    attach(agent.handle.provider, agent.host, name)
