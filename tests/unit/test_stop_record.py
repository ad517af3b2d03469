"""What a stop or destroy that cannot end the agent's processes leaves in its record.

A process that survives SIGKILL (one in uninterruptible sleep on a dead NFS mount) cannot
be made on purpose here, so processes.end_agent is replaced by one that fails as it does
then; the record handling around it is the real helper code, on real files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mngr.remote_helper import agents, processes, state
from mngr.remote_helper.wire import RequestFailed

RECORD = {"id": "agent-1", "name": "busy", "type": "command", "command": "sleep 600", "work_dir": "/tmp",
          "created_at": "2026-01-01T00:00:00Z", "status": "running"}


@pytest.fixture
def statuses_while_ending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The record's status each time the agent's processes were being ended."""
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path))
    (tmp_path / "agents" / "agent-1").mkdir(parents=True)
    (tmp_path / "agents" / "agent-1" / "record.json").write_text(json.dumps(RECORD))
    seen: list[str] = []

    def surviving(agent_id: str, session: str, spare: object = (), grace: float = 0.0) -> bool:
        seen.append(state.read_json(str(tmp_path / "agents" / agent_id / "record.json"))["status"])
        raise RequestFailed("processes_left", "1 process of agent 'busy' still running after SIGKILL")

    monkeypatch.setattr(processes, "end_agent", surviving)
    monkeypatch.setattr(agents.conversation, "session_id", lambda agent_id, record: "")
    return seen


@pytest.mark.parametrize("end", [lambda: agents.stop_agent("busy", grace=0.0),
                                 lambda: agents.destroy_agent("busy", grace=0.0)], ids=["stop", "destroy"])
def test_a_failed_end_leaves_the_record_as_it_was(tmp_path: Path, statuses_while_ending: list[str],
                                                  end: Callable[[], object]) -> None:
    with pytest.raises(RequestFailed) as raised:
        end()
    assert raised.value.code == "processes_left"
    assert statuses_while_ending == ["stopping"]  # marked while its processes were being ended
    # ... and running again once that failed: not stopping (which a listing shows as
    # STOPPED once the pane is gone), and not removed.
    assert json.loads((tmp_path / "agents" / "agent-1" / "record.json").read_text()) == RECORD
