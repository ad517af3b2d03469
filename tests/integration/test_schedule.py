"""mngr schedule against a real crontab (root's, restored afterwards) and real mngr commands;
the clock moved with `mngr schedule tick --now`, never with a sleep."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import zoneinfo
from collections.abc import Iterator

import pytest
from croniter import croniter

from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which("crontab") is None, reason="no crontab command (apt install cron)")


@pytest.fixture
def crontab() -> Iterator[None]:
    """Root's crontab as it was, put back afterwards."""
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    try:
        yield
    finally:
        if before.returncode == 0:
            subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)


def _crontab_lines(sandbox) -> list[str]:  # type: ignore[no-untyped-def]
    listed = subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in listed if line.endswith(f"# mngr schedule tick for {sandbox.state_dir}")]


def _with_cat_template(sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text('[templates.hook]\nagent_type = "command"\nargs = ["cat"]\n')


def _agents(sandbox) -> list[str]:  # type: ignore[no-untyped-def]
    return [agent["name"] for agent in json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]]


def _log(sandbox, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    shown = sandbox.mngr("schedule", "log", name, "--tail", "100")
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def test_add_list_run_and_remove_with_a_real_crontab(sandbox, crontab) -> None:
    _with_cat_template(sandbox)
    # Due once an hour, half an hour from now: the tick below finds nothing due.
    cron = f"{(datetime.datetime.now(datetime.UTC).minute + 30) % 60} * * * *"
    added = sandbox.mngr("schedule", "--template", "hook", "hello from the schedule", "--cron", cron, "--tz", "UTC")
    assert added.returncode == 0 and added.stdout.startswith(f"added schedule hook: {cron} (UTC)"), added.stderr
    [line] = _crontab_lines(sandbox)
    assert line.startswith("* * * * * env ") and " schedule tick >> " in line

    # What cron will run, run as cron would: with no environment but what the line carries.
    command = line.removeprefix("* * * * * ").rsplit(" # mngr schedule tick for ", 1)[0]
    ran = subprocess.run(["env", "-i", "/bin/sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert _agents(sandbox) == []  # just added: nothing was due yet

    listed = json.loads(sandbox.mngr("schedule", "list", "--format", "json").stdout)
    [row] = listed["schedules"]
    assert listed["crontab"] is True
    assert (row["name"], row["cron"], row["timezone"], row["does"]) == ("hook", cron, "UTC", "create -T hook")

    by_hand = sandbox.mngr("schedule", "run", "hook")
    assert by_hand.returncode == 0, by_hand.stderr
    [made] = _agents(sandbox)
    assert made.startswith("hook-")
    again = sandbox.mngr("schedule", "run", "hook")  # within the same minute: a name of its own
    assert again.returncode == 0, again.stderr
    assert len(_agents(sandbox)) == 2
    wait_for(lambda: "hello from the schedule" in sandbox.mngr("capture", made).stdout, "the initial message")
    assert [(entry["outcome"], entry["by"]) for entry in _log(sandbox, "hook")] == [("ok", "hand")] * 2

    removed = sandbox.mngr("schedule", "remove", "hook")
    assert removed.returncode == 0 and _crontab_lines(sandbox) == []
    assert sandbox.mngr("schedule", "list").stdout == "no schedules\n"


def _next_due(cron: str, zone: str) -> datetime.datetime:
    start = datetime.datetime.now(zoneinfo.ZoneInfo(zone)) + datetime.timedelta(minutes=5)
    due: datetime.datetime = croniter(cron, start).get_next(datetime.datetime)
    return due


def test_ticks_run_what_came_due_in_its_time_zone_once_and_make_up_only_a_recent_miss(sandbox) -> None:
    created = sandbox.mngr("create", "target", "command", "--no-connect", "--", "cat")
    assert created.returncode == 0, created.stderr
    added = sandbox.mngr("schedule", "ping", "--agent", "target", "--cron", "0 9 * * *", "--tz", "America/New_York",
                         "--no-install")
    assert added.returncode == 0, added.stderr
    due = _next_due("0 9 * * *", "America/New_York")  # 09:00 in New York, 13:00 or 14:00 UTC

    def tick(at: datetime.datetime) -> str:
        done = sandbox.mngr("schedule", "tick", "--now", at.astimezone(datetime.UTC).isoformat())
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert tick(due - datetime.timedelta(minutes=1)) == ""
    assert tick(due + datetime.timedelta(seconds=30)) == f"target: ok (due {due.isoformat()})\n"
    wait_for(lambda: "ping" in sandbox.mngr("capture", "target").stdout, "the scheduled message")
    assert tick(due + datetime.timedelta(seconds=50)) == ""  # a second tick runs nothing twice

    # Three days off, back 30 s after a due time: that one runs, the two before are logged.
    later = due + datetime.timedelta(days=3)
    assert tick(later + datetime.timedelta(seconds=30)).startswith("target: ok")
    assert any(entry.get("outcome") == "missed" and entry["missed"] == 2 for entry in _log(sandbox, "target"))

    # Back five hours after a due time: too old to make up; skipped, and said so.
    stale = due + datetime.timedelta(days=6, hours=5)
    assert tick(stale) == f"target: skipped (due {(due + datetime.timedelta(days=6)).isoformat()})\n"
    outcomes = [entry["outcome"] for entry in _log(sandbox, "target")]
    assert outcomes == ["ok", "ok", "missed", "skipped"]
    listed = json.loads(sandbox.mngr("schedule", "list", "--format", "json").stdout)["schedules"][0]
    assert listed["last_run"]["due"] == later.isoformat()


def test_a_bad_schedule_is_one_line_exit_2_and_nothing_is_kept(sandbox) -> None:
    """Each bad value is tested in-process (test_commands.py); here, what the user sees."""
    refused = sandbox.mngr("schedule", "msg", "--cron", "0 0 31 2 *", "--no-install")
    assert refused.returncode == 2 and "never comes due" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert sandbox.mngr("schedule", "list").stdout == "no schedules\n"
    unknown = sandbox.mngr("schedule", "remove", "nope")
    assert unknown.returncode == 2 and "no schedule named 'nope'" in unknown.stderr


def test_a_crontab_that_cannot_be_written_leaves_no_schedule(sandbox) -> None:
    # Fault injection: a crontab command that refuses every change (as for a user cron denies).
    env = sandbox.program_on_path("crontab", '[ "$1" = "-l" ] && exit 0\necho "you are not allowed to use '
                                             'this program" >&2\nexit 1\n')
    refused = sandbox.mngr("schedule", "m", "--cron", "0 * * * *", env=env)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "mngr: error: cannot write your crontab: you are not allowed to use this program")
    assert sandbox.mngr("schedule", "list").stdout == "no schedules\n"
