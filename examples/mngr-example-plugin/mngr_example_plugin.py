"""An example mngr plugin, the one docs/plugins.md walks through.

- an agent type, ``greeter``: greets, then echoes every line it is sent;
- a field of ``mngr list``, ``work_dir_name``: the last part of the agent's work dir;
- a command, ``mngr greetings``: which agent types this plugin adds;
- a listener of lifecycle events: each one as a JSON line in ``$MNGR_EXAMPLE_AUDIT_LOG``
  (when set), and a veto on creating agents whose name starts with ``forbidden-``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import click

from mngr.controller.agent_types import AgentType
from mngr.controller.plugin_spec import hookimpl

GREETER = AgentType(
    name="greeter",
    base_command="sh -c 'echo \"hello, I am $MNGR_AGENT_NAME\"; while IFS= read -r line; do echo \"you said: $line\"; done'",
    description="greets, then echoes what it is sent (from mngr-example-plugin)",
    ready_pattern="hello, I am",
)


@hookimpl
def mngr_agent_types() -> list[AgentType]:
    return [GREETER]


def _work_dir_name(row: Mapping[str, Any]) -> str:
    return os.path.basename(str(row.get("work_dir") or "").rstrip("/"))


@hookimpl
def mngr_list_fields() -> dict[str, Any]:
    return {"work_dir_name": _work_dir_name}


@click.command("greetings")
def greetings() -> None:
    """Show the agent types the example plugin adds."""
    click.echo(f"{GREETER.name}: {GREETER.description}")


@hookimpl
def mngr_cli_commands() -> list[click.Command]:
    return [greetings]


def _audit(record: dict[str, str]) -> None:
    path = os.environ.get("MNGR_EXAMPLE_AUDIT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"time": time.time(), **record}) + "\n")


@hookimpl
def mngr_on_agent(event: str, agent: str, host: str, provider: str) -> None:
    if event == "before_create" and agent.startswith("forbidden-"):
        raise ValueError(f"agents named {agent!r} are not allowed here")
    _audit({"event": event, "agent": agent, "host": host, "provider": provider})


@hookimpl
def mngr_on_host(event: str, host: str, provider: str) -> None:
    _audit({"event": f"host_{event}", "host": host, "provider": provider})
