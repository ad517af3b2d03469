"""What the page's buttons do: the CLI's operations (controller/commands), each answered with
the line the CLI would print for it. Blocking: the server runs them on worker threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..commands import agents
from ..commands.agents import AgentsResult, Targets
from ..commands.message import MessageRequest
from ..commands.message import message as send_message
from .errors import failure_line

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class Outcome:
    ok: bool
    lines: list[str]  # what the CLI prints: the results on stdout, or its errors on stderr
    url: str | None = None  # open: the URL to go to, on this machine


def stop(app: App, name: str) -> Outcome:
    from ..cli.lifecycle import grace_seconds

    request = agents.StopRequest(grace=grace_seconds(app, None), targets=Targets([name]))
    return _changes(agents.stop(app, request), "stop")


def start(app: App, name: str) -> Outcome:
    return _changes(agents.start(app, agents.StartRequest(targets=Targets([name]))), "start")


def destroy(app: App, name: str, force: bool) -> Outcome:
    """As `mngr destroy [-f] NAME` once confirmed (the page asked): without ``force``, refused
    with agents.WorkWouldBeLost when the agent's work dir holds work that would be lost."""
    from ..cli.lifecycle import grace_seconds

    request = agents.DestroyRequest(grace=grace_seconds(app, None), force=force, targets=Targets([name]))
    result = agents.destroy(app, request)
    if result.failed:
        return _changes(result, "destroy")
    return Outcome(True, [f"destroyed agent {changed.info.name} on {changed.host}" for changed in result.changed]
                   + _removed_hosts(result))


def message(app: App, name: str, text: str) -> Outcome:
    result = send_message(app, MessageRequest([name], text))
    if result.failed:
        return Outcome(False, [failure_line("message", failed.name, failed.error) for failed in result.failed])
    size = len(text.encode("utf-8"))
    return Outcome(True, [f"sent message to {reached.name} ({size} bytes)" for reached in result.reached])


def open_url(app: App, name: str, target: str | None) -> Outcome:
    """As `mngr open NAME [TARGET] --print`: the agent's URL made reachable from here."""
    from ..commands.open import OpenRequest
    from ..commands.open import open_url as open_agent_url

    opened = open_agent_url(app, OpenRequest(agent=name, target=target))
    return Outcome(True, [opened.local_url], url=opened.local_url)


def _changes(result: AgentsResult, action: str) -> Outcome:
    """What `mngr stop|start NAME` prints (cli/lifecycle.report, human format)."""
    if result.failed:
        return Outcome(False, [failure_line(action, failed.name, failed.error) for failed in result.failed])
    lines = []
    for changed in result.changed:
        verb = f"{changed.verb}:" if changed.verb.startswith("already") else changed.verb
        lines.append(f"{verb} agent {changed.info.name} ({changed.info.type}) on {changed.host} "
                     f"[{changed.info.state}]")
    return Outcome(True, lines + _removed_hosts(result))


def _removed_hosts(result: AgentsResult) -> list[str]:
    return [f"removed host {host} ({provider}): its last agent is gone" for host, provider in result.emptied.removed]
