"""Stop and destroy end every process an agent started, also those that left its session."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.processes import pids_where

# Each leaves a process that left the pane's session, writes its pid to the file named by
# $1, then waits in the pane like an agent.
DAEMON = 'setsid sh -c \'sleep 1000 & echo $! > "$0"\' "$1"; sleep 600'
DAEMON_IGNORING_TERM = 'setsid sh -c \'trap "" TERM; sleep 1000 & echo $! > "$0"\' "$1"; sleep 600'
# The classic double fork, in Python: fork, setsid, fork again, the grandchild stays.
DOUBLE_FORK = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "        time.sleep(1000)\n"
    "    os._exit(0)\n"
    "time.sleep(600)\n"
)


def agent_id(sandbox, name: str) -> str:
    result = sandbox.mngr("list", "--format", "json")
    assert result.returncode == 0, result.stderr
    (agent,) = [agent for agent in json.loads(result.stdout)["agents"] if agent["name"] == name]
    return agent["id"]


def processes_of(identifier: str) -> list[int]:
    entry = f"MNGR_AGENT_ID={identifier}".encode()
    return pids_where(lambda environ, command_line: entry in environ)


def create_with_daemon(sandbox, name: str, *command: str) -> tuple[str, int]:
    """Create agent ``name`` running ``command`` (with a pid file as its last argument);
    return its id and the pid of the daemon it left, once that runs outside its session."""
    pid_file = sandbox.root / f"{name}.pid"
    result = sandbox.mngr("create", name, "command", "--no-connect", "--", *command, str(pid_file))
    assert result.returncode == 0, result.stderr
    daemon = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), f"{name}'s daemon"))
    assert os.getsid(daemon) != os.getsid(wait_for(lambda: pane_pid(sandbox, name), "pane"))
    identifier = agent_id(sandbox, name)
    assert daemon in processes_of(identifier)
    return identifier, daemon


def pane_pid(sandbox, name: str) -> int:
    result = sandbox.tmux("list-panes", "-t", f"=mngr-{name}:", "-F", "#{pane_pid}")
    return int(result.stdout.split()[0]) if result.returncode == 0 and result.stdout.strip() else 0


@pytest.mark.parametrize("verb", ["stop", "destroy"])
def test_stop_and_destroy_end_a_daemon_that_left_the_session(sandbox, verb: str) -> None:
    identifier, _ = create_with_daemon(sandbox, "leaver", "sh", "-c", DAEMON, "sh")
    other_id, other_daemon = create_with_daemon(sandbox, "bystander", "sh", "-c", DAEMON, "sh")

    result = sandbox.mngr(verb, *(["-f"] if verb == "destroy" else []), "leaver")

    assert result.returncode == 0, result.stderr
    assert processes_of(identifier) == []
    # The other agent, and what it left, are untouched.
    assert other_daemon in processes_of(other_id)
    assert pane_pid(sandbox, "bystander") in processes_of(other_id)


def test_a_double_forked_daemon_is_ended(sandbox) -> None:
    identifier, _ = create_with_daemon(sandbox, "forker", sys.executable, "-c", DOUBLE_FORK)

    result = sandbox.mngr("stop", "forker")

    assert result.returncode == 0, result.stderr
    assert processes_of(identifier) == []


def test_a_daemon_ignoring_sigterm_is_killed(sandbox) -> None:
    identifier, daemon = create_with_daemon(sandbox, "stubborn", "sh", "-c", DAEMON_IGNORING_TERM, "sh")
    with open(f"/proc/{daemon}/status") as status:
        ignored = int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)
    assert ignored & (1 << (signal.SIGTERM - 1))

    result = sandbox.mngr("destroy", "-f", "stubborn")

    assert result.returncode == 0, result.stderr
    assert processes_of(identifier) == []


def test_start_after_stop_runs_the_agent_again(sandbox) -> None:
    identifier, _ = create_with_daemon(sandbox, "again", "sh", "-c", DAEMON, "sh")
    assert sandbox.mngr("stop", "again").returncode == 0
    assert processes_of(identifier) == []
    pid_file = sandbox.root / "again.pid"
    pid_file.unlink()

    result = sandbox.mngr("start", "again")

    assert result.returncode == 0, result.stderr
    restarted = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the new daemon"))
    assert restarted in processes_of(identifier)
    assert sandbox.mngr("destroy", "-f", "again").returncode == 0
    assert processes_of(identifier) == []


def test_an_agent_can_stop_itself_through_mngr_exec(sandbox) -> None:
    identifier, _ = create_with_daemon(sandbox, "selfstop", "sh", "-c", DAEMON, "sh")

    # The command runs with the agent's environment: the stop must not end the command
    # that asked for it (nor the mngr it runs), or the user would see it killed.
    result = sandbox.mngr("exec", "selfstop", f"{Path(sys.executable).with_name('mngr')} stop selfstop && echo done")

    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    assert processes_of(identifier) == []


# A daemon serving a unix socket (like Codex's app-server, which every codex of the same
# ~/.codex shares) and a client that keeps a connection to it open.
SOCKET_SERVER = (
    "import os, socket, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    listener = socket.socket(socket.AF_UNIX)\n"
    "    listener.bind(sys.argv[2])\n"
    "    listener.listen(8)\n"
    "    open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "    kept = []\n"
    "    while True:\n"
    "        kept.append(listener.accept()[0])\n"
    "time.sleep(600)\n"
)
SOCKET_CLIENT = (
    "import socket, sys, time\n"
    "client = socket.socket(socket.AF_UNIX)\n"
    "client.connect(sys.argv[2])\n"
    "open(sys.argv[1], 'w').write('connected')\n"
    "time.sleep(600)\n"
)


def test_a_daemon_another_running_agent_uses_lives_until_that_agent_stops(sandbox) -> None:
    address = str(sandbox.tmux_dir / "shared.sock")
    pid_file = sandbox.root / "server.pid"
    assert sandbox.mngr("create", "server", "command", "--no-connect", "--", sys.executable, "-c", SOCKET_SERVER,
                        str(pid_file), address).returncode == 0
    daemon = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the daemon"))
    connected = sandbox.root / "client.out"
    assert sandbox.mngr("create", "client", "command", "--no-connect", "--", sys.executable, "-c", SOCKET_CLIENT,
                        str(connected), address).returncode == 0
    wait_for(connected.exists, "the client's connection")
    server_id = agent_id(sandbox, "server")

    stopped = sandbox.mngr("stop", "server")

    assert stopped.returncode == 0, stopped.stderr
    # The daemon serves the client still; everything else of the server agent is gone.
    assert processes_of(server_id) == [daemon]
    events = (sandbox.host_dir / "host" / "events.jsonl").read_text()
    assert "agent_processes_kept" in events and str(daemon) in events

    # The last agent using it takes it along.
    client_id = agent_id(sandbox, "client")
    assert sandbox.mngr("destroy", "-f", "client").returncode == 0
    assert processes_of(client_id) == []
    assert processes_of(server_id) == []


AGENT_CLIS = Path(__file__).resolve().parents[2] / ".venv" / "agent-clis" / "node_modules" / ".bin"


@pytest.fixture
def codex_sandbox(sandbox):
    """The sandbox with the real codex CLI on PATH and a HOME whose codex config skips the
    login screen: a custom provider at a closed local port (the TUI starts all the same)."""
    if not (AGENT_CLIS / "codex").exists():
        pytest.skip("the codex CLI is not installed (scripts/install.sh --test installs it)")
    home = sandbox.root / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(
        'disable_paste_burst = true\nmodel = "gpt-5-codex"\nmodel_provider = "stub"\n'
        '[model_providers.stub]\nname = "stub"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'env_key = "OPENAI_API_KEY"\nwire_api = "responses"\n'
        f'[projects."{sandbox.work_dir.resolve()}"]\ntrust_level = "trusted"\n'
    )
    sandbox.env.update(HOME=str(home), OPENAI_API_KEY="sk-test", PATH=f"{AGENT_CLIS}{os.pathsep}{sandbox.env['PATH']}")
    yield sandbox
    # Whatever a failed test left of codex's (its daemon keeps the sandbox's environment).
    marker = f"HOME={home}".encode()
    for pid in pids_where(lambda environ, command_line: marker in environ):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def codex_app_server(identifier: str) -> list[int]:
    return [pid for pid in processes_of(identifier)
            if b"app-server" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _daemons_apart(identifier: str, leader: int) -> bool:
    try:
        daemons = codex_app_server(identifier)
        return bool(daemons) and all(os.getsid(pid) != leader for pid in daemons)
    except (ProcessLookupError, FileNotFoundError):
        return False  # one exited as we looked


@pytest.mark.parametrize("verb", ["stop", "destroy"])
def test_codex_leaves_no_app_server_daemon(codex_sandbox, verb: str) -> None:
    sandbox = codex_sandbox
    created = sandbox.mngr("create", "coder", "codex", "--no-connect")
    assert created.returncode == 0, created.stderr
    identifier = agent_id(sandbox, "coder")
    # The daemon runs in a session of its own (once it has called setsid: it is seen starting
    # too): killing the agent's session never reached it.
    leader = pane_pid(sandbox, "coder")
    wait_for(lambda: _daemons_apart(identifier, leader), "codex's app-server daemon in a session of its own",
             timeout=60)

    result = sandbox.mngr(verb, *(["-f"] if verb == "destroy" else []), "coder")

    assert result.returncode == 0, result.stderr
    assert processes_of(identifier) == []


def test_gc_ends_what_a_session_without_a_record_left(sandbox) -> None:
    identifier, _ = create_with_daemon(sandbox, "halfgone", "sh", "-c", DAEMON, "sh")
    _, other_daemon = create_with_daemon(sandbox, "kept", "sh", "-c", DAEMON, "sh")
    # A destroy cut short after the record went: the session and the daemon are left.
    (sandbox.host_dir / "agents" / identifier).rename(sandbox.host_dir / "agents" / f".destroyed-{identifier}")

    result = sandbox.mngr("gc", "--older-than", "0")

    assert result.returncode == 0, result.stderr
    assert sandbox.sessions() == ["mngr-kept"]
    assert processes_of(identifier) == []
    assert other_daemon in processes_of(agent_id(sandbox, "kept"))


def test_the_grace_before_sigkill_is_the_users_to_set(sandbox) -> None:
    """An agent that needs three seconds to shut down cleanly after SIGTERM: the default
    grace (2 s) kills it first; --grace, or stop_grace_seconds in the config, lets it finish."""
    def slow_to_stop(name: str) -> Path:
        marker = sandbox.root / f"{name}.clean"
        script = ("import signal, sys, time\n"
                  "def clean_up(*_):\n"
                  "    time.sleep(3)\n"
                  f"    open({str(marker)!r}, 'w').write('clean\\n')\n"
                  "    sys.exit(0)\n"
                  "signal.signal(signal.SIGTERM, clean_up)\n"
                  "print('ready', flush=True)\n"
                  "time.sleep(600)\n")
        created = sandbox.mngr("create", name, "command", "--no-connect", "--", sys.executable, "-c", script)
        wait_for(lambda: "ready" in sandbox.mngr("capture", name).stdout, f"{name}'s handler")
        assert created.returncode == 0, created.stderr
        return marker

    killed, patient, configured = slow_to_stop("killed"), slow_to_stop("patient"), slow_to_stop("configured")
    assert sandbox.mngr("stop", "killed").returncode == 0
    assert not killed.exists(), "the default grace ended it before its clean-up"
    stopped = sandbox.mngr("stop", "patient", "--grace", "30s")
    assert stopped.returncode == 0 and "stopped agent patient" in stopped.stdout, stopped.stderr
    assert patient.read_text() == "clean\n"
    destroyed = sandbox.mngr("destroy", "-f", "configured", env={**sandbox.env, "MNGR_STOP_GRACE_SECONDS": "30"})
    assert destroyed.returncode == 0, destroyed.stderr
    assert configured.read_text() == "clean\n"
    refused = sandbox.mngr("stop", "patient", "--grace", "forever")
    assert refused.returncode == 2 and "invalid --grace 'forever'" in refused.stderr
