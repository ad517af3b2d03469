"""Events in process: the host's logs read after a cursor and merged (remote_helper/events.py),
state transitions logged once, and the controller's side of the stream (commands/events.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mngr.controller.commands import events as feed
from mngr.controller.errors import UsageError
from mngr.remote_helper import events, state


@pytest.fixture
def host_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    return tmp_path / "host"


def _agent(agent_id: str, name: str) -> Path:
    directory = Path(state.agent_dir(agent_id))
    directory.mkdir(parents=True)
    state.atomic_write_json(str(directory / "record.json"), {"id": agent_id, "name": name})
    return directory


def _line(path: Path, time: str, event: str, **fields: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps({"time": time, "event": event, **fields}) + "\n")


def _t(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000+00:00"


def test_every_log_is_merged_in_time_order_with_the_agent_named(host_dir: Path) -> None:
    first = _agent("agent-1", "one") / "events.jsonl"
    second = _agent("agent-2", "two") / "events.jsonl"
    _line(first, _t(1), "created")
    _line(second, _t(2), "created")
    _line(first, _t(3), "message_sent", bytes=5)
    _line(host_dir / "host" / "events.jsonl", _t(4), "agent_destroyed", agent_id="agent-3", name="three")
    _line(host_dir / "host" / "watcher.jsonl", _t(5), "", decision="active", message="not idle")
    _line(host_dir / "host" / "watcher.jsonl", _t(6), "", decision="shutdown", reason="idle")
    found, _, more = events.read_events("")
    assert not more
    assert [(event["time"], event["agent"], event["event"]) for event in found] == [
        (_t(1), "one", "created"), (_t(2), "two", "created"), (_t(3), "one", "message_sent"),
        (_t(4), "three", "agent_destroyed"), (_t(5), "", "idle_decision"), (_t(6), "", "shutdown")]
    assert found[0]["agent_id"] == "agent-1" and found[3]["agent_id"] == "agent-3"
    assert found[4]["decision"] == "active" and found[5]["reason"] == "idle"


def test_the_cursor_continues_after_what_was_handed_out_and_caps_each_reply(host_dir: Path) -> None:
    log = _agent("agent-1", "one") / "events.jsonl"
    other = _agent("agent-2", "two") / "events.jsonl"
    for second in range(0, 10, 2):
        _line(log, _t(second), "activity")
        _line(other, _t(second + 1), "activity")
    seen = []
    cursor = ""
    while True:
        found, cursor, more = events.read_events(cursor, max_lines=3)
        assert len(found) <= 3
        seen.extend(event["time"] for event in found)
        if not more:
            break
    assert seen == [_t(second) for second in range(10)]
    assert events.read_events(cursor) == ([], cursor, False)
    _line(other, _t(11), "stopped")
    found, cursor, _ = events.read_events(cursor)
    assert [(event["agent"], event["event"]) for event in found] == [("two", "stopped")]


def test_a_line_being_written_is_left_for_the_next_read(host_dir: Path) -> None:
    log = _agent("agent-1", "one") / "events.jsonl"
    _line(log, _t(1), "created")
    whole = json.dumps({"time": _t(2), "event": "started"}) + "\n"
    with log.open("a") as handle:
        handle.write(whole[:10])
    found, cursor, _ = events.read_events("")
    assert [event["event"] for event in found] == ["created"]
    _, end_cursor, _ = events.read_events(events.END)
    with log.open("a") as handle:
        handle.write(whole[10:])
    assert [event["event"] for event in events.read_events(cursor)[0]] == ["started"]
    assert [event["event"] for event in events.read_events(end_cursor)[0]] == ["started"]


def test_since_leaves_out_older_events_and_a_replaced_log_is_read_from_its_start(host_dir: Path) -> None:
    log = host_dir / "host" / "watcher.jsonl"
    _line(log, _t(1), "", decision="active")
    _line(log, _t(5), "", decision="stopped")
    found, cursor, _ = events.read_events("", since=_t(3))
    assert [event["decision"] for event in found] == ["stopped"]
    os.replace(log, str(log) + ".1")  # rotated
    _line(log, _t(7), "", decision="active")
    assert [event["time"] for event in events.read_events(cursor)[0]] == [_t(7)]


def test_a_bad_cursor_is_refused_and_a_bad_line_skipped(host_dir: Path) -> None:
    log = _agent("agent-1", "one") / "events.jsonl"
    with log.open("a") as handle:
        handle.write("not json\n")
    _line(log, _t(1), "created")
    assert [event["event"] for event in events.read_events("")[0]] == ["created"]
    from mngr.remote_helper.wire import RequestFailed

    with pytest.raises(RequestFailed):
        events.read_events("{broken")


def _info(agent_id: str, agent_state: str, exit_status: int | None = None) -> dict:
    return {"id": agent_id, "state": agent_state, "waiting_reason": "input" if agent_state == "WAITING" else None,
            "exit_status": exit_status, "waiting_detail": ""}


def test_a_state_is_logged_once_however_often_it_is_seen(host_dir: Path) -> None:
    _agent("agent-1", "one")
    assert events.note_state(_info("agent-1", "RUNNING"))
    assert not events.note_state(_info("agent-1", "RUNNING"))
    assert events.note_state(_info("agent-1", "WAITING"))
    assert events.note_state(_info("agent-1", "DONE", 3))
    assert not events.note_state(_info("agent-1", "DONE", 3))
    logged = [(event["state"], event["waiting_reason"], event["exit_status"])
              for event in events.read_events("")[0] if event["event"] == "state"]
    assert logged == [("RUNNING", None, None), ("WAITING", "input", None), ("DONE", None, 3)]


def test_a_destroyed_agents_state_is_not_logged(host_dir: Path) -> None:
    assert not events.note_state(_info("agent-gone", "STOPPED"))
    assert not Path(state.agent_dir("agent-gone")).exists()


def test_the_quietness_followers_asked_for_is_kept_for_the_watcher(host_dir: Path) -> None:
    assert events.quiet_seconds() == events.DEFAULT_QUIET_SECONDS
    events.set_quiet_seconds(1.5)
    assert events.quiet_seconds() == 1.5


# -- the controller's side ----------------------------------------------------------------


def test_rows_lead_with_the_common_fields_and_merge_by_time_keeping_each_hosts_order() -> None:
    row = feed.event_row({"time": _t(1), "event": "state", "state": "DONE", "agent": "a", "agent_id": "agent-1",
                          "exit_status": 0}, "box", "ssh")
    assert list(row) == [*feed.LEADING_FIELDS, "exit_status", "state"]
    assert (row["host"], row["provider"]) == ("box", "ssh")
    rows = [{"time": _t(2), "n": 1}, {"time": _t(1), "n": 2}, {"time": _t(2), "n": 3}, {"time": _t(1), "n": 4}]
    assert [row["n"] for row in feed.in_time_order(rows)] == [2, 4, 1, 3]


def test_a_selection_keeps_the_types_and_agents_asked_for() -> None:
    selection = feed.Selection(["state"], ["one"], ["agent-1"])
    assert selection.keeps({"event": "state", "agent": "one", "agent_id": "agent-1"})
    assert selection.keeps({"event": "state", "agent": "", "agent_id": "agent-1"})
    assert not selection.keeps({"event": "state", "agent": "two", "agent_id": "agent-2"})
    assert not selection.keeps({"event": "created", "agent": "one", "agent_id": "agent-1"})
    assert feed.Selection().keeps({"event": "shutdown", "agent": "", "agent_id": ""})


def test_since_takes_a_duration_or_an_iso_time_as_the_hosts_write_times() -> None:
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    assert feed.since_time("90s", now) == "2025-12-31T23:58:30.000+00:00"
    assert feed.since_time("2026-01-01T01:02:03.5", now) == "2026-01-01T01:02:03.500+00:00"
    assert feed.since_time("2026-01-01T01:02:03+02:00", now) == "2025-12-31T23:02:03.000+00:00"
    with pytest.raises(UsageError):
        feed.since_time("last week", now)


def test_event_types_are_checked() -> None:
    assert feed.parse_event_types(["state,created", "state"]) == ["state", "created"]
    with pytest.raises(UsageError):
        feed.parse_event_types(["exploded"])


# -- the notification hooks ---------------------------------------------------------------


def _registry(*plugins: object):
    import pluggy

    from mngr.controller import plugin_spec
    from mngr.controller.plugins import Registry

    manager = pluggy.PluginManager(plugin_spec.PROJECT)
    manager.add_hookspecs(plugin_spec)
    for index, plugin in enumerate(plugins):
        manager.register(plugin, name=f"plugin{index}")
    return Registry({}, {}, manager)


def test_the_plugin_hook_hears_agents_that_start_waiting_and_a_failing_one_is_reported_once() -> None:
    from mngr.controller.notify import WaitingNotifier
    from mngr.controller.plugin_spec import hookimpl

    heard: list[dict] = []

    class Listener:
        @hookimpl
        def mngr_on_agent_waiting(self, event):  # type: ignore[no-untyped-def]
            heard.append(dict(event))

    class Broken:
        @hookimpl
        def mngr_on_agent_waiting(self, event):  # type: ignore[no-untyped-def]
            raise RuntimeError("no chat today")

    reports: list[str] = []
    notifier = WaitingNotifier("", _registry(Listener(), Broken()), reports.append)
    waiting = {"event": "state", "state": "WAITING", "agent": "a", "host": "local", "waiting_reason": "input"}
    notifier.offer(waiting)
    notifier.offer({"event": "state", "state": "RUNNING", "agent": "a", "host": "local"})
    notifier.offer({"event": "message_sent", "agent": "a", "host": "local"})
    notifier.offer({**waiting, "agent": "b"})
    notifier.close(timeout=30)
    assert [event["agent"] for event in heard] == ["a", "b"]
    assert reports == ["plugin 'plugin1' failed in mngr_on_agent_waiting: RuntimeError: no chat today "
                       "(reported once; the follow goes on)"]
