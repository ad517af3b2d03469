"""Hosts come and go: remembered only after a create succeeded, listed and forgotten with
`mngr host`, dropped after being out of reach long enough, and a hung host daemon replaced.
All through the CLI, on real sshd hosts (tests/sshd.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.integration.test_agent_lookup import _kill_host
from tests.integration.test_ssh import started_host
from tests.processes import state_of
from tests.sshd import SshHost, _free_port, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@pytest.fixture
def box(sandbox) -> Iterator[SshHost]:
    """An SSH host ``box``, not in the config: known only as an ssh alias."""
    with started_host(sandbox, "box") as host:
        yield host


def _create_on(sandbox, name: str, host: str, *command: str):  # type: ignore[no-untyped-def]
    return sandbox.mngr("create", name, "command", "--in", "ssh", "--host", host, "--no-connect", "--",
                        *(command or ("sleep", "600")))


def _remembered(sandbox) -> list[str]:
    registry = sandbox.state_dir / "ssh_hosts.json"
    return sorted(json.loads(registry.read_text())) if registry.exists() else []


def _hosts(sandbox) -> dict[str, dict]:
    listed = sandbox.mngr("host", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {row["host"]: row for row in json.loads(listed.stdout)["hosts"]}


def _daemon_pid(host: SshHost) -> int:
    pids = host.remote_processes(b"mngr_remote_helper.daemon")
    assert len(pids) == 1, pids
    return pids[0]


def test_a_failed_create_on_a_new_host_leaves_it_unremembered(sandbox, box: SshHost) -> None:
    failed = _create_on(sandbox, "nope", "box", "no-such-program-anywhere")
    assert failed.returncode != 0
    assert "no-such-program-anywhere" in failed.stderr
    assert _remembered(sandbox) == []
    assert "box" not in _hosts(sandbox)
    created = _create_on(sandbox, "yes", "box")
    assert created.returncode == 0, created.stderr
    assert _remembered(sandbox) == ["box"]


def test_a_name_taken_elsewhere_is_refused_before_the_new_host_is_touched(sandbox, box: SshHost) -> None:
    assert sandbox.mngr("create", "taken", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    refused = _create_on(sandbox, "taken", "box")
    assert refused.returncode == 1
    assert refused.stderr == "mngr: error: agent 'taken' already exists on local (local)\n"
    assert _remembered(sandbox) == []
    assert not (box.remote_host_dir / "work").exists() and not (box.remote_host_dir / "agents").exists()
    assert box.remote_processes() == []  # no helper was ever started there


def test_host_list_shows_each_host_and_forget_refuses_what_it_should(sandbox, box: SshHost) -> None:
    assert _create_on(sandbox, "far", "box").returncode == 0
    assert sandbox.mngr("create", "near", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    hosts = _hosts(sandbox)
    assert {name: (row["provider"], row["origin"], row["state"], row["agents"]) for name, row in hosts.items()} == {
        "box": ("ssh", "remembered", "answering", 1), "local": ("local", "local", "answering", 1)}
    assert hosts["box"]["last_seen"] is not None and hosts["box"]["unreachable_since"] is None
    human = sandbox.mngr("host", "list")
    assert human.returncode == 0 and human.stdout.splitlines()[0].split() == [
        "HOST", "PROVIDER", "ORIGIN", "STATE", "AGENTS", "LAST", "SEEN", "ERROR"]

    busy = sandbox.mngr("host", "forget", "box")
    assert busy.returncode == 2
    assert "host 'box' (ssh) has agents: far" in busy.stderr and "--force" in busy.stderr
    assert busy.stderr.count("\n") == 1
    assert sandbox.mngr("host", "forget", "local").returncode == 2
    unknown = sandbox.mngr("host", "forget", "nowhere")
    assert unknown.returncode == 2 and "no host named 'nowhere'" in unknown.stderr
    assert _remembered(sandbox) == ["box"]

    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text("[hosts.box]\n")
    configured = sandbox.mngr("host", "forget", "box", "--force")
    assert configured.returncode == 2 and "is in the config ([hosts.box])" in configured.stderr
    (sandbox.config_dir / "config.toml").write_text("")

    assert sandbox.mngr("destroy", "far", "--force").returncode == 0
    assert _create_on(sandbox, "again", "box").returncode == 0
    assert sandbox.mngr("destroy", "again", "--force").returncode == 0
    forgot = sandbox.mngr("host", "forget", "ssh/box")
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout == "forgot host box (ssh)\n"
    assert _remembered(sandbox) == [] and "box" not in _hosts(sandbox)


def test_forget_with_force_leaves_the_agents_running_there(sandbox, box: SshHost) -> None:
    assert _create_on(sandbox, "far", "box").returncode == 0
    forgot = sandbox.mngr("host", "forget", "box", "--force")
    assert forgot.returncode == 0, forgot.stderr
    listed = json.loads(sandbox.mngr("list", "--format", "json").stdout)
    assert listed["agents"] == [] and listed["errors"] == []
    assert box.remote_processes(b"sleep 600")


def test_an_unreachable_host_is_reported_once_more_then_dropped(sandbox, box: SshHost) -> None:
    assert _create_on(sandbox, "far", "box").returncode == 0
    _kill_host(sandbox, box)
    sandbox.env["MNGR_FORGET_UNREACHABLE_AFTER_SECONDS"] = "0"
    first = sandbox.mngr("list", "--format", "json")
    assert first.returncode == 1
    assert [error["host"] for error in json.loads(first.stdout)["errors"]] == ["box"]
    last = sandbox.mngr("list", "--format", "json")  # out of reach for as long as allowed: said once more
    assert last.returncode == 1
    (error,) = json.loads(last.stdout)["errors"]
    assert error["host"] == "box" and "no longer searched" in error["error"]
    assert "mngr host forget box" in error["error"]
    for _ in range(2):
        quiet = sandbox.mngr("list", "--format", "json")
        assert quiet.returncode == 0, quiet.stdout
        assert json.loads(quiet.stdout) == {"schema_version": 1, "agents": [], "hosts": [], "errors": []}
    gone = sandbox.mngr("stop", "far")
    assert gone.returncode != 0 and "no agent named 'far'" in gone.stderr
    row = _hosts(sandbox)["box"]
    assert (row["state"], row["agents"], row["cached_agents"]) == ("dropped", None, 0)
    assert row["unreachable_since"] is not None
    assert _remembered(sandbox) == ["box"]  # dropped from listings, not forgotten
    forgot = sandbox.mngr("host", "forget", "box")
    assert forgot.returncode == 0, forgot.stderr
    assert _remembered(sandbox) == []


def test_an_unreachable_host_stays_listed_until_the_setting_says(sandbox, box: SshHost) -> None:
    assert _create_on(sandbox, "far", "box").returncode == 0
    _kill_host(sandbox, box)
    for _ in range(3):  # the default is a week
        listed = sandbox.mngr("list", "--format", "json")
        assert listed.returncode == 1
        (error,) = json.loads(listed.stdout)["errors"]
        assert error["host"] == "box" and "no longer searched" not in error["error"]


def test_a_stopped_host_daemon_is_replaced_and_its_agents_listed(sandbox, box: SshHost) -> None:
    assert _create_on(sandbox, "far", "box").returncode == 0
    assert sandbox.mngr("list").returncode == 0  # the warm path: the daemon, through a forward
    stopped = wait_for(lambda: box.remote_processes(b"mngr_remote_helper.daemon"), "the host daemon")[0]
    os.kill(stopped, signal.SIGSTOP)
    try:
        listed = sandbox.mngr("list", "--format", "{name} {host} {state}")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == "far box RUNNING\n"
        wait_for(lambda: state_of(stopped) in ("gone", "Z"), "the stopped daemon to be ended")
        wait_for(lambda: [pid for pid in box.remote_processes(b"mngr_remote_helper.daemon") if pid != stopped],
                 "a new daemon")
        assert sandbox.mngr("stop", "far").returncode == 0
    finally:
        with contextlib.suppress(OSError):
            os.kill(stopped, signal.SIGKILL)


def test_a_push_whose_early_requests_went_to_a_stopped_daemon_lands_through_a_fresh_helper(
        sandbox, box: SshHost) -> None:
    """A push sends its first requests to the daemon's socket while mngr loads
    (early_channel.py): a daemon that takes them and never answers is found by the Ping sent
    ahead of them, and the push goes through a fresh helper instead."""
    assert _create_on(sandbox, "far", "box").returncode == 0
    local = sandbox.root / "project"
    local.mkdir()
    (local / "first.txt").write_text("one\n")
    assert sandbox.mngr("push", "far", str(local)).returncode == 0
    assert "ssh/box" in json.loads((sandbox.state_dir / "channels.json").read_text())
    stopped = wait_for(lambda: box.remote_processes(b"mngr_remote_helper.daemon"), "the host daemon")[0]
    os.kill(stopped, signal.SIGSTOP)
    try:
        (local / "second.txt").write_text("two\n")
        pushed = sandbox.mngr("push", "far", str(local))
        assert pushed.returncode == 0, pushed.stderr
        shown = sandbox.mngr("exec", "far", "cat second.txt")
        assert shown.returncode == 0 and shown.stdout == "two\n", shown.stderr
    finally:
        with contextlib.suppress(OSError):
            os.kill(stopped, signal.SIGKILL)


def _median_seconds(sandbox, runs: int, *args: str) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = sandbox.mngr(*args)
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    return statistics.median(times)


def test_a_local_agent_by_name_stays_fast_with_a_dead_and_a_frozen_remembered_host(sandbox, box: SshHost) -> None:
    """One remembered host refuses connections (nothing listens), another's daemon is
    stopped: a by-name command on a local agent takes about as long as with no remembered
    host at all (a ratio of the two, measured in turns, not a time limit)."""
    dead_port = _free_port()  # nothing listens there
    config = sandbox.root / "ssh_config"
    config.write_text(config.read_text() + f"Host dead\n  HostName 127.0.0.1\n  Port {dead_port}\n"
                      f"  User mngr-test\n  IdentityFile {box.client_key}\n")
    assert _create_on(sandbox, "far", "box").returncode == 0
    assert sandbox.mngr("create", "here", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    assert sandbox.mngr("list").returncode == 0  # box's daemon is up, reached through its forward
    os.kill(_daemon_pid(box), signal.SIGSTOP)
    registry = sandbox.state_dir / "ssh_hosts.json"
    with_hosts = json.dumps({"box": time.time(), "dead": time.time()})
    registry.write_text(with_hosts)
    assert sandbox.mngr("exec", "here", "true").returncode == 0  # each path warm before measuring
    plain, burdened = [], []
    for _ in range(3):
        registry.write_text("{}")
        plain.append(_median_seconds(sandbox, 1, "exec", "here", "true"))
        registry.write_text(with_hosts)
        burdened.append(_median_seconds(sandbox, 1, "exec", "here", "true"))
    assert _remembered(sandbox) == ["box", "dead"]
    ratio = statistics.median(burdened) / statistics.median(plain)
    assert ratio < 2.0, (plain, burdened)


def test_a_create_does_not_wait_out_a_frozen_remembered_host(sandbox, box: SshHost) -> None:
    """Two remembered hosts never answer: box's daemon is stopped, and ``silent`` is a
    socket that takes connections and says nothing. A create waits for them only
    name_check_seconds, not the host timeout, and says which hosts it could not check: a
    ratio against a create with no remembered host, measured in turns, not a time limit."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # never accepted: ssh waits for a banner that never comes
    config = sandbox.root / "ssh_config"
    config.write_text(config.read_text() + f"Host silent\n  HostName 127.0.0.1\n  Port {silent.getsockname()[1]}\n"
                      f"  User mngr-test\n  IdentityFile {box.client_key}\n")
    sandbox.env["MNGR_HOST_TIMEOUT_SECONDS"] = "30"
    sandbox.env["MNGR_NAME_CHECK_SECONDS"] = "1"
    assert _create_on(sandbox, "far", "box").returncode == 0
    assert sandbox.mngr("list").returncode == 0  # box's daemon is up, reached through its forward
    stopped = _daemon_pid(box)
    os.kill(stopped, signal.SIGSTOP)
    registry = sandbox.state_dir / "ssh_hosts.json"
    with_hosts = json.dumps({"box": time.time(), "silent": time.time()})
    try:
        plain, burdened = [], []
        for turn in range(3):
            registry.write_text("{}")
            started = time.perf_counter()
            made = sandbox.mngr("create", f"plain-{turn}", "command", "--no-connect", "--", "sleep", "600")
            plain.append(time.perf_counter() - started)
            assert made.returncode == 0 and made.stderr == "", made.stderr
            registry.write_text(with_hosts)
            started = time.perf_counter()
            made = sandbox.mngr("create", f"burdened-{turn}", "command", "--no-connect", "--", "sleep", "600")
            burdened.append(time.perf_counter() - started)
            assert made.returncode == 0, made.stderr
            (warning,) = made.stderr.splitlines()
            assert warning.startswith("mngr: warning: could not check ") and "silent (ssh)" in warning
            assert f"for an agent named 'burdened-{turn}'" in warning
        ratio = statistics.median(burdened) / statistics.median(plain)
        # Waiting out the host timeout (30 s) instead would be a ratio in the tens.
        assert ratio < 8.0, (plain, burdened)
        assert json.loads(registry.read_text()).keys() == {"box", "silent"}
    finally:
        silent.close()
        with contextlib.suppress(OSError):
            os.kill(stopped, signal.SIGKILL)


def test_a_name_mngr_saw_on_a_host_that_does_not_answer_is_refused_saying_where(sandbox, box: SshHost) -> None:
    assert _create_on(sandbox, "far", "box").returncode == 0
    _kill_host(sandbox, box)
    refused = sandbox.mngr("create", "far", "command", "--no-connect", "--", "sleep", "600")
    assert refused.returncode == 1
    assert refused.stderr.startswith("mngr: error: agent 'far' already exists on box (ssh), as mngr last saw it "
                                     "(box did not answer now: "), refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert sandbox.sessions() == []
    other = sandbox.mngr("create", "near", "command", "--no-connect", "--", "sleep", "600")
    assert other.returncode == 0, other.stderr
    assert other.stderr.startswith("mngr: warning: could not check box (ssh) for an agent named 'near'")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_frozen_ssh_session_costs_its_timeout_and_is_reported(sandbox, box: SshHost) -> None:
    """The sshd processes serving mngr's shared connection to box are stopped (its listener
    still takes new connections): the connection looks alive from this end and never
    answers. `mngr list` returns, showing the local agent and box as not answering, and a
    by-name command on the local agent still works."""
    sandbox.env["MNGR_HOST_TIMEOUT_SECONDS"] = "3"
    assert _create_on(sandbox, "far", "box").returncode == 0
    assert sandbox.mngr("create", "here", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    assert sandbox.mngr("list").returncode == 0  # the shared connection and the daemon's forward are up
    frozen = _descendants(box.process.pid)  # the sessions; box.process itself is the listener
    assert frozen
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        listed = sandbox.mngr("list", "--format", "json", timeout=120)
        assert listed.returncode == 1, listed.stderr
        shown = json.loads(listed.stdout)
        assert [agent["name"] for agent in shown["agents"]] == ["here"]
        assert [error["host"] for error in shown["errors"]] == ["box"]
        ran = sandbox.mngr("exec", "here", "echo still here", timeout=120)
        assert ran.returncode == 0 and ran.stdout == "still here\n", ran.stderr
        far = sandbox.mngr("exec", "far", "true", timeout=120)
        assert far.returncode != 0 and "box" in far.stderr
    finally:
        for pid in frozen:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
