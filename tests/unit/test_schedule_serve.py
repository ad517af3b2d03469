"""The serve loop of mngr schedule, on a fake clock given as a parameter (no sleeping)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import pytest

from mngr.controller import schedules


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path))


def test_serve_ticks_each_minute_and_runs_each_due_time_once() -> None:
    start = datetime.datetime(2026, 3, 7, 23, 58, 20, tzinfo=datetime.UTC)
    schedules.add(schedules.Schedule(name="every-2", cron="*/2 * * * *", timezone="UTC", message="go", agent="bot",
                                     created_at=start.isoformat()))
    clock = [start]
    slept: list[float] = []
    ran: list[list[str]] = []

    def runner(argv: Sequence[str]) -> tuple[int, str]:
        ran.append([*argv[:2], clock[0].strftime("%H:%M")])
        return 0, "sent"

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += datetime.timedelta(seconds=seconds)

    ticks = schedules.serve(runner, clock=lambda: clock[0], sleep=sleep, until=lambda: clock[0] >= start.replace(
        day=8, hour=0, minute=5))
    # Woken just after each minute starts: 23:59, 00:00, ... 00:05 (the first tick at 23:58:20).
    assert ticks == 8 and round(slept[0], 2) == 40.05 and all(round(s, 2) == 60.0 for s in slept[1:])
    assert ran == [["message", "bot", "00:00"], ["message", "bot", "00:02"], ["message", "bot", "00:04"]]
    assert [entry["due"][11:16] for entry in schedules.log_entries("every-2")] == ["00:00", "00:02", "00:04"]


def test_a_tick_while_another_runs_does_nothing() -> None:
    at = datetime.datetime(2026, 1, 1, 12, 0, 30, tzinfo=datetime.UTC)
    schedules.add(schedules.Schedule(name="s", cron="0 12 * * *", timezone="UTC", message="m", agent="a",
                                     created_at=(at - datetime.timedelta(hours=1)).isoformat()))
    inner: list[object] = []

    def runner(argv: Sequence[str]) -> tuple[int, str]:
        inner.append(schedules.tick(at, runner))  # a second tick, while the first holds the lock
        return 0, ""

    assert [result["schedule"] for result in schedules.tick(at, runner)] == ["s"]
    assert inner == [[]]
