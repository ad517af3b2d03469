"""``mngr create --reuse``: the agent of that name, if it is the one asked for.

As ``docker compose up`` treats a service: an agent that exists and matches is left as it
is (started if it was stopped) and reported; one that exists and differs is an error that
says how; none at all and the create goes on as usual.

"Matches" compares what the create would decide and the agent's record shows:

- the host: provider and host (given, or their defaults, as for a new agent);
- the agent type;
- the command: the arguments after ``--`` (those a type adds itself, such as Claude's
  session id, aside);
- the work dir, where the create would run the agent in place (``--work-dir`` alone, or
  ``--transfer none`` on the local host: the current directory). A work dir mngr would
  make (a worktree or copy) is the agent's own, so there is nothing to compare;
- each ``--label`` given, which the agent must carry with the same value;
- ``--extra-window``, when given: the same windows with the same commands.

Environment variables (the record keeps no values), uploads, the initial message and
idle settings are for a new agent only and are not compared: a reused agent gets none.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..agent_types import AgentType
from ..channel.protocol import AgentInfo
from ..errors import MngrError

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from ..cli.app import App


@dataclass
class Wanted:
    provider: str
    host: str
    agent_type: AgentType
    agent_args: Sequence[str]
    work_dir: str  # "" when the create would make one (nothing to compare)
    labels: Mapping[str, str]
    extra_windows: Mapping[str, str] | None  # None: not given


@dataclass
class Reused:
    info: AgentInfo
    host: str
    provider: str
    verb: str  # "reused", or "started" for one that was stopped


def in_place_dir(provider: Provider, host: str, work_dir: str | None, source: str | None,
                 transfer: str | None) -> str:
    """Where the create would run the agent in place; "" when it would make a work dir (a
    worktree or copy, by default) or take the host's own default (nothing to compare)."""
    if source or transfer in ("worktree", "copy"):
        return ""
    if work_dir:
        return provider.resolve_work_dir(host, work_dir)
    if transfer == "none" and provider.name == "local":
        return os.getcwd()
    return ""


def differences(info: AgentInfo, host: str, provider: str, wanted: Wanted) -> list[str]:
    """How agent ``info`` on ``host`` (``provider``) differs from ``wanted`` (none: it matches)."""
    found = []
    if (provider, host) != (wanted.provider, wanted.host):
        found.append(f"it is on {host} ({provider}), not {wanted.host} ({wanted.provider})")
    if info.type != wanted.agent_type.name:
        found.append(f"its type is {info.type}, not {wanted.agent_type.name}")
    else:
        arguments = _arguments(info.command, wanted.agent_type)
        if arguments != list(wanted.agent_args):
            found.append(f"its command is {info.command!r}, not {wanted.agent_type.command_line(wanted.agent_args)!r}")
    if wanted.work_dir and not _same_dir(info.work_dir, wanted.work_dir):
        found.append(f"its work dir is {info.work_dir}, not {wanted.work_dir}")
    for key, value in wanted.labels.items():
        if info.labels.get(key) != value:
            have = f"{info.labels[key]!r}" if key in info.labels else "not set"
            found.append(f"its label {key} is {have}, not {value!r}")
    if wanted.extra_windows is not None and dict(info.extra_windows) != dict(wanted.extra_windows):
        found.append(f"its extra windows are {_windows(info.extra_windows)}, not {_windows(wanted.extra_windows)}")
    return found


def _arguments(command: str, agent_type: AgentType) -> list[str] | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    base = shlex.split(agent_type.base_command) if agent_type.base_command else []
    if words[: len(base)] != base:
        return None
    return agent_type.own_arguments(words[len(base):])


def _same_dir(there: str, wanted: str) -> bool:
    if os.path.isabs(wanted):
        return os.path.normpath(there) == os.path.normpath(wanted)
    # Relative to the host user's home, which only the host knows: compared below it.
    below = os.path.normpath(wanted[2:] if wanted.startswith("~/") else wanted)
    return below in (".", "~") or os.path.normpath(there).endswith("/" + below)


def _windows(windows: Mapping[str, str]) -> str:
    return ", ".join(f"{name}={command}" for name, command in windows.items()) or "none"


def reuse(app: App, name: str, wanted: Wanted) -> Reused | None:
    """The existing agent ``name`` if it matches ``wanted`` (started if it was stopped);
    None if no host that answers has one; MngrError naming what differs otherwise."""
    from ..fleet import existing_agent, list_fleet
    from .lifecycle import Lifecycle

    wait = min(float(app.config.get("name_check_seconds")), app.host_timeout)
    with list_fleet(app.providers(), app.quiet_seconds, app.host_timeout,
                    drop_after=float(app.config.get("forget_unreachable_after_seconds")),
                    answer_within=wait) as listing:
        agent = existing_agent(listing, name)
        if agent is None:
            return None
        differing = differences(agent.info, agent.host, agent.provider, wanted)
        if differing:
            raise MngrError(f"--reuse: agent {name!r} exists but is not the one asked for: {'; '.join(differing)}")
        if agent.info.state != "STOPPED":
            return Reused(agent.info, agent.host, agent.provider, "reused")
        with Lifecycle(app.registry).agent_event("start", name, agent.host, agent.provider):
            info = agent.handle.start_agent(name)
        return Reused(info, agent.host, agent.provider, "started")
