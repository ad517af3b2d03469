"""A rename carries the schedules that message the agent (schedules.agent_renamed), in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller import schedules


def test_schedules_naming_the_agent_follow_its_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path))
    assert schedules.agent_renamed("fixer", "mender", "box", "ssh") == []  # no store: nothing to do
    for name, agent in (("plain", "fixer"), ("placed", "fixer@box"), ("provider", "fixer@ssh/box"),
                        ("elsewhere", "fixer@other"), ("another", "fixer-2"), ("creates", "")):
        schedules.add(schedules.Schedule(name=name, cron="0 3 * * *", timezone="UTC", message="go", agent=agent))
    assert schedules.agent_renamed("fixer", "mender", "box", "ssh") == ["placed", "plain", "provider"]
    agents = {schedule.name: schedule.agent for schedule in schedules.load()}
    assert agents == {"plain": "mender", "placed": "mender@box", "provider": "mender@ssh/box",
                      "elsewhere": "fixer@other", "another": "fixer-2", "creates": ""}
