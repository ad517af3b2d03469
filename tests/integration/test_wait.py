"""`mngr wait` through the real CLI: real agents in real tmux sessions, on the local host
and on an SSH test host. No test asserts how long a wait took: each asserts what the
agents were when it returned, and its exit status."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import MNGR_BIN, AgentUser, wait_for
from tests.integration.test_ssh import started_host
from tests.sshd import unavailable_reason

QUIET = {"MNGR_AGENT_QUIET_SECONDS": "1"}


def create(sandbox, name: str, *command: str, extra: tuple[str, ...] = ()) -> None:
    result = sandbox.mngr("create", name, "command", "--no-connect", *extra, "--", *command, env=QUIET)
    assert result.returncode == 0, result.stderr


def state(sandbox, name: str) -> str:
    listed = json.loads(sandbox.mngr("list", "--format", "json", env=QUIET).stdout)["agents"]
    return {agent["name"]: agent["state"] for agent in listed}[name]


def test_wait_returns_once_every_agent_is_done_and_says_so(sandbox) -> None:
    # Each finishes only once the test lets it: the wait must be under way before.
    gate = sandbox.root / "gate"
    create(sandbox, "first", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done")
    create(sandbox, "second", "sh", "-c", f"while [ ! -e {gate}.2 ]; do sleep 0.1; done")
    waiting = subprocess.Popen([str(MNGR_BIN), "wait", "first", "second", "--for", "done", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**sandbox.env, **QUIET}, cwd=sandbox.work_dir)
    try:
        gate.touch()
        wait_for(lambda: state(sandbox, "first") == "DONE", "the first agent DONE")
        assert waiting.poll() is None  # the second is still running: the wait goes on
        (sandbox.root / "gate.2").touch()
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    rows = json.loads(out)
    assert [(row["name"], row["state"], row["outcome"]) for row in rows] == [
        ("first", "DONE", "reached"), ("second", "DONE", "reached")]
    assert rows[0]["exit_status"] == 0


def test_waiting_is_reached_by_a_quiet_agent_and_printed(sandbox) -> None:
    create(sandbox, "idler", "sleep", "600")
    result = sandbox.mngr("wait", "idler", "--for", "waiting", "--timeout", "60s", env=QUIET)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "idler on local: WAITING\n"


def test_a_timeout_exits_124_naming_what_is_not_there_yet(sandbox) -> None:
    create(sandbox, "forever", "sleep", "600")
    result = sandbox.mngr("wait", "forever", "--for", "done", "--timeout", "1s", env=QUIET)
    assert result.returncode == 124, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("mngr: error: timed out waiting for DONE: forever (")
    assert state(sandbox, "forever") in ("RUNNING", "WAITING")  # the wait changed nothing


def test_an_agent_that_cannot_get_there_ends_the_wait_with_4(sandbox) -> None:
    create(sandbox, "quick", "true")
    wait_for(lambda: state(sandbox, "quick") == "DONE", "the agent DONE")
    result = sandbox.mngr("wait", "quick", "--for", "running,waiting", env=QUIET)
    assert result.returncode == 4, result.stderr
    assert result.stderr == ("mngr: error: quick cannot reach RUNNING or WAITING: it is DONE, "
                             "which it stays until someone acts on it\n")

    create(sandbox, "napper", "sleep", "600")
    assert sandbox.mngr("stop", "napper").returncode == 0
    stopped = sandbox.mngr("wait", "napper", "--for", "waiting", "--format", "jsonl", env=QUIET)
    assert stopped.returncode == 4, stopped.stderr
    (row,) = [json.loads(line) for line in stopped.stdout.splitlines()]
    assert (row["name"], row["state"], row["outcome"]) == ("napper", "STOPPED", "unreachable")


def test_an_agent_destroyed_while_waited_on_ends_the_wait_with_4(sandbox) -> None:
    create(sandbox, "doomed", "sleep", "600")
    waiting = subprocess.Popen([str(MNGR_BIN), "wait", "doomed", "--for", "done", "--interval", "2s"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**sandbox.env, **QUIET}, cwd=sandbox.work_dir)
    try:
        # Sleeping between looks, the wait has found the agent: a destroy before its first
        # look would make it "not found" (status 1), another case.
        wait_for(lambda: _between_looks(waiting.pid), "the wait's first look")
        assert sandbox.mngr("destroy", "-f", "doomed").returncode == 0
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 4, err
    assert err == ("mngr: error: doomed cannot reach DONE: it no longer exists (destroyed while waited on)\n")
    assert out == ""


def _between_looks(pid: int) -> bool:
    """Whether process ``pid``'s main thread sleeps (the wait's pause between two looks)."""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return "nanosleep" in wchan.read()
    except OSError:
        return False


def test_any_returns_the_first_agent_to_get_there(sandbox) -> None:
    create(sandbox, "slow", "sleep", "600")
    create(sandbox, "fast", "true")
    result = sandbox.mngr("wait", "slow", "fast", "--any", "--for", "done", "--format", "{name} {state}", env=QUIET)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "fast DONE\n"
    assert state(sandbox, "slow") in ("RUNNING", "WAITING")


def test_bad_input_is_a_usage_error_and_an_unknown_agent_an_error(sandbox) -> None:
    create(sandbox, "here", "sleep", "600")
    unknown_state = sandbox.mngr("wait", "here", "--for", "finished")
    assert unknown_state.returncode == 2
    assert "--for 'finished': not a state to wait for (choose from running, waiting, done, stopped)" in \
        unknown_state.stderr
    assert sandbox.mngr("wait", "here", "--timeout", "soon").returncode == 2
    assert sandbox.mngr("wait", "here", "--format", "{nope}").returncode == 2
    assert sandbox.mngr("wait").returncode == 2
    missing = sandbox.mngr("wait", "nobody", "--for", "done")
    assert missing.returncode == 1
    assert "nobody" in missing.stderr


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_agents_on_an_ssh_host_and_the_local_one_are_waited_on_together(sandbox) -> None:
    gate = sandbox.root / "gate"
    with started_host(sandbox, "testhost"):
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.testhost]\n")
        far = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--", "sh", "-c", "sleep 1; exit 3")
        assert far.returncode == 0, far.stderr
        create(sandbox, "near", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done")
        waiting = subprocess.Popen([str(MNGR_BIN), "wait", "far", "near", "--for", "done,stopped"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**sandbox.env, **QUIET}, cwd=sandbox.work_dir)
        try:
            wait_for(lambda: state(sandbox, "far") == "DONE", "the far agent DONE")
            assert waiting.poll() is None
            gate.touch()
            out, err = waiting.communicate(timeout=60)
        finally:
            waiting.kill()
        assert waiting.returncode == 0, err
        assert sorted(out.splitlines()) == ["far on testhost: DONE", "near on local: DONE"]


def test_agents_are_given_on_stdin_or_chosen_by_a_filter(sandbox) -> None:
    create(sandbox, "nightly-a", "true", extra=("--label", "batch=nightly"))
    create(sandbox, "nightly-b", "true", extra=("--label", "batch=nightly"))
    create(sandbox, "other", "sleep", "600")
    ids = sandbox.mngr("list", "--ids", "--include", "labels.batch == nightly")
    assert ids.returncode == 0, ids.stderr
    assert len(ids.stdout.split()) == 2
    piped = sandbox.mngr("wait", "-", "--for", "done", "--format", "{name}", input=ids.stdout, env=QUIET)
    assert piped.returncode == 0, piped.stderr
    assert sorted(piped.stdout.split()) == ["nightly-a", "nightly-b"]
    chosen = sandbox.mngr("wait", "--include", "labels.batch == nightly", "--for", "done", "--format", "{name}",
                          env=QUIET)
    assert chosen.returncode == 0, chosen.stderr
    assert sorted(chosen.stdout.split()) == ["nightly-a", "nightly-b"]  # "other" never finishes: not waited on
    nothing = sandbox.mngr("wait", "-", "--any", "--for", "done", input="", env=QUIET)
    assert (nothing.returncode, nothing.stdout) == (0, "")


def test_a_wait_returns_when_a_real_claude_agent_has_finished_its_turn(agent_user: AgentUser) -> None:
    sandbox = agent_user.sandbox
    created = sandbox.mngr("create", "worker", "-t", "claude", "--no-connect", timeout=120)
    assert created.returncode == 0, created.stderr
    ready = sandbox.mngr("wait", "worker", "--for", "waiting", "--timeout", "120", timeout=150)
    assert ready.returncode == 0, ready.stderr
    sent = sandbox.mngr("message", "worker", "--message-file", "-", input="STANDIN-SLOW: 3 think it over",
                        timeout=120)
    assert sent.returncode == 0, sent.stderr
    waited = sandbox.mngr("wait", "worker", "--for", "waiting", "--timeout", "120", "--format", "json", timeout=150)
    assert waited.returncode == 0, waited.stderr
    (record,) = json.loads(waited.stdout)
    assert (record["name"], record["state"], record["waiting_reason"]) == ("worker", "WAITING", "input")
    # It returned once the turn was over: the model's reply is on the agent's screen already.
    assert agent_user.standin.received("STANDIN-SLOW: 3 think it over")
    screen = sandbox.mngr("capture", "worker")
    assert "heard: STANDIN-SLOW: 3 think it over" in screen.stdout, screen.stdout
