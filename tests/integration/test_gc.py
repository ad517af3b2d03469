"""mngr gc, and the controller killed (SIGKILL) in the middle of create, destroy, message and
push: afterwards gc finds and removes every leftover, `mngr list` matches the tmux sessions
exactly, and no file in a work dir is truncated."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import MNGR_BIN
from tests.processes import pids_where


def _gc(sandbox, *args: str) -> dict:  # type: ignore[no-untyped-def]
    done = sandbox.mngr("gc", "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _agents(sandbox) -> dict[str, str]:  # type: ignore[no-untyped-def]
    listed = sandbox.mngr("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {agent["name"]: agent["state"] for agent in json.loads(listed.stdout)["agents"]}


def _live_sessions(sandbox) -> set[str]:  # type: ignore[no-untyped-def]
    return {session.removeprefix("mngr-") for session in sandbox.sessions()}


def test_gc_lists_then_removes_every_kind_of_leftover_and_nothing_else(sandbox) -> None:
    work = sandbox.root / "agent-work"
    work.mkdir()
    (work / "kept.txt").write_text("work")
    created = sandbox.mngr("create", "keep", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    agents_dir = sandbox.host_dir / "agents"
    [keep_dir] = list(agents_dir.iterdir())
    (agents_dir / "0123456789abcdef").mkdir()  # a create killed before its record
    writer = subprocess.Popen(["true"])  # its writer: a process that has ended
    writer.wait()
    cut_short = f".record.json.tmp-{writer.pid}-abcd1234"
    (keep_dir / cut_short).write_text("{half")  # an atomic write cut short
    (work / ".mngr-part.big.bin").write_bytes(b"half a file")  # a push cut short
    (work / ".mngr-part.0123456789abcdef").mkdir()  # a push's staging directory, cut short
    (work / ".mngr-part.0123456789abcdef" / "1").write_bytes(b"a small file")
    (sandbox.host_dir / "helper" / ".tmp-99-abcd").mkdir(parents=True)  # an unpack cut short
    upload = sandbox.host_dir / "clis" / ".parts" / f"{'ab' * 32}-0123456789abcdef"
    upload.mkdir(parents=True)
    (upload / "claude").write_bytes(b"half a binary")  # a copy of an agent CLI cut short
    sandbox.tmux("new-session", "-d", "-s", "mngr-ghost", "sleep 600")  # a destroy cut short

    fresh = _gc(sandbox, "--dry-run")  # everything is seconds old: only what age cannot excuse
    assert sorted(row["kind"] for row in fresh["leftovers"]) == ["agent dir without a record",
                                                                  "tmux session without a record"]
    listed = _gc(sandbox, "--dry-run", "--older-than", "0")
    assert sorted((row["kind"], Path(row["what"]).name) for row in listed["leftovers"]) == [
        ("agent CLI copy cut short", upload.name),
        ("agent dir without a record", "0123456789abcdef"),
        ("part file of a write cut short", ".mngr-part.0123456789abcdef"),
        ("part file of a write cut short", ".mngr-part.big.bin"),
        ("tmux session without a record", "mngr-ghost"),
        ("unfinished helper unpack", ".tmp-99-abcd"),
        ("unfinished write", cut_short),
    ]
    assert (work / ".mngr-part.big.bin").exists() and "mngr-ghost" in sandbox.sessions()  # a dry run

    removed = sandbox.mngr("gc", "--older-than", "0")
    assert removed.returncode == 0 and removed.stdout.endswith("7 leftover(s) removed on 1 host(s)\n"), removed.stdout
    assert sandbox.sessions() == ["mngr-keep"] and set(_agents(sandbox)) == {"keep"}
    assert sorted(path.name for path in agents_dir.iterdir()) == [keep_dir.name]
    assert [path.name for path in keep_dir.iterdir() if path.name.startswith(".")] == []
    assert sorted(path.name for path in work.iterdir()) == ["kept.txt"]
    assert not upload.exists()
    assert _gc(sandbox, "--older-than", "0")["leftovers"] == []


def _kill_after(sandbox, args: list[str], delay: float) -> None:  # type: ignore[no-untyped-def]
    process = subprocess.Popen([str(MNGR_BIN), *args], env=sandbox.env, cwd=sandbox.work_dir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_controller_killed_mid_create_destroy_and_message_leaves_nothing_gc_cannot_mend(sandbox) -> None:
    generator = random.Random(7)
    for round_number in range(12):
        name = f"a{round_number}"
        action = round_number % 3
        if action == 0:
            _kill_after(sandbox, ["create", name, "command", "--no-connect", "--", "cat"], generator.uniform(0.05, 0.6))
        elif action == 1:
            assert sandbox.mngr("create", name, "command", "--no-connect", "--", "cat").returncode == 0
            _kill_after(sandbox, ["destroy", "-f", name], generator.uniform(0.05, 0.5))
        else:
            assert sandbox.mngr("create", name, "command", "--no-connect", "--", "cat").returncode == 0
            _kill_after(sandbox, ["message", name, "x" * 5000], generator.uniform(0.05, 0.5))
    _gc(sandbox, "--older-than", "0")
    agents = _agents(sandbox)
    alive = {name for name, state in agents.items() if state in ("RUNNING", "WAITING", "DONE")}
    assert alive == _live_sessions(sandbox), (agents, sandbox.sessions())
    assert all(state in ("RUNNING", "WAITING", "DONE", "STOPPED") for state in agents.values()), agents
    assert _gc(sandbox, "--older-than", "0")["leftovers"] == []
    for name in agents:  # every one left can still be destroyed
        assert sandbox.mngr("destroy", "-f", name).returncode == 0
    assert sandbox.sessions() == [] and _agents(sandbox) == {}


def test_a_push_killed_at_any_moment_leaves_no_truncated_file(sandbox) -> None:
    work = sandbox.root / "agent-work"
    work.mkdir()
    assert sandbox.mngr("create", "box", "command", "--no-connect", "--work-dir", str(work), "--",
                        "sleep", "600").returncode == 0
    source = sandbox.root / "source"
    source.mkdir()
    generator = random.Random(11)
    expected = {}
    for index in range(40):
        data = generator.randbytes(generator.choice([10, 3000, 400_000, 3_000_000]))
        (source / f"f{index:02d}.bin").write_bytes(data)
        expected[f"f{index:02d}.bin"] = data
    for round_number in range(6):
        for path in work.iterdir():
            path.unlink()
        _kill_after(sandbox, ["push", "box", str(source)], generator.uniform(0.1, 1.2))
        time.sleep(0.5)  # the helper finishes the request it had (its controller is gone)
        _gc(sandbox, "--older-than", "0")
        for path in work.iterdir():
            assert not path.name.startswith(".mngr-part."), f"round {round_number}: {path.name} left"
            assert path.read_bytes() == expected[path.name], f"round {round_number}: {path.name} truncated"
    finished = sandbox.mngr("push", "box", str(source))
    assert finished.returncode == 0, finished.stderr
    assert {path.name: path.read_bytes() for path in work.iterdir()} == expected


def _kill_helpers(sandbox) -> int:  # type: ignore[no-untyped-def]
    """SIGKILL this sandbox's helpers and host daemon (the idle watcher is a thread of it)."""
    marker = f"TMUX_TMPDIR={sandbox.tmux_dir}".encode()
    victims = pids_where(lambda environ, command_line: marker in environ and (
        b"mngr_remote_helper" in command_line or b"binascii,zlib" in command_line))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(victims)


def test_helpers_and_the_watcher_killed_at_random_moments_and_every_next_command_works(sandbox) -> None:
    generator = random.Random(3)
    assert sandbox.mngr("create", "steady", "command", "--no-connect", "--", "cat").returncode == 0
    assert sandbox.mngr("limit", "steady", "--idle-timeout", "1h").returncode == 0  # a watcher to kill
    operations = [
        ["create", "x{n}", "command", "--no-connect", "--", "cat"], ["message", "steady", "hello {n}"],
        ["stop", "steady"], ["start", "steady"], ["destroy", "-f", "x{m}"], ["list"], ["capture", "steady"],
    ]
    killed = 0
    for n in range(25):
        argv = [word.format(n=n, m=n - 1) for word in generator.choice(operations)]
        process = subprocess.Popen([str(MNGR_BIN), *argv], env=sandbox.env, cwd=sandbox.work_dir,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(generator.uniform(0.0, 0.3))
        killed += _kill_helpers(sandbox)
        assert process.wait(timeout=120) is not None  # done or failed, never hung
        listed = sandbox.mngr("list", "--format", "json")  # the next command bootstraps again
        assert listed.returncode == 0, (argv, listed.stderr)
    assert killed > 0
    _gc(sandbox, "--older-than", "0")
    agents = _agents(sandbox)
    alive = {name for name, state in agents.items() if state in ("RUNNING", "WAITING", "DONE")}
    assert alive == _live_sessions(sandbox), (agents, sandbox.sessions())
    assert sandbox.mngr("start", "steady").returncode == 0  # (already running, or started again)
    assert sandbox.mngr("message", "steady", "still here").returncode == 0


def test_gc_reports_a_frozen_host_and_cleans_the_others(sandbox) -> None:
    """A host whose helper is stopped (SIGSTOP) answers nothing: gc gives up on it after the
    host timeout, says so, and cleans the hosts that answer."""
    import pytest

    from tests.integration.test_ssh import started_host
    from tests.sshd import unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason() or "")
    with started_host(sandbox, "testhost") as host:
        made = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                            "--", "sleep", "600")
        assert made.returncode == 0, made.stderr
        # The local host had an agent once: its daemon is up, and it has no agents to list.
        assert sandbox.mngr("create", "near", "command", "--no-connect", "--", "sleep", "600").returncode == 0
        assert sandbox.mngr("destroy", "-f", "near").returncode == 0
        (leftover,) = [path for path in (host.remote_host_dir / "agents").iterdir()]
        orphan = host.remote_host_dir / "agents" / "0123456789abcdef"  # a create killed before its record
        subprocess.run(["install", "-d", "-o", host.user.pw_name, "-m", "700", str(orphan)], check=True)
        [daemon] = sandbox.daemon_pids()
        os.kill(daemon, signal.SIGSTOP)
        try:
            done = sandbox.mngr("gc", "--format", "json", "--older-than", "0",
                                env={"MNGR_HOST_TIMEOUT_SECONDS": "2"}, timeout=120)
        finally:
            os.kill(daemon, signal.SIGCONT)
        assert done.returncode == 1, done.stderr
        report = json.loads(done.stdout)
        assert [(error["host"], error["provider"]) for error in report["errors"]] == [("local", "local")]
        assert "no reply within 2" in report["errors"][0]["error"]
        assert [(row["host"], Path(row["what"]).name) for row in report["leftovers"]] == [
            ("testhost", "0123456789abcdef")]
        assert not orphan.exists() and leftover.exists()


def test_a_write_whose_writer_still_runs_is_not_a_leftover(sandbox) -> None:
    # The host daemon's watcher writes an agent's state.json (temp + rename) at any time.
    assert sandbox.mngr("create", "busy", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    (agent_dir,) = (sandbox.host_dir / "agents").iterdir()
    under_way = agent_dir / f".state.json.tmp-{os.getpid()}-0000abcd"  # this test's process writes it
    under_way.write_text("{")
    listed = _gc(sandbox, "--dry-run", "--older-than", "0")
    assert [row for row in listed["leftovers"] if row["kind"] == "unfinished write"] == []
    assert under_way.exists()
