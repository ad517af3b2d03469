"""A push's batches in flight together land in the order they were sent (write_order.py)."""

from __future__ import annotations

import threading

import pytest

from mngr.remote_helper.wire import RequestFailed
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
