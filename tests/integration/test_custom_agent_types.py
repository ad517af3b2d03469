"""An agent CLI mngr has never heard of, described in config, gets the same readiness, dialog
and delivery machinery as Claude and Codex."""

from __future__ import annotations

import json
import sys

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


def test_a_cli_described_in_config_is_waited_for_and_its_dialog_reported(sandbox) -> None:
    program = sandbox.root / "asker.py"
    program.write_text(CLI)
    received = sandbox.root / "received.txt"
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        "[agent_types.asker]\n"
        f"command = {json.dumps(f'{sys.executable} {program} {received}')}\n"
        "[agent_types.asker.interaction]\n"
        'ready_pattern = "^ready>"\n'  # the screen as read has no trailing spaces
        'dialogs = [{reason = "confirm", pattern = "^Allow this tool to run\\\\? \\\\(y/n\\\\)", detail = "^(Allow [^?]*)"}]\n'
    )
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
