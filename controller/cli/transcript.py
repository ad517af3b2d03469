"""``mngr transcript`` (an agent's history) and ``mngr capture`` (its screen right now)."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict

import click

from .. import output
from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent
from ..session_logs import Entry, session_entries
from ..terminal_text import TerminalStream
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}
_FOLLOW_INTERVAL = 0.3
# Agent types whose CLI logs its conversation where the helper finds it (agents made before
# mngr knew their session are read from their work dir's newest Claude log).
_SESSION_LOG_TYPES = ("claude", "codex")


def _locate_one(app: App, name: str) -> tuple[contextlib.ExitStack, LocatedAgent]:
    """The agent, and what keeps its host's handle open (to be left with ``with``)."""
    from ..commands.lookup import find_agents

    stack = contextlib.ExitStack()
    found = stack.enter_context(find_agents(app, [name]))  # a failure leaves nothing open
    return stack, found.agents[0]


def _print_entries(entries: list[Entry], output_format: str) -> None:
    for entry in entries:
        if output_format == "jsonl":
            click.echo(output.to_jsonl(asdict(entry)))
        elif entry.role == "output":
            click.echo(entry.text)
        else:
            click.echo(f"{entry.role}: {entry.text}")


@click.command(context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--tail", "tail", type=click.IntRange(min=1), help="Only the last N entries (lines of output).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new entries until interrupted.")
@click.option("--format", "output_format", type=click.Choice(["human", "json", "jsonl"]), default="human",
              show_default=True)
@click.option("--source", type=click.Choice(["auto", "session", "output", "claude"]), default="auto",
              show_default=True,
              help="session: the agent CLI's own log of this agent's conversation (claude is another name for "
                   "it); output: what the agent printed. auto: session for claude and codex agents, output "
                   "for the rest.")
@pass_app
def transcript(app: App, name: str, tail: int | None, follow: bool, output_format: str, source: str) -> None:
    """Show an agent's history.

    For claude and codex agents, the user and assistant turns of the agent's own conversation,
    from the CLI's session log, in conversation order; for every other agent, what it printed
    (recorded from its start), as its terminal showed it.
    """
    if follow and output_format == "json":
        raise UsageError("--follow prints as it goes: use --format human or jsonl")
    listing, agent = _locate_one(app, name)
    name = agent.info.name
    with listing:
        if source == "auto":
            kind = "session" if agent.info.type in _SESSION_LOG_TYPES else "output"
        else:
            kind = "session" if source == "claude" else source
        if tail is None:
            data, end, file_id = _read_whole(agent, name, kind)
        else:
            # Turns span many log lines: fetch generously, then keep the last N turns.
            wanted = tail if kind == "output" else max(tail * 50, 1000)
            chunk, data = agent.handle.read_output(name, source=kind, tail_lines=wanted)
            end, file_id = chunk.end, chunk.file_id
            if kind == "output" and chunk.start == 0 and data.count(b"\n") < wanted:
                # Not enough since the last rotation: the rest is in the previous part.
                _, older = agent.handle.read_output(name, source="output-previous", tail_lines=wanted)
                data = older + data
        terminal = TerminalStream()
        entries, pending = _parse(kind, data, terminal)
        if not follow:
            # A last line without its newline yet (a prompt, say) is shown: it is on the screen.
            entries += _parse_rest(kind, pending, terminal)
            pending = b""
        entries = entries if tail is None else entries[-tail:]
        if output_format == "json":
            document = {"name": name, "source": kind, "entries": [asdict(entry) for entry in entries]}
            click.echo(output.to_json(document))
            return
        _print_entries(entries, output_format)
        if follow:
            _follow(agent, name, kind, end, file_id, pending, terminal, output_format)


def _read_whole(agent: LocatedAgent, name: str, kind: str) -> tuple[bytes, int, str]:
    """All of a log (for output, the rotated part first), read in chunks; with its end and id."""
    data = bytearray()
    sources = ["output-previous", "output"] if kind == "output" else [kind]
    end, file_id = 0, ""
    for source in sources:
        offset = 0
        while True:
            chunk, piece = agent.handle.read_output(name, source=source, offset=offset)
            data += piece
            if not piece or chunk.start != offset:
                break
            offset = chunk.end
        end, file_id = offset, chunk.file_id
    return bytes(data), end, file_id


def _parse(kind: str, data: bytes, terminal: TerminalStream) -> tuple[list[Entry], bytes]:
    """Entries from complete lines of ``data``, and the incomplete last line left over.

    For output, the complete lines go through ``terminal``, which keeps the screen from one
    call to the next; the entries are the lines the cursor has left (a program can still
    redraw the line it is on).
    """
    complete, newline, rest = data.rpartition(b"\n")
    if not newline:
        return [], data
    if kind == "session":
        return session_entries(complete.split(b"\n") if complete else []), rest
    terminal.feed((complete + newline).decode("utf-8", "replace"))
    return [Entry("output", line) for line in terminal.take_settled()], rest


def _parse_rest(kind: str, rest: bytes, terminal: TerminalStream) -> list[Entry]:
    """The entries still on the screen at the end: an unfinished last line, what is below the cursor."""
    if kind == "session":
        return session_entries([rest])
    terminal.feed(rest.decode("utf-8", "replace"))
    return [Entry("output", line) for line in terminal.take_all()]


def _follow(agent: LocatedAgent, name: str, kind: str, offset: int, file_id: str, pending: bytes,
            terminal: TerminalStream, output_format: str) -> None:
    try:
        while True:
            time.sleep(_FOLLOW_INTERVAL)
            chunk, data = agent.handle.read_output(name, source=kind, offset=offset)
            if chunk.file_id != file_id or chunk.start != offset:
                pending = b""  # the log was rotated or replaced: carry on from its start
            offset, file_id = chunk.end, chunk.file_id
            entries, pending = _parse(kind, pending + data, terminal)
            _print_entries(entries, output_format)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


@click.command(context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--full", is_flag=True, help="Include the scrollback, not just the visible screen.")
@pass_app
def capture(app: App, name: str, full: bool) -> None:
    """Print what the agent's screen shows now."""
    listing, agent = _locate_one(app, name)
    name = agent.info.name
    with listing:
        if agent.info.state == "STOPPED":
            raise MngrError(f"agent {name!r} is stopped (start it with: mngr start {name})")
        screen = agent.handle.capture(name, full)
    text = screen.decode("utf-8", "replace")
    click.echo(text.rstrip("\n"))
    reason = agent.info.waiting_reason
    if agent.info.state == "WAITING" and reason and reason != "input":
        detail = f": {agent.info.waiting_detail}" if agent.info.waiting_detail else ""
        click.echo(f"mngr: {name} is waiting on a {reason} dialog{detail} (answer it with: mngr connect {name})",
                   err=True)
