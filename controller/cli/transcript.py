"""``mngr transcript`` (an agent's history) and ``mngr capture`` (its screen right now)."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from .. import output
from ..commands import transcript as history
from ..errors import UsageError
from ..session_logs import Entry
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


def _print_entries(entries: list[Entry], output_format: str) -> None:
    def human() -> None:
        for entry in entries:
            click.echo(entry.text if entry.role == "output" else f"{entry.role}: {entry.text}")

    output.emit(output_format, [asdict(entry) for entry in entries], human)
    sys.stdout.flush()


@click.command(context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--tail", "tail", type=click.IntRange(min=1), help="Only the last N entries (lines of output).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new entries until interrupted.")
@output.format_option("transcript", help="human, json (not with --follow), jsonl, or a template such as "
                                          "'{role}: {text}'.")
@click.option("--source", type=click.Choice(history.SOURCES), default="auto",
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
    request = history.TranscriptRequest(name, tail, source)
    if follow:
        history.follow_transcript(app, request, lambda entries: _print_entries(entries, output_format))
        return
    read = history.transcript(app, request)
    if output_format == "json":
        output.emit(output_format, [asdict(entry) for entry in read.entries], lambda: None,
                    envelope=lambda entries: {"name": read.name, "source": read.source, "entries": entries})
        return
    _print_entries(read.entries, output_format)


@click.command(context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--full", is_flag=True, help="Include the scrollback, not just the visible screen.")
@pass_app
def capture(app: App, name: str, full: bool) -> None:
    """Print what the agent's screen shows now."""
    screen = history.capture(app, history.CaptureRequest(name, full))
    click.echo(screen.text.rstrip("\n"))
    reason = screen.waiting_reason
    if screen.state == "WAITING" and reason and reason != "input":
        detail = f": {screen.waiting_detail}" if screen.waiting_detail else ""
        click.echo(f"mngr: {screen.name} is waiting on a {reason} dialog{detail} "
                   f"(answer it with: mngr connect {screen.name})", err=True)
