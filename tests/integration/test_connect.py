"""`mngr connect` and attaching after create, under a real pseudo-terminal."""

from __future__ import annotations

import json
import os

from tests.terminal import run_in_pty


def _attached_then_detach(sandbox, session: str):
    def check(screen: bytes, terminal: int) -> bool:
        # The host daemon's control-mode client is attached too; it is not the user's terminal.
        listed = sandbox.tmux("list-clients", "-t", f"={session}", "-F", "#{?client_control_mode,,#{client_name}}")
        clients = listed.stdout.split()
        for client in clients:
            sandbox.tmux("detach-client", "-t", client)
        return bool(clients)

    return check


def test_connect_attaches_and_detaching_returns(sandbox) -> None:
    assert sandbox.mngr("create", "talker", "command", "--no-connect", "--",
                        "sh", "-c", "echo agent-screen-marker; sleep 600").returncode == 0
    attached = []

    detach = _attached_then_detach(sandbox, "mngr-talker")

    def until(screen: bytes, terminal: int) -> bool:
        # Detach only once the agent's screen has been drawn on our terminal.
        if b"agent-screen-marker" in screen and detach(screen, terminal):
            attached.append(True)
            return True
        return False

    code, screen = run_in_pty(sandbox, ["connect", "talker"], until)
    assert attached, "no tmux client ever attached"
    assert code == 0
    assert b"agent-screen-marker" in screen
    assert sandbox.sessions() == ["mngr-talker"], "detaching must leave the agent running"
    (events,) = (sandbox.host_dir / "agents").glob("*/events.jsonl")
    activity = [json.loads(line) for line in events.read_text().splitlines() if '"activity"' in line]
    assert [entry["source"] for entry in activity] == ["attach"], "the attach counts as user activity"


def test_create_on_a_terminal_attaches(sandbox) -> None:
    code, _ = run_in_pty(sandbox, ["create", "attached", "command", "--", "sleep", "600"],
                          _attached_then_detach(sandbox, "mngr-attached"))
    assert code == 0
    assert sandbox.sessions() == ["mngr-attached"]
    (events,) = (sandbox.host_dir / "agents").glob("*/events.jsonl")
    assert '"source": "attach"' in events.read_text(), "attaching after create counts as activity"


def test_connect_to_a_stopped_agent_says_how_to_start_it(sandbox) -> None:
    assert sandbox.mngr("create", "sleeper", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    assert sandbox.mngr("stop", "sleeper").returncode == 0
    code, screen = run_in_pty(sandbox, ["connect", "sleeper"], lambda screen, terminal: False)
    assert code == 1
    assert b"is stopped (start it with: mngr start sleeper, or pass --start)" in screen
    code, _ = run_in_pty(sandbox, ["connect", "--start", "sleeper"], _attached_then_detach(sandbox, "mngr-sleeper"))
    assert code == 0
    assert sandbox.sessions() == ["mngr-sleeper"]


def _answer_in_pty(sandbox, args: list[str], prompt: bytes, answer: bytes) -> tuple[int, bytes]:
    """Run mngr on a pty and type ``answer`` once ``prompt`` shows up."""

    def type_answer(screen: bytes, terminal: int) -> bool:
        if prompt not in screen:
            return False
        os.write(terminal, answer)
        return True

    return run_in_pty(sandbox, args, type_answer)


def test_destroy_asks_on_a_terminal(sandbox) -> None:
    assert sandbox.mngr("create", "doomed", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    code, screen = _answer_in_pty(sandbox, ["destroy", "doomed"], b"Destroy doomed (local)? [y/N]", b"n\r")
    assert code == 1 and b"aborted" in screen
    assert sandbox.sessions() == ["mngr-doomed"]
    code, screen = _answer_in_pty(sandbox, ["destroy", "doomed"], b"Destroy doomed (local)? [y/N]", b"y\r")
    assert code == 0 and b"destroyed agent doomed" in screen
    assert sandbox.sessions() == []
