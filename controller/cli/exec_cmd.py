"""``mngr exec``: run a shell command where an agent works, streaming its output back."""

from __future__ import annotations

import sys
import threading
from typing import BinaryIO

import click

from .. import output
from ..commands.agents import Bulk
from ..commands.exec import ExecRequest, ExecResult, OutputListener
from ..commands.exec import exec_command as run_everywhere
from ..errors import UsageError
from ..fleet import LocatedAgent
from .completion_cmd import agent_names
from .context import App, pass_app
from .targets import dry_run_option, filter_options, on_error_option, read_targets

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
@click.argument("words", nargs=-1, required=True, metavar="[NAME|-]... COMMAND", shell_complete=agent_names)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Kill the command after this many seconds.")
@output.format_option("exec", help="human (the output as it comes), or json, jsonl or a template such as "
                                     "'{name} {exit_code}': stdout, stderr and exit code per agent, at the end.")
@filter_options
@dry_run_option
@on_error_option
@pass_app
def exec_command(app: App, words: tuple[str, ...], timeout: float | None, output_format: str,
                 includes: tuple[str, ...], excludes: tuple[str, ...], dry_run: bool, on_error: str) -> None:
    """Run a shell COMMAND on each agent's host, in its work dir, with its environment.

    Output streams back as it is produced (prefixed with the agent's name when several
    agents may run it). With one agent the exit status is the command's; with several it is
    0 only if the command succeeded everywhere. A timed-out command is killed (status 124).
    With --on-error abort a command that fails (an error or a non-zero exit) stops mngr
    from starting it on agents it has not started on; each host's first agent runs it
    alone first.
    """
    names, command = words[:-1], words[-1]
    if not names and not (includes or excludes):
        raise UsageError("give agent names and a command: mngr exec NAME... COMMAND")
    if not command.strip():
        raise UsageError("the command is empty")
    targets = read_targets(app, names, False, includes, excludes)
    stream = output_format == "human" and not dry_run
    several = len(targets.names) > 1 or targets.keep is not None or targets.piped
    on_output = _printer(prefixed=several) if stream else None
    results = run_everywhere(app, ExecRequest((), command, timeout, on_output, targets=targets,
                                              bulk=Bulk(dry_run, on_error)))
    if output_format != "human":
        output.emit(output_format, [_row(result) for result in results], lambda: None)
    elif dry_run or not results:
        if not results:
            click.echo("no agents to run on")
        for result in results:
            click.echo(f"would run on {result.name} on {result.host}")
    for result in results:
        if result.error:
            click.echo(f"mngr: error: exec {result.name}: {result.error}", err=True)
    if dry_run:
        return
    if len(results) == 1:
        code = results[0].exit_code
        # A command killed by signal N reports -N; shells say 128 + N.
        sys.exit(1 if code is None else (128 - code if code < 0 else code))
    sys.exit(1 if any(result.failed for result in results) else 0)


def _row(result: ExecResult) -> dict[str, object]:
    if not result.ran:
        return {"name": result.name, "host": result.host, "provider": result.provider, "result": "would run"}
    return {
        "name": result.name, "host": result.host, "provider": result.provider,
        "stdout": result.stdout.decode("utf-8", "replace"), "stderr": result.stderr.decode("utf-8", "replace"),
        "exit_code": result.exit_code, "error": result.error,
        "result": "failed" if result.failed else "ok",
    }
