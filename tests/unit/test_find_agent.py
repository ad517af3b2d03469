"""FindAgent: the agents a host has recorded under a name, from their records alone (no
tmux), as push and pull confirm the agent on its recorded host (controller/agent_lookup.py).
The helper's Server in-process on a socket pair, asked through the controller's RpcClient."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.controller.channel import protocol
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import SocketStream
from mngr.remote_helper import server


@pytest.fixture
def host_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    return tmp_path / "host"


@pytest.fixture
def client() -> Iterator[RpcClient]:
    ours, theirs = socket.socketpair()
    helper = server.Server(theirs.fileno(), theirs.fileno(), "test")
    thread = threading.Thread(target=helper.serve, daemon=True)
    thread.start()
    try:
        yield RpcClient(SocketStream("test", ours))
    finally:
        ours.shutdown(socket.SHUT_WR)  # end of input: the Server finishes
        thread.join(timeout=10)
        ours.close()
        theirs.close()


def _record(host_dir: Path, agent_id: str, name: str, work_dir: str) -> None:
    directory = host_dir / "agents" / agent_id
    directory.mkdir(parents=True)
    (directory / "record.json").write_text(json.dumps({
        "id": agent_id, "name": name, "type": "command", "command": "sleep 600", "work_dir": work_dir,
        "created_at": "2026-01-01T00:00:00.000+00:00", "status": "running", "labels": {"team": "a"},
    }))


def test_the_recorded_agent_is_found_with_its_work_dir_and_no_state(host_dir: Path, client: RpcClient) -> None:
    _record(host_dir, "agent-1", "task", "/w/task")
    _record(host_dir, "agent-2", "other", "/w/other")
    found = client.call(protocol.FindAgent(name="task"), protocol.AgentList)
    (agent,) = found.agents
    assert (agent.id, agent.name, agent.work_dir, agent.labels) == ("agent-1", "task", "/w/task", {"team": "a"})
    assert (agent.state, agent.pid, agent.idle_seconds, found.host) == ("", None, None, None)


def test_a_name_recorded_nowhere_is_an_empty_list_not_an_error(host_dir: Path, client: RpcClient) -> None:
    _record(host_dir, "agent-1", "task", "/w/task")
    assert client.call(protocol.FindAgent(name="gone"), protocol.AgentList).agents == []
    assert client.call(protocol.FindAgent(name="Not A Name!"), protocol.AgentList).agents == []


def test_a_host_without_any_agent_dir_has_none(host_dir: Path, client: RpcClient) -> None:
    assert client.call(protocol.FindAgent(name="task"), protocol.AgentList).agents == []


def test_every_agent_of_the_name_is_listed(host_dir: Path, client: RpcClient) -> None:
    """Two records of one name (made by hand, or half-way through a move): both, by id, so
    that the caller sees what a full listing would."""
    _record(host_dir, "agent-b", "task", "/w/b")
    _record(host_dir, "agent-a", "task", "/w/a")
    found = client.call(protocol.FindAgent(name="task"), protocol.AgentList)
    assert [(agent.id, agent.work_dir) for agent in found.agents] == [("agent-a", "/w/a"), ("agent-b", "/w/b")]
