"""The resident mngr (controller/resident.py) runs plain pushes and pulls for the console
script: a command gives the same output, status and effects with it and without it, and
anything that goes wrong around it never runs a command twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MNGR_BIN, Sandbox, wait_for

THROUGH = "mngr: run by the resident mngr\n"


def _resident_pids(sandbox: Sandbox) -> list[int]:
    """The sandbox's resident (its sessions and commands, forks of it, left out)."""
    marker = f"{sandbox.state_dir}/resident".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _is_resident(int(entry), marker) and not _is_resident(_parent(int(entry)), marker):
            found.append(int(entry))
    return found


def _is_resident(pid: int, marker: bytes) -> bool:
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resident import serve" in command_line and marker in command_line


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _parent(int(entry)) == pid]


def _with_resident(sandbox: Sandbox, source: Path) -> int:
    """A push (of ``source`` to box) that starts the resident; its pid once it listens."""
    done = sandbox.mngr("push", "box", str(source))
    assert done.returncode == 0, done.stderr
    (pid,) = wait_for(lambda: _resident_pids(sandbox), "the resident")
    wait_for(lambda: list((sandbox.state_dir / "resident").glob("*.sock")), "its socket")
    probe = sandbox.mngr("push", "box", str(source), env={"MNGR_DEBUG": "1"})
    assert probe.stderr.startswith(THROUGH), probe.stderr
    return pid


@pytest.fixture
def source(sandbox: Sandbox) -> Path:
    tree = sandbox.root / "source"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("bb")
    return tree


def _outcome(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def test_same_output_status_and_effects_with_and_without_it(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    _with_resident(sandbox, source)
    off = {"MNGR_RESIDENT": "0"}
    cases = [
        ["push", "box", str(source)],  # nothing changed
        ["push", "nobody"],  # unknown agent
        ["push", "box", str(sandbox.root / "missing")],  # bad path
        ["pull", "box", str(sandbox.root / "missing"), "--dry-run"],
        ["pull", "nobody", "--format", "json"],
        ["push", "box", str(source), "--dry-run", "--delete"],
    ]
    for argv in cases:
        through, here = sandbox.mngr(*argv), sandbox.mngr(*argv, env=off)
        assert _outcome(through) == _outcome(here), argv
    # Real changes, each way: the first through the resident, the same again without it.
    (source / "c.txt").write_text("c")
    through = sandbox.mngr("push", "box", str(source), env={"MNGR_DEBUG": "1"})
    assert _outcome(through) == (0, "box: pushed 1 change(s), 1 bytes\n", THROUGH)
    (source / "d.txt").write_text("d")
    here = sandbox.mngr("push", "box", str(source), env=off)
    assert _outcome(here) == (0, "box: pushed 1 change(s), 1 bytes\n", "")
    assert (agent_dir / "c.txt").read_text() == "c" and (agent_dir / "d.txt").read_text() == "d"
    pulled_through = sandbox.mngr("pull", "box", str(sandbox.root / "p1"), "--format", "json")
    pulled_here = sandbox.mngr("pull", "box", str(sandbox.root / "p2"), "--format", "json", env=off)
    assert pulled_through.returncode == pulled_here.returncode == 0
    through_json, here_json = json.loads(pulled_through.stdout), json.loads(pulled_here.stdout)
    for report in (through_json, here_json):
        del report["wire"], report["local_path"]  # bytes on the wire vary with request ids' lengths
    assert through_json == here_json and through_json["changes"]
    assert sorted(os.listdir(sandbox.root / "p1")) == sorted(os.listdir(sandbox.root / "p2"))


def test_partial_results_give_the_same_exit_status_3(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    _with_resident(sandbox, source)
    (agent_dir / "x").mkdir()
    (agent_dir / "x" / "only-there.txt").write_text("keep")
    (source / "x").write_text("a file where the agent has a directory")
    through = sandbox.mngr("push", "box", str(source))
    here = sandbox.mngr("push", "box", str(source), env={"MNGR_RESIDENT": "0"})
    assert through.returncode == 3
    assert _outcome(through) == _outcome(here)
    assert (agent_dir / "x" / "only-there.txt").read_text() == "keep"


def test_cwd_environment_and_umask_are_the_clients(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    _with_resident(sandbox, source)
    for name, env in (("through", {"MNGR_DEBUG": "1"}), ("here", {"MNGR_RESIDENT": "0"})):
        where = sandbox.root / f"cwd-{name}"
        where.mkdir()
        done = subprocess.run([str(MNGR_BIN), "pull", "box", "new"], cwd=where, env={**sandbox.env, **env},
                              capture_output=True, text=True, umask=0o077, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (name == "through") == done.stderr.startswith(THROUGH)
        # Relative to the client's cwd, made with its umask.
        assert (where / "new" / "a.txt").read_text() == "a"
        assert (where / "new").stat().st_mode & 0o777 == 0o700
        # The client's environment: another host dir has no agent box.
        moved = sandbox.mngr("push", "box", str(source), env={**env, "MNGR_HOST_DIR": str(sandbox.root / "elsewhere")})
        assert moved.returncode == 1 and moved.stderr.endswith("mngr: error: no agent named 'box'\n"), moved.stderr


def test_turned_off_by_the_environment_or_the_config(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    off = sandbox.mngr("push", "box", str(source), env={"MNGR_RESIDENT": "0"})
    assert off.returncode == 0
    time.sleep(1)  # time enough for a resident to appear if one had been started
    assert _resident_pids(sandbox) == []
    _with_resident(sandbox, source)
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text("resident = false\n")
    done = sandbox.mngr("push", "box", str(source), env={"MNGR_DEBUG": "1"})
    assert done.returncode == 0 and THROUGH not in done.stderr
    assert "declined: turned off in the config" in done.stderr


# It changes the installed mngr's files, and so the identity every resident of the run
# checks: a concurrent test's resident would quit, or its clients not find it.
@pytest.mark.alone
def test_a_stale_resident_is_not_used_and_is_replaced(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    old = _with_resident(sandbox, source)
    module = Path(__file__).resolve().parents[2] / "controller" / "cli" / "sync_run.py"
    os.utime(module)  # the installed mngr's files changed: another identity
    done = sandbox.mngr("push", "box", str(source), env={"MNGR_DEBUG": "1"})
    assert done.returncode == 0 and THROUGH not in done.stderr
    wait_for(lambda: old not in _resident_pids(sandbox), "the stale resident to leave", timeout=30)
    (new,) = wait_for(lambda: _resident_pids(sandbox), "a new resident")
    assert new != old
    wait_for(lambda: sandbox.mngr("push", "box", str(source), env={"MNGR_DEBUG": "1"}).stderr.startswith(THROUGH),
             "the new resident to serve")


def _big_source(sandbox: Sandbox) -> Path:
    tree = sandbox.root / "big"
    tree.mkdir()
    with open(tree / "large.bin", "wb") as handle:
        handle.truncate(1 << 30)  # sparse: quick to make, long to push
    return tree


def _start_push(sandbox: Sandbox, tree: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([str(MNGR_BIN), "push", "box", str(tree)], env={**sandbox.env, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=sandbox.work_dir)


def _command_of(resident: int) -> int:
    """The command process the resident runs now (the child of its one session)."""
    def command() -> int | None:
        for session in _children(resident):
            for child in _children(session):
                return child
        return None
    return wait_for(command, "the command to start")


@pytest.mark.parametrize("through", [True, False], ids=["through-resident", "in-process"])
def test_ctrl_c_during_a_push(sandbox: Sandbox, agent_dir: Path, source: Path, through: bool) -> None:
    _with_resident(sandbox, source)
    tree = _big_source(sandbox)
    push = _start_push(sandbox, tree, {} if through else {"MNGR_RESIDENT": "0"})
    wait_for(lambda: list(agent_dir.glob(".mngr-part.*")), "the transfer to start", timeout=30)
    push.send_signal(signal.SIGINT)
    out, err = push.communicate(timeout=60)
    assert push.returncode == 130, (out, err)
    assert err.endswith("mngr: interrupted\n"), err


def test_the_client_killed_ends_its_command(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    resident = _with_resident(sandbox, source)
    push = _start_push(sandbox, _big_source(sandbox), {})
    command = _command_of(resident)
    session = _parent(command)
    push.kill()
    push.wait()
    wait_for(lambda: not Path(f"/proc/{command}").exists() or
             Path(f"/proc/{command}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", "the command to end")
    wait_for(lambda: session not in _children(resident), "the session to end")
    assert len(_children(resident)) == 1  # the next session, forked ahead, waits for its client


def test_the_session_killed_is_reported_and_not_run_again(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    resident = _with_resident(sandbox, source)
    push = _start_push(sandbox, _big_source(sandbox), {})
    command = _command_of(resident)
    session = _parent(command)
    os.kill(session, signal.SIGKILL)
    out, err = push.communicate(timeout=60)
    assert push.returncode == 1 and out == ""
    assert err.startswith("mngr: error: the resident mngr process serving this command ended before it did"), err
    assert err.count("\n") == 1
    wait_for(lambda: not Path(f"/proc/{command}").exists() or
             Path(f"/proc/{command}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
             "the command to end with its session")
    wait_for(lambda: session not in _children(resident), "the session to be gone")


def test_the_resident_killed_leaves_running_commands_alone(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    resident = _with_resident(sandbox, source)
    (source / "new.txt").write_text("n")
    push = _start_push(sandbox, source, {})
    os.kill(resident, signal.SIGKILL)
    out, err = push.communicate(timeout=60)
    # Either it was served before the resident died, or it ran here: never twice, never lost.
    assert push.returncode == 0, err
    assert out == "box: pushed 1 change(s), 1 bytes\n"
    assert (agent_dir / "new.txt").read_text() == "n"


def test_two_pushes_at_once(sandbox: Sandbox, agent_dir: Path, source: Path) -> None:
    _with_resident(sandbox, source)
    other_work = sandbox.root / "other-work"
    other_work.mkdir()
    created = sandbox.mngr("create", "box2", "command", "--no-connect", "--work-dir", str(other_work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    other = sandbox.root / "other"
    other.mkdir()
    (other / "o.txt").write_text("oo")
    (source / "s.txt").write_text("s")
    env = {**sandbox.env, "MNGR_DEBUG": "1"}
    pushes = [subprocess.Popen([str(MNGR_BIN), "push", name, str(tree)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for name, tree in (("box", source), ("box2", other))]
    results = [(*push.communicate(timeout=60), push.returncode) for push in pushes]
    assert results[0] == ("box: pushed 1 change(s), 1 bytes\n", THROUGH, 0)
    assert results[1] == ("box2: pushed 1 change(s), 2 bytes\n", THROUGH, 0)
    assert (agent_dir / "s.txt").read_text() == "s" and (other_work / "o.txt").read_text() == "oo"


def test_a_client_with_a_standard_stream_closed_runs_the_command_itself(sandbox: Sandbox, agent_dir: Path,
                                                                      source: Path) -> None:
    _with_resident(sandbox, source)
    (source / "e.txt").write_text("e")
    done = subprocess.run(["sh", "-c", f'exec "{MNGR_BIN}" push box "{source}" <&-'], capture_output=True, text=True,
                          env={**sandbox.env, "MNGR_DEBUG": "1"}, timeout=60)
    assert _outcome(done) == (0, "box: pushed 1 change(s), 1 bytes\n", "")
    assert (agent_dir / "e.txt").read_text() == "e"


# A client that says something other than GO after READY (as one that died would say
# nothing): sys.path as the console script's, so it finds the same resident.
_NO_GO_CLIENT = """
import sys
sys.path[0] = sys.argv.pop(1)
sys.argv[0] = sys.argv.pop(1)
from mngr.controller.cli import resident_client
resident_client.GO = b"X"
resident_client.run(sys.argv[1:])
"""


def test_a_command_forked_before_go_never_starts_without_it(sandbox: Sandbox, agent_dir: Path,
                                                             source: Path) -> None:
    resident = _with_resident(sandbox, source)
    (source / "only-with-go.txt").write_text("g")
    script = sandbox.root / "no_go_client.py"
    script.write_text(_NO_GO_CLIENT)
    done = subprocess.run([sys.executable, str(script), str(MNGR_BIN.parent), str(MNGR_BIN), "push", "box",
                           str(source)], env=sandbox.env, capture_output=True, text=True, timeout=60)
    # The session hears no GO: it ends with its command unstarted, so the client hears no status.
    assert done.returncode == 1 and done.stdout == "", (done.stdout, done.stderr)
    assert "the resident mngr process serving this command ended before it did" in done.stderr
    wait_for(lambda: len(_children(resident)) == 1, "that session and its command to end")
    assert all(_children(child) == [] for child in _children(resident))
    assert not (agent_dir / "only-with-go.txt").exists()
    through = sandbox.mngr("push", "box", str(source), env={"MNGR_DEBUG": "1"})
    assert through.stderr.startswith(THROUGH) and (agent_dir / "only-with-go.txt").read_text() == "g"
