"""snapshot: record an agent as a snapshot kept on this machine; list and destroy snapshots.

A snapshot holds the agent's type, command, environment, labels, work dir and git
branches (snapshots.py); ``create --snapshot ID`` starts a new agent from one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import MngrError
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class SnapshotRequest:
    name: str  # the agent to record


@dataclass
class SnapshotResult:
    id: str
    agent: str
    host: str
    provider: str
    created_at: str
    bytes: int

    def as_row(self) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "host": self.host, "provider": self.provider,
                "created_at": self.created_at, "bytes": self.bytes}


@dataclass
class DestroySnapshotsRequest:
    ids: Sequence[str]


@dataclass
class DestroySnapshotsResult:
    destroyed: list[str] = field(default_factory=list)
    # Why the first that could not be destroyed was not (it names it); the ones after it
    # were not tried.
    error: MngrError | OSError | None = None


def take_snapshot(app: App, request: SnapshotRequest) -> SnapshotResult:
    from .. import snapshots

    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        name = agent.info.name
        try:
            taken = snapshots.take(agent.handle, name, agent.provider)
        except OSError as exc:
            raise MngrError(f"snapshot {name}: {exc}") from exc
    return SnapshotResult(taken.id, name, agent.host, agent.provider, taken.meta["created_at"], taken.bytes)


def list_snapshots(app: App) -> list[dict[str, Any]]:
    """Every snapshot kept on this machine, and the providers' own (docker images)."""
    from .. import snapshots

    return snapshots.listing(app.providers())


def destroy_snapshots(app: App, request: DestroySnapshotsRequest) -> DestroySnapshotsResult:
    """Destroy each in turn, stopping at the first that cannot be (the result says which)."""
    from .. import snapshots

    result = DestroySnapshotsResult()
    providers = app.providers()
    for snapshot_id in request.ids:
        try:
            snapshots.destroy(snapshot_id, providers)
        except (MngrError, OSError) as exc:
            result.error = exc
            break
        result.destroyed.append(snapshot_id)
    return result
