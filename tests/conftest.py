"""Fixtures shared by every test: an isolated host dir, tmux server and config per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import alone
from tests.processes import pids_where

if TYPE_CHECKING:
    import docker

    from tests.model_standin import ModelStandin

MNGR_BIN = Path(sys.executable).with_name("mngr")


class Sandbox:
    """One test's private world: its own host dir, tmux server, config dir and work dir."""

    def __init__(self, root: Path, tmux_dir: Path) -> None:
        self.root = root
        # Short, like ~/.mngr: the host daemon's socket path must fit in sun_path (108 bytes).
        self.host_dir = tmux_dir / "host"
        self.config_dir = root / "config"
        self.work_dir = root / "work"
        self.tmux_dir = tmux_dir
        self.work_dir.mkdir()
        self.env = dict(os.environ)
        for key in list(self.env):
            if key.startswith(("MNGR_", "MODAL_")) or key in ("TMUX", "TMUX_PANE"):
                del self.env[key]
        # No Modal credentials of the machine's (tests reach Modal only through the local Modal server).
        self.env["MODAL_CONFIG_PATH"] = str(root / "no-modal.toml")
        self.state_dir = tmux_dir / "state"  # short: ssh's ControlPath sockets live under it
        self.env.update(
            MNGR_HOST_DIR=str(self.host_dir),
            MNGR_CONFIG_DIR=str(self.config_dir),
            MNGR_STATE_DIR=str(self.state_dir),
            TMUX_TMPDIR=str(tmux_dir),
        )

    def mngr(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
             cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the installed ``mngr`` command, as a user would."""
        return subprocess.run(
            [str(MNGR_BIN), *args],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=str(cwd or self.work_dir),
            timeout=timeout,
        )

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, env=self.env)

    def sessions(self) -> list[str]:
        result = self.tmux("list-sessions", "-F", "#{session_name}")
        return sorted(result.stdout.split()) if result.returncode == 0 else []

    def daemon_pids(self) -> list[int]:
        """Host daemons started for this sandbox (each holds its pid file locked)."""
        pids = []
        for pid_file in (self.host_dir / "host").glob("daemon-*.pid"):
            try:
                pids.append(int(pid_file.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
        return [pid for pid in pids if _alive(pid)]

    def program_on_path(self, name: str, script: str) -> dict[str, str]:
        """A program ``name`` (a shell script) found first on PATH: the env that finds it.
        For tools a test cannot run for real (an agent CLI that needs its service) or must
        make fail (fault injection)."""
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
        return {"PATH": f"{bin_dir}{os.pathsep}{self.env['PATH']}"}

    def own_processes(self) -> list[int]:
        """Every process started for this sandbox: by its environment (daemons, agents) or,
        for ssh connection masters (whose process title overwrites their environment), by the
        control socket path in their title."""
        marker = f"TMUX_TMPDIR={self.tmux_dir}".encode()
        directory = str(self.tmux_dir).encode()
        return pids_where(
            lambda environ, command_line: marker in environ
            or (command_line.startswith(b"ssh: ") and directory in command_line)
        )

    def stop_daemons(self) -> None:
        # A helper may still be starting a daemon when the test ends: look twice.
        for _ in range(2):
            for pid in self.daemon_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def tear_down(self) -> None:
        """Stop everything started for this sandbox and remove its short-path dir."""
        self.stop_daemons()
        self.tmux("kill-server")
        for pid in self.own_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmux_dir, ignore_errors=True)

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key in list(os.environ):
            if key.startswith("MNGR_") or key in ("TMUX", "TMUX_PANE"):
                monkeypatch.delenv(key)
        for key in ("MNGR_HOST_DIR", "MNGR_CONFIG_DIR", "MNGR_STATE_DIR", "TMUX_TMPDIR"):
            monkeypatch.setenv(key, self.env[key])


def wait_for(predicate, what: str, timeout: float = 20.0):
    """Poll ``predicate`` until it returns something true, and return that (no timing asserted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def failure_when_cut(client, agent_name: str, cut) -> BaseException:
    """Start a request that never finishes (waiting for a screen that never shows), run
    ``cut()`` while it is in flight, and return the error the request ended with."""
    import threading

    from mngr.controller.channel import protocol

    errors: list[BaseException] = []

    def wait_forever() -> None:
        request = protocol.SendMessage(name=agent_name, text="x", wait_ready=True,
                                       ready_pattern="never-shown-xyz", ready_timeout=600)
        try:
            client.call(request, protocol.Done)
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=wait_forever)
    thread.start()
    time.sleep(0.5)
    cut()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the request hung after its channel was cut"
    (error,) = errors
    return error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    # Unix socket paths (tmux's, the host daemon's) must fit in 108 bytes: keep them in /tmp.
    tmux_dir = Path(tempfile.mkdtemp(prefix="mngr-t-", dir="/tmp"))
    box = Sandbox(tmp_path, tmux_dir)
    try:
        yield box
    finally:
        box.tear_down()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs a real Docker engine (started for the session if need be, else skipped)"
    )
    config.addinivalue_line(
        "markers", f"{alone.MARKER}: runs while no other test of the run does (tests/alone.py says which and why)"
    )
    if not hasattr(config, "workerinput") and getattr(config.option, "testrunuid", "unset") is None:
        # The controlling process of a run in several processes names the run itself (xdist would
        # otherwise), so that it can remove the run's lock files at the end.
        config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and getattr(config.option, "testrunuid", None):
        alone.remove_run_dir(config.option.testrunuid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    with alone.turn(item.get_closest_marker(alone.MARKER) is not None):
        return (yield)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of a real Docker engine; the whole session's tests skip, with the reason, without one.

    A dockerd the tests had to start is stopped at the end of the session (of the last one,
    when several pytest processes share it); one that was already running is left alone.
    """
    # Imported here: the docker SDK costs a fifth of a second, which tests without Docker skip.
    from tests import docker_engine

    client, reason = docker_engine.engine_or_skip_reason()
    try:
        if client is None:
            pytest.skip(reason)
        yield client
    finally:
        docker_engine.stop_started_engine()


@pytest.fixture(scope="session")
def docker_base_image(docker_client: docker.DockerClient) -> str:
    """The tag of the local Debian bookworm image (python3, tmux, git, procps), built on first use."""
    from tests import docker_engine

    try:
        return docker_engine.base_image(docker_client)
    except docker_engine.BaseImageUnavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture
def agent_dir(sandbox: Sandbox) -> Path:
    """The work dir of agent ``box`` (a local command agent, sleeping), made for the test."""
    work = sandbox.root / "agent-work"
    work.mkdir()
    created = sandbox.mngr("create", "box", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    return work


@pytest.fixture
def modal_server(sandbox: Sandbox, docker_client: docker.DockerClient, docker_base_image: str) -> Iterator[Sandbox]:
    """The sandbox, with mngr's processes using the real ``modal`` SDK against a local Modal
    server (tests/modal_server; its sandboxes are containers of the test image), and a
    namespace of its own. ``sandbox.modal`` is the server: its state, its faults. A call the
    server does not implement fails the test."""
    from tests.modal_server import running

    namespace = "t" + uuid.uuid4().hex[:10]
    with running(sandbox.root / "modal-server", docker_base_image, docker_client) as server:
        # Modal's answers here wait for a shared Docker engine (a container start can take half a
        # minute on a loaded machine): mngr's deadline per call is raised to match.
        sandbox.env.update(server.env, MNGR_PROVIDERS__MODAL__NAMESPACE=namespace,
                           MNGR_PROVIDERS__MODAL__CALL_TIMEOUT="120")
        sandbox.namespace = namespace  # type: ignore[attr-defined]
        sandbox.modal = server  # type: ignore[attr-defined]
        yield sandbox
        assert server.unimplemented == [], f"calls the local Modal server does not implement: {server.unimplemented}"


class OuterTerminal:
    """A terminal of the test's own: a 120x30 tmux window in a tmux server apart from the sandbox's."""

    def __init__(self, server: str) -> None:
        self.server = server

    def screen(self) -> str:
        return subprocess.run(["tmux", "-L", self.server, "capture-pane", "-p", "-t", "term"],
                              capture_output=True, text=True).stdout

    def press(self, *keys: str) -> None:
        """Type ``keys`` (tmux key names, such as C-b) into it."""
        subprocess.run(["tmux", "-L", self.server, "send-keys", "-t", "term", *keys], check=True)


@contextlib.contextmanager
def terminal_running_mngr(sandbox: Sandbox, *args: str) -> Iterator[OuterTerminal]:
    """An OuterTerminal in which ``mngr ARGS`` runs, with the sandbox's environment."""
    import shlex

    terminal = OuterTerminal(f"outer-{uuid.uuid4().hex[:10]}")
    exported = " ".join(f"{key}={shlex.quote(value)}" for key, value in sandbox.env.items()
                        if key.startswith(("MNGR_", "MODAL_", "PYTHONPATH")))
    command = f"env -u TMUX {exported} {' '.join(shlex.quote(word) for word in [str(MNGR_BIN), *args])}; sleep 30"
    subprocess.run(["tmux", "-L", terminal.server, "new-session", "-d", "-s", "term", "-x", "120", "-y", "30",
                    command], check=True)
    try:
        yield terminal
    finally:
        subprocess.run(["tmux", "-L", terminal.server, "kill-server"], capture_output=True)


class AgentUser:
    """The sandbox's user, with the real claude and codex CLIs set up against a model stand-in."""

    def __init__(self, sandbox: Sandbox, standin: ModelStandin, home: Path) -> None:
        self.sandbox = sandbox
        self.standin = standin
        self.home = home


@pytest.fixture
def agent_user(sandbox: Sandbox) -> Iterator[AgentUser]:
    """The real agent CLIs under a HOME of the test's, the sandbox's work dir trusted by both."""
    from tests import agent_clis
    from tests.model_standin import ModelStandin

    reason = agent_clis.missing_reason()
    if reason is not None:
        pytest.fail(reason)
    standin = ModelStandin()
    home = sandbox.root / "home"
    agent_clis.set_up_home(home, standin, trusted=[sandbox.work_dir])
    sandbox.env.update(agent_clis.user_environment(home, standin, sandbox.env["PATH"]))
    try:
        yield AgentUser(sandbox, standin, home)
    finally:
        standin.close()
