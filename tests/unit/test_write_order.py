"""A push's batches in flight together land in the order they were sent (write_order.py)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from mngr.remote_helper import server
from mngr.remote_helper.wire import HEADER, RequestFailed, encode_body, encode_frame
from mngr.remote_helper.write_order import WriteOrder


def _batch(order: WriteOrder, sequence: int, last: bool, landed: list[tuple[int, str]],
           errors: dict[int, RequestFailed], fail: bool = False) -> None:
    """One batch as the host runs it: waits for its turn, records the tag it started from."""
    try:
        with order.turn("push", sequence, "tag-start" if sequence == 0 else "ignored", last) as outcome:
            landed.append((sequence, outcome.tag))
            if fail:
                raise RequestFailed("host", "disk full")
            outcome.tag = f"tag-{sequence}"
    except RequestFailed as exc:
        errors[sequence] = exc


def _run_in_order(order: WriteOrder, arrival: list[int], count: int, failing: int = -1
                  ) -> tuple[list[tuple[int, str]], dict[int, RequestFailed]]:
    landed: list[tuple[int, str]] = []
    errors: dict[int, RequestFailed] = {}
    threads = []
    for sequence in arrival:
        thread = threading.Thread(target=_batch, args=(order, sequence, sequence == count - 1, landed, errors,
                                                       sequence == failing))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return landed, errors


@pytest.mark.parametrize("arrival", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_batches_land_in_sequence_and_chain_tags_whatever_order_they_arrive_in(arrival: list[int]) -> None:
    landed, errors = _run_in_order(WriteOrder(), arrival, 4)
    assert errors == {}
    assert landed == [(0, "tag-start"), (1, "tag-0"), (2, "tag-1"), (3, "tag-2")]


def test_a_failed_batch_fails_every_later_one_without_running_it() -> None:
    landed, errors = _run_in_order(WriteOrder(), [3, 2, 1, 0], 4, failing=1)
    assert landed == [(0, "tag-start"), (1, "tag-0")]
    assert errors[1].code == "host"
    assert {errors[2].code, errors[3].code} == {"aborted"}
    assert 0 not in errors


def test_closing_the_channel_releases_a_batch_waiting_for_one_that_never_came() -> None:
    order = WriteOrder()
    landed: list[tuple[int, str]] = []
    errors: dict[int, RequestFailed] = {}
    waiting = threading.Thread(target=_batch, args=(order, 1, True, landed, errors))
    waiting.start()
    waiting.join(timeout=0.2)
    assert waiting.is_alive()  # batch 0 never came: it waits
    order.close()
    waiting.join(timeout=30)
    assert not waiting.is_alive()
    assert landed == [] and errors[1].code == "aborted"


def test_a_batch_sent_twice_or_after_its_push_ended_is_refused() -> None:
    order = WriteOrder()
    landed, errors = _run_in_order(order, [0, 1], 2)
    assert errors == {} and len(landed) == 2
    for sequence in (0, 1, 5):
        with pytest.raises(RequestFailed) as caught, order.turn("push", sequence, "", False):
            pytest.fail("an ended push ran a batch")
        assert caught.value.code == "invalid"


def test_a_repeated_sequence_number_is_refused() -> None:
    order = WriteOrder()
    with order.turn("push", 0, "a", False) as outcome:
        outcome.tag = "b"
    with pytest.raises(RequestFailed) as caught, order.turn("push", 0, "a", False):
        pytest.fail("batch 0 ran twice")
    assert caught.value.code == "invalid"
    with order.turn("push", 1, "", True) as outcome:
        assert outcome.tag == "b"


def test_sessions_are_independent() -> None:
    order = WriteOrder()
    # A second push is not held up by the first.
    with order.turn("one", 0, "x", True) as outcome, order.turn("two", 0, "y", True) as other:
        assert (outcome.tag, other.tag) == ("x", "y")


# -- the helper's Server, in-process on a socket pair: batches of one push sent out of order


def _replies(sock: socket.socket, count: int) -> dict[int, dict[str, Any]]:
    """The bodies of the next ``count`` replies (progress frames aside), by request id."""
    reader = server.FrameReader(sock.fileno())
    replies: dict[int, dict[str, Any]] = {}
    while len(replies) < count:
        header = reader.read_exact(HEADER.size)
        assert header is not None
        request_id, body_length, blob_length = HEADER.unpack(header)
        body = json.loads(reader.read_exact(body_length))
        if blob_length:
            reader.read_exact(blob_length)
        if request_id:
            replies[request_id] = body
    return replies


def _push_backwards(work_dir: Path, parts: list[bytes], first_blob_length: int | None = None
                    ) -> dict[int, dict[str, Any]]:
    """One file in ``parts``, a batch per part, the batches sent last first; request id =
    sequence + 1. ``first_blob_length``: the first batch claims that much data (a broken one)."""
    ours, theirs = socket.socketpair()
    helper = server.Server(theirs.fileno(), theirs.fileno(), "test")
    thread = threading.Thread(target=helper.serve)
    thread.start()
    try:
        offset = 0
        frames = []
        for sequence, data in enumerate(parts):
            final = sequence == len(parts) - 1
            length = first_blob_length if sequence == 0 and first_blob_length is not None else len(data)
            fields = {"name": "", "work_dir": str(work_dir), "session": "s1", "sequence": sequence, "last": final,
                      "parts": [["big.bin", 0o644, 1_000_000_000, 0, length, False, offset, final]]}
            frames.append(encode_frame(sequence + 1, encode_body("WriteFiles", fields), data))
            offset += len(data)
        for frame in reversed(frames):
            ours.sendall(frame)
        return _replies(ours, len(parts))
    finally:
        ours.shutdown(socket.SHUT_WR)  # end of input: the Server finishes its requests and returns
        thread.join(timeout=30)
        assert not thread.is_alive()
        ours.close()
        theirs.close()


def test_a_files_parts_sent_in_batches_out_of_order_land_in_order(tmp_path: Path) -> None:
    parts = [bytes([index]) * 100_000 for index in range(1, 5)]
    replies = _push_backwards(tmp_path, parts)
    assert [replies[request_id]["type"] for request_id in (1, 2, 3, 4)] == ["Written"] * 4, replies
    assert (tmp_path / "big.bin").read_bytes() == b"".join(parts)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.bin"]  # no part file left


def test_a_broken_first_batch_fails_the_ones_after_it_and_lands_nothing(tmp_path: Path) -> None:
    parts = [bytes([index]) * 100_000 for index in range(1, 4)]
    replies = _push_backwards(tmp_path, parts, first_blob_length=200_000)  # past the data it carries
    assert replies[1]["type"] == "Error" and replies[1]["code"] == "invalid", replies[1]
    assert [(replies[request_id]["type"], replies[request_id]["code"]) for request_id in (2, 3)] == \
        [("Error", "aborted")] * 2
    assert list(tmp_path.iterdir()) == []
