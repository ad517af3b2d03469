"""The commands layer in-process: each operation called as a plugin or a script calls it,
against a real tmux server and real helpers, without spawning the CLI.

What the user sees of these operations (output, exit codes) is tested through the CLI
elsewhere; here it is what they do.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mngr.controller.cli.app import App
from mngr.controller.commands import agents, copy, gc, idle, schedule, snapshot
from mngr.controller.commands import transcript as history
from mngr.controller.commands.create import CreateRequest, CreateResult, create
from mngr.controller.commands.exec import ExecRequest, exec_command
from mngr.controller.commands.lookup import find_agents
from mngr.controller.commands.message import MessageRequest, message
from mngr.controller.errors import AgentNotFound, MngrError, UsageError
from mngr.controller.plugin_spec import hookimpl
from tests.conftest import wait_for
from tests.recorder import RECORDER


@pytest.fixture
def app(sandbox, monkeypatch: pytest.MonkeyPatch) -> App:
    """An App of the sandbox's world, as the CLI would build it there."""
    sandbox.apply_env(monkeypatch)
    monkeypatch.chdir(sandbox.work_dir)
    return App()


def make(app: App, name: str, *command: str, **options) -> CreateResult:  # type: ignore[no-untyped-def]
    return create(app, CreateRequest(name, agent_type="command", agent_args=command or ("sleep", "600"),
                                     args_given=True, **options))


def states(app: App) -> dict[str, str]:
    with find_agents(app, [], every=True) as found:
        return {agent.info.name: agent.info.state for agent in found.agents}


class Refuser:
    """A plugin that refuses ``events`` for agents whose name starts with ``prefix``, and
    hears everything."""

    def __init__(self, events: Sequence[str], prefix: str) -> None:
        self.events = set(events)
        self.prefix = prefix
        self.heard: list[tuple[str, str]] = []

    @hookimpl
    def mngr_on_agent(self, event: str, agent: str) -> None:
        if event in self.events and agent.startswith(self.prefix):
            raise ValueError(f"{agent} is held")
        self.heard.append((event, agent))


def with_refuser(app: App, events: Sequence[str], prefix: str) -> Refuser:
    plugin = Refuser(events, prefix)
    assert app.registry.manager is not None
    app.registry.manager.register(plugin, name="refuser")
    return plugin


def start_recorder(app: App, sandbox, name: str) -> Path:  # type: ignore[no-untyped-def]
    received = sandbox.root / f"{name}.received"
    make(app, name, sys.executable, "-c", RECORDER, str(received))
    wait_for(lambda: received.exists(), "the recorder to start")
    return received


# -- create ----------------------------------------------------------------------------

def test_create_gives_the_agent_its_env_args_and_work_dir(app: App, sandbox) -> None:
    out = sandbox.root / "out.txt"
    script = 'printf "%s|%s|%s|%s|%s\\n" "$GREETING" "$MNGR_AGENT_NAME" "$(pwd)" "$1" "$2" > ' + str(out)
    created = make(app, "envy", "sh", "-c", script, "sh", "it's $(not) run", "b c",
                   env={"GREETING": "hello world"}, labels={"team": "infra"})
    assert (created.host, created.provider, created.info.name) == ("local", "local", "envy")
    assert created.info.labels == {"team": "infra"}
    text = wait_for(lambda: out.exists() and out.read_text(), "agent output")
    assert text == f"hello world|envy|{sandbox.host_dir / 'work' / 'envy'}|it's $(not) run|b c\n"  # a copy of its own


def test_a_relative_work_dir_is_relative_to_where_mngr_runs(app: App, sandbox) -> None:
    (sandbox.work_dir / "sub").mkdir()
    created = make(app, "rel", work_dir="sub")
    assert created.info.work_dir == str(sandbox.work_dir / "sub")


def test_a_custom_agent_type_from_config(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    out = sandbox.root / "custom.txt"
    sandbox.config_dir.mkdir(parents=True)
    (sandbox.config_dir / "config.toml").write_text(
        f"[agent_types.echoer]\ncommand = 'echo hello-from-echoer > {out}; sleep'\n")
    sandbox.apply_env(monkeypatch)
    monkeypatch.chdir(sandbox.work_dir)
    created = create(App(), CreateRequest("custom", agent_type="echoer", agent_args=["600"]))
    assert created.info.type == "echoer"
    assert wait_for(lambda: out.exists() and out.read_text(), "custom output") == "hello-from-echoer\n"


def test_a_duplicate_name_is_refused(app: App) -> None:
    make(app, "twin")
    with pytest.raises(MngrError, match=r"^agent 'twin' already exists on local \(local\)$"):
        make(app, "twin")
    assert states(app).keys() == {"twin"}


def test_a_create_refused_by_a_plugin_makes_nothing(app: App, sandbox) -> None:
    plugin = with_refuser(app, ["before_create"], "held-")
    with pytest.raises(MngrError, match="plugin 'refuser' stopped create: held-one is held"):
        make(app, "held-one")
    assert states(app) == {} and sandbox.sessions() == []
    make(app, "free")
    assert plugin.heard == [("before_create", "free"), ("after_create", "free")]


# -- stop, start, destroy --------------------------------------------------------------

def test_an_exited_agent_keeps_its_exit_status_and_starts_again(app: App) -> None:
    make(app, "quitter", "sh", "-c", "exit 7")

    def exited():  # type: ignore[no-untyped-def]
        with find_agents(app, ["quitter"]) as found:
            info = found.agents[0].info
            return info.exit_status is not None and info

    info = wait_for(exited, "exit status")
    assert (info.state, info.exit_status) == ("DONE", 7)
    started = agents.start(app, agents.StartRequest(["quitter"]))
    assert [changed.verb for changed in started.changed] == ["started"] and started.failed == []


def test_stop_start_destroy_act_on_every_agent_and_report_the_one_refused(app: App, sandbox) -> None:
    for name in ("one", "two", "held-three", "four", "five"):
        make(app, name)
    plugin = with_refuser(app, ["before_stop", "before_start", "before_destroy"], "held-")
    names = ["one", "two", "held-three", "four", "five"]

    stopped = agents.stop(app, agents.StopRequest(names, grace=1.0))
    assert [(failed.name, failed.error) for failed in stopped.failed] == [
        ("held-three", "plugin 'refuser' stopped stop: held-three is held")]
    assert sorted((c.info.name, c.verb, c.info.state) for c in stopped.changed) == [
        (name, "stopped", "STOPPED") for name in ("five", "four", "one", "two")]
    now = states(app)
    assert now.pop("held-three") in ("RUNNING", "WAITING")
    assert now == {"one": "STOPPED", "two": "STOPPED", "four": "STOPPED", "five": "STOPPED"}
    assert sandbox.sessions() == ["mngr-held-three"]

    again = agents.stop(app, agents.StopRequest(["one"]))
    assert [(c.info.name, c.verb) for c in again.changed] == [("one", "already stopped")]

    started = agents.start(app, agents.StartRequest(every=True))
    assert sorted(c.info.name for c in started.changed) == ["five", "four", "one", "two"]
    assert started.failed == []  # the held one was running: not among the stopped ones --all starts
    assert sorted(sandbox.sessions()) == sorted(f"mngr-{name}" for name in names)

    destroyed = agents.destroy(app, agents.DestroyRequest(names, grace=1.0))
    assert [failed.name for failed in destroyed.failed] == ["held-three"]
    assert sorted(c.info.name for c in destroyed.changed) == ["five", "four", "one", "two"]
    assert list(states(app)) == ["held-three"] and sandbox.sessions() == ["mngr-held-three"]
    assert [event for event in plugin.heard if event[1] == "one"] == [
        ("before_stop", "one"), ("after_stop", "one"), ("before_start", "one"), ("after_start", "one"),
        ("before_destroy", "one"), ("after_destroy", "one")]


def test_many_agents_start_at_once_on_a_host_whose_tmux_server_is_gone(app: App, sandbox) -> None:
    names = [f"a{index:02d}" for index in range(20)]
    for name in names:
        make(app, name)
    assert sorted(c.info.name for c in agents.stop(app, agents.StopRequest(names)).changed) == names
    assert sandbox.tmux("list-sessions").returncode != 0  # the last session took the server with it
    started = agents.start(app, agents.StartRequest(names))
    assert started.failed == [] and sorted(c.info.name for c in started.changed) == names
    assert sandbox.sessions() == [f"mngr-{name}" for name in names]


def test_an_unknown_name_changes_nothing(app: App) -> None:
    make(app, "real")
    with pytest.raises(AgentNotFound, match="no agent named 'ghost'"):
        agents.stop(app, agents.StopRequest(["real", "ghost"]))
    assert states(app)["real"] in ("RUNNING", "WAITING")
    with pytest.raises(UsageError, match="name at least one agent"):
        agents.stop(app, agents.StopRequest())


def test_destroy_asks_before_it_touches_anything(app: App) -> None:
    make(app, "keeper")

    def refuse(found: Sequence[object]) -> None:
        assert len(found) == 1
        raise UsageError("not today")

    with pytest.raises(UsageError, match="not today"):
        agents.destroy(app, agents.DestroyRequest(["keeper"], confirm=refuse))
    assert list(states(app)) == ["keeper"]


def test_a_tmux_server_without_sessions_is_a_host_without_agents(app: App, sandbox) -> None:
    # A server is briefly sessionless as it starts or as its last session ends (and for good
    # with exit-empty off); tmux then answers a listing "no current target".
    make(app, "resting")
    agents.stop(app, agents.StopRequest(["resting"]))
    config = sandbox.root / "tmux.conf"
    config.write_text("set -g exit-empty off\n")
    assert sandbox.tmux("-f", str(config), "start-server").returncode == 0
    try:
        assert "no current target" in sandbox.tmux("list-panes", "-a").stderr
        assert states(app) == {"resting": "STOPPED"}
        assert agents.start(app, agents.StartRequest(["resting"])).failed == []
        assert states(app)["resting"] in ("RUNNING", "WAITING")
    finally:
        sandbox.tmux("kill-server")


# -- clone and migrate -----------------------------------------------------------------

def test_clone_copies_the_agent_and_plugins_hear_of_it(app: App, sandbox) -> None:
    (sandbox.work_dir / "notes.txt").write_text("kept\n")
    make(app, "original", env={"ROLE": "first"}, labels={"team": "a"})
    plugin = with_refuser(app, ["before_create"], "held-")
    cloned = copy.clone(app, copy.CloneRequest("original", "copy-1"))
    assert (cloned.info.name, cloned.info.labels, cloned.host) == ("copy-1", {"team": "a"}, "local")
    assert Path(cloned.info.work_dir, "notes.txt").read_text() == "kept\n"
    assert plugin.heard == [("before_create", "copy-1"), ("after_create", "copy-1")]

    with pytest.raises(MngrError, match="plugin 'refuser' stopped create: held-2 is held"):
        copy.clone(app, copy.CloneRequest("original", "held-2"))
    assert sorted(states(app)) == ["copy-1", "original"]
    assert not (sandbox.host_dir / "work" / "held-2").exists()
    with pytest.raises(UsageError, match=r"^agent 'copy-1' already exists on local \(local\)$"):
        copy.clone(app, copy.CloneRequest("original", "copy-1"))


def test_migrate_to_the_host_it_is_on_is_refused(app: App) -> None:
    make(app, "settled")
    with pytest.raises(UsageError, match="already on host 'local'"):
        copy.migrate(app, copy.MigrateRequest("settled", "local"))
    assert states(app)["settled"] in ("RUNNING", "WAITING")


@pytest.fixture
def farhost(sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[App, Any]]:
    """An App whose config names a real SSH host, ``farhost``, and that host."""
    from tests.integration.test_ssh import started_host
    from tests.sshd import unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason() or "")
    with started_host(sandbox, "farhost") as host:
        sandbox.config_dir.mkdir(parents=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.farhost]\n")
        sandbox.apply_env(monkeypatch)
        monkeypatch.setenv("MNGR_PROVIDERS__SSH__SSH_CONFIG", sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"])
        monkeypatch.chdir(sandbox.work_dir)
        yield App(), host


def test_migrate_moves_the_agent_and_plugins_hear_both_ends(sandbox, farhost: tuple[App, Any]) -> None:
    app, host = farhost
    (sandbox.work_dir / "notes.txt").write_text("moved\n")
    make(app, "mover", labels={"team": "a"})
    plugin = with_refuser(app, [], "-")
    moved = copy.migrate(app, copy.MigrateRequest("mover", "farhost", copy.CopyTarget(provider="ssh")))
    assert (moved.host, moved.provider, moved.info.labels) == ("farhost", "ssh", {"team": "a"})
    assert plugin.heard == [("before_create", "mover"), ("before_destroy", "mover"), ("after_create", "mover"),
                            ("after_destroy", "mover")]
    with find_agents(app, ["mover"]) as found:
        (agent,) = found.agents
        assert (agent.host, agent.info.state in ("RUNNING", "WAITING")) == ("farhost", True)
    assert Path(host.remote_host_dir, "work", "mover", "notes.txt").read_text() == "moved\n"
    assert sandbox.sessions() == []
    agents.destroy(app, agents.DestroyRequest(["mover"]))


def test_a_migrate_whose_copy_fails_its_check_was_never_a_create(sandbox, farhost: tuple[App, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """after_create comes only once the copy was checked: a copy that does not match (the
    original's work dir changed under it, at the moment of the check) is removed, and the
    plugins heard of no agent made or destroyed."""
    from mngr.controller import sync

    app, host = farhost
    (sandbox.work_dir / "notes.txt").write_text("before\n")
    original = Path(make(app, "mover").info.work_dir)  # a copy of the current directory
    plugin = with_refuser(app, [], "-")
    heard_at_check: list[list[tuple[str, str]]] = []
    real_check = sync.same_tree

    def changed_under_the_check(*args):  # type: ignore[no-untyped-def]
        heard_at_check.append(list(plugin.heard))
        (original / "notes.txt").write_text("changed while it was copied\n")
        return real_check(*args)

    monkeypatch.setattr(sync, "same_tree", changed_under_the_check)
    with pytest.raises(MngrError, match="the copy of mover on farhost does not match the original"):
        copy.migrate(app, copy.MigrateRequest("mover", "farhost", copy.CopyTarget(provider="ssh")))
    assert heard_at_check == [[("before_create", "mover"), ("before_destroy", "mover")]]
    assert plugin.heard == [("before_create", "mover"), ("before_destroy", "mover")]
    with find_agents(app, ["mover"]) as found:
        (agent,) = found.agents
        assert (agent.host, agent.info.state in ("RUNNING", "WAITING")) == ("local", True)
    assert not Path(host.remote_host_dir, "work", "mover").exists()
    assert not (sandbox.state_dir / "ssh_hosts.json").exists() or \
        "farhost" not in json.loads((sandbox.state_dir / "ssh_hosts.json").read_text())

    heard_at_check.clear()

    def only_watching(*args):  # type: ignore[no-untyped-def]
        heard_at_check.append(list(plugin.heard))
        return real_check(*args)

    monkeypatch.setattr(sync, "same_tree", only_watching)
    copy.migrate(app, copy.MigrateRequest("mover", "farhost", copy.CopyTarget(provider="ssh")))
    assert heard_at_check == [[("before_create", "mover"), ("before_destroy", "mover")] * 2]
    assert plugin.heard[-2:] == [("after_create", "mover"), ("after_destroy", "mover")]
    agents.destroy(app, agents.DestroyRequest(["mover"]))


# -- message and exec ------------------------------------------------------------------

def test_a_message_goes_to_every_agent_named_and_a_stopped_one_fails_alone(app: App, sandbox) -> None:
    first = start_recorder(app, sandbox, "one")
    second = start_recorder(app, sandbox, "two")
    both = message(app, MessageRequest(["one", "two"], "to both"))
    assert both.sent == ["one", "two"] and both.failed == []
    wait_for(lambda: first.read_bytes() == b"to both\r" and second.read_bytes() == b"to both\r", "both")
    agents.stop(app, agents.StopRequest(["two"]))
    partial = message(app, MessageRequest(["one", "two"], "again"))
    assert partial.sent == ["one"]
    assert [(failed.name, failed.error) for failed in partial.failed] == [
        ("two", "agent 'two' is stopped: start it with `mngr start two` or pass --start")]
    wait_for(lambda: first.read_bytes() == b"to both\ragain\r", "the running agent's copy")
    with pytest.raises(AgentNotFound):
        message(app, MessageRequest(["one", "ghost"], "nothing at all"))
    assert first.read_bytes() == b"to both\ragain\r", "nothing is sent when a name is unknown"

    woken = message(app, MessageRequest(["two"], "wake up", start_first=True))
    assert woken.failed == []
    wait_for(lambda: second.read_bytes().endswith(b"wake up\r"), "the message after the restart")


def test_exec_runs_everywhere_and_reports_each_result(app: App, sandbox) -> None:
    make(app, "worker", env={"PROJECT": "mngr"})
    make(app, "other")
    seen: list[tuple[str, bytes]] = []
    results = exec_command(app, ExecRequest(["worker", "other"], 'echo "$PROJECT in $(pwd)"; exit 3',
                                            on_output=lambda agent, out, err, final: seen.append(
                                                (agent.info.name, out))))
    assert [(r.name, bytes(r.stdout), r.exit_code, r.error) for r in results] == [
        ("worker", f"mngr in {sandbox.host_dir / 'work' / 'worker'}\n".encode(), 3, None),
        ("other", f" in {sandbox.host_dir / 'work' / 'other'}\n".encode(), 3, None)]
    assert b"".join(out for name, out in seen if name == "worker") == bytes(results[0].stdout)
    timed = exec_command(app, ExecRequest(["other"], "sleep 30", timeout=0.5))
    assert (timed[0].exit_code, timed[0].error) == (124, "timed out after 0.5 s (killed)")


# -- gc --------------------------------------------------------------------------------

def test_gc_cleans_every_host_that_answers(app: App, sandbox) -> None:
    make(app, "busy")
    leftover = sandbox.host_dir / "agents" / "0123456789abcdef"  # a create killed before its record
    leftover.mkdir(mode=0o700)
    found = gc.collect_garbage(app, gc.GcRequest(dry_run=True, min_age=0.0))
    assert found.hosts_cleaned == 1 and found.errors == []
    assert [(row.host, row.kind) for row in found.leftovers] == [("local", "agent dir without a record")], found.leftovers
    assert leftover.exists()
    removed = gc.collect_garbage(app, gc.GcRequest(min_age=0.0))
    assert len(removed.leftovers) == 1 and not leftover.exists()
    assert list(states(app)) == ["busy"]
    assert json.loads(json.dumps([row.__dict__ for row in removed.leftovers]))[0]["host"] == "local"


# -- limit, keepalive and snapshot -----------------------------------------------------

def test_limit_reads_and_changes_the_host_settings_and_refuses_bad_ones(app: App) -> None:
    make(app, "tuned")
    shown = idle.limit(app, idle.LimitRequest("tuned"))
    assert (shown.host, shown.provider) == ("local", "local")
    assert shown.settings.timeout is None, "idle shutdown is off on the local host by default"
    changed = idle.limit(app, idle.LimitRequest("tuned", idle_timeout="1h30m", activity_sources="output,cpu"))
    assert (changed.settings.timeout, changed.settings.sources, changed.settings.mode) == \
        (5400.0, ["output", "cpu"], "custom")
    with pytest.raises(UsageError, match="unknown idle mode 'nap'"):
        idle.limit(app, idle.LimitRequest("tuned", idle_mode="nap"))
    assert idle.limit(app, idle.LimitRequest("tuned")).settings.timeout == 5400.0  # the refusal changed nothing
    off = idle.limit(app, idle.LimitRequest("tuned", idle_mode="disabled", log_lines=5))
    assert off.settings.sources == []
    assert off.log, "the watcher's decisions, asked for"


def test_keepalive_leases_the_host_and_refuses_more_than_a_year(app: App) -> None:
    make(app, "leased")
    kept = idle.keepalive(app, idle.KeepaliveRequest("leased", 3600.0))
    assert (kept.name, kept.host, kept.seconds) == ("leased", "local", 3600.0)
    with find_agents(app, [], every=True) as found:
        assert found.listing is not None
        (host,) = found.listing.hosts
        assert host.idle is not None
        assert (host.idle.last_activity, host.idle.last_activity_agent) == ("lease", "leased")
    with pytest.raises(UsageError, match="at most a year"):
        idle.keepalive(app, idle.KeepaliveRequest("leased", 400 * 86400.0))


def test_a_snapshot_is_taken_listed_and_destroyed_and_a_bad_id_stops_the_destroy(app: App, sandbox) -> None:
    (sandbox.work_dir / "notes.txt").write_text("kept\n")
    make(app, "snapped")
    taken = snapshot.take_snapshot(app, snapshot.SnapshotRequest("snapped"))
    assert (taken.agent, taken.host, taken.provider) == ("snapped", "local", "local") and taken.bytes > 0
    assert [(row["id"], row["agent"]) for row in snapshot.list_snapshots(app)] == [(taken.id, "snapped")]
    result = snapshot.destroy_snapshots(app, snapshot.DestroySnapshotsRequest([taken.id, "snap-nosuch", taken.id]))
    assert result.destroyed == [taken.id]
    assert isinstance(result.error, MngrError) and "no snapshot 'snap-nosuch'" in str(result.error)
    assert snapshot.list_snapshots(app) == []
    with pytest.raises(AgentNotFound):
        snapshot.take_snapshot(app, snapshot.SnapshotRequest("nosuch"))


# -- transcript and capture --------------------------------------------------------------

def test_transcript_and_capture_read_what_the_agent_printed(app: App) -> None:
    make(app, "talker", "sh", "-c", "echo first; echo second; printf 'third, unfinished'; sleep 600")
    wait_for(lambda: "third, unfinished" in history.capture(app, history.CaptureRequest("talker")).text,
             "the agent's output")
    read = history.transcript(app, history.TranscriptRequest("talker"))
    assert (read.name, read.source) == ("talker", "output")
    assert [entry.text for entry in read.entries][-3:] == ["first", "second", "third, unfinished"]
    last = history.transcript(app, history.TranscriptRequest("talker", tail=1))
    assert [entry.text for entry in last.entries] == ["third, unfinished"]
    with pytest.raises(UsageError, match="unknown transcript source 'diary'"):
        history.transcript(app, history.TranscriptRequest("talker", source="diary"))
    screen = history.capture(app, history.CaptureRequest("talker"))
    assert (screen.host, screen.provider, screen.state) == ("local", "local", "RUNNING")
    agents.stop(app, agents.StopRequest(["talker"]))
    with pytest.raises(MngrError, match="agent 'talker' is stopped"):
        history.capture(app, history.CaptureRequest("talker"))


# -- connect -------------------------------------------------------------------------------

def test_connect_starts_a_stopped_agent_only_when_asked_and_plugins_hear_it(app: App) -> None:
    from mngr.controller.commands.connect import ConnectRequest, prepare_connect

    make(app, "resting")
    agents.stop(app, agents.StopRequest(["resting"]))
    plugin = with_refuser(app, [], "-")
    with pytest.raises(MngrError, match=r"agent 'resting' is stopped \(start it with: mngr start resting"):
        prepare_connect(app, ConnectRequest("resting"))
    assert states(app)["resting"] == "STOPPED" and plugin.heard == []
    target = prepare_connect(app, ConnectRequest("resting", start=True))
    assert (target.name, target.host, target.provider.name, target.started) == ("resting", "local", "local", True)
    assert states(app)["resting"] in ("RUNNING", "WAITING")
    assert plugin.heard == [("before_start", "resting"), ("after_start", "resting")]
    again = prepare_connect(app, ConnectRequest("resting"))
    assert not again.started


# -- schedule --------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "expected"), [
    ({"cron": "61 * * * *"}, "invalid cron expression"),
    ({"cron": "* * * *"}, "invalid cron expression"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"message": ""}, "a schedule needs a message"),
    ({"agent": "a", "templates": ["t"]}, "no --template, --in or --agent-type"),
    ({"name": "bad name"}, "invalid schedule name"),
    ({"cron": "0 0 31 2 *"}, "never comes due"),
    ({"templates": ["nope"]}, "no template 'nope' in the config"),
    ({"agent": "ghost"}, "--agent: "),
    ({"agent_type": "bogus"}, "unknown agent type 'bogus'"),
    ({"provider": "nowhere"}, "unknown provider 'nowhere'"),
])
def test_a_bad_schedule_is_refused_and_nothing_is_kept(app: App, changes: dict, expected: str) -> None:
    from mngr.controller import schedules

    request = schedule.AddScheduleRequest(**{"message": "msg", "cron": "0 * * * *", "install": False, **changes})
    with pytest.raises(MngrError, match=re.escape(expected)) as refused:
        schedule.add_schedule(app, request)
    assert refused.value.exit_code == 2  # a usage error
    assert schedules.load() == []


def test_schedule_names_are_unique_and_taken_from_the_agent(app: App) -> None:
    make(app, "bot", "cat")
    first = schedule.add_schedule(app, schedule.AddScheduleRequest("m", "0 * * * *", name="x", install=False))
    assert (first.schedule.name, first.crontab) == ("x", False) and first.next_at.endswith(":00")
    with pytest.raises(UsageError, match="exists already"):
        schedule.add_schedule(app, schedule.AddScheduleRequest("m", "0 * * * *", name="x", install=False))
    named = schedule.add_schedule(app, schedule.AddScheduleRequest("m", "0 * * * *", agent="bot", install=False))
    again = schedule.add_schedule(app, schedule.AddScheduleRequest("m", "0 * * * *", agent="bot", install=False))
    assert (named.schedule.name, again.schedule.name) == ("bot", "bot-2")


# -- list --------------------------------------------------------------------------------------

def test_list_filters_by_state_label_and_provider(app: App) -> None:
    from mngr.controller.commands.listing import ListRequest, list_agents

    make(app, "one", labels={"team": "a"})
    make(app, "two", labels={"team": "b"})
    agents.stop(app, agents.StopRequest(["two"]))

    def names(request: ListRequest) -> list[str]:
        return [agent.info.name for agent in list_agents(app, request).agents]

    assert names(ListRequest()) == ["one", "two"]
    assert names(ListRequest(states=["stopped"])) == ["two"]
    assert names(ListRequest(labels={"team": "a"})) == ["one"]
    assert names(ListRequest(labels={"team": "a"}, states=["STOPPED"])) == []
    assert names(ListRequest(providers=["local"])) == ["one", "two"]
    listed = list_agents(app, ListRequest())
    assert [(host.host, host.provider) for host in listed.hosts] == [("local", "local")] and listed.errors == []
    with pytest.raises(MngrError, match="unknown provider 'nowhere'"):
        list_agents(app, ListRequest(providers=["nowhere"]))
