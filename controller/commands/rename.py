"""rename: give an agent a new name, on its host and in everything mngr keeps by name.

The host renames the agent's record and its tmux session in place (remote_helper/
record_changes.py): a running agent goes on running, and its event log, output log and work
dir stay where they are (they are kept by the agent's id). Names are unique across hosts,
so the new one is refused if any host has an agent of that name (lookup.ensure_name_free),
before anything changes. A worktree agent keeps its branch (``mngr/OLD``) and its work dir:
the branch is the user's history, and renaming it under the user would surprise more than
an old name on it does.

Then mngr's own records follow: where agents are (completion.py and a provider's registry
of its hosts' agents) and the schedules that message the agent by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import schedules
from ..channel.protocol import AgentInfo
from ..errors import MngrError
from ..names import validate_name
from .lifecycle import Lifecycle

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class RenameResult:
    info: AgentInfo  # as the host has it now, under its new name
    old_name: str
    host: str
    provider: str
    schedules: list[str] = field(default_factory=list)  # the schedules that now name the new name
    warnings: list[str] = field(default_factory=list)


def rename(app: App, old: str, new: str) -> RenameResult:
    from ..agent_lookup import ensure_name_free, located_agent

    validate_name(new)
    with located_agent(app, old, with_state=False) as agent:
        if agent.info.name == new:
            raise MngrError(f"agent {new!r} already has that name")
        if agent.info.state == "GONE":
            raise MngrError(f"agent {agent.info.name!r} cannot be renamed: its host {agent.host} is gone")
        warnings = ensure_name_free(app, new)
        info = agent.handle.rename_agent(agent.info.name, new)
        Lifecycle(app.registry).agent_renamed(agent.handle, agent.info.name, new)
        renamed_in = schedules.agent_renamed(agent.info.name, new, agent.host, agent.provider)
        return RenameResult(info, agent.info.name, agent.host, agent.provider, renamed_in, warnings)
