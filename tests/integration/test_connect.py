"""`mngr connect` and attaching after create, under a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import struct
import time

from tests.conftest import MNGR_BIN


def _run_in_pty(sandbox, args: list[str], until) -> tuple[int, bytes]:
    """Run mngr on a new pty, call ``until()`` until it is true, then wait for the exit status."""
    pid, master = pty.fork()
    if pid == 0:  # child: becomes mngr with the pty as its terminal
        os.chdir(sandbox.work_dir)
        os.execve(str(MNGR_BIN), [str(MNGR_BIN), *args], sandbox.env)
    import fcntl
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    screen = bytearray()
    deadline = time.monotonic() + 30
    done = False
    status = None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                with contextlib.suppress(OSError):  # EIO once the child has gone
                    screen += os.read(master, 65536)
            if not done and until(bytes(screen)):
                done = True
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                return os.waitstatus_to_exitcode(status), bytes(screen)
        raise AssertionError(f"mngr {' '.join(args)} did not finish; screen: {bytes(screen)[-500:]!r}")
    finally:
        os.close(master)


def _attached_then_detach(sandbox, session: str):
    def check(screen: bytes) -> bool:
        clients = sandbox.tmux("list-clients", "-t", f"={session}", "-F", "#{client_name}").stdout.split()
        if clients:
            sandbox.tmux("detach-client", "-s", f"={session}")
            return True
        return False

    return check


def test_connect_attaches_and_detaching_returns(sandbox) -> None:
    assert sandbox.mngr("create", "talker", "command", "--no-connect", "--",
                        "sh", "-c", "echo agent-screen-marker; sleep 600").returncode == 0
    attached = []

    detach = _attached_then_detach(sandbox, "mngr-talker")

    def until(screen: bytes) -> bool:
        # Detach only once the agent's screen has been drawn on our terminal.
        if b"agent-screen-marker" in screen and detach(screen):
            attached.append(True)
            return True
        return False

    code, screen = _run_in_pty(sandbox, ["connect", "talker"], until)
    assert attached, "no tmux client ever attached"
    assert code == 0
    assert b"agent-screen-marker" in screen
    assert sandbox.sessions() == ["mngr-talker"], "detaching must leave the agent running"
    (events,) = (sandbox.host_dir / "agents").glob("*/events.jsonl")
    activity = [json.loads(line) for line in events.read_text().splitlines() if '"activity"' in line]
    assert [entry["source"] for entry in activity] == ["attach"], "the attach counts as user activity"


def test_create_on_a_terminal_attaches(sandbox) -> None:
    code, _ = _run_in_pty(sandbox, ["create", "attached", "command", "--", "sleep", "600"],
                          _attached_then_detach(sandbox, "mngr-attached"))
    assert code == 0
    assert sandbox.sessions() == ["mngr-attached"]


def test_connect_to_a_stopped_agent_says_how_to_start_it(sandbox) -> None:
    assert sandbox.mngr("create", "sleeper", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    assert sandbox.mngr("stop", "sleeper").returncode == 0
    code, screen = _run_in_pty(sandbox, ["connect", "sleeper"], lambda screen: False)
    assert code == 1
    assert b"is stopped (start it with: mngr start sleeper, or pass --start)" in screen
    code, _ = _run_in_pty(sandbox, ["connect", "--start", "sleeper"], _attached_then_detach(sandbox, "mngr-sleeper"))
    assert code == 0
    assert sandbox.sessions() == ["mngr-sleeper"]


def _answer_in_pty(sandbox, args: list[str], prompt: bytes, answer: bytes) -> tuple[int, bytes]:
    """Run mngr on a pty and type ``answer`` once ``prompt`` shows up."""
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(sandbox.work_dir)
        os.execve(str(MNGR_BIN), [str(MNGR_BIN), *args], sandbox.env)
    screen = bytearray()
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                with contextlib.suppress(OSError):
                    screen += os.read(master, 65536)
            if not answered and prompt in screen:
                os.write(master, answer)
                answered = True
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                return os.waitstatus_to_exitcode(status), bytes(screen)
        raise AssertionError(f"mngr {' '.join(args)} did not finish: {bytes(screen)[-300:]!r}")
    finally:
        os.close(master)


def test_destroy_asks_on_a_terminal(sandbox) -> None:
    assert sandbox.mngr("create", "doomed", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    code, screen = _answer_in_pty(sandbox, ["destroy", "doomed"], b"Destroy doomed (local)? [y/N]", b"n\r")
    assert code == 1 and b"aborted" in screen
    assert sandbox.sessions() == ["mngr-doomed"]
    code, screen = _answer_in_pty(sandbox, ["destroy", "doomed"], b"Destroy doomed (local)? [y/N]", b"y\r")
    assert code == 0 and b"destroyed agent doomed" in screen
    assert sandbox.sessions() == []
