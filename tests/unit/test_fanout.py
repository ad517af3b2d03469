"""The commands' fan-out: every item done or reported, a blocked one given up on."""

from __future__ import annotations

import threading

import pytest

from mngr.controller.errors import MngrError
from mngr.controller.fanout import (
    CUT_SHORT,
    NOT_STARTED,
    NOT_STARTED_AFTER_FAILURE,
    Interruption,
    fan_out,
    not_started_reason,
    stopping_on_error,
)


def test_every_outcome_comes_back_in_order_with_each_failure_reported() -> None:
    def work(number: int) -> int:
        if number == 3:
            raise MngrError("three is refused")
        if number == 5:
            raise OSError("five is unreachable")
        return number * 10

    outcomes = fan_out(work, list(range(8)), item_timeout=None, limit=3)
    assert [outcome.item for outcome in outcomes] == list(range(8))
    assert [outcome.value for outcome in outcomes] == [0, 10, 20, None, 40, None, 60, 70]
    assert outcomes[3].error == "three is refused" and outcomes[5].error == "five is unreachable"
    assert [outcome.ok for outcome in outcomes].count(False) == 2


def test_no_more_than_the_limit_run_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Barrier(4, timeout=30)

    def work(_: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait()  # four at a time meet here: the limit is reached, never passed
        with lock:
            running -= 1

    outcomes = fan_out(work, list(range(12)), item_timeout=None, limit=4)
    assert all(outcome.ok for outcome in outcomes)
    assert most == 4


def test_an_item_that_never_finishes_is_reported_and_the_rest_are_done() -> None:
    never = threading.Event()
    try:
        def work(number: int) -> int:
            if number == 0:
                never.wait()  # a host that does not answer
            return number

        # One place for four items: the blocked one must give its place up for the rest.
        outcomes = fan_out(work, [0, 1, 2, 3], item_timeout=0.2, limit=1)
        assert outcomes[0].timed_out and outcomes[0].error == "no answer within 0.2 s"
        assert [outcome.value for outcome in outcomes[1:]] == [1, 2, 3]
    finally:
        never.set()


def test_each_item_may_have_its_own_time_limit() -> None:
    never = threading.Event()
    try:
        def work(seconds: float) -> float:
            if seconds < 1:
                never.wait()
            return seconds

        outcomes = fan_out(work, [0.1, 60.0], item_timeout=lambda seconds: seconds)
        assert outcomes[0].timed_out and outcomes[1].value == 60.0
    finally:
        never.set()


def test_a_bug_in_the_work_is_raised_not_reported() -> None:
    def work(number: int) -> int:
        return 1 // number

    with pytest.raises(ZeroDivisionError):
        fan_out(work, [1, 0, 2], item_timeout=None)


def test_after_an_interruption_nothing_new_starts_and_what_was_under_way_finishes() -> None:
    interruption = Interruption()

    def work(number: int) -> int:
        if number == 1:
            interruption.requested = True  # as the first Ctrl-C's handler does, mid-item
        return number

    outcomes = fan_out(work, [0, 1, 2, 3], item_timeout=None, limit=2, interruption=interruption)
    assert [outcome.value for outcome in outcomes[:2]] == [0, 1]
    assert [outcome.error for outcome in outcomes[2:]] == [NOT_STARTED, NOT_STARTED]


def test_a_second_interruption_stops_waiting_and_names_what_was_cut_short() -> None:
    import _thread

    interruption = Interruption()
    never = threading.Event()
    try:
        def work(number: int) -> int:
            if number == 0:
                _thread.interrupt_main()  # the second Ctrl-C, while this item is under way
                never.wait()
            return number

        outcomes = fan_out(work, [0, 1, 2], item_timeout=None, limit=1, interruption=interruption)
        assert interruption.abandoned
        assert outcomes[0].error == CUT_SHORT
        assert [outcome.error for outcome in outcomes[1:]] == [NOT_STARTED, NOT_STARTED]
    finally:
        never.set()



def _refuse_two(number: int) -> int:
    if number == 2:
        raise MngrError("two is refused")
    return number


def test_on_error_abort_starts_nothing_after_a_failure_and_says_why() -> None:
    stop = Interruption()
    outcomes = fan_out(stopping_on_error(_refuse_two, "abort", stop), [1, 2, 3, 4], item_timeout=None,
                       limit=1, interruption=stop)
    assert [outcome.value for outcome in outcomes] == [1, None, None, None]
    assert outcomes[1].error == "two is refused"
    assert [outcome.error for outcome in outcomes[2:]] == [NOT_STARTED, NOT_STARTED]
    assert [not_started_reason(outcome.error, stop) for outcome in outcomes[2:]] == [NOT_STARTED_AFTER_FAILURE] * 2
    assert not stop.by_user


def test_on_error_abort_counts_a_value_that_says_it_failed() -> None:
    stop = Interruption()
    work = stopping_on_error(lambda number: -number if number == 1 else number, "abort", stop,
                             failed=lambda value: value < 0)
    outcomes = fan_out(work, [1, 2], item_timeout=None, limit=1, interruption=stop)
    assert outcomes[0].value == -1 and outcomes[1].error == NOT_STARTED


def test_on_error_continue_does_the_rest() -> None:
    stop = Interruption()
    outcomes = fan_out(stopping_on_error(_refuse_two, "continue", stop), [1, 2, 3], item_timeout=None,
                       limit=1, interruption=stop)
    assert [outcome.value for outcome in outcomes] == [1, None, 3] and not stop.happened


def test_a_ctrl_c_stays_the_user_s_even_after_a_failure_was_seen() -> None:
    stop = Interruption()
    stop.requested = True  # Ctrl-C first
    stop.abort_after_failure()
    assert stop.by_user and not_started_reason(NOT_STARTED, stop) == NOT_STARTED
