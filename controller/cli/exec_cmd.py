"""``mngr exec``: run a shell command where an agent works, streaming its output back."""

from __future__ import annotations

import sys
import threading
from typing import BinaryIO

import click

from .. import output
from ..commands.exec import ExecRequest, OutputListener
from ..commands.exec import exec_command as run_everywhere
from ..errors import UsageError
from ..fleet import LocatedAgent
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


class _LinePrefixer:
    """Writes another agent's output line by line, each line prefixed with its name."""

    _lock = threading.Lock()

    def __init__(self, stream: BinaryIO, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self._partial = b""

    def write(self, data: bytes, final: bool = False) -> None:
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        if lines:
            with self._lock:
                self._stream.write(b"".join(self._prefix + line + b"\n" for line in lines))
                self._stream.flush()


def _printer(prefixed: bool) -> OutputListener:
    """Writes each agent's output as it comes: as it is, or (several agents) line by line,
    each line prefixed with the agent's name."""
    out: BinaryIO = sys.stdout.buffer
    err: BinaryIO = sys.stderr.buffer
    writers: dict[str, tuple[_LinePrefixer, _LinePrefixer]] = {}
    lock = threading.Lock()

    def show(agent: LocatedAgent, stdout: bytes, stderr: bytes, final: bool) -> None:
        if prefixed:
            with lock:
                if agent.info.name not in writers:
                    prefix = f"{agent.info.name}: ".encode()
                    writers[agent.info.name] = (_LinePrefixer(out, prefix), _LinePrefixer(err, prefix))
                out_writer, err_writer = writers[agent.info.name]
            out_writer.write(stdout, final=final)
            err_writer.write(stderr, final=final)
            return
        for target, data in ((out, stdout), (err, stderr)):
            if data:
                target.write(data)
                target.flush()

    return show


@click.command("exec", context_settings=_HELP)
@click.argument("words", nargs=-1, required=True, metavar="NAME... COMMAND", shell_complete=agent_names)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Kill the command after this many seconds.")
@click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human", show_default=True,
              help="json: stdout, stderr and exit code per agent, printed at the end.")
@pass_app
def exec_command(app: App, words: tuple[str, ...], timeout: float | None, output_format: str) -> None:
    """Run a shell COMMAND on each agent's host, in its work dir, with its environment.

    Output streams back as it is produced (prefixed with the agent's name when several
    agents run it). With one agent the exit status is the command's; with several it is
    0 only if the command succeeded everywhere. A timed-out command is killed (status 124).

    \b
    Examples:
      mngr exec my-agent "git status"
      mngr exec agent-1 agent-2 "pytest -x" --timeout 600
    """
    if len(words) < 2:
        raise UsageError("give agent names and a command: mngr exec NAME... COMMAND")
    names, command = words[:-1], words[-1]
    if not command.strip():
        raise UsageError("the command is empty")
    stream = output_format == "human"
    on_output = _printer(prefixed=len(names) > 1) if stream else None
    results = run_everywhere(app, ExecRequest(names, command, timeout, on_output))
    if output_format == "json":
        rows = [
            {
                "name": r.name, "host": r.host, "provider": r.provider,
                "stdout": r.stdout.decode("utf-8", "replace"), "stderr": r.stderr.decode("utf-8", "replace"),
                "exit_code": r.exit_code, "error": r.error,
            }
            for r in results
        ]
        click.echo(output.to_json(rows))
    for result in results:
        if result.error:
            click.echo(f"mngr: error: exec {result.name}: {result.error}", err=True)
    if len(results) == 1:
        code = results[0].exit_code
        # A command killed by signal N reports -N; shells say 128 + N.
        sys.exit(1 if code is None else (128 - code if code < 0 else code))
    sys.exit(0 if all(r.exit_code == 0 and r.error is None for r in results) else 1)
