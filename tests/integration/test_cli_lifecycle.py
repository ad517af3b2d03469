"""Every agent command through the real CLI, against a real tmux server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import wait_for


def agents(sandbox, *args: str) -> list[dict]:
    result = sandbox.mngr("list", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == []
    return document["agents"]


def by_name(sandbox) -> dict[str, dict]:
    return {agent["name"]: agent for agent in agents(sandbox)}


def create(sandbox, name: str, *command: str, extra: tuple[str, ...] = ()) -> None:
    result = sandbox.mngr("create", name, "command", "--no-connect", *extra, "--", *(command or ("sleep", "600")))
    assert result.returncode == 0, result.stderr


def test_create_list_stop_start_destroy(sandbox) -> None:
    create(sandbox, "alpha", extra=("--label", "team=infra", "--env", "GREETING=hi there"))
    listed = by_name(sandbox)["alpha"]
    assert listed["state"] in ("RUNNING", "WAITING")
    assert listed["type"] == "command"
    assert listed["host"] == "local" and listed["provider"] == "local"
    # Outside git, a copy of the current directory of its own.
    assert listed["work_dir"] == str(sandbox.host_dir / "work" / "alpha")
    assert listed["work_dir_origin"] == {"kind": "copy", "source": str(sandbox.work_dir)}
    assert listed["command"] == "sleep 600"
    assert listed["labels"] == {"team": "infra"}
    assert listed["id"].startswith("agent-")
    assert listed["created_at"]
    assert sandbox.sessions() == ["mngr-alpha"]
    record = json.loads((sandbox.host_dir / "agents" / listed["id"] / "record.json").read_text())
    assert record["name"] == "alpha" and "GREETING" not in json.dumps(listed)

    stopped = sandbox.mngr("stop", "alpha")
    assert stopped.returncode == 0, stopped.stderr
    assert by_name(sandbox)["alpha"]["state"] == "STOPPED"
    assert sandbox.sessions() == []

    started = sandbox.mngr("start", "alpha")
    assert started.returncode == 0, started.stderr
    assert by_name(sandbox)["alpha"]["state"] in ("RUNNING", "WAITING")
    assert by_name(sandbox)["alpha"]["id"] == listed["id"]

    destroyed = sandbox.mngr("destroy", "-f", "alpha")
    assert destroyed.returncode == 0, destroyed.stderr
    assert agents(sandbox) == []
    assert sandbox.sessions() == []
    assert not (sandbox.host_dir / "agents" / listed["id"]).exists()





def test_waiting_state_after_quiet_period(sandbox) -> None:
    create(sandbox, "quiet", "sleep", "600")
    env = {"MNGR_AGENT_QUIET_SECONDS": "1"}
    wait_for(lambda: json.loads(sandbox.mngr("list", "--format", "json", env=env).stdout)["agents"][0]["state"]
             == "WAITING", "WAITING state")


def test_list_formats_and_filters(sandbox) -> None:
    create(sandbox, "one", extra=("--label", "team=a"))
    create(sandbox, "two", extra=("--label", "team=b"))
    sandbox.mngr("stop", "two")
    template = sandbox.mngr("list", "--format", "{name} {state} {labels[team]}")
    assert template.returncode == 0, template.stderr
    assert sorted(template.stdout.splitlines())[1] == "two STOPPED b"
    jsonl = sandbox.mngr("list", "--format", "jsonl")
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [row["name"] for row in rows] == ["one", "two"]
    assert {"id", "name", "type", "state", "host", "provider", "work_dir", "command", "created_at",
            "labels"} <= set(rows[0])
    # The filters themselves are tested in-process (test_commands.py); here, that they are the CLI's.
    assert [a["name"] for a in agents(sandbox, "--state", "stopped", "--label", "team=b")] == ["two"]
    human = sandbox.mngr("list")
    assert human.stdout.splitlines()[0].split() == ["NAME", "STATE", "TYPE", "HOST", "PROVIDER", "AGE", "WORK_DIR"]
    bad = sandbox.mngr("list", "--format", "{nope}")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown field {nope}" in bad.stderr


def test_default_command_shapes(sandbox) -> None:
    """`mngr NAME`, `mngr NAME TYPE` and `mngr -- ARGS` all create, as in the product brief."""
    env = {"MNGR_DEFAULT_AGENT_TYPE": "command"}
    assert sandbox.mngr("shape-a", "--no-connect", "--", "sleep", "600", env=env).returncode == 0
    assert sandbox.mngr("shape-b", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    generated = sandbox.mngr("--no-connect", "--format", "{name}", "--", "sleep", "600", env=env)
    assert generated.returncode == 0, generated.stderr
    name = generated.stdout.strip()
    assert set(by_name(sandbox)) == {"shape-a", "shape-b", name}
    assert by_name(sandbox)["shape-b"]["type"] == "command"


def test_initial_message_arrives_after_the_agent_is_ready(sandbox) -> None:
    received = sandbox.root / "received.txt"
    reader = f'while IFS= read -r line; do printf "%s\\n" "$line" >> {received}; done'
    message = "Speed up one of my tests; don't touch $(HOME) or `this` \\ please"
    result = sandbox.mngr("create", "listener", "command", "--no-connect", "--initial-message", message,
                          "--", "sh", "-c", reader)
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: received.exists() and received.read_text(), "message") == message + "\n"



def test_missing_binary_names_binary_and_host(sandbox) -> None:
    result = sandbox.mngr("create", "nobin", "command", "--no-connect", "--", "definitely-not-a-binary-xyz")
    assert result.returncode == 1
    assert result.stderr == (
        "mngr: error: agent type 'command' needs 'definitely-not-a-binary-xyz', which was not found on PATH "
        "on host 'local'\n"
    )
    assert agents(sandbox) == [] and sandbox.sessions() == []


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("create", "Bad_Name", "command", "--no-connect", "--", "true"), 2, "invalid agent name 'Bad_Name'"),
        (("create", "a" * 64, "command", "--no-connect", "--", "true"), 2, "longer than 63 characters"),
        (("create", "-x-", "--no-connect"), 2, ""),
        (("create", "ok", "--in", "nowhere", "--no-connect"), 2, "unknown provider 'nowhere'"),
        (("create", "ok", "nosuchtype", "--no-connect"), 2, "unknown agent type 'nosuchtype'"),
        (("create", "ok", "command", "extra", "--no-connect"), 2, "too many arguments"),
        (("create", "ok", "command", "--no-connect"), 2, "needs a command after '--'"),
        (("create", "ok", "command", "--env", "1BAD=x", "--no-connect", "--", "true"), 2, "invalid key '1BAD'"),
        (("create", "ok", "command", "--label", "novalue", "--no-connect", "--", "true"), 2, "expects KEY=VALUE"),
        (("create", "ok", "command", "--host", "elsewhere", "--no-connect", "--", "true"), 2, "no host named"),
        (("stop", "ghost"), 1, "no agent named 'ghost'"),
        (("start", "ghost"), 1, "no agent named 'ghost'"),
        (("destroy", "-f", "ghost"), 1, "no agent named 'ghost'"),
        (("connect", "ghost"), 2, "needs a terminal"),
        (("list", "--state", "sleeping"), 2, "sleeping"),
        (("stop",), 2, "name at least one agent"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(sandbox, args, code, fragment) -> None:
    result = sandbox.mngr(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("mngr: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert agents(sandbox) == [] and sandbox.sessions() == []



def test_concurrent_creates_of_one_name_exactly_one_wins(sandbox) -> None:
    import subprocess

    processes = [
        subprocess.Popen([str(Path(__import__("sys").executable).with_name("mngr")), "create", "race", "command",
                          "--no-connect", "--", "sleep", "600"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=sandbox.env, cwd=sandbox.work_dir)
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=60), p.stderr.read()) for p in processes]
    for p in processes:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in outcomes) == [0, 1, 1, 1]
    for code, stderr in outcomes:
        if code:
            assert "already exists" in stderr and stderr.count("\n") == 1
    assert [a["name"] for a in agents(sandbox)] == ["race"]
    assert sandbox.sessions() == ["mngr-race"]
    assert len(list((sandbox.host_dir / "agents").iterdir())) == 1


def test_destroy_refuses_without_a_terminal_unless_forced(sandbox) -> None:
    create(sandbox, "keeper")
    refused = sandbox.mngr("destroy", "keeper")
    assert refused.returncode == 2 and "use -f" in refused.stderr
    assert [a["name"] for a in agents(sandbox)] == ["keeper"]
    assert sandbox.mngr("destroy", "--all", "-f").returncode == 0
    assert agents(sandbox) == []


def test_closed_standard_streams_are_no_internal_error(sandbox) -> None:
    """`mngr destroy x <&-`: no stdin at all is still no terminal, and a closed stdout or
    stderr costs only what would have been printed there."""
    import subprocess

    from tests.conftest import MNGR_BIN

    create(sandbox, "keeper")

    def closed(redirections: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", f'"$0" "$@" {redirections}', str(MNGR_BIN), *args],
                              capture_output=True, text=True, env=sandbox.env, timeout=60)

    refused = closed("<&-", "destroy", "keeper")
    assert refused.returncode == 2 and refused.stderr.startswith("mngr: error: refusing to destroy"), refused.stderr
    assert closed(">&- 2>&-", "list").returncode == 0
    destroyed = closed("<&- >&-", "destroy", "-f", "keeper")
    assert destroyed.returncode == 0 and destroyed.stderr == "", destroyed.stderr
    assert agents(sandbox) == []


def test_stray_sessions_and_broken_records_are_reported_not_deleted(sandbox) -> None:
    create(sandbox, "good")
    sandbox.tmux("new-session", "-d", "-s", "mngr-stray", "sleep 600")
    broken = sandbox.host_dir / "agents" / "agent-broken"
    broken.mkdir(mode=0o700)
    (broken / "record.json").write_text('{"name": "half')
    listed = agents(sandbox)
    problems = {a["name"] or a["id"]: a for a in listed if a["state"] == "UNKNOWN"}
    assert set(problems) == {"stray", "agent-broken"}
    assert "no agent record" in problems["stray"]["problem"]
    assert "unreadable agent record" in problems["agent-broken"]["problem"]
    assert "mngr-stray" in sandbox.sessions() and broken.exists()
    # Destroying the stray session by name is the explicit way to clean it up.
    assert sandbox.mngr("destroy", "-f", "stray").returncode == 0
    assert "mngr-stray" not in sandbox.sessions()



def test_create_without_a_terminal_does_not_attach(sandbox) -> None:
    result = sandbox.mngr("create", "detached", "command", "--", "sleep", "600")
    assert result.returncode == 0
    assert "not attaching" in result.stderr
    assert sandbox.sessions() == ["mngr-detached"]


def test_every_command_has_help(sandbox) -> None:
    from mngr.controller.cli.main import _COMMANDS

    for command in _COMMANDS:
        result = sandbox.mngr(command, "--help")
        assert result.returncode == 0 and "Usage: mngr" in result.stdout, command
    top = sandbox.mngr("--help")
    assert all(command in top.stdout for command in _COMMANDS)
    assert "not available" not in top.stdout


def test_ctrl_c_at_any_moment_of_start_up_is_no_traceback(sandbox) -> None:
    """SIGINT at moments spread over a command's start (imports, config, the listing): the
    command ends with status 130 and one line, or finishes first. (The interpreter's own
    first milliseconds, up to the console script's import of mngr, are Python's: a
    traceback from there has no frame in mngr's code.)"""
    import re
    import signal
    import subprocess
    import time

    from tests.conftest import MNGR_BIN

    outcomes = set()
    for step in range(24):
        started = subprocess.Popen([str(MNGR_BIN), "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=sandbox.env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(step * 0.015)
        started.send_signal(signal.SIGINT)
        _, error = started.communicate(timeout=60)
        if "Traceback" in error:  # the interpreter's start or the console script's first imports
            assert not re.search(r'File "[^"]*/mngr/(controller|remote_helper|providers)/', error), error
            continue
        assert started.returncode in (0, 130, -signal.SIGINT), (started.returncode, error)
        if started.returncode == 130:
            assert error.strip() == "mngr: interrupted", error
        outcomes.add(started.returncode)
    assert 130 in outcomes, "no SIGINT arrived while mngr ran"


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_while_the_agent_is_being_made_reports_what_exists(sandbox, presses: int) -> None:
    """The host is slow to start the agent's session (a tmux that takes a second), and Ctrl-C
    comes meanwhile: once, mngr finishes the create and says the agent exists; twice, it
    stops waiting and says it cannot know."""
    import shutil
    import signal
    import subprocess

    from tests.conftest import MNGR_BIN

    started = sandbox.root / "new-session-started"
    real_tmux = shutil.which("tmux", path=sandbox.env["PATH"])
    env = sandbox.env | sandbox.program_on_path(
        "tmux", f'case " $* " in *" new-session "*) touch {started}; sleep 1;; esac\nexec {real_tmux} "$@"\n')
    creating = subprocess.Popen([str(MNGR_BIN), "create", "slow", "command", "--no-connect", "--", "sleep", "600"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=sandbox.work_dir)
    wait_for(started.exists, "the host starting the agent's session")
    creating.send_signal(signal.SIGINT)
    assert creating.stderr is not None
    held = creating.stderr.readline()  # two presses, not one signal the kernel merged
    if presses == 2:
        creating.send_signal(signal.SIGINT)
    out, err = creating.communicate(timeout=60)
    err = held + err
    assert creating.returncode == 130, (out, err)
    assert "Traceback" not in err and err.count("mngr: error:") == 1, err
    if presses == 1:
        assert "finishing the create of agent 'slow'" in err
        assert "interrupted: agent 'slow' was created on 'local' and runs (mngr destroy slow removes it)" in err
        assert "created agent slow" in out
    else:
        assert "interrupted while agent 'slow' was being created on 'local': `mngr list` shows whether it was" in err
    wait_for(lambda: [a["name"] for a in agents(sandbox)] == ["slow"] or presses == 2, "the agent listed")
    if presses == 1:
        assert [(a["name"], a["state"]) for a in agents(sandbox)] == [("slow", "RUNNING")]


# An agent that takes a second to die: its SIGTERM handler notes the signal, then lingers.
_SLOW_TO_DIE = (
    "import os, signal, sys, time\n"
    "def linger(*_):\n"
    "    open(sys.argv[1], 'w').close()\n"
    "    time.sleep(1.5)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, linger)\n"
    "time.sleep(600)\n"
)


@pytest.mark.parametrize("presses", [1, 2])
@pytest.mark.parametrize("action", ["stop", "destroy"])
def test_ctrl_c_during_a_stop_or_destroy_of_several_agents_reports_what_was_done(sandbox, action: str, presses: int) -> None:
    """Three agents on one host are stopped or destroyed (the first alone, then the others
    at once), and Ctrl-C comes while the first is dying: once, mngr finishes that one,
    starts no other, and says which; twice, it stops waiting and says the first one's
    outcome is unknown. Exit 130 and no traceback either way, and nothing is left half-done
    on the host."""
    import signal
    import subprocess
    import sys

    from tests.conftest import MNGR_BIN

    terms = {name: sandbox.root / f"{name}.terminating" for name in ("slow-1", "slow-2", "slow-3")}
    for name, marker in terms.items():
        made = sandbox.mngr("create", name, "command", "--no-connect", "--",
                            sys.executable, "-c", _SLOW_TO_DIE, str(marker))
        assert made.returncode == 0, made.stderr
    wait_for(lambda: {a["state"] for a in agents(sandbox)} == {"RUNNING"}, "the agents to run")
    force = ["-f"] if action == "destroy" else []
    stopping = subprocess.Popen([str(MNGR_BIN), action, *force, *terms], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=sandbox.env, cwd=sandbox.work_dir)
    first = wait_for(lambda: [name for name, marker in terms.items() if marker.exists()], "a stop under way")
    assert len(first) == 1, first
    (under_way,) = first
    stopping.send_signal(signal.SIGINT)
    assert stopping.stderr is not None
    held = stopping.stderr.readline()  # two presses, not one signal the kernel merged
    assert held == f"mngr: finishing the {action}s already under way first (Ctrl-C again to stop waiting)\n"
    if presses == 2:
        stopping.send_signal(signal.SIGINT)
    out, err = stopping.communicate(timeout=60)
    assert stopping.returncode == 130, (out, err)
    assert "Traceback" not in err and err.endswith("mngr: interrupted\n"), err
    not_started = sorted(set(terms) - {under_way})
    for name in not_started:
        assert f"mngr: error: {action} {name}: not started: interrupted\n" in err, err
    if presses == 1:
        assert out == (f"stopped agent {under_way} (command) on local [STOPPED]\n" if action == "stop"
                       else f"destroyed agent {under_way} on local\n"), out
        assert err.count("mngr: error:") == 2, err
    else:
        assert out == ""
        assert f"mngr: error: {action} {under_way}: interrupted while under way: whether it was done is unknown\n" in err
        assert err.count("mngr: error:") == 3, err
    # The host finishes a stop it was sent; what was not started is untouched.
    finished = {under_way: "STOPPED"} if action == "stop" else {}
    wait_for(lambda: {a["name"]: a["state"] for a in agents(sandbox)}
             == {**finished, **{name: "RUNNING" for name in not_started}}, f"the {action} finished on the host")
    assert not any(terms[name].exists() for name in not_started)
