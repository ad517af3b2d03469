"""Idle detection: a real watcher in the host daemon, real tmux agents, timeouts of seconds.

Each test observes the watcher through its effects: agents STOPPED, a marker file its idle
command wrote, the shutdown reported by `mngr list`. "Stays up" is checked after the host
has been quiet for well past its timeout by the measure that counts (never a timing assert
on mngr itself).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import time

import pytest

from tests.conftest import wait_for

TIMEOUT = "3"


def _listed(sandbox) -> dict:
    result = sandbox.mngr("list", "--format", "json")
    return json.loads(result.stdout)


def _state(sandbox, name: str) -> str:
    return {agent["name"]: agent["state"] for agent in _listed(sandbox)["agents"]}.get(name, "")


def _create(sandbox, name: str, *command: str, idle: tuple[str, ...] = ("--idle-timeout", TIMEOUT)) -> None:
    created = sandbox.mngr("create", name, "command", "--no-connect", *idle, "--", *command)
    assert created.returncode == 0, created.stderr


def _decisions(sandbox) -> list[dict]:
    log = sandbox.host_dir / "host" / "watcher.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _stays_up(sandbox, name: str, quiet_for: float = 7.0) -> None:
    """The agent is still running after twice the timeout and more, and nothing was stopped."""
    time.sleep(quiet_for)
    assert _state(sandbox, name) in ("RUNNING", "WAITING")
    assert not [d for d in _decisions(sandbox) if d["decision"] == "shutdown"], _decisions(sandbox)


def test_a_silent_agent_is_stopped_and_the_shutdown_is_reported(sandbox) -> None:
    _create(sandbox, "silent", "sleep", "600")
    wait_for(lambda: _state(sandbox, "silent") == "STOPPED", "the idle watcher to stop the agent")
    # The shutdown is recorded and logged once the agents are stopped: a listing may come first.
    wait_for(lambda: any(d["decision"] == "shutdown" for d in _decisions(sandbox)), "the shutdown in the log")
    (host,) = _listed(sandbox)["hosts"]
    assert host["idle_timeout"] == 3.0 and host["idle_mode"] == "io"
    assert host["last_shutdown_reason"].startswith("idle for ")
    # The clock counts from the newest of the agent's creation and the setting of the timeout.
    assert host["last_shutdown_reason"].endswith(("last activity: create (silent)", "last activity: settings"))
    human = sandbox.mngr("list").stdout
    assert "LAST SHUTDOWN" in human and "idle for" in human
    decisions = [d["decision"] for d in _decisions(sandbox)]
    assert decisions[0] == "watching"
    assert decisions.index("active") < decisions.index("stopping") < decisions.index("shutdown")
    shown = sandbox.mngr("limit", "silent", "--log", "10")
    assert shown.returncode == 0 and "stopping the host: idle for" in shown.stdout
    # Nothing more happens to a stopped host; starting the agent watches it afresh.
    assert sandbox.mngr("start", "silent").returncode == 0
    wait_for(lambda: _state(sandbox, "silent") == "STOPPED", "the second idle stop")
    # (the watcher logs the shutdown once its agents are stopped: a listing may come first)
    wait_for(lambda: len([d for d in _decisions(sandbox) if d["decision"] == "shutdown"]) == 2,
             "the second shutdown in the watcher's log")


def test_an_agent_that_prints_keeps_the_host_up(sandbox) -> None:
    _create(sandbox, "chatty", "sh", "-c", "while :; do echo tick; sleep 0.5; done")
    _stays_up(sandbox, "chatty")
    assert _listed(sandbox)["hosts"][0]["last_activity"] == "output"


def test_an_agent_computing_silently_keeps_the_host_up(sandbox) -> None:
    _create(sandbox, "busy", "sh", "-c", "while :; do :; done")
    _stays_up(sandbox, "busy")
    assert _listed(sandbox)["hosts"][0]["last_activity"] == "cpu"


def test_an_attached_client_keeps_the_host_up_and_detaching_lets_it_stop(sandbox) -> None:
    _create(sandbox, "watched", "sleep", "600")
    primary, secondary = pty.openpty()
    client = subprocess.Popen(["tmux", "attach-session", "-t", "=mngr-watched"], stdin=secondary,
                              stdout=secondary, stderr=secondary, env={**sandbox.env, "TERM": "xterm"})
    os.close(secondary)
    try:
        _stays_up(sandbox, "watched")
        assert _listed(sandbox)["hosts"][0]["last_activity"] == "user"
    finally:
        client.kill()
        client.wait()
        os.close(primary)
    wait_for(lambda: _state(sandbox, "watched") == "STOPPED", "the stop once the user left")


def test_a_lease_keeps_the_host_up(sandbox) -> None:
    _create(sandbox, "leased", "sleep", "600")
    kept = sandbox.mngr("keepalive", "leased", "--for", "1h")
    assert kept.returncode == 0 and "for the next 1h" in kept.stdout
    _stays_up(sandbox, "leased")
    host = _listed(sandbox)["hosts"][0]
    assert host["last_activity"] == "lease" and host["last_activity_agent"] == "leased"


def test_a_mngr_operation_in_progress_postpones_the_shutdown(sandbox) -> None:
    _create(sandbox, "held", "sleep", "600")
    lock_file = sandbox.host_dir / "locks" / "operation.lock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what a request being served holds
    try:
        wait_for(lambda: any(d["decision"] == "postponed" for d in _decisions(sandbox)), "a postponed stop")
        assert _state(sandbox, "held") in ("RUNNING", "WAITING")
    finally:
        os.close(fd)  # a crashed holder's lock goes the same way
    wait_for(lambda: _state(sandbox, "held") == "STOPPED", "the stop once the operation ended")


def test_when_every_agent_has_exited_the_host_stops_after_the_grace(sandbox) -> None:
    marker = sandbox.root / "host-stopped"
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(f'[providers.local]\nidle_command = "touch {marker}"\n')
    _create(sandbox, "brief", "sh", "-c", "echo done; sleep 2",
            idle=("--idle-timeout", "1h"))
    assert sandbox.mngr("limit", "brief", "--stop-grace", "2").returncode == 0
    wait_for(marker.exists, "the idle command after every agent exited", timeout=30)
    (host,) = _listed(sandbox)["hosts"]
    assert host["last_shutdown_reason"].startswith("no agent running for ")
    assert _state(sandbox, "brief") == "DONE", "an exited agent keeps its last screen"


def test_the_watcher_is_restarted_by_the_next_command_after_a_kill(sandbox) -> None:
    _create(sandbox, "orphan", "sleep", "600", idle=("--idle-timeout", "1h"))
    (daemon,) = wait_for(sandbox.daemon_pids, "the host daemon")
    wait_for(lambda: any(d["decision"] == "watching" for d in _decisions(sandbox)), "the watcher")
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: not sandbox.daemon_pids(), "the daemon to die")
    # The next contact (any command) brings the watcher back; it then sees the new timeout.
    assert sandbox.mngr("limit", "orphan", "--idle-timeout", TIMEOUT).returncode == 0
    wait_for(lambda: _state(sandbox, "orphan") == "STOPPED", "the restarted watcher to stop the agent")
    watching = [d for d in _decisions(sandbox) if d["decision"] == "watching"]
    assert len(watching) == 2 and str(daemon) in watching[0]["message"]


def test_one_watcher_per_host_dir_whatever_starts_it(sandbox) -> None:
    # Two daemons (another tmux server means another daemon key) share one host dir.
    _create(sandbox, "first", "sleep", "600", idle=("--idle-timeout", "1h"))
    other_tmux = sandbox.tmux_dir / "other"
    other_tmux.mkdir()
    listed = sandbox.mngr("list", env={"TMUX_TMPDIR": str(other_tmux)})
    assert listed.returncode == 0
    wait_for(lambda: len(sandbox.daemon_pids()) == 2, "a second daemon")
    time.sleep(6)  # several watcher polls of both daemons
    watching = [d for d in _decisions(sandbox) if d["decision"] == "watching"]
    assert len(watching) == 1, watching


def test_a_newer_helper_takes_the_watch_over(sandbox) -> None:
    _create(sandbox, "agent", "sleep", "600", idle=("--idle-timeout", "1h"))
    wait_for(lambda: any(d["decision"] == "watching" for d in _decisions(sandbox)), "the watcher")
    claim = sandbox.host_dir / "host" / "watcher.claim"
    claim.write_text(f"0123456789abcdef {os.getpid()}\n")  # a live claimant of another version
    wait_for(lambda: any(d["decision"] == "handed-over" for d in _decisions(sandbox)), "the hand-over")
    claim.write_text("0123456789abcdef 999999999\n")  # the claimant died: watch again
    wait_for(lambda: len([d for d in _decisions(sandbox) if d["decision"] == "watching"]) == 2, "the watch back")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--idle-timeout", "soon"), "invalid --idle-timeout 'soon'"),
        (("--idle-timeout", "0"), "it must be more than 0 seconds"),
        (("--idle-timeout", "5m", "--idle-mode", "sometimes"), "unknown idle mode 'sometimes'"),
        (("--idle-timeout", "5m", "--activity-sources", "output,vibes"), "unknown activity source 'vibes'"),
    ],
)
def test_bad_idle_settings_are_one_clear_error_and_create_nothing(sandbox, options, message) -> None:
    result = sandbox.mngr("create", "never", "command", "--no-connect", *options, "--", "sleep", "600")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr
    assert sandbox.sessions() == [] and not (sandbox.host_dir / "host" / "idle.json").exists()


def test_limit_and_keepalive_refuse_bad_values_as_usage_errors(sandbox) -> None:
    """What limit and keepalive do is tested in-process (test_commands.py); here, what the
    user sees of a bad value."""
    _create(sandbox, "tuned", "sleep", "600", idle=())
    shown = json.loads(sandbox.mngr("limit", "tuned", "--format", "json").stdout)
    assert shown["idle_timeout"] is None and shown["host"] == "local"
    bad = sandbox.mngr("limit", "tuned", "--idle-mode", "nap")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("mngr: error: unknown idle mode 'nap'"), bad.stderr
    assert sandbox.mngr("keepalive", "tuned", "--for", "never").returncode == 2


def test_idle_shutdown_without_a_host_daemon_is_refused(sandbox) -> None:
    result = sandbox.mngr("create", "nodaemon", "command", "--no-connect", "--idle-timeout", "60", "--",
                          "sleep", "600", env={"MNGR_HOST_DAEMON": "0"})
    assert result.returncode == 1 and "idle shutdown needs the host daemon" in result.stderr
    assert sandbox.sessions() == []


def test_a_host_found_with_every_agent_stopped_is_judged_by_the_timeout_not_the_grace(sandbox) -> None:
    # As after a reboot: agents recorded but none running, and a new watcher.
    marker = sandbox.root / "host-stopped"
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(f'[providers.local]\nidle_command = "touch {marker}"\n')
    _create(sandbox, "rebooted", "sleep", "600", idle=("--idle-timeout", "1h"))
    assert sandbox.mngr("limit", "rebooted", "--stop-grace", "1").returncode == 0
    wait_for(lambda: any(d["decision"] == "active" for d in _decisions(sandbox)), "the watcher")
    sandbox.stop_daemons()
    assert sandbox.tmux("kill-server").returncode == 0
    assert _state(sandbox, "rebooted") == "STOPPED"  # this listing starts a new watcher
    wait_for(lambda: len([d for d in _decisions(sandbox) if d["decision"] == "watching"]) == 2, "the new watcher")
    time.sleep(4)  # several polls, past the stop grace
    assert not marker.exists()
    assert not [d for d in _decisions(sandbox) if d["decision"] == "shutdown"]


def test_a_client_on_a_session_that_is_not_an_agent_is_not_activity(sandbox) -> None:
    _create(sandbox, "lonely", "sleep", "600")
    # (tmux now and then answers a new session with "server exited unexpectedly" while it
    # is busy with another client: that is tmux setting up, not what is tested here)
    made = wait_for(lambda: sandbox.tmux("new-session", "-d", "-s", "work-stuff", "sleep 600").returncode == 0
                    or "work-stuff" in sandbox.sessions(), "a session that is not an agent's", timeout=10)
    assert made
    primary, secondary = pty.openpty()
    client = subprocess.Popen(["tmux", "attach-session", "-t", "=work-stuff"], stdin=secondary,
                              stdout=secondary, stderr=secondary, env={**sandbox.env, "TERM": "xterm"})
    os.close(secondary)
    try:
        wait_for(lambda: _state(sandbox, "lonely") == "STOPPED", "the stop despite the other client")
    finally:
        client.kill()
        client.wait()
        os.close(primary)


def test_a_command_run_with_mngr_exec_keeps_the_host_up_while_it_runs(sandbox) -> None:
    _create(sandbox, "worker", "sleep", "600")
    ran = sandbox.mngr("exec", "worker", "sleep 6; echo finished")
    assert ran.returncode == 0 and ran.stdout == "finished\n"
    assert _state(sandbox, "worker") in ("RUNNING", "WAITING")
    assert not [d for d in _decisions(sandbox) if d["decision"] == "shutdown"]
    wait_for(lambda: _state(sandbox, "worker") == "STOPPED", "the stop once the command ended")


def test_a_timeout_turns_a_disabled_host_back_on(sandbox) -> None:
    _create(sandbox, "toggled", "sleep", "600", idle=("--idle-mode", "disabled"))
    settings = json.loads(sandbox.mngr("limit", "toggled", "--idle-timeout", "1h", "--format", "json").stdout)
    assert settings["idle_timeout"] == 3600.0 and settings["idle_mode"] == "io"


def test_agents_in_two_tmux_servers_of_one_host_dir_pause_the_watcher(sandbox) -> None:
    _create(sandbox, "here", "sleep", "600")
    other_tmux = sandbox.tmux_dir / "other"
    other_tmux.mkdir()
    elsewhere = sandbox.mngr("create", "there", "command", "--no-connect", "--", "sleep", "600",
                             env={"TMUX_TMPDIR": str(other_tmux)})
    assert elsewhere.returncode == 0, elsewhere.stderr
    wait_for(lambda: any(d["decision"] == "paused" for d in _decisions(sandbox)), "the watcher to hold back")
    time.sleep(4)
    assert _state(sandbox, "here") in ("RUNNING", "WAITING")
    subprocess.run(["tmux", "kill-server"], env={**sandbox.env, "TMUX_TMPDIR": str(other_tmux)})


def test_a_listing_writes_nothing_on_a_fresh_host(sandbox) -> None:
    listed = sandbox.mngr("list", "--format", "json", env={"MNGR_HOST_DAEMON": "0"})
    # A machine that never had an agent is not even asked: no helper, no host entry.
    assert listed.returncode == 0 and json.loads(listed.stdout)["hosts"] == []
    host_state = sandbox.host_dir / "host"
    assert not (host_state / "activity").exists() and not (host_state / "idle.json").exists()
    # Once it has had one, it is asked; its answer writes no activity and no settings.
    (sandbox.host_dir / "agents" / "gone").mkdir(parents=True)
    listed = sandbox.mngr("list", "--format", "json", env={"MNGR_HOST_DAEMON": "0"})
    assert listed.returncode == 0 and json.loads(listed.stdout)["hosts"][0]["idle_timeout"] is None
    assert not (host_state / "activity").exists() and not (host_state / "idle.json").exists()
