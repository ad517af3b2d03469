"""Agent types: what command an agent runs and how to tell that it is ready for input.

Built in: ``command`` (runs the words after ``--``), ``claude`` and ``codex`` (their CLIs,
with the words after ``--`` passed through). Users add their own in config:

    [agent_types.my-bot]
    command = "python3 -m my_bot --verbose"   # shell words; arguments after -- are appended
    ready_pattern = "ready>"                   # optional: regex on screen meaning "ready"
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, UsageError
from .plugin_spec import hookimpl


@dataclass(frozen=True)
class AgentType:
    name: str
    base_command: str
    description: str = ""
    ready_pattern: str | None = None
    ready_quiet_seconds: float = 1.0

    def command_line(self, args: Sequence[str]) -> str:
        """The shell command line that starts the agent with the user's extra arguments."""
        words = [shlex.quote(arg) for arg in args]
        if not self.base_command:
            if not words:
                raise UsageError(f"agent type {self.name!r} needs a command after '--'")
            return " ".join(words)
        return " ".join([self.base_command, *words])

    def binary(self, args: Sequence[str]) -> str | None:
        """The program that must exist on the host, or None if it cannot be told in advance."""
        if self.base_command:
            try:
                words = shlex.split(self.base_command)
            except ValueError:
                return None
            first = words[0] if words else None
        else:
            first = args[0] if args else None
        if first is None or "=" in first or any(char in first for char in "$`;&|<>(){}"):
            return None
        return first


BUILTIN_AGENT_TYPES = [
    AgentType("command", "", "runs the command given after --"),
    AgentType("claude", "claude", "Claude Code", ready_quiet_seconds=2.0),
    AgentType("codex", "codex", "OpenAI Codex CLI", ready_quiet_seconds=2.0),
]


@hookimpl
def mngr_agent_types() -> list[AgentType]:
    return list(BUILTIN_AGENT_TYPES)


def from_config(name: str, section: Any) -> AgentType:
    if not isinstance(section, Mapping):
        raise ConfigError(f"agent_types.{name} must be a table with a 'command' key")
    command = section.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ConfigError(f"agent_types.{name}.command must be a non-empty string")
    ready_pattern = section.get("ready_pattern")
    if ready_pattern is not None and not isinstance(ready_pattern, str):
        raise ConfigError(f"agent_types.{name}.ready_pattern must be a string")
    quiet = section.get("ready_quiet_seconds", 1.0)
    if not isinstance(quiet, int | float):
        raise ConfigError(f"agent_types.{name}.ready_quiet_seconds must be a number")
    return AgentType(name, command.strip(), section.get("description", ""), ready_pattern, float(quiet))
