"""`mngr events` through the real CLI: real agents in real tmux sessions on the local host
and an SSH test host, followed by `mngr events --follow` in a process of its own. No test
asserts how soon an event was printed: each asserts what was printed, and in what order."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import MNGR_BIN, AgentUser, Sandbox, wait_for
from tests.integration.test_ssh import started_host
from tests.sshd import unavailable_reason

QUIET = {"MNGR_AGENT_QUIET_SECONDS": "1"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


class Follower:
    """`mngr events --follow ARGS` running, its lines collected as they come."""

    def __init__(self, sandbox: Sandbox, *args: str, quiet: dict[str, str] = QUIET) -> None:
        self.process = subprocess.Popen([str(MNGR_BIN), "events", "--follow", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**sandbox.env, **quiet},
                                        cwd=sandbox.work_dir)
        self.lines: list[str] = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def rows(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def until(self, predicate, what: str, timeout: float = 60.0) -> list[dict]:
        try:
            return wait_for(lambda: predicate(self.rows) and self.rows, what, timeout)
        except AssertionError:
            self.kill()
            raise AssertionError(f"timed out waiting for {what}; printed:\n{''.join(self.lines)}"
                                 f"stderr:\n{self.stderr}") from None

    def interrupt(self) -> int:
        """Ctrl-C, as a user ends it; its exit status."""
        self.process.send_signal(signal.SIGINT)
        _, self.stderr = self.process.communicate(timeout=30)
        self._reader.join(timeout=10)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.stderr += self.process.communicate()[1]


def create(sandbox: Sandbox, name: str, *command: str, extra: tuple[str, ...] = ()) -> None:
    result = sandbox.mngr("create", name, "command", "--no-connect", *extra, "--", *command, env=QUIET)
    assert result.returncode == 0, result.stderr


def state_events(sandbox: Sandbox, name: str) -> list[dict]:
    result = sandbox.mngr("events", name, "--event", "state", env=QUIET)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def states(rows: list[dict]) -> list[str]:
    return [row["state"] for row in rows if row["event"] == "state"]


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_follower_sees_create_message_stop_on_two_hosts_in_order(sandbox) -> None:
    with started_host(sandbox, "testhost"):
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.testhost]\n")
        follower = Follower(sandbox, "--since", now_iso(), "--event", "created,started,message_sent,stopped")
        try:
            create(sandbox, "near", "sleep", "600")
            create(sandbox, "far", "sleep", "600", extra=("--in", "ssh", "--host", "testhost"))
            for name in ("near", "far"):
                sent = sandbox.mngr("message", name, "hello")
                assert sent.returncode == 0, sent.stderr
            for name in ("near", "far"):
                stopped = sandbox.mngr("stop", name)
                assert stopped.returncode == 0, stopped.stderr
            rows = follower.until(lambda rows: len(rows) >= 8, "eight events")
            status = follower.interrupt()
            # Without --follow: the same events, read from both hosts' logs and merged.
            printed = sandbox.mngr("events", "--event", "created,started,message_sent,stopped")
        finally:
            follower.kill()
    assert [(row["host"], row["provider"], row["agent"], row["event"]) for row in rows] == [
        ("local", "local", "near", "created"), ("local", "local", "near", "started"),
        ("testhost", "ssh", "far", "created"), ("testhost", "ssh", "far", "started"),
        ("local", "local", "near", "message_sent"), ("testhost", "ssh", "far", "message_sent"),
        ("local", "local", "near", "stopped"), ("testhost", "ssh", "far", "stopped"),
    ]
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)
    assert all(row["agent_id"].startswith("agent-") for row in rows)
    assert rows[4]["bytes"] == len("hello")
    assert status == 130, follower.stderr
    assert all(line.endswith("\n") for line in follower.lines)  # nothing torn by the Ctrl-C
    assert printed.returncode == 0, printed.stderr
    assert [json.loads(line) for line in printed.stdout.splitlines()] == rows


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_host_that_stops_answering_is_reported_once_and_holds_up_no_other(sandbox) -> None:
    with started_host(sandbox, "testhost") as host:
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.testhost]\n")
        create(sandbox, "far", "sleep", "600", extra=("--in", "ssh", "--host", "testhost"))
        follower = Follower(sandbox, "--since", now_iso(), "--event", "created")
        try:
            create(sandbox, "near", "sleep", "600")
            follower.until(lambda rows: {row["agent"] for row in rows} == {"near"}, "near created")
            host.stop()  # its sshd and everything it ran: the follow's channel there too
            create(sandbox, "nearer", "sleep", "600")
            create(sandbox, "nearest", "sleep", "600")
            rows = follower.until(lambda rows: len(rows) == 3, "the next two created")
            status = follower.interrupt()
        finally:
            follower.kill()
    assert [row["agent"] for row in rows] == ["near", "nearer", "nearest"]
    assert status == 130
    complaints = [line for line in follower.stderr.splitlines() if "testhost (ssh) does not answer" in line]
    assert len(complaints) == 1, follower.stderr
    assert complaints[0].endswith("asking again every 2 s")


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_host_first_used_during_a_follow_is_followed_too(sandbox) -> None:
    with started_host(sandbox, "testhost"):  # in ssh's config only: mngr knows it once used
        follower = Follower(sandbox, "--since", now_iso(), "--event", "created,started")
        try:
            create(sandbox, "near", "sleep", "600")
            follower.until(lambda rows: [row["agent"] for row in rows] == ["near", "near"], "near created")
            create(sandbox, "far", "sleep", "600", extra=("--in", "ssh", "--host", "testhost"))
            rows = follower.until(lambda rows: len(rows) == 4, "far created")
            assert follower.interrupt() == 130
        finally:
            follower.kill()
    assert [(row["host"], row["agent"], row["event"]) for row in rows[2:]] == [
        ("testhost", "far", "created"), ("testhost", "far", "started")]


def test_a_command_agent_is_logged_waiting_then_done_with_its_exit_status(sandbox) -> None:
    gate = sandbox.root / "gate"
    create(sandbox, "worker", "sh", "-c", f"echo working; while [ ! -e {gate} ]; do sleep 0.1; done; exit 7")
    wait_for(lambda: "WAITING" in states(state_events(sandbox, "worker")), "the agent logged WAITING")
    gate.touch()
    rows = wait_for(lambda: (found := state_events(sandbox, "worker")) and found[-1]["state"] == "DONE" and found,
                    "the agent logged DONE")
    assert states(rows)[-2:] == ["WAITING", "DONE"]
    assert rows[-1]["exit_status"] == 7
    assert rows[-2]["exit_status"] is None and rows[-2]["waiting_reason"] is None
    assert all(row["agent"] == "worker" and row["host"] == "local" for row in rows)


def test_two_followers_and_the_watcher_log_each_change_once_even_across_a_daemon_restart(sandbox) -> None:
    since = now_iso()
    followers = [Follower(sandbox, "--since", since, "--event", "state") for _ in range(2)]
    try:
        create(sandbox, "short", "sh", "-c", "sleep 2; exit 0")
        for follower in followers:
            follower.until(lambda rows: "DONE" in states(rows), "the follower saw DONE")
        seen = [follower.rows for follower in followers]
        for follower in followers:
            assert follower.interrupt() == 130, follower.stderr
    finally:
        for follower in followers:
            follower.kill()
    logged = state_events(sandbox, "short")
    assert seen[0] == seen[1] == logged
    assert states(logged)[-1] == "DONE" and states(logged).count("DONE") == 1
    assert all(a != b for a, b in zip(states(logged), states(logged)[1:], strict=False)), states(logged)

    sandbox.stop_daemons()
    wait_for(lambda: not sandbox.daemon_pids(), "the daemon gone")
    assert state_events(sandbox, "short") == logged  # a fresh helper looks, and finds nothing new
    wait_for(sandbox.daemon_pids, "a new daemon")  # whose watcher looks too
    time.sleep(0.5)
    assert state_events(sandbox, "short") == logged


def test_the_notify_command_gets_each_agent_that_starts_waiting_and_a_failure_is_reported_once(sandbox) -> None:
    caught = sandbox.root / "caught.jsonl"
    seen_env = sandbox.root / "env.txt"
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    command = f'cat >> {caught}; echo "$MNGR_AGENT $MNGR_HOST $MNGR_WAITING_REASON" >> {seen_env}; exit 5'
    (sandbox.config_dir / "config.toml").write_text(f"[notify]\non_waiting = {json.dumps(command)}\n")
    gate = sandbox.root / "gate"
    # Busy (printing) until the gate opens, then quiet: WAITING a few seconds later. (tmux
    # tells output times in whole seconds: a quietness of 1 s would see a busy agent flap.)
    busy = f"while [ ! -e {gate} ]; do echo tick; sleep 0.2; done; sleep 600"
    follower = Follower(sandbox, "--since", now_iso(), "--event", "state", quiet={"MNGR_AGENT_QUIET_SECONDS": "3"})
    try:
        create(sandbox, "one", "sh", "-c", busy)
        create(sandbox, "two", "sh", "-c", busy)
        # Once it has printed anything, the follower is past the history: what follows is live.
        running = follower.until(lambda rows: {row["agent"] for row in rows} == {"one", "two"}, "both agents RUNNING")
        assert states(running) == ["RUNNING", "RUNNING"]
        gate.touch()
        follower.until(lambda rows: states(rows).count("WAITING") == 2, "both agents WAITING")
        wait_for(lambda: caught.exists() and len(caught.read_text().splitlines()) == 2, "two notifications")
        status = follower.interrupt()
    finally:
        follower.kill()
    notified = [json.loads(line) for line in caught.read_text().splitlines()]
    assert sorted(event["agent"] for event in notified) == ["one", "two"]
    assert all(event["event"] == "state" and event["state"] == "WAITING" and event["host"] == "local"
               for event in notified)
    # A command agent's waiting has no reason (a Claude or Codex one's has: input, a dialog).
    assert sorted(seen_env.read_text().splitlines()) == ["one local ", "two local "]
    assert status == 130
    failures = [line for line in follower.stderr.splitlines() if "on_waiting failed" in line]
    assert failures == ["mngr: warning: [notify] on_waiting failed (exit status 5) "
                        "(reported once; the follow goes on)"]


def test_filters_and_names_from_stdin_choose_whose_events(sandbox) -> None:
    for name, team in (("ant", "a"), ("bee", "b"), ("cow", "a")):
        create(sandbox, name, "sleep", "600", extra=("--label", f"team={team}"))

    def agents(*args: str, input: str | None = None) -> list[str]:
        result = sandbox.mngr("events", "--event", "created", *args, input=input)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["agent"] for line in result.stdout.splitlines()]

    assert agents() == ["ant", "bee", "cow"]
    assert agents("--include", "labels.team == a") == ["ant", "cow"]
    assert agents("--include", "labels.team == a", "--exclude", "name == cow") == ["ant"]
    assert agents("-", input="cow\nbee\n") == ["bee", "cow"]
    assert agents("--include", "labels.team == nobody") == []
    nothing = sandbox.mngr("events", "--follow", "--include", "labels.team == nobody")
    assert nothing.returncode == 1 and "no agent matches" in nothing.stderr


def test_notify_only_prints_nothing_and_bad_options_are_refused(sandbox) -> None:
    assert sandbox.mngr("events", "--notify-only").returncode == 2
    refused = sandbox.mngr("events", "--follow", "--format", "json")
    assert refused.returncode == 2 and "cannot follow" in refused.stderr
    unknown = sandbox.mngr("events", "--event", "exploded")
    assert unknown.returncode == 2 and "not an event type" in unknown.stderr
    bad_since = sandbox.mngr("events", "--since", "yesterday-ish")
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr
    missing = sandbox.mngr("events", "nobody")
    assert missing.returncode == 1 and "nobody" in missing.stderr

    follower = Follower(sandbox, "-n", "--since", now_iso())
    try:
        create(sandbox, "quiet", "sleep", "600")
        wait_for(lambda: "WAITING" in states(state_events(sandbox, "quiet")), "the agent WAITING")
        assert follower.interrupt() == 130
    finally:
        follower.kill()
    assert follower.lines == []


def test_a_real_claude_agent_is_logged_waiting_for_input_after_its_turn(agent_user: AgentUser) -> None:
    sandbox = agent_user.sandbox
    created = sandbox.mngr("create", "worker", "-t", "claude", "--no-connect", timeout=120)
    assert created.returncode == 0, created.stderr
    follower = Follower(sandbox, "worker", "--since", now_iso(), "--event", "state,message_sent")
    try:
        follower.until(lambda rows: rows and rows[-1].get("state") == "WAITING", "claude waiting at its prompt")
        sent = sandbox.mngr("message", "worker", "--message-file", "-", input="STANDIN-SLOW: 3 take your time",
                            timeout=120)
        assert sent.returncode == 0, sent.stderr

        def turn_over(rows: list[dict]) -> bool:
            events = [row["event"] for row in rows]
            return "message_sent" in events and rows[-1].get("state") == "WAITING" \
                and events.index("message_sent") < len(rows) - 1
        rows = follower.until(turn_over, "the turn over", timeout=120)
        assert follower.interrupt() == 130
    finally:
        follower.kill()
    # From claude's prompt on: the message, its turn (RUNNING) and the prompt again.
    after = rows[states(rows).index("WAITING") + 1:] if rows[0]["event"] == "state" else rows
    assert "message_sent" in [row["event"] for row in after]
    assert states(after)[-2:] == ["RUNNING", "WAITING"], after
    assert after[-1]["waiting_reason"] == "input"
