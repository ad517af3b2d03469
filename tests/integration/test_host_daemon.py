"""The warm path: the host daemon serving RPC on a unix socket, and the fallback when it is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mngr.controller.channel.stream import ProcessStream, SocketStream
from mngr.controller.errors import ChannelClosed
from mngr.controller.hosts import HostHandle
from mngr.providers.local import LocalProvider
from tests.conftest import failure_when_cut, wait_for
from tests.processes import state_of


@pytest.fixture
def local(sandbox, monkeypatch: pytest.MonkeyPatch) -> LocalProvider:
    sandbox.apply_env(monkeypatch)
    return LocalProvider()


def _helper_pid(provider: LocalProvider) -> tuple[int, bool]:
    with HostHandle(provider, "local", timeout=30) as handle:
        pid = handle.helper_info().pid
        return pid, isinstance(handle.client.stream, SocketStream)


def test_first_contact_starts_a_daemon_and_later_commands_use_it(sandbox, local: LocalProvider) -> None:
    cold_pid, warm = _helper_pid(local)
    assert not warm
    (daemon_pid,) = wait_for(sandbox.daemon_pids, "the host daemon")
    assert daemon_pid != cold_pid
    socket_files = list((sandbox.host_dir / "host").glob("daemon-*.sock"))
    assert len(socket_files) == 1 and socket_files[0].stat().st_mode & 0o077 == 0
    wait_for(lambda: _helper_pid(local) == (daemon_pid, True), "a warm connection to the daemon")
    # The CLI takes the same path.
    assert sandbox.mngr("list").returncode == 0
    assert sandbox.daemon_pids() == [daemon_pid]


def test_daemon_killed_mid_request_then_the_next_command_falls_back(sandbox, local: LocalProvider) -> None:
    assert sandbox.mngr("create", "busy", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    (daemon_pid,) = wait_for(sandbox.daemon_pids, "the host daemon")
    # Its pid file is locked before its socket listens: wait until it answers there.
    wait_for(lambda: _helper_pid(local) == (daemon_pid, True), "the daemon to answer on its socket")
    handle = HostHandle(local, "local")
    assert isinstance(handle.client.stream, SocketStream)
    error = failure_when_cut(handle.client, "busy", lambda: os.kill(daemon_pid, signal.SIGKILL))
    assert isinstance(error, ChannelClosed) and "during SendMessage" in str(error)
    handle.close()
    # The socket file is stale now: the next command bootstraps, and a new daemon takes over.
    listed = sandbox.mngr("list", "--format", "{name}")
    assert listed.returncode == 0 and listed.stdout == "busy\n"
    new_pid = wait_for(lambda: [p for p in sandbox.daemon_pids() if p != daemon_pid], "a new daemon")[0]
    wait_for(lambda: _helper_pid(local) == (new_pid, True), "the new daemon to answer")


def test_a_stopped_daemon_is_replaced_and_its_agents_still_listed(sandbox, local: LocalProvider) -> None:
    assert sandbox.mngr("create", "held", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    (daemon_pid,) = wait_for(sandbox.daemon_pids, "the host daemon")
    wait_for(lambda: _helper_pid(local) == (daemon_pid, True), "the daemon to answer on its socket")
    os.kill(daemon_pid, signal.SIGSTOP)
    try:
        listed = sandbox.mngr("list", "--format", "{name} {state}")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == "held RUNNING\n"
        # The fresh helper that answered ended the stopped daemon and started another.
        wait_for(lambda: state_of(daemon_pid) in ("gone", "Z"), "the stopped daemon to be ended")
        new_pid = wait_for(lambda: [p for p in sandbox.daemon_pids() if p != daemon_pid], "a new daemon")[0]
        wait_for(lambda: _helper_pid(local) == (new_pid, True), "the new daemon to answer")
        stopped = sandbox.mngr("stop", "held")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        if state_of(daemon_pid) not in ("gone", "Z"):
            os.kill(daemon_pid, signal.SIGKILL)


def test_only_one_daemon_even_when_many_start_at_once(sandbox) -> None:
    (sandbox.host_dir / "agents" / "earlier").mkdir(parents=True)  # a host that had agents is asked
    runs = [subprocess.Popen([str(Path(sys.executable).with_name("mngr")), "list"], env=sandbox.env,
                             cwd=sandbox.work_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL) for _ in range(6)]
    assert [run.wait(timeout=60) for run in runs] == [0] * 6
    wait_for(sandbox.daemon_pids, "a daemon")
    time.sleep(1.0)  # let any late starters lose the race for the lock and exit
    assert len(sandbox.daemon_pids()) == 1
    helpers = subprocess.run(["pgrep", "-f", f"{sandbox.host_dir}/helper/.*daemon"], capture_output=True, text=True)
    assert len(helpers.stdout.split()) == 1


def test_daemon_exits_when_its_socket_is_removed(sandbox, local: LocalProvider) -> None:
    _helper_pid(local)
    (daemon_pid,) = wait_for(sandbox.daemon_pids, "the host daemon")
    (socket_file,) = (sandbox.host_dir / "host").glob("daemon-*.sock")
    socket_file.unlink()
    wait_for(lambda: daemon_pid not in sandbox.daemon_pids(), "the daemon to exit", timeout=30)


def test_agents_get_the_environment_of_the_creating_command(sandbox, local: LocalProvider) -> None:
    # The daemon was started from an environment without the variable...
    _helper_pid(local)
    wait_for(sandbox.daemon_pids, "the host daemon")
    out = sandbox.root / "seen.txt"
    # ...but an agent created later, through the daemon, sees the creating shell's value.
    result = sandbox.mngr("create", "envcheck", "command", "--no-connect", "--", "sh", "-c",
                          f'printf "%s" "$ONLY_IN_THIS_SHELL" > {out}; sleep 600',
                          env={"ONLY_IN_THIS_SHELL": "from-the-shell"})
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: out.exists() and out.read_text(), "agent output") == "from-the-shell"


def test_warm_path_can_be_turned_off(sandbox, local: LocalProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    _helper_pid(local)
    (running,) = wait_for(sandbox.daemon_pids, "the host daemon")
    monkeypatch.setenv("MNGR_HOST_DAEMON", "0")
    with HostHandle(local, "local") as handle:
        assert isinstance(handle.client.stream, ProcessStream), "a running daemon is not used either"
    os.kill(running, signal.SIGKILL)
    wait_for(lambda: not sandbox.daemon_pids(), "the daemon to die")
    sandbox.env["MNGR_HOST_DAEMON"] = "0"
    assert sandbox.mngr("list").returncode == 0
    time.sleep(0.5)
    assert sandbox.daemon_pids() == []
    with HostHandle(local, "local") as handle:
        assert isinstance(handle.client.stream, ProcessStream)


def _control_clients(sandbox) -> list[str]:
    listed = sandbox.tmux("list-clients", "-F", "#{?client_control_mode,#{session_name},}")
    return [line for line in listed.stdout.split() if line]


def test_daemon_lists_through_a_control_client_without_spawning_tmux(sandbox, tmp_path: Path) -> None:
    # A tmux on PATH that logs every invocation: listings through the daemon must not appear.
    calls = tmp_path / "tmux-calls"
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    real_tmux = subprocess.run(["sh", "-c", "command -v tmux"], capture_output=True, text=True).stdout.strip()
    (wrapper_dir / "tmux").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real_tmux} "$@"\n')
    (wrapper_dir / "tmux").chmod(0o755)
    sandbox.env["PATH"] = f"{wrapper_dir}:{sandbox.env['PATH']}"

    for name in ("alpha", "beta"):
        assert sandbox.mngr("create", name, "command", "--no-connect", "--", "sleep", "600").returncode == 0
    wait_for(sandbox.daemon_pids, "the host daemon")
    wait_for(lambda: sandbox.mngr("list").returncode == 0 and _control_clients(sandbox) == ["mngr-alpha"],
             "the daemon's control client")
    before = calls.read_text().count("list-panes")
    for _ in range(5):
        listed = sandbox.mngr("list", "--format", "{name} {state}")
        assert listed.stdout.split("\n")[:2] == ["alpha RUNNING", "beta RUNNING"]
    assert calls.read_text().count("list-panes") == before

    # It answers from the live server: a session made behind mngr's back shows at once.
    assert sandbox.tmux("new-session", "-d", "-s", "mngr-stray", "sleep 600").returncode == 0
    assert "stray UNKNOWN" in sandbox.mngr("list", "--format", "{name} {state}").stdout
    assert sandbox.tmux("kill-session", "-t", "=mngr-stray").returncode == 0

    # Its session goes: the next listing is still right, and a new client follows another session.
    assert sandbox.mngr("destroy", "--force", "alpha").returncode == 0
    listed = sandbox.mngr("list", "--format", "{name}")
    assert listed.returncode == 0 and listed.stdout == "beta\n"
    wait_for(lambda: sandbox.mngr("list").returncode == 0 and _control_clients(sandbox) == ["mngr-beta"],
             "a control client on the remaining session")

    # The client never keeps an empty tmux server alive.
    assert sandbox.mngr("destroy", "--force", "beta").returncode == 0
    wait_for(lambda: "no server running" in sandbox.tmux("list-sessions").stderr, "the tmux server to exit")
    assert sandbox.mngr("list", "--format", "{name}").stdout == ""
