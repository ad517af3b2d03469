"""An agent CLI mngr has never heard of, described in config, gets the same readiness, dialog
and delivery machinery as Claude and Codex."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import wait_for

# A small interactive CLI: it asks a question first (a dialog), clears the screen once it is
# answered, then prompts for messages and logs each line it is sent.
CLI = """
import sys
answer = input("Allow this tool to run? (y/n) ")
print("\\033[2J\\033[H", end="")
log = open(sys.argv[1], "a")
while True:
    line = input("ready> ")
    log.write(line + "\\n")
    log.flush()
    print("got:", line)
"""


def _described(sandbox, type_name: str, source: str, argument: Path, interaction: str) -> None:
    """Configure agent type ``type_name``: Python ``source`` run with ``argument``, its
    screen and logs told by ``interaction`` (TOML lines)."""
    program = sandbox.root / f"{type_name}.py"
    program.write_text(source)
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        f"[agent_types.{type_name}]\n"
        f"command = {json.dumps(f'{sys.executable} {program} {argument}')}\n"
        f"[agent_types.{type_name}.interaction]\n"
        'ready_pattern = "^ready>"\n'  # the screen as read has no trailing spaces
        + interaction
    )


def _session_logs_in(logs: Path) -> str:
    """The interaction lines of a CLI that keeps a session log as ``logs``/sessions/ID.jsonl."""
    return (f"config_dir = {json.dumps(str(logs))}\n"
            'session_log = "sessions/{session_id}.jsonl"\n'
            'session_file = "/sessions/([0-9a-f]+)\\\\.jsonl$"\n')


def test_a_cli_described_in_config_is_waited_for_and_its_dialog_reported(sandbox) -> None:
    received = sandbox.root / "received.txt"
    _described(sandbox, "asker", CLI, received,
               'dialogs = [{reason = "confirm", pattern = "^Allow this tool to run\\\\? \\\\(y/n\\\\)", detail = "^(Allow [^?]*)"}]\n')
    created = sandbox.mngr("create", "asker", "-t", "asker", "--no-connect", "--initial-message", "hello")
    assert created.returncode != 0
    assert "confirm dialog (Allow this tool to run)" in created.stderr, created.stderr
    listed = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"][0]
    assert (listed["state"], listed["waiting_reason"], listed["waiting_detail"]) == \
        ("WAITING", "confirm", "Allow this tool to run")
    refused = sandbox.mngr("message", "asker", "y")
    assert refused.returncode == 1 and "confirm" in refused.stderr
    assert not received.exists()

    sandbox.tmux("send-keys", "-t", "=mngr-asker:^", "y", "Enter")  # the user answers it
    wait_for(lambda: json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"][0]["waiting_reason"]
             == "input", "the prompt")
    text = "a line long enough to be more than sixty-three characters, with 'quotes' and $(no)"
    sent = sandbox.mngr("message", "asker", text)
    assert sent.returncode == 0, sent.stderr
    assert wait_for(lambda: received.exists() and received.read_text(), "the line") == text + "\n"


def test_a_mistake_in_an_agent_types_interaction_is_a_one_line_error(sandbox) -> None:
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        '[agent_types.bad]\ncommand = "bad"\n[agent_types.bad.interaction]\nready_pattern = "([unclosed"\n')
    result = sandbox.mngr("list")
    assert result.returncode != 0
    assert result.stderr.startswith("mngr: error: agent_types.bad.interaction.ready_pattern: invalid regex")
    assert len(result.stderr.strip().splitlines()) == 1


# A CLI that has not asked for bracketed paste (as Claude Code just after it starts or resumes):
# it reads keys in raw mode, takes several keys read at once for a paste (an Enter among them
# is a newline in its input) and submits on an Enter read alone, logging what it submitted
# the way Claude and Codex log a user's turn (JSON lines naming the work dir).
PASTE_MERGING_CLI = r"""
import json, os, sys, tty, uuid
sessions = os.path.join(sys.argv[1], "sessions")
os.makedirs(sessions, exist_ok=True)
log_path = os.path.join(sessions, uuid.uuid4().hex + ".jsonl")
tty.setraw(0)
typed = ""
def draw():
    sys.stdout.write("\r\033[K" + "ready> " + typed.replace("\n", "|"))
    sys.stdout.flush()
draw()
while True:
    keys = os.read(0, 65536).decode()
    if keys == "\r":
        with open(log_path, "a") as log:
            log.write(json.dumps({"cwd": os.getcwd(), "type": "user", "text": typed}, ensure_ascii=False) + "\n")
        typed = ""
        sys.stdout.write("\r\n")
    else:
        typed += keys.replace("\r", "\n")
    draw()
"""


def test_enter_reaches_a_cli_apart_from_the_pasted_message(sandbox) -> None:
    logs = sandbox.root / "merging-logs"
    _described(sandbox, "merging", PASTE_MERGING_CLI, logs, _session_logs_in(logs))
    assert sandbox.mngr("create", "merger", "-t", "merging", "--no-connect").returncode == 0
    for text in ("remember the word alpha", "a second message\nof two lines"):
        sent = sandbox.mngr("message", "merger", text)
        assert sent.returncode == 0, sent.stderr
    (log,) = (logs / "sessions").iterdir()
    submitted = [json.loads(line)["text"] for line in log.read_text().splitlines()]
    assert submitted == ["remember the word alpha", "a second message\nof two lines"]


# A CLI that shows its input box and never takes what is typed there (Enter does nothing).
DEAF_CLI = r"""
import os, re, sys, tty
os.makedirs(os.path.join(sys.argv[1], "sessions"), exist_ok=True)  # where its logs would be: none is written
tty.setraw(0)
typed = ""
def draw():
    sys.stdout.write("\r\033[K" + "ready> " + typed)
    sys.stdout.flush()
draw()
while True:
    keys = re.sub(r"\x1b(?:\[[0-9;]*[~A-Za-z]|O.)", "", os.read(0, 65536).decode())
    for key in keys:
        if key == "\x7f":
            typed = typed[:-1]
        elif key not in "\r\n":
            typed += key
    draw()
"""


def test_a_message_not_taken_is_an_error_and_leaves_the_input_box_as_it_was(sandbox) -> None:
    logs = sandbox.root / "deaf-logs"
    _described(sandbox, "deaf", DEAF_CLI, logs, _session_logs_in(logs))
    assert sandbox.mngr("create", "deaf", "-t", "deaf", "--no-connect").returncode == 0
    sent = sandbox.mngr("message", "deaf", "you will not hear this")
    assert sent.returncode == 1
    assert sent.stderr.strip().endswith("its session log does not show it taken after 15 s; "
                                        "it was taken back out of the input box"), sent.stderr
    screen = sandbox.mngr("capture", "deaf").stdout
    assert screen.strip().splitlines()[-1] == "ready>", screen
