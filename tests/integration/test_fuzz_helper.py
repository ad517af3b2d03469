"""The helper under hypothesis: hostile frames and hostile requests, a bounded run in CI.

One real helper (the first stage, bootstrapped as the local provider does) takes every
generated input; after each, every reply must be a well-formed frame that the controller's
own decoder accepts, answering the request it was for, and the helper must still answer a
Ping. Requests are of every type the helper knows, with fields of the right kind filled with
hostile values (paths that climb out, shell and tmux metacharacters, newlines, huge and
negative numbers) or of the wrong kind. The requests that run commands or write outside the
host dir by design (ExecStart, PrepareWorkDir, WriteFiles, SetIdleSettings' command, a
CreateAgent's command) get fixed harmless values there: this machine is the one running them.

HYPOTHESIS_MAX_EXAMPLES raises the bound for a longer local run.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mngr.controller.channel import protocol
from mngr.remote_helper import wire

from .helper_process import RawHelper

HEADER = struct.Struct(">III")
EXAMPLES = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "150"))
REQUESTS = [name for name in wire.MESSAGES if name in {kind.__name__ for kind in protocol.REQUEST_TYPES}]
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "../../etc/passwd", "/etc/shadow", "..", ".", "", "a/../../b", "$(touch /tmp/mngr-fuzz-pwned)",
        "`touch /tmp/mngr-fuzz-pwned`", "x; touch /tmp/mngr-fuzz-pwned", "#{pane_id}", "#(touch /tmp/mngr-fuzz-pwned)",
        "line\nbreak", "\x00nul", "-t", "--help", "mngr-x", "x" * 5000, "\u202eevil", "name:with:colons",
    ]),
)
ANY_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
                        max_leaves=12)
HUGE_INTS = st.one_of(st.integers(-5, 5), st.integers(-(2**70), 2**70))


def _value(kind: str) -> st.SearchStrategy[Any]:
    base = kind.rstrip("?")
    by_kind: dict[str, st.SearchStrategy[Any]] = {
        "str": HOSTILE_TEXT,
        "int": HUGE_INTS,
        "float": st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
                           st.integers(-10, 10)),
        "bool": st.booleans(),
        "map": st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=3),
        "list": st.lists(ANY_JSON, max_size=4),
        "object": st.dictionaries(HOSTILE_TEXT, ANY_JSON, max_size=3),
    }
    right = by_kind[base] if not kind.endswith("?") else st.none() | by_kind[base]
    return st.one_of(right, right, right, ANY_JSON)  # mostly the right kind, sometimes not


# Fields that would run a command or touch the disk outside the host dir, by design.
HARMLESS = {
    "CreateAgent": {"command": "sleep 30", "binary": None},
    "ExecStart": {"command": "true"},
    "PrepareWorkDir": {"path": "", "remove": False},
    "WriteFiles": {"work_dir": "", "dirs": [], "links": [], "parts": [], "deletes": []},
    "SetIdleSettings": {"command": None, "dry_run": True},
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(REQUESTS))
    fields = wire.MESSAGES[name]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True)) if fields else []
    message: dict[str, Any] = {"type": name}
    for field in chosen:
        message[field] = draw(_value(fields[field][0]))
    if draw(st.booleans()):
        message[draw(HOSTILE_TEXT)] = draw(ANY_JSON)  # a key the schema does not have
    message.update(HARMLESS.get(name, {}))
    if name == "CreateAgent":
        message["work_dir"] = os.getcwd()
    return message


@pytest.fixture
def helper(sandbox):  # type: ignore[no-untyped-def]
    env = dict(sandbox.env, MNGR_HOST_DAEMON="0")  # no daemon: no idle watcher acting on fuzzed settings
    raw = RawHelper(env)
    yield raw
    raw.kill()


def _answered(helper: RawHelper, request_id: int) -> msgspec.Struct:
    [reply] = _replies(helper, [request_id]).values()
    return reply


def _replies(helper: RawHelper, request_ids: list[int]) -> dict[int, msgspec.Struct]:
    """One well-formed reply for each request (in any order: the helper serves them at once)."""
    replies = {}
    for _ in request_ids:
        got_id, body, _blob = helper.receive(timeout=60)
        assert got_id in request_ids and got_id not in replies, (got_id, request_ids)
        replies[got_id] = _well_formed(body)
    return replies


def _well_formed(body: dict[str, Any]) -> msgspec.Struct:
    reply = protocol.decode_reply(json.dumps(body).encode())
    assert isinstance(reply, protocol.REPLY_TYPES)
    if isinstance(reply, protocol.Error):
        assert reply.code and reply.message
    return reply


def test_hostile_requests_get_well_formed_replies_and_the_helper_lives(helper: RawHelper, sandbox) -> None:
    counter = iter(range(1, 10**9))
    os.chdir(sandbox.work_dir)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=st.lists(requests(), min_size=1, max_size=3))
    def check(batch: list[dict[str, Any]]) -> None:
        ids = []
        for message in batch:
            request_id = next(counter)
            helper.send(request_id, message)
            ids.append(request_id)
        _replies(helper, ids)
        ping = next(counter)
        helper.send(ping, {"type": "Ping"})
        assert isinstance(_answered(helper, ping), protocol.Pong)

    check()
    assert not os.path.exists("/tmp/mngr-fuzz-pwned")


def test_hostile_frames_get_errors_or_a_clean_close(sandbox) -> None:
    @settings(max_examples=max(EXAMPLES // 3, 20), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(body=st.one_of(st.binary(min_size=1, max_size=200),
                          st.builds(lambda value: json.dumps(value).encode(), ANY_JSON)),
           blob=st.binary(max_size=64), declared_blob=st.integers(0, 2**32 - 1), truncate=st.booleans())
    def check(body: bytes, blob: bytes, declared_blob: int, truncate: bool) -> None:
        helper = RawHelper(dict(sandbox.env, MNGR_HOST_DAEMON="0"))
        try:
            lying = declared_blob if declared_blob > wire.MAX_BLOB_BYTES else len(blob)
            helper.send_raw(HEADER.pack(7, len(body), lying) + body + blob)
            if lying != len(blob) or truncate:
                helper.close_input()  # the frame can never complete: the helper must not hang
                output = helper.remaining_output(timeout=30)
                assert helper.wait_exit() == 0
                _frames_only(output)
                return
            _answered(helper, 7)
            helper.send(8, {"type": "Ping"})
            assert isinstance(_answered(helper, 8), protocol.Pong)
        finally:
            helper.kill()

    check()


def _frames_only(output: bytes) -> None:
    """``output`` is whole frames (error replies), nothing else."""
    while output:
        _request_id, body_length, blob_length = HEADER.unpack(output[:HEADER.size])
        body = output[HEADER.size:HEADER.size + body_length]
        reply = msgspec.json.decode(body)
        assert reply["type"] == "Error", reply
        output = output[HEADER.size + body_length + blob_length:]
