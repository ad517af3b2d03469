"""``mngr message``: type a message into one or more agents, exactly as given."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..agent_lookup import found_agents
from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent, parallel_map
from .common import LIVE_STATES
from .completion_cmd import agent_names
from .context import App, pass_app

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
@click.argument("words", nargs=-1, required=True, metavar="NAME... [TEXT]", shell_complete=agent_names)
@click.option("-m", "--message", help="The message (instead of the last argument).")
@click.option("--message-file", metavar="FILE", help="Read the message from FILE ('-' for stdin).")
@click.option("--start", "start_first", is_flag=True, help="Start stopped agents first, then send.")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the agent to be ready: its input box (claude, codex), or with "
                   "--start, a started agent.")
@pass_app
def message(
    app: App,
    words: tuple[str, ...],
    message: str | None,
    message_file: str | None,
    start_first: bool,
    ready_timeout: float,
) -> None:
    """Send a message to agents: the text is typed into each, byte for byte, then Enter.

    To Claude and Codex it is pasted once they show their input box, and counts as sent
    once their session log has it; an agent held by a dialog is refused, naming it.

    \b
    Examples:
      mngr message my-agent "Tell me a joke"
      mngr message agent-1 agent-2 -m "rebase on main"
      git diff | mngr message reviewer --message-file -

    Quotes, $(...), backslashes, key names such as C-c, unicode and newlines all arrive
    as written. Two messages to one agent never interleave.
    """
    if message is None and message_file is None:
        if len(words) < 2:
            raise UsageError("give agent names and a message (or use -m / --message-file)")
        names, positional = words[:-1], words[-1]
    else:
        names, positional = words, None
    text = _read_text(positional, message, message_file)
    with found_agents(app, names) as agents:

        def send(agent: LocatedAgent) -> str | None:
            try:
                _send_one(app, agent, text, start_first, ready_timeout)
            except MngrError as exc:
                return str(getattr(exc, "detail", exc))
            return None

        outcomes = parallel_map(send, agents, 16)
    failed = 0
    for agent, error in zip(agents, outcomes, strict=True):
        if error is None:
            click.echo(f"sent message to {agent.info.name} ({len(text.encode('utf-8'))} bytes)")
        else:
            failed += 1
            click.echo(f"mngr: error: message {agent.info.name}: {error}", err=True)
    if failed:
        sys.exit(1)


def _send_one(app: App, agent: LocatedAgent, text: str, start_first: bool, ready_timeout: float) -> None:
    name = agent.info.name
    wait_ready = False
    if agent.info.state == "UNKNOWN":
        raise MngrError(f"{name!r} is not a working agent: {agent.info.problem or 'state UNKNOWN'}")
    if agent.info.state not in LIVE_STATES:
        if not start_first:
            verb = "has exited (DONE)" if agent.info.state == "DONE" else "is stopped"
            raise MngrError(f"agent {name!r} {verb}: start it with `mngr start {name}` or pass --start")
        agent.handle.start_agent(name)
        wait_ready = True
    agent_type = app.registry.agent_types.get(agent.info.type)
    agent.handle.send_message(
        name,
        text,
        wait_ready=wait_ready,
        ready_pattern=agent_type.ready_pattern if agent_type else None,
        ready_quiet_seconds=agent_type.ready_quiet_seconds if agent_type else 1.0,
        ready_timeout=ready_timeout,
    )
