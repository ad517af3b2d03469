"""``mngr wait``: block until agents reach a state, with exit statuses a script can use."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .. import output
from ..commands import wait as waiting
from ..errors import UsageError
from .common import agent_row, state_cell
from .completion_cmd import agent_names
from .context import App, pass_app
from .targets import agent_test, expand_names, filter_options

_HELP = {"help_option_names": ["-h", "--help"]}

# Exit statuses (docs/commands/wait.md): 1 and 2 are every command's (an error, a usage
# error); 124 is what GNU timeout(1) gives scripts for running out.
CANNOT_REACH = 4
TIMED_OUT = 124
_DEFAULT_STATES = "waiting,done,stopped"


@click.command(context_settings=_HELP)
@click.argument("names", nargs=-1, shell_complete=agent_names)
@click.option("--for", "states", multiple=True, metavar="STATE[,STATE]",
              help="The states to wait for: running, waiting, done, stopped (repeatable, or comma-separated) "
                   f"[default: {_DEFAULT_STATES}, i.e. no longer working].")
@click.option("--timeout", metavar="DURATION", help="Give up after this long (such as 30s, 10m) [default: no limit].")
@click.option("--any", "any_agent", is_flag=True, help="Return when the first agent gets there, not the last.")
@click.option("--interval", metavar="DURATION", default="0.5s", show_default=True,
              help="How often the agents' hosts are asked.")
@output.format_option("wait")
@filter_options
@pass_app
def wait(app: App, names: tuple[str, ...], states: tuple[str, ...], timeout: str | None, any_agent: bool,
         interval: str, output_format: str, includes: tuple[str, ...], excludes: tuple[str, ...]) -> None:
    """Wait until agents reach a state, as `mngr list` shows it.

    Exit status: 0 when every agent named (with --any, one of them) is in one of the
    states; 124 when --timeout ran out first; 4 when an agent cannot get there by itself
    (destroyed while waited on, or DONE, STOPPED or GONE when that is not what is waited
    for); 1 for any other error (an agent not found), 2 for a usage error.
    """
    from ..durations import parse_duration

    keep = agent_test(app, includes, excludes)
    if not names and keep is None:
        raise UsageError("name at least one agent to wait for (or '-', or --include EXPR)")
    expanded, piped = expand_names(names)
    request = waiting.WaitRequest(
        names=expanded,
        keep=keep,
        piped=piped,
        states=waiting.parse_states(states or (_DEFAULT_STATES,)),
        timeout=None if timeout is None else parse_duration(timeout, "--timeout"),
        any_agent=any_agent,
        interval=max(0.05, parse_duration(interval, "--interval")),
    )
    result = waiting.wait(app, request)
    _print(result, output_format)
    for agent in result.unreachable:
        click.echo(f"mngr: error: {agent.info.name} cannot reach {_states(request.states)}: {agent.why}", err=True)
    if result.unreachable:
        sys.exit(CANNOT_REACH)
    if result.timed_out:
        pending = ", ".join(f"{agent.info.name} ({agent.info.state})" for agent in result.agents
                            if agent.outcome == "pending")
        unanswered = "".join(f"; {host} did not answer: {error}" for host, error in result.host_errors.items())
        click.echo(f"mngr: error: timed out waiting for {_states(request.states)}: {pending}{unanswered}", err=True)
        sys.exit(TIMED_OUT)


def _states(states: Sequence[str]) -> str:
    return " or ".join(states)


def _print(result: waiting.WaitResult, output_format: str) -> None:
    rows = [{**agent_row(agent.info, agent.host, agent.provider), "outcome": agent.outcome, "why": agent.why}
            for agent in result.agents]
    def human() -> None:
        for row in rows:
            if row["outcome"] == "reached":
                click.echo(f"{row['name']} on {row['host']}: {state_cell(row)}")

    if output_format in ("json", "jsonl", "human"):
        output.emit(output_format, rows, human)
    else:  # a template: a line for each agent that got there, as human does
        output.emit(output_format, [row for row in rows if row["outcome"] == "reached"], human)
