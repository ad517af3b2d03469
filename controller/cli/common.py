"""Pieces shared by several commands: KEY=VALUE options, agent output, attaching."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from mngr.providers.base import Provider

if TYPE_CHECKING:
    pass

from .. import output
from ..channel.protocol import AgentInfo, HostIdle
from ..errors import UsageError

ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

AGENT_FIELDS = (
    "id", "name", "type", "state", "host", "provider", "work_dir", "work_dir_origin", "command",
    "created_at", "labels", "archived", "pid", "exit_status", "idle_seconds", "problem", "waiting_reason",
    "waiting_detail", "extra_windows", "urls",
)
STATES = ("RUNNING", "WAITING", "DONE", "STOPPED", "UNKNOWN", "GONE")  # GONE: its host was removed
LIVE_STATES = ("RUNNING", "WAITING")  # the agent's process is there to talk to


def parse_pairs(
    pairs: Iterable[str], option: str, key_pattern: re.Pattern[str], allow_bare: bool = False
) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            if not allow_bare:
                raise UsageError(f"{option} expects KEY=VALUE, got {pair!r}")
            if key not in os.environ:
                raise UsageError(f"{option} {key}: no such variable in your environment to pass on")
            value = os.environ[key]
        if not key_pattern.match(key):
            raise UsageError(f"invalid key {key!r} in {option}")
        result[key] = value
    return result


def host_row(idle: HostIdle | None, host: str, provider: str) -> dict[str, Any]:
    """A host's idle status as listings show it (all None/"" from a helper without it)."""
    idle = idle or HostIdle()
    return {
        "host": host,
        "provider": provider,
        "idle_timeout": idle.idle_timeout,
        "idle_mode": idle.idle_mode,
        "idle_seconds": idle.idle_seconds,
        "last_activity": idle.last_activity,
        "last_activity_agent": idle.last_activity_agent,
        "last_shutdown_at": idle.last_shutdown_at,
        "last_shutdown_reason": idle.last_shutdown_reason,
    }


def agent_row(info: AgentInfo, host: str, provider: str) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "type": info.type,
        "state": info.state,
        "host": host,
        "provider": provider,
        "work_dir": info.work_dir,
        "work_dir_origin": dict(info.work_dir_origin),
        "command": info.command,
        "created_at": info.created_at,
        "labels": dict(info.labels),
        "archived": info.archived,
        "pid": info.pid,
        "exit_status": info.exit_status,
        "idle_seconds": None if info.idle_seconds is None else round(info.idle_seconds, 1),
        "problem": info.problem,
        "waiting_reason": info.waiting_reason,
        "waiting_detail": info.waiting_detail,
        "extra_windows": dict(info.extra_windows),
        "urls": dict(info.urls),
    }


def state_cell(row: dict[str, Any]) -> str:
    """The state as a table shows it: a WAITING agent says on what, when its type tells."""
    if row["state"] == "WAITING" and row.get("waiting_reason"):
        return f"WAITING ({row['waiting_reason']})"
    if row.get("archived"):
        return f"{row['state']} (archived)"
    return str(row["state"])


def print_agents(
    agents: Sequence[tuple[AgentInfo, str, str, str]],
    output_format: str,
    single: bool = False,
) -> None:
    """Print (info, host, provider, what happened) rows; json is a list unless ``single``."""
    rows = [agent_row(info, host, provider) for info, host, provider, _ in agents]

    def human() -> None:
        for row, (_, _, _, verb) in zip(rows, agents, strict=True):
            click.echo(f"{verb} agent {row['name']} ({row['type']}) on {row['host']} [{row['state']}]")

    output.emit(output_format, rows, human, single=single)


def attach(provider: Provider, host: str, name: str) -> None:
    """Replace this process with a terminal attached to the agent's tmux session."""
    argv = provider.attach_argv(host, f"mngr-{name}")
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ)
    if argv[:2] != ["tmux", "switch-client"]:
        env.pop("TMUX", None)
    os.execvpe(argv[0], argv, env)
