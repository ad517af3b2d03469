"""Talking to agents: message, initial message, transcript, capture and exec, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MNGR_BIN, wait_for
from tests.recorder import RECORDER


def start_recorder(sandbox, name: str) -> Path:
    received = sandbox.root / f"{name}.received"
    result = sandbox.mngr("create", name, "command", "--no-connect", "--", sys.executable, "-c", RECORDER,
                          str(received))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: received.exists(), "the recorder to start")
    return received


AWKWARD = {
    "quotes": "it's \"quoted\" and 'single'",
    "shell": "a; b && c | d $(rm -rf /) `id` $HOME > /tmp/x",
    "backslashes": "C:\\path\\to\\ and \\n not a newline \\",
    "tmux_keys": "C-c",
    "tmux_words": "Enter C-d Escape M-x -l -- ;",
    "tmux_separator": "\\;",
    "unicode": "héllo wörld ☃ 日本語 🎉",
    "newlines": "line one\nline two\n\nline four",
    "tabs_and_escape": "col1\tcol2\x1b[31mred",
    "leading_dash": "-n -e --help",
    "big": ("0123456789abcdef" * 6400)[:100_000],
}


@pytest.mark.parametrize("label", sorted(AWKWARD))
def test_message_arrives_byte_for_byte(sandbox, label: str) -> None:
    received = start_recorder(sandbox, "rec")
    text = AWKWARD[label]
    # "--" ends options, as for any command: a message may start with a dash.
    result = sandbox.mngr("message", "rec", "--", text)
    assert result.returncode == 0, result.stderr
    expected = text.encode() + b"\r"  # then Enter, which a raw-mode program reads as CR
    assert wait_for(lambda: received.read_bytes() == expected and expected, f"{label} to arrive", timeout=30)


@pytest.mark.parametrize("text", ["short one", "long\none"])
def test_message_reaches_an_agent_whose_pane_is_in_copy_mode(sandbox, text: str) -> None:
    received = start_recorder(sandbox, "rec")
    assert sandbox.tmux("copy-mode", "-t", "=mngr-rec:").returncode == 0
    assert sandbox.tmux("display-message", "-p", "-t", "=mngr-rec:", "#{pane_in_mode}").stdout == "1\n"
    assert sandbox.mngr("message", "rec", text).returncode == 0
    wait_for(lambda: received.read_bytes() == text.encode() + b"\r", "the message despite copy mode")


def test_message_sources_stdin_file_and_option(sandbox) -> None:
    received = start_recorder(sandbox, "rec")
    message_file = sandbox.root / "msg.txt"
    message_file.write_text("from a file\n")
    assert sandbox.mngr("message", "rec", "--message-file", str(message_file)).returncode == 0
    assert sandbox.mngr("message", "rec", "-", input="from stdin").returncode == 0
    assert sandbox.mngr("message", "rec", "-m", "from -m").returncode == 0
    expected = b"from a file\n\rfrom stdin\rfrom -m\r"
    wait_for(lambda: received.read_bytes() == expected, "three messages")


def test_concurrent_messages_arrive_whole_and_unmixed(sandbox) -> None:
    received = start_recorder(sandbox, "rec")
    messages = [f"message {i:02d} " + (chr(ord("a") + i) * 3000) + f"\nsecond line of {i:02d}" for i in range(20)]
    processes = [
        subprocess.Popen([str(MNGR_BIN), "message", "rec", text], env=sandbox.env, cwd=sandbox.work_dir,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for text in messages
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
    total = sum(len(text.encode()) + 1 for text in messages)
    wait_for(lambda: len(received.read_bytes()) >= total, "all 20 messages", timeout=60)
    arrived = received.read_bytes().decode().split("\r")
    assert arrived[-1] == ""
    assert sorted(arrived[:-1]) == sorted(messages)




@pytest.mark.parametrize(
    ("args", "fragment"),
    [(("rec", ""), "the message is empty"), (("rec", "  \n"), "the message is empty"),
     (("rec", "--message-file", "/no/such/file"), "cannot read message file '/no/such/file'"),
     (("rec",), "give agent names and a message"), (("rec", "-m", "x", "--message-file", "-"), "give the message once")],
)
def test_message_bad_input(sandbox, args, fragment) -> None:
    received = start_recorder(sandbox, "rec")
    result = sandbox.mngr("message", *args)
    assert result.returncode == 2 and fragment in result.stderr and result.stderr.count("\n") == 1
    assert received.read_bytes() == b""


def test_initial_message_timeout_leaves_the_agent_running(sandbox) -> None:
    config = sandbox.config_dir / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[agent_types.slowpoke]\ncommand = "sleep 600"\nready_pattern = "never shown"\n')
    result = sandbox.mngr("create", "slow", "slowpoke", "--no-connect", "--initial-message", "hi",
                          "--ready-timeout", "1")
    assert result.returncode == 1
    assert "agent 'slow' was created, but the initial message was not sent" in result.stderr
    assert "did not become ready within 1 s; it is still running" in result.stderr
    assert sandbox.sessions() == ["mngr-slow"]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_message_to_several_agents_reports_who_got_it(sandbox, presses: int) -> None:
    """Two stopped agents that never show they are ready, messaged with --start: Ctrl-C
    while the first is waited for. Once: that delivery is seen to its end (here its ready
    timeout), the other is not started; twice: mngr stops waiting and says the first one's
    outcome is unknown. Each agent named, exit 130, no traceback."""
    import signal

    config = sandbox.config_dir / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[agent_types.slowpoke]\ncommand = "sleep 600"\nready_pattern = "never shown"\n')
    for name in ("s1", "s2"):
        assert sandbox.mngr("create", name, "slowpoke", "--no-connect").returncode == 0
    assert sandbox.mngr("stop", "s1", "s2").returncode == 0
    ready_timeout = "2" if presses == 1 else "60"
    process = subprocess.Popen([str(MNGR_BIN), "message", "s1", "s2", "hi", "--start", "--ready-timeout", ready_timeout],
                               env=sandbox.env, cwd=sandbox.work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        (first,) = wait_for(lambda: [s[len("mngr-"):] for s in sandbox.sessions()], "a delivery under way")
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        held = process.stderr.readline()
        assert held == "mngr: finishing the messages already under way first (Ctrl-C again to stop waiting)\n", held
        if presses == 2:
            process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    other = "s2" if first == "s1" else "s1"
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and err.endswith("mngr: interrupted\n"), err
    assert out == ""
    assert f"mngr: error: message {other}: not started: interrupted\n" in err, err
    if presses == 1:
        assert f"mngr: error: message {first}: " in err and "ready" in err, err
    else:
        assert f"mngr: error: message {first}: interrupted while under way: whether it was done is unknown\n" in err
    assert sandbox.sessions() == [f"mngr-{first}"], "the other agent was never started"


def test_transcript_is_what_the_agent_printed(sandbox) -> None:
    script = 'for i in 1 2 3 4 5; do printf "\\033[1;32mline %s\\033[0m\\r\\n" "$i"; done; printf "50%%\\r100%%\\n"; ' \
             'while IFS= read -r l; do echo "got $l"; done'
    assert sandbox.mngr("create", "printer", "command", "--no-connect", "--", "sh", "-c", script).returncode == 0
    expected = ["line 1", "line 2", "line 3", "line 4", "line 5", "100%"]
    wait_for(lambda: sandbox.mngr("transcript", "printer").stdout.splitlines() == expected, "the transcript")
    assert sandbox.mngr("transcript", "printer", "--tail", "2").stdout.splitlines() == ["line 5", "100%"]
    as_json = json.loads(sandbox.mngr("transcript", "printer", "--format", "json").stdout)
    assert [entry["text"] for entry in as_json["entries"]] == expected and as_json["source"] == "output"
    jsonl = sandbox.mngr("transcript", "printer", "--tail", "1", "--format", "jsonl").stdout
    assert json.loads(jsonl) == {"role": "output", "text": "100%", "time": None}

    # The pane echoes the typed line, then the agent answers.
    assert _followed_after_ping(sandbox, "printer", "100%") == ["ping\n", "got ping\n"]


def test_output_log_is_capped(sandbox) -> None:
    env = {"MNGR_OUTPUT_LOG_MAX_BYTES": "20000"}
    sandbox.env.update(env)
    script = 'i=0; while [ $i -lt 3000 ]; do echo "chatty line $i"; i=$((i+1)); done; echo done-printing; sleep 600'
    assert sandbox.mngr("create", "chatty", "command", "--no-connect", "--", "sh", "-c", script).returncode == 0
    (agent_dir,) = (sandbox.host_dir / "agents").iterdir()
    log = agent_dir / "output.log"
    wait_for(lambda: b"done-printing" in log.read_bytes() or (agent_dir / "output.log.1").exists(), "output")
    wait_for(lambda: b"done-printing" in log.read_bytes() + (agent_dir / "output.log.1").read_bytes()
             if (agent_dir / "output.log.1").exists() else b"done-printing" in log.read_bytes(), "all output")
    wait_for(lambda: sandbox.mngr("list").returncode == 0 and log.stat().st_size <= 20000, "rotation")
    assert (agent_dir / "output.log.1").stat().st_size > 20000
    assert (agent_dir / "output.log").stat().st_mode & 0o077 == 0
    # The transcript reads across the rotation: the whole history, and a tail that spans it.
    expected = [f"chatty line {i}" for i in range(3000)] + ["done-printing"]
    assert sandbox.mngr("transcript", "chatty").stdout.splitlines() == expected
    assert sandbox.mngr("transcript", "chatty", "--tail", "5").stdout.splitlines() == expected[-5:]


def test_transcript_shows_an_unfinished_last_line(sandbox) -> None:
    script = 'echo one; echo two; printf "prompt> "; sleep 600'
    assert sandbox.mngr("create", "prompter", "command", "--no-connect", "--", "sh", "-c", script).returncode == 0
    wait_for(lambda: sandbox.mngr("transcript", "prompter").stdout == "one\ntwo\nprompt> \n", "the prompt")
    assert sandbox.mngr("transcript", "prompter", "--tail", "2").stdout == "two\nprompt> \n"


def test_transcript_and_capture_show_what_cursor_moves_drew(sandbox) -> None:
    script = ("printf 'a\\033[1Cb\\n'; printf 'tab\\tstop\\n'; printf 'old line\\r\\033[Knew\\n'; "
              "while IFS= read -r l; do printf 'got\\033[2C%s\\n' \"$l\"; done")
    created = sandbox.mngr("create", "mover", "-t", "command", "--no-connect", "--", "sh", "-c", script)
    assert created.returncode == 0, created.stderr
    expected = ["a b", "tab     stop", "new"]
    wait_for(lambda: sandbox.mngr("transcript", "mover").stdout.splitlines() == expected, "the transcript")
    assert sandbox.mngr("capture", "mover").stdout.splitlines() == expected

    assert _followed_after_ping(sandbox, "mover", "new") == ["ping\n", "got  ping\n"]


def _followed_after_ping(sandbox, name: str, last_line: str) -> list[str]:
    """Run `mngr transcript NAME --follow --tail 1`, check it shows ``last_line`` first, send
    "ping", and return the next two lines it prints."""
    follower = subprocess.Popen([str(MNGR_BIN), "transcript", name, "--follow", "--tail", "1"],
                                env=sandbox.env, cwd=sandbox.work_dir, stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == last_line + "\n"  # type: ignore[union-attr]
        assert sandbox.mngr("message", name, "ping").returncode == 0
        return [follower.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()  # type: ignore[union-attr]


def test_capture_shows_the_screen(sandbox) -> None:
    script = 'i=0; while [ $i -lt 120 ]; do echo "row $i"; i=$((i+1)); done; sleep 600'
    assert sandbox.mngr("create", "screen", "command", "--no-connect", "--", "sh", "-c", script).returncode == 0
    wait_for(lambda: "row 119" in sandbox.mngr("capture", "screen").stdout, "the screen")
    visible = sandbox.mngr("capture", "screen").stdout
    assert "row 0\n" not in visible, "the first rows scrolled off the 50-line screen"
    full = sandbox.mngr("capture", "screen", "--full").stdout
    assert "row 0\n" in full and "row 119" in full
    assert sandbox.mngr("stop", "screen").returncode == 0
    stopped = sandbox.mngr("capture", "screen")
    assert stopped.returncode == 1 and "is stopped (start it with: mngr start screen)" in stopped.stderr


def test_exec_runs_in_the_agents_dir_with_its_env(sandbox) -> None:
    assert sandbox.mngr("create", "worker", "command", "--no-connect", "--env", "PROJECT=mngr", "--",
                        "sleep", "600").returncode == 0
    result = sandbox.mngr("exec", "worker", 'echo "$PROJECT in $(pwd)"; echo oops >&2; exit 3')
    assert result.returncode == 3
    assert result.stdout == f"mngr in {sandbox.host_dir / 'work' / 'worker'}\n"
    assert result.stderr == "oops\n"


def test_exec_streams_output_as_it_comes(sandbox) -> None:
    assert sandbox.mngr("create", "worker", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    marker = sandbox.root / "release"
    process = subprocess.Popen(
        [str(MNGR_BIN), "exec", "worker", f"echo first; while [ ! -e {marker} ]; do sleep 0.05; done; echo second"],
        env=sandbox.env, cwd=sandbox.work_dir, stdout=subprocess.PIPE, text=True,
    )
    try:
        # "first" arrives while the command is still blocked waiting for the marker file.
        assert process.stdout.readline() == "first\n"  # type: ignore[union-attr]
        assert process.poll() is None
        marker.touch()
        assert process.stdout.readline() == "second\n"  # type: ignore[union-attr]
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.stdout.close()  # type: ignore[union-attr]


def test_exec_timeout_kills_the_command(sandbox) -> None:
    assert sandbox.mngr("create", "worker", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    pid_file = sandbox.root / "pid"
    result = sandbox.mngr("exec", "worker", f"echo $$ > {pid_file}; exec sleep 300", "--timeout", "1")
    assert result.returncode == 124
    assert "mngr: error: exec worker: timed out after 1 s (killed)" in result.stderr
    pid = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the command to be killed")


def test_ctrl_c_during_exec_ends_the_commands_on_every_agent(sandbox) -> None:
    """As with ssh: Ctrl-C ends the commands running where the agents work, not only mngr's
    wait for them; exit 130, one line, no traceback."""
    import signal

    pid_files = {name: sandbox.root / f"{name}.pid" for name in ("e1", "e2")}
    for name in pid_files:
        assert sandbox.mngr("create", name, "command", "--no-connect", "--", "sleep", "600").returncode == 0
    process = subprocess.Popen(
        [str(MNGR_BIN), "exec", "e1", "e2", f'echo $$ > {sandbox.root}/"$MNGR_AGENT_NAME".pid; exec sleep 300'],
        env=sandbox.env, cwd=sandbox.work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        pids = [int(wait_for(lambda path=path: path.exists() and path.read_text().strip(), f"{path.name}"))
                for path in pid_files.values()]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, (out, err)
        assert err.strip() == "mngr: interrupted", err  # after the newline that ends the ^C line
        for pid in pids:
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"command {pid} to be ended")
    finally:
        process.kill()


def test_exec_on_several_agents_as_json(sandbox) -> None:
    for name in ("a1", "a2"):
        assert sandbox.mngr("create", name, "command", "--no-connect", "--", "sleep", "600").returncode == 0
    result = sandbox.mngr("exec", "a1", "a2", 'echo "I am $MNGR_AGENT_NAME"; [ "$MNGR_AGENT_NAME" = a1 ]',
                          "--format", "json")
    assert result.returncode == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["a1"]["stdout"] == "I am a1\n" and rows["a1"]["exit_code"] == 0
    assert rows["a2"]["stdout"] == "I am a2\n" and rows["a2"]["exit_code"] == 1
    human = sandbox.mngr("exec", "a1", "a2", "echo hi")
    assert human.returncode == 0 and sorted(human.stdout.splitlines()) == ["a1: hi", "a2: hi"]
