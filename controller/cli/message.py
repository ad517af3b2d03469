"""``mngr message``: type a message into one or more agents, exactly as given."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import output
from ..commands.agents import Bulk
from ..commands.message import MessageRequest, MessageResult
from ..commands.message import message as send_message
from ..errors import UsageError
from .completion_cmd import agent_names
from .context import App, pass_app
from .targets import dry_run_option, filter_options, on_error_option, read_targets

_HELP = {"help_option_names": ["-h", "--help"]}


def _read_text(positional: str | None, message: str | None, message_file: str | None) -> str:
    given = [source for source in (positional, message, message_file) if source is not None]
    if len(given) > 1:
        raise UsageError("give the message once: as the last argument, with -m, or with --message-file")
    if message_file is not None or positional == "-":
        path = message_file or "-"
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read message file {path!r}: {exc.strerror}") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"message file {path!r} is not UTF-8 text") from exc
    else:
        text = message if message is not None else positional or ""
    if not text.strip():
        raise UsageError("the message is empty")
    return text


@click.command(context_settings=_HELP)
@click.argument("words", nargs=-1, metavar="[NAME|-]... [TEXT]", shell_complete=agent_names)
@click.option("-m", "--message", help="The message (instead of the last argument).")
@click.option("--message-file", metavar="FILE", help="Read the message from FILE ('-' for stdin).")
@click.option("--start", "start_first", is_flag=True, help="Start stopped agents first, then send.")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the agent to be ready: its input box (claude, codex), or with "
                   "--start, a started agent.")
@filter_options
@output.format_option("message", help="human, json, jsonl or a template such as '{name} {result}': each agent's "
                                        "result (sent or failed, and the error).")
@dry_run_option
@on_error_option
@pass_app
def message(
    app: App,
    words: tuple[str, ...],
    message: str | None,
    message_file: str | None,
    start_first: bool,
    ready_timeout: float,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    output_format: str,
    dry_run: bool,
    on_error: str,
) -> None:
    """Send a message to agents: the text is typed into each, byte for byte, then Enter.

    To Claude and Codex it is pasted once they show their input box, and counts as sent
    once their session log has it; an agent held by a dialog is refused, naming it.

    Quotes, $(...), backslashes, key names such as C-c, unicode and newlines all arrive
    as written. Two messages to one agent never interleave.
    """
    filtered = bool(includes or excludes)
    if message is None and message_file is None:
        if not words or (len(words) < 2 and not filtered):
            raise UsageError("give agent names and a message (or use -m / --message-file)")
        names, positional = words[:-1], words[-1]
    else:
        names, positional = words, None
    if not names and not filtered:
        raise UsageError("name at least one agent (or use --include EXPR)")
    if "-" in names and (positional == "-" or message_file == "-"):
        raise UsageError("stdin cannot hold both the agent names and the message")
    text = _read_text(positional, message, message_file)
    request = MessageRequest((), text, start_first, ready_timeout,
                             targets=read_targets(app, names, False, includes, excludes),
                             bulk=Bulk(dry_run, on_error))
    result = send_message(app, request)
    _print(result, len(text.encode("utf-8")), output_format)
    if result.interrupted:  # who got it is printed above, who did not (or may not have) named
        click.echo("mngr: interrupted", err=True)
        sys.exit(130)
    if result.failed:
        sys.exit(1)


def _print(result: MessageResult, size: int, output_format: str) -> None:
    done = "would send" if result.dry_run else "sent"

    def human() -> None:
        if not result.reached and not result.failed:
            click.echo("no agents to send to")
        for reached in result.reached:
            click.echo(f"{done} message to {reached.name} ({size} bytes)")

    rows = [{"name": r.name, "host": r.host, "provider": r.provider, "result": done, "error": None}
            for r in result.reached]
    if output_format in ("json", "jsonl"):
        rows += [{"name": f.name, "host": f.host, "provider": f.provider, "result": "failed", "error": f.error}
                 for f in result.failed]
    output.emit(output_format, rows, human)
    for failed in result.failed:
        click.echo(f"mngr: error: message {failed.name}: {failed.error}", err=True)
