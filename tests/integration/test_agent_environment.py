"""What an agent starts with: its own environment, umask and terminal, whatever tmux had."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("END\n"):
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never completed")


def _dump_env(sandbox, name: str, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = sandbox.root / f"{name}.env"
    script = f'env > {out}.tmp; umask >> {out}.tmp; echo END >> {out}.tmp; mv {out}.tmp {out}; sleep 600'
    result = sandbox.mngr("create", name, "command", "--no-connect", *extra, "--", "sh", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    lines = wait_for_file(out).splitlines()
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    values["(umask)"] = lines[-2]
    return values


def test_agents_do_not_inherit_each_others_environment(sandbox) -> None:
    # The first command starts the tmux server, whose global environment would normally
    # leak into every pane created later.
    first = _dump_env(sandbox, "first", env={"ONLY_FOR_FIRST": "1"})
    second = _dump_env(sandbox, "second")
    assert first["ONLY_FOR_FIRST"] == "1"
    assert "ONLY_FOR_FIRST" not in second
    for leaked in ("MNGR_HELPER_PID", "MNGR_ORIGINAL_UMASK"):
        assert leaked not in first and leaked not in second
    assert second["MNGR_AGENT_NAME"] == "second"
    assert second["MNGR_AGENT_DIR"].startswith(str(sandbox.host_dir))
    assert second["TERM"] and second["TMUX"], "the terminal's own variables are kept"


def test_agents_get_the_users_umask_while_mngr_state_stays_private(sandbox) -> None:
    previous = os.umask(0o022)
    try:
        values = _dump_env(sandbox, "masked")
    finally:
        os.umask(previous)
    assert values["(umask)"] == "0022"
    made_work_dirs = sandbox.host_dir / "work"
    assert made_work_dirs.is_dir()  # the agent's copy of the current directory is in it
    for path in [sandbox.host_dir, *sandbox.host_dir.rglob("*")]:
        try:
            if path.is_socket() or "__pycache__" in path.parts:
                continue
            if path.parent.is_relative_to(made_work_dirs):
                continue  # an agent's work dir and what is in it are the user's, with the user's modes
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue  # a temporary file renamed into place meanwhile (the watcher's, say)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_umask_and_terminal_come_from_the_creating_command_even_through_the_daemon(sandbox) -> None:
    previous = os.umask(0o022)
    try:
        _dump_env(sandbox, "first-umask")  # starts the host daemon under umask 022
        os.umask(0o002)
        values = _dump_env(sandbox, "second-umask", extra=("--env", "TERM=vt100"))
    finally:
        os.umask(previous)
    assert sandbox.daemon_pids(), "the second agent went through the daemon"
    assert values["(umask)"] == "0002"
    assert values["TERM"] == "vt100", "an explicit --env wins over the pane's terminal variables"


def test_relative_host_dir_works_on_both_paths(sandbox) -> None:
    relative = os.path.relpath(sandbox.host_dir, sandbox.work_dir)
    env = {"MNGR_HOST_DIR": relative}
    assert sandbox.mngr("create", "rel", "command", "--no-connect", "--", "sleep", "600", env=env).returncode == 0
    deadline = time.monotonic() + 20
    while not sandbox.daemon_pids():
        assert time.monotonic() < deadline, "no daemon for a relative host dir"
        time.sleep(0.05)
    listed = sandbox.mngr("list", "--format", "{name}", env=env)
    assert listed.returncode == 0 and listed.stdout == "rel\n"
    assert "Traceback" not in (sandbox.host_dir / "host" / "daemon.log").read_text()


def test_env_values_never_appear_on_a_command_line(sandbox) -> None:
    values = _dump_env(sandbox, "secretive", extra=("--env", "API_TOKEN=topsecret-4921"))
    assert values["API_TOKEN"] == "topsecret-4921"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        assert b"topsecret-4921" not in command_line, command_line
    listed = sandbox.mngr("list", "--format", "json").stdout
    assert "topsecret-4921" not in listed
    assert "topsecret-4921" not in sandbox.mngr("transcript", "secretive").stdout
    # On the host it is in the agent's env.json and launch.json (0600, in its 0700 dir) only:
    # not in its record, event log, output log or any of the host's logs.
    holding = sorted(path.name for path in sandbox.host_dir.rglob("*")
                     if path.is_file() and b"topsecret-4921" in path.read_bytes())
    assert holding == ["env.json", "launch.json"], holding


def test_users_tmux_base_index_is_respected(sandbox) -> None:
    conf = sandbox.root / "tmux.conf"
    conf.write_text("set -g base-index 1\nset -g pane-base-index 1\n")
    started = sandbox.tmux("-f", str(conf), "new-session", "-d", "-s", "users-own-session")
    assert started.returncode == 0, started.stderr
    received = sandbox.root / "received.txt"
    reader = f'while IFS= read -r line; do printf "%s\\n" "$line" >> {received}; done'
    result = sandbox.mngr("create", "indexed", "command", "--no-connect", "--initial-message", "hello", "--",
                          "sh", "-c", reader)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 20
    while not (received.exists() and received.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert received.read_text() == "hello\n"
    listed = sandbox.mngr("list", "--format", "{name} {state}").stdout.split()
    assert listed[:2] == ["indexed", listed[1]] and listed[1] in ("RUNNING", "WAITING")
    assert sandbox.mngr("stop", "indexed").returncode == 0
    assert sandbox.sessions() == ["users-own-session"]
