"""A push's or pull's first requests, sent while mngr loads (controller/early_channel.py),
used only where the command would have sent the same ones on the same socket. The helper's
Server in-process, on real unix sockets."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.controller import early_channel
from mngr.controller.channel import early, protocol
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import SocketStream
from mngr.remote_helper import server, wire


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host dir with agent ``task`` (work dir ``work``), and a state dir, under tmp_path."""
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(early_channel, "_known_paths", None)
    (tmp_path / "state").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a.txt").write_text("a")
    record = tmp_path / "host" / "agents" / "agent-1" / "record.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"id": "agent-1", "name": "task", "type": "command", "command": "sleep 600",
                                  "work_dir": str(tmp_path / "work"), "created_at": "", "labels": {}}))
    yield tmp_path
    early.discard()


@pytest.fixture
def daemon_socket() -> Iterator[str]:
    """A unix socket where the helper's Server answers each connection, as a host daemon's."""
    directory = Path(os.environ["MNGR_STATE_DIR"]).parent / "d"
    directory.mkdir()
    path = str(directory / "daemon.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    def answer(connection: socket.socket) -> None:
        # A client that closes with replies unread resets the connection: that ends it too.
        with connection, contextlib.suppress(ConnectionResetError):
            server.Server(connection.fileno(), connection.fileno(), "test").serve()

    threading.Thread(target=serve, daemon=True).start()
    yield path
    listener.close()


def _state(dirs: Path, agents: list[list[str]], channels: dict[str, str]) -> None:
    (dirs / "state" / "completion.json").write_text(json.dumps({"agents": agents}))
    (dirs / "state" / early_channel.RECORD).write_text(json.dumps(channels))


def _manifest_request(dirs: Path, **fields: object) -> protocol.GetManifest:
    request = {"name": "task", "include_ignored": False, "work_dir": "", "with_uncommitted": True, "known": ""}
    return protocol.GetManifest(**{**request, **fields})  # type: ignore[arg-type]


def test_the_early_requests_answer_the_commands_equal_ones(dirs: Path, daemon_socket: str) -> None:
    _state(dirs, [["task", "box", "ssh"], ["other", "box2", "ssh"]], {"ssh/box": daemon_socket})
    early_channel.start_early(["push", "task", str(dirs / "work")], lambda agent, ignored: "")
    stream = SocketStream.connect("box", daemon_socket)
    assert sorted(stream.prefetched) == [1, 2, 3]  # Ping, FindAgent, GetManifest
    early_bytes = sum(wire.HEADER.size + len(body) for body in stream.prefetched.values())
    client = RpcClient(stream)
    # Probed as an unproven socket is (hosts.py): by the Ping sent early, ahead of it.
    listed, _ = client.call_with_blob(protocol.FindAgent(name="task"), protocol.AgentList, probe=2.0)
    (found,) = listed.agents
    manifest, blob = client.call_with_blob(_manifest_request(dirs), protocol.Manifest)
    assert found.work_dir == manifest.root == str(dirs / "work") and blob
    assert client.bytes_sent == early_bytes  # both answered by what was sent early, nothing sent again
    again = client.call(protocol.FindAgent(name="task"), protocol.AgentList)  # each early reply serves once
    assert [agent.name for agent in again.agents] == ["task"] and client.bytes_sent > early_bytes
    client.close()


def test_a_request_unlike_the_early_one_is_sent_with_an_id_of_its_own(dirs: Path, daemon_socket: str) -> None:
    _state(dirs, [["task", "box", "ssh"]], {"ssh/box": daemon_socket})
    early_channel.start_early(["pull", "task", str(dirs / "copy")], lambda agent, ignored: "t.1.2")
    stream = SocketStream.connect("box", daemon_socket)
    early_bodies = {request_id: json.loads(body) for request_id, body in stream.prefetched.items()}
    assert early_bodies[3]["with_uncommitted"] is False and early_bodies[3]["known"] == "t.1.2"  # as a pull asks
    client = RpcClient(stream)
    manifest, _ = client.call_with_blob(_manifest_request(dirs, known=""), protocol.Manifest)
    assert client.bytes_sent > 0 and manifest.root == str(dirs / "work")  # sent: unlike the early one
    # The unused early replies do not get in the way of later ones.
    assert client.call(protocol.FindAgent(name="nobody"), protocol.AgentList).agents == []
    client.close()


def test_another_socket_does_not_get_the_early_connection(dirs: Path, daemon_socket: str) -> None:
    _state(dirs, [["task", "box", "ssh"]], {"ssh/box": daemon_socket})
    early_channel.start_early(["push", "task"], lambda agent, ignored: None)
    assert early.take(daemon_socket + ".other") is None
    taken = early.take(daemon_socket)
    assert taken is not None and list(taken.sent) == [1, 2]  # no tag known: Ping and FindAgent only
    assert json.loads(taken.sent[2]) == {"type": "FindAgent", "name": "task"}
    taken.sock.close()


@pytest.mark.parametrize("case", ["two places", "no socket known", "nothing listens", "not a plain push",
                                  "another command", "garbage record"])
def test_nothing_is_started_without_a_sound_guess(dirs: Path, daemon_socket: str, case: str) -> None:
    agents = [["task", "box", "ssh"]] + ([["task", "other", "ssh"]] if case == "two places" else [])
    channels = {} if case == "no socket known" else {"ssh/box": daemon_socket}
    if case == "nothing listens":
        channels = {"ssh/box": str(dirs / "nobody.sock")}
    _state(dirs, agents, channels)
    if case == "garbage record":
        (dirs / "state" / "completion.json").write_text('{"agents": [["task"], 3, null')
    argv = {"not a plain push": ["push", "task", "--exclude", "x"], "another command": ["list"]}.get(
        case, ["push", "task"])
    early_channel.start_early(argv, lambda agent, ignored: "")
    assert early.take(daemon_socket) is None and early.take(str(dirs / "nobody.sock")) is None


def test_a_socket_that_served_is_remembered_once(dirs: Path) -> None:
    early_channel.remember("ssh", "box", "/x/fwd-1.sock")
    record = dirs / "state" / early_channel.RECORD
    assert json.loads(record.read_text()) == {"ssh/box": "/x/fwd-1.sock"}
    stamp = record.stat().st_mtime_ns
    early_channel.remember("ssh", "box", "/x/fwd-1.sock")  # already known: not written again
    assert record.stat().st_mtime_ns == stamp
    early_channel.remember("ssh", "box", "/x/fwd-2.sock")
    early_channel.remember("local", "local", "/y/daemon.sock")
    assert json.loads(record.read_text()) == {"ssh/box": "/x/fwd-2.sock", "local/local": "/y/daemon.sock"}


def test_an_early_frame_is_what_the_controller_would_send(dirs: Path) -> None:
    """The early bodies are written by the helper's stdlib codec: they must decode to the
    controller's requests field for field, or no early reply would ever be used."""
    body = wire.encode_body("GetManifest", {"name": "task", "include_ignored": True, "work_dir": "",
                                            "with_uncommitted": False, "known": "t.1"})
    assert protocol.decode_request(body) == _manifest_request(dirs, include_ignored=True, with_uncommitted=False,
                                                              known="t.1")


def test_the_bytes_counted_are_the_same_with_or_without_early_requests(dirs: Path, daemon_socket: str) -> None:
    """What a push or pull reports as its wire bytes: the requests it used and their
    replies, whenever they were sent or read; an early reply it did not use is not its."""
    _state(dirs, [["task", "box", "ssh"]], {"ssh/box": daemon_socket})
    counted = []
    for early_start in (True, False):
        if early_start:
            early_channel.start_early(["push", "task", str(dirs / "work")], lambda agent, ignored: "")
        client = RpcClient(SocketStream.connect("box", daemon_socket))
        client.call(protocol.FindAgent(name="task"), protocol.AgentList)
        before = (client.bytes_sent, client.bytes_received)
        client.call_with_blob(_manifest_request(dirs), protocol.Manifest)
        counted.append((before, (client.bytes_sent, client.bytes_received)))
        client.close()
    assert counted[0] == counted[1] and counted[0][1][1] > counted[0][0][1] > 0
    early_channel.start_early(["pull", "task", str(dirs / "work")], lambda agent, ignored: "x.1")
    client = RpcClient(SocketStream.connect("box", daemon_socket))
    client.call(protocol.FindAgent(name="task"), protocol.AgentList)
    client.call(protocol.FindAgent(name="nobody"), protocol.AgentList)  # the early GetManifest's reply is read
    assert (client.bytes_sent, client.bytes_received) < counted[0][1]  # ... and not counted
    client.close()
