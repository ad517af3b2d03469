"""Schedules: agents created, or messages sent to one, on a cron schedule, unattended.

A schedule is a cron expression in a time zone, and what to do when it comes due: create an
agent (from a template, with the message as its initial message) or send the message to an
existing agent. Schedules live in ``<state dir>/schedules.json``. Something real runs them: a
line in the user's crontab runs ``mngr schedule tick`` every minute (or ``mngr schedule
serve`` runs the same tick in a loop, where there is no cron). Each tick runs the schedules
that came due since the last one, then records that it did (``last_due``), so a tick that
comes twice runs nothing twice.

Missed runs (the machine was off, or cron was): a schedule runs once for the most recent
time it missed, if that time is at most ``CATCH_UP`` ago; older ones are skipped. Either way
the log says how many were missed. Every run and skip is a line of
``<state dir>/schedule-log.jsonl``: when, which schedule, for which due time, the outcome.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import MngrError, UsageError
from .paths import changing_state_json, read_state_dict, state_dir

STORE = "schedules.json"
LOG = "schedule-log.jsonl"
CATCH_UP = datetime.timedelta(hours=1)
MAX_COUNTED = 10_000  # missed runs are counted for the log up to this many
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,47}$")
CRON_MARKER = "# mngr schedule tick for "


@dataclass
class Schedule:
    name: str
    cron: str
    timezone: str
    message: str
    agent: str = ""  # an existing agent to message; "" creates one per run
    templates: list[str] = field(default_factory=list)
    provider: str = ""
    agent_type: str = ""
    created_at: str = ""
    last_due: str = ""  # the last due time a tick handled (ISO, with offset)
    last_run: dict[str, Any] = field(default_factory=dict)

    @property
    def zone(self) -> datetime.tzinfo:
        return _zone(self.timezone)

    def due(self, now: datetime.datetime) -> tuple[datetime.datetime | None, int]:
        """(the latest time it came due after ``last_due`` and at or before ``now``, how
        many times it came due in all, counted up to MAX_COUNTED); (None, 0) if it did not."""
        from croniter import croniter

        start = datetime.datetime.fromisoformat(self.last_due or self.created_at).astimezone(self.zone)
        latest: datetime.datetime = croniter(self.cron, now.astimezone(self.zone)).get_prev(datetime.datetime)
        upcoming: datetime.datetime = croniter(self.cron, latest).get_next(datetime.datetime)
        if upcoming <= now:  # get_prev is strictly before ``now``; a time due at ``now`` is due
            latest = upcoming
        if latest <= start:
            return None, 0
        count = 0
        iterator = croniter(self.cron, start)
        while count < MAX_COUNTED and iterator.get_next(datetime.datetime) <= latest:
            count += 1
        return latest, count

    def next_time(self, now: datetime.datetime) -> datetime.datetime:
        from croniter import croniter

        upcoming: datetime.datetime = croniter(self.cron, now.astimezone(self.zone)).get_next(datetime.datetime)
        return upcoming

    def agent_name_for(self, due: datetime.datetime, by_hand: bool = False) -> str:
        # A run by hand is named to the millisecond: two in one minute must not clash.
        by_the_minute = f"{self.name}-{due.astimezone(self.zone):%Y%m%d-%H%M}"
        return f"{by_the_minute}{due:%S}-{due.microsecond // 1000:03d}" if by_hand else by_the_minute

    def argv(self, due: datetime.datetime, by_hand: bool = False) -> list[str]:
        """The mngr command that does what it is for, for due time ``due``."""
        if self.agent:
            return ["message", self.agent, "--start", "-m", self.message]
        argv = ["create", self.agent_name_for(due, by_hand), "--no-connect", "--initial-message", self.message]
        for template in self.templates:
            argv += ["--template", template]
        if self.provider:
            argv += ["--in", self.provider]
        if self.agent_type:
            argv += ["--agent-type", self.agent_type]
        return argv


def _zone(name: str) -> datetime.tzinfo:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"unknown time zone {name!r} (use a name such as Europe/Paris or UTC)") from exc


def local_timezone() -> str:
    """This machine's time zone name: $TZ, else /etc/localtime's, else UTC."""
    named = os.environ.get("TZ", "").lstrip(":")
    if named:
        return named
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"


def check_cron(expression: str) -> str:
    from croniter import CroniterBadDateError, croniter

    expression = " ".join(expression.split())
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise UsageError(f"invalid cron expression {expression!r} (five fields: minute hour day month weekday, "
                         "such as '0 * * * *')")
    try:
        croniter(expression, now()).get_next(datetime.datetime)
    except CroniterBadDateError:
        raise UsageError(f"cron expression {expression!r} never comes due (such as the 31st of February)") from None
    return expression


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# -- the store ---------------------------------------------------------------------------------

def load() -> list[Schedule]:
    found = []
    for name, fields in sorted(read_state_dict(STORE).items()):
        try:
            found.append(Schedule(**{**fields, "name": name}))
        except TypeError:
            continue  # written by a newer mngr: not this one's to run
    return found


def add(schedule: Schedule) -> None:
    if not _NAME.match(schedule.name):
        raise UsageError(f"invalid schedule name {schedule.name!r}: up to 48 letters, digits, '.', '_', '-'")
    schedule.cron = check_cron(schedule.cron)
    _zone(schedule.timezone)
    if not schedule.message.strip():
        raise UsageError("a schedule needs a message")
    with changing_state_json(STORE) as stored:
        if schedule.name in stored:
            raise UsageError(f"a schedule named {schedule.name!r} exists already (mngr schedule remove it first)")
        fields = asdict(schedule)
        del fields["name"]
        stored[schedule.name] = fields


def remove(name: str) -> None:
    with changing_state_json(STORE) as stored:
        if name not in stored:
            raise UsageError(f"no schedule named {name!r}")
        del stored[name]


def agent_renamed(old: str, new: str, host: str, provider: str) -> list[str]:
    """Schedules that message agent ``old`` (on ``host`` of ``provider``, if they say where)
    message it as ``new`` from now on; their names."""
    from .agent_refs import parse_agent_ref

    changed: list[str] = []
    if not read_state_dict(STORE):
        return changed
    with changing_state_json(STORE) as stored:
        for name, fields in stored.items():
            agent = fields.get("agent") if isinstance(fields, dict) else None
            if not isinstance(agent, str) or not agent:
                continue
            try:
                ref = parse_agent_ref(agent)
            except UsageError:
                continue
            if ref.name == old and ref.names_place(host, provider):
                fields["agent"] = new + agent[len(old):]  # the place it names, if any, stays
                changed.append(name)
    return sorted(changed)


def get(name: str) -> Schedule:
    for schedule in load():
        if schedule.name == name:
            return schedule
    raise UsageError(f"no schedule named {name!r}")


def _record(name: str, due: datetime.datetime, run: dict[str, Any] | None) -> None:
    with changing_state_json(STORE) as stored:
        if name in stored:
            if not stored[name].get("last_due") or datetime.datetime.fromisoformat(stored[name]["last_due"]) < due:
                stored[name]["last_due"] = due.isoformat()
            if run is not None:
                stored[name]["last_run"] = run


# -- running ---------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], tuple[int, str]]


def mngr_runner(argv: Sequence[str]) -> tuple[int, str]:
    """Run ``mngr ARGV`` as a command of its own; (exit status, the end of its output)."""
    done = subprocess.run([*mngr_command(), *argv], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600)
    output = (done.stdout + done.stderr).strip()
    return done.returncode, output[-2000:]


def mngr_command() -> list[str]:
    """How to run this mngr again: its console script beside the interpreter, if there."""
    script = os.path.join(os.path.dirname(sys.executable), "mngr")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "mngr.controller.cli.entry"]


def run_now(schedule: Schedule, due: datetime.datetime, runner: Runner, *, by: str) -> dict[str, Any]:
    """Do what ``schedule`` is for, for due time ``due``; log it and return its record."""
    status, detail = runner(schedule.argv(due, by_hand=by == "hand"))
    run = {"at": now().isoformat(), "due": due.isoformat(), "by": by, "exit_status": status,
           "outcome": "ok" if status == 0 else "failed", "detail": detail}
    _log({"schedule": schedule.name, **run})
    return run


def tick(at: datetime.datetime, runner: Runner) -> list[dict[str, Any]]:
    """Run every schedule that came due since the last tick; what each did."""
    with _tick_lock() as held:
        if not held:
            return []  # another tick is running them
        results = []
        for schedule in load():
            latest, count = schedule.due(at)
            if latest is None:
                continue
            missed = count - 1
            if at - latest > CATCH_UP:
                entry = {"schedule": schedule.name, "at": at.isoformat(), "due": latest.isoformat(),
                         "outcome": "skipped", "missed": count,
                         "detail": f"came due {count} time(s) while nothing ran schedules; the latest "
                                   f"is more than {int(CATCH_UP.total_seconds() // 60)} minutes old"}
                _log(entry)
                _record(schedule.name, latest, None)
                results.append(entry)
                continue
            run = run_now(schedule, latest, runner, by="tick")
            if missed:
                run["missed"] = missed
                _log({"schedule": schedule.name, "at": at.isoformat(), "outcome": "missed", "missed": missed,
                      "detail": f"{missed} earlier due time(s) were not run (only the latest is)"})
            _record(schedule.name, latest, run)
            results.append({"schedule": schedule.name, **run})
        return results


@contextlib.contextmanager
def _tick_lock() -> Iterator[bool]:
    """Held by one tick at a time (an flock, so a tick that dies lets go); False if taken."""
    import fcntl

    os.makedirs(state_dir(), mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(state_dir(), "schedule.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _log(entry: dict[str, Any]) -> None:
    os.makedirs(state_dir(), mode=0o700, exist_ok=True)
    with open(os.path.join(state_dir(), LOG), "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def log_entries(name: str | None = None) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(state_dir(), LOG), encoding="utf-8") as log:
            lines = log.read().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and (name is None or entry.get("schedule") == name):
            entries.append(entry)
    return entries


def serve(runner: Runner, clock: Callable[[], datetime.datetime] = now,
          sleep: Callable[[float], None] | None = None, until: Callable[[], bool] = lambda: False) -> int:
    """Tick at the start of every minute until ``until()`` (or Ctrl-C); how many ticks ran.
    ``clock`` and ``sleep`` are the real ones unless a caller (a test) gives its own."""
    import time

    pause = sleep or time.sleep
    ticks = 0
    while not until():
        tick(clock(), runner)
        ticks += 1
        current = clock()
        pause(60 - current.second - current.microsecond / 1e6 + 0.05)
    return ticks


# -- the crontab -------------------------------------------------------------------------------

def _crontab_lines() -> list[str]:
    done = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    if done.returncode != 0:
        if "no crontab" in done.stderr.lower():
            return []
        raise MngrError(f"cannot read your crontab: {done.stderr.strip() or 'crontab -l failed'}")
    return done.stdout.splitlines()


def _write_crontab(lines: list[str]) -> None:
    done = subprocess.run(["crontab", "-"], input="".join(line + "\n" for line in lines), capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise MngrError(f"cannot write your crontab: {done.stderr.strip() or 'crontab - failed'}")


def cron_line() -> str:
    """The crontab line that ticks this mngr's schedules (with the variables that find its
    state and tools: cron starts commands with almost no environment)."""
    keep = {key: value for key, value in os.environ.items()
            if key.startswith("MNGR_") or key in ("PATH", "HOME", "TMUX_TMPDIR", "PYTHONPATH")}
    variables = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(keep.items()))
    command = " ".join(shlex.quote(word) for word in [*mngr_command(), "schedule", "tick"])
    log = shlex.quote(os.path.join(state_dir(), "schedule-cron.log"))
    return f"* * * * * env {variables} {command} >> {log} 2>&1 {CRON_MARKER}{state_dir()}"


def install_cron() -> bool:
    """Put this mngr's tick line in the user's crontab (replacing an older one); False if
    there is no crontab command."""
    import shutil

    if shutil.which("crontab") is None:
        return False
    marker = CRON_MARKER + state_dir()
    lines = [line for line in _crontab_lines() if not line.endswith(marker)]
    _write_crontab([*lines, cron_line()])
    return True


def uninstall_cron() -> None:
    import shutil

    if shutil.which("crontab") is None:
        return
    marker = CRON_MARKER + state_dir()
    lines = _crontab_lines()
    kept = [line for line in lines if not line.endswith(marker)]
    if kept != lines:
        _write_crontab(kept)


def cron_installed() -> bool:
    import shutil

    if shutil.which("crontab") is None:
        return False
    return any(line.endswith(CRON_MARKER + state_dir()) for line in _crontab_lines())
