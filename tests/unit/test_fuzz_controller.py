"""A hostile helper answering the controller, under hypothesis: every answer is either taken
as what was asked for, or refused with one of mngr's errors; never another exception, never
a hang. The "helper" is a thread at the other end of a socket pair, answering each request
with generated frames: replies of any type with fields of the right kind or not, hostile
values, wrong request ids, lying lengths, garbage, or nothing and a close."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mngr.controller.channel import protocol
from mngr.controller.channel.stream import SocketStream, Stream
from mngr.controller.errors import MngrError
from mngr.controller.hosts import HostHandle
from mngr.providers.base import Provider
from mngr.remote_helper import wire

HEADER = struct.Struct(">III")
REPLIES = [kind.__name__ for kind in protocol.REPLY_TYPES]
TEXT = st.one_of(st.text(max_size=30), st.sampled_from(["../../etc/passwd", "/etc/shadow", "a\0b", "x" * 3000]))
JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=10)


@st.composite
def reply_bodies(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(REPLIES))
    fields = wire.MESSAGES[name]
    body: dict[str, Any] = {"type": name}
    for field in draw(st.lists(st.sampled_from(sorted(fields)), unique=True)) if fields else []:
        body[field] = draw(JSON)
    return json.dumps(body).encode()


# What the hostile helper does with one request: (request id offset, body, blob, declared blob
# length or None for the true one); an empty list means it closes the connection.
ANSWER = st.tuples(st.sampled_from([0, 0, 0, 1]), st.one_of(reply_bodies(), reply_bodies(), st.binary(max_size=40)),
                   st.binary(max_size=64), st.sampled_from([None, None, None, 0, 2**31]))
SCRIPT = st.lists(st.lists(ANSWER, max_size=2), min_size=1, max_size=6)


class _HostileProvider(Provider):
    name = "hostile"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def known_hosts(self) -> Sequence[str]:
        return ["h"]

    def default_host(self) -> str:
        return "h"

    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        stream = SocketStream(host, self.sock)
        stream.proven = True
        return stream

    def attach_argv(self, host: str, session: str) -> list[str]:
        return []


def _serve(sock: socket.socket, script: list[list[tuple[int, bytes, bytes, int | None]]]) -> None:
    reader = sock.makefile("rb")
    try:
        for answers in script:
            header = reader.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            request_id, body_length, blob_length = HEADER.unpack(header)
            reader.read(body_length + blob_length)
            if not answers:
                return
            for offset, body, blob, declared in answers:
                length = len(blob) if declared is None else declared
                sock.sendall(HEADER.pack(request_id + offset, len(body), length) + body + blob[:length])
    except OSError:
        pass
    finally:
        reader.close()
        sock.close()


OPERATIONS: list[tuple[str, Callable[[HostHandle], object], type | tuple[type, ...]]] = [
    ("list", lambda handle: handle.list_host(0.0), protocol.AgentList),
    ("info", lambda handle: handle.helper_info(), protocol.HelperInfo),
    ("spec", lambda handle: handle.agent_spec("a"), protocol.AgentSpec),
    ("capture", lambda handle: handle.capture("a"), bytes),
    ("read files", lambda handle: handle.read_files("a", ["x"]), tuple),
    ("exec read", lambda handle: handle.exec_read(1, 0.0), tuple),
    ("stop", lambda handle: handle.stop_agent("a"), protocol.AgentInfo),
]


@pytest.mark.parametrize(("label", "operation", "expected"), OPERATIONS, ids=[item[0] for item in OPERATIONS])
def test_hostile_replies_are_taken_as_asked_or_refused_with_mngrs_errors(label: str, operation: Callable[[HostHandle], object],
                                                                        expected: type) -> None:
    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(script=SCRIPT)
    def check(script: list[list[tuple[int, bytes, bytes, int | None]]]) -> None:
        ours, theirs = socket.socketpair()
        helper = threading.Thread(target=_serve, args=(theirs, script), daemon=True)
        helper.start()
        handle = HostHandle(_HostileProvider(ours), "h", timeout=2.0)
        try:
            result = operation(handle)
        except MngrError:
            pass  # refused, in one of mngr's own words
        else:
            assert isinstance(result, expected), (label, result)
        finally:
            handle.close()
            ours.close()
            helper.join(10)
            assert not helper.is_alive()

    check()


def test_a_reply_of_the_wrong_type_is_a_protocol_violation() -> None:
    ours, theirs = socket.socketpair()
    body = msgspec.json.encode(protocol.Pong())
    helper = threading.Thread(target=_serve, args=(theirs, [[(0, body, b"", None)]]), daemon=True)
    helper.start()
    handle = HostHandle(_HostileProvider(ours), "h", timeout=2.0)
    with pytest.raises(MngrError, match="Pong"):
        handle.list_host(0.0)
    handle.close()
    helper.join(10)
