"""``mngr exec``: run a shell command where an agent works, streaming its output back."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import click

from .. import output
from ..agent_lookup import found_agents
from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent, parallel_map
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}
TIMED_OUT = 124  # as timeout(1)
_POLL_WAIT = 0.5


@dataclass
class ExecResult:
    name: str
    host: str
    provider: str
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    error: str | None = None


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


def _run(agent: LocatedAgent, command: str, timeout: float | None, stream: bool, prefixed: bool) -> ExecResult:
    result = ExecResult(agent.info.name, agent.host, agent.provider)
    out: BinaryIO = sys.stdout.buffer
    err: BinaryIO = sys.stderr.buffer
    prefix = f"{agent.info.name}: ".encode()
    out_writer = _LinePrefixer(out, prefix)
    err_writer = _LinePrefixer(err, prefix)
    try:
        exec_id = agent.handle.exec_start(agent.info.name, command)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL_WAIT if deadline is None else max(0.0, min(_POLL_WAIT, deadline - time.monotonic()))
            stdout, stderr, exit_code = agent.handle.exec_read(exec_id, wait)
            result.stdout += stdout
            result.stderr += stderr
            if stream:
                if prefixed:
                    out_writer.write(stdout, final=exit_code is not None)
                    err_writer.write(stderr, final=exit_code is not None)
                else:
                    for target, data in ((out, stdout), (err, stderr)):
                        if data:
                            target.write(data)
                            target.flush()
            if exit_code is not None:
                result.exit_code = exit_code
                return result
            if deadline is not None and time.monotonic() >= deadline:
                agent.handle.exec_kill(exec_id)
                result.exit_code = TIMED_OUT
                result.error = f"timed out after {timeout:g} s (killed)"
                return result
    except MngrError as exc:
        result.error = str(getattr(exc, "detail", exc))
        return result


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
    with found_agents(app, names) as agents:
        prefixed = len(agents) > 1
        results = parallel_map(lambda agent: _run(agent, command, timeout, stream, prefixed), agents, 16)
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
