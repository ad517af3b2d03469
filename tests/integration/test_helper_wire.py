"""The helper's answers to good, concurrent and hostile frames, over a real channel."""

from __future__ import annotations

import random

import pytest

from .helper_process import HEADER, RawHelper, python38


@pytest.fixture
def helper(sandbox):
    raw = RawHelper(sandbox.env)
    yield raw
    raw.kill()


def test_ping_echoes_a_binary_blob_raw(helper: RawHelper) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    helper.send(5, {"type": "Ping"}, blob)
    request_id, body, reply_blob = helper.receive()
    assert (request_id, body["type"], reply_blob) == (5, "Pong", blob)


def test_many_requests_in_flight_are_each_answered_once(helper: RawHelper) -> None:
    ids = list(range(1, 41))
    for request_id in ids:
        message = {"type": "ListAgents"} if request_id % 2 else {"type": "Ping"}
        helper.send(request_id, message)
    replies = {}
    for _ in ids:
        request_id, body, _ = helper.receive()
        replies[request_id] = body["type"]
    assert sorted(replies) == ids
    assert all(replies[i] == ("AgentList" if i % 2 else "Pong") for i in ids)


def test_unknown_type_gets_an_error_and_the_channel_keeps_working(helper: RawHelper) -> None:
    helper.send(1, {"type": "FormatTheDisk"})
    assert helper.receive()[:2] == (1, {"type": "Error", "code": "unknown_type",
                                        "message": "unknown message type 'FormatTheDisk'"})
    helper.send(2, {"type": "Ping"})
    assert helper.receive()[:2] == (2, {"type": "Pong"})


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1,2,3]", b'{"no_type": 1}', b'{"type": 7}', b"\xff\xfe\x00",
     b'{"type": "StopAgent"}', b'{"type": "StopAgent", "name": ["x"]}', b'{"type": "Pong"}'],
)
def test_malformed_bodies_get_error_replies(helper: RawHelper, body: bytes) -> None:
    helper.send_raw(HEADER.pack(9, len(body), 0) + body)
    request_id, reply, _ = helper.receive()
    assert request_id == 9
    assert reply["type"] == "Error"
    assert reply["code"] in {"bad_frame", "invalid", "unknown_type"}
    helper.send(10, {"type": "Ping"})
    assert helper.receive()[:2] == (10, {"type": "Pong"})


def test_absurd_length_gets_an_error_then_a_clean_close(helper: RawHelper) -> None:
    helper.send_raw(HEADER.pack(3, 0xFFFFFFF0, 0))
    request_id, reply, _ = helper.receive()
    assert (request_id, reply["type"], reply["code"]) == (3, "Error", "bad_frame")
    assert helper.remaining_output() == b""
    assert helper.wait_exit() == 0


def test_truncated_frame_then_eof_closes_cleanly(helper: RawHelper) -> None:
    helper.send_raw(HEADER.pack(4, 100, 0) + b'{"type": "Pi')
    helper.close_input()
    assert helper.remaining_output() == b""
    assert helper.wait_exit() == 0


def test_random_bytes_never_produce_anything_but_frames(sandbox) -> None:
    generator = random.Random(1234)
    for _ in range(20):
        helper = RawHelper(sandbox.env)
        try:
            helper.send_raw(bytes(generator.getrandbits(8) for _ in range(generator.randint(1, 300))))
            helper.close_input()
            output = helper.remaining_output()
            assert helper.wait_exit() == 0
            # Whatever came back must parse as whole frames, each an Error reply.
            while output:
                _, body_length, blob_length = HEADER.unpack(output[: HEADER.size])
                body = output[HEADER.size : HEADER.size + body_length]
                assert b'"type":"Error"' in body, body
                output = output[HEADER.size + body_length + blob_length :]
        finally:
            helper.kill()


def test_no_traceback_or_print_ever_reaches_the_stream(sandbox) -> None:
    helper = RawHelper(sandbox.env)
    try:
        # An internal failure: the work dir is a file, so creation fails inside the helper.
        not_a_dir = sandbox.root / "file"
        not_a_dir.write_text("x")
        helper.send(1, {"type": "CreateAgent", "name": "a", "agent_type": "command", "command": "true",
                        "work_dir": str(not_a_dir)})
        request_id, reply, _ = helper.receive()
        assert (request_id, reply["type"], reply["code"]) == (1, "Error", "invalid")
        helper.close_input()
        assert helper.remaining_output() == b""
    finally:
        helper.kill()


def test_helper_runs_on_python_3_8(sandbox) -> None:
    interpreter = python38()
    if interpreter is None:
        pytest.skip("no Python 3.8 on this machine to check the helper's oldest supported version")
    helper = RawHelper(sandbox.env, python=interpreter)
    try:
        helper.send(1, {"type": "GetHelperInfo"})
        _, reply, _ = helper.receive()
        assert reply["python"].startswith("3.8.")
        helper.send(2, {"type": "ListAgents"})
        listed = helper.receive()[1]
        assert listed["type"] == "AgentList" and listed["agents"] == []
        assert listed["host"]["idle_timeout"] is None and listed["host"]["idle_mode"] == "io"
    finally:
        helper.kill()

