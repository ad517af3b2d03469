"""Progress on a terminal, silence in a pipe: mngr run on a real pseudo-terminal draws a
line for long work (a push over a slow link, the wait for a new agent to be ready) and
clears it before its result; through a pipe, or with TERM=dumb, it writes none of it.
Real sshd, a throttled link, real tmux."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MNGR_BIN, wait_for
from tests.integration.test_docker import dock  # noqa: F401 (a fixture)
from tests.integration.test_ssh import create_remote, ssh_host  # noqa: F401 (a fixture)
from tests.integration.test_sync_progress import (
    SHORT_TIMEOUT,
    _host_helpers,
    _random_file,
    _remote_work,
    _signal_all,
    _through_proxy,
)
from tests.sshd import SshHost, unavailable_reason
from tests.terminal import run_in_pty

CLEAR = b"\x1b[2K"
RESULT = b"created agent slowpoke"  # what create prints once done
# Slow enough that a push of PUSHED bytes lasts seconds: far longer than the half second
# before a line is drawn, whatever the machine's load.
SLOW_RATE = 512 * 1024
PUSHED = 3 * 1024 * 1024


def _plain(screen: bytes) -> bytes:
    """``screen`` without its terminal control sequences (colours, erasing)."""
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen)


def _on(sandbox, term: str) -> None:
    sandbox.env["TERM"] = term
    # (and the pty's own width: not one a test runner set for itself)
    for name in ("NO_COLOR", "MNGR_QUIET", "COLUMNS", "LINES"):
        sandbox.env.pop(name, None)


def _push_in_pty(sandbox, local: Path) -> bytes:
    status, screen = run_in_pty(sandbox, ["push", "far", str(local)], lambda screen, terminal: True)
    assert status == 0, screen[-2000:]
    return screen


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_slow_push_or_pull_shows_progress_on_a_terminal_and_none_in_a_pipe(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    with _through_proxy(sandbox, ssh_host, SLOW_RATE):
        work = _remote_work(sandbox, ssh_host)
        local = sandbox.root / "local"
        local.mkdir()

        _on(sandbox, "xterm-256color")
        _random_file(local / "first.bin", PUSHED)
        screen = _push_in_pty(sandbox, local)
        assert screen.count(b"pushing to far") >= 2, screen[-2000:]  # redrawn as it went
        assert b"0/1 files" in screen and b"MB" in screen and b"/s" in screen  # files, bytes, rate
        result = screen.index(b"far: pushed 1 change(s)")
        # The line was cleared before the result was printed.
        assert screen.rindex(b"pushing to far") < screen.rindex(CLEAR, 0, result) < result

        _random_file(local / "second.bin", PUSHED)
        piped = sandbox.mngr("push", "far", str(local), timeout=120)  # stderr a pipe
        assert piped.returncode == 0, piped.stderr
        assert piped.stderr == "" and piped.stdout.startswith("far: pushed 1 change(s)")

        _on(sandbox, "dumb")
        _random_file(local / "third.bin", PUSHED)
        screen = _push_in_pty(sandbox, local)
        assert b"pushing to" not in screen and b"\x1b[" not in screen, screen[-2000:]
        assert b"far: pushed 1 change(s)" in screen

        # A pull: the bytes as they arrive.
        _on(sandbox, "xterm-256color")
        _random_file(work / "down.bin", PUSHED, ssh_host)
        back = sandbox.root / "back"
        back.mkdir()
        status, screen = run_in_pty(sandbox, ["pull", "far", str(back)], lambda screen, terminal: True)
        assert status == 0, screen[-2000:]
        assert screen.count(b"pulling from far") >= 2 and b"0/" in screen and b" files" in screen, screen[-2000:]
        assert (back / "down.bin").read_bytes() == (work / "down.bin").read_bytes()

        # Ctrl-C while the line is drawn: it is erased before mngr says it was interrupted.
        _on(sandbox, "xterm-256color")
        _random_file(local / "fourth.bin", PUSHED)

        def interrupt_once_drawn(screen: bytes, terminal: int) -> bool:
            if b"pushing to far" in screen:
                os.write(terminal, b"\x03")
                return True
            return False

        status, screen = run_in_pty(sandbox, ["push", "far", str(local)], interrupt_once_drawn)
        assert status == 130, screen[-2000:]
        drawn = screen.rindex(b"pushing to far")
        assert CLEAR in screen[drawn:screen.index(b"mngr: interrupted", drawn)], screen[-2000:]


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_slow_listing_shows_how_many_hosts_answered(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    assert create_remote(sandbox, "far").returncode == 0
    # The ssh host's mngr processes frozen: it answers nothing until its timeout runs out.
    frozen = _host_helpers(ssh_host)
    assert frozen
    _on(sandbox, "xterm-256color")
    sandbox.env.update(SHORT_TIMEOUT)
    _signal_all(frozen, signal.SIGSTOP)
    try:
        _, screen = run_in_pty(sandbox, ["list"], lambda screen, terminal: True)
    finally:
        _signal_all(frozen, signal.SIGCONT)
    plain = _plain(screen)
    assert b"asking hosts for their agents" in plain and re.search(rb"\b0/1 hosts\b", plain), plain[-2000:]
    drawn = screen.rindex(b"asking hosts")
    assert CLEAR in screen[drawn:screen.index(b"testhost", drawn)]  # erased before the listing


def _slow_to_be_ready(sandbox, gate: Path) -> None:
    """An agent type that shows its prompt only once ``gate`` exists."""
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done; echo 'ready>'; exec sleep 600"
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        "[agent_types.slow]\n"
        f"command = {json.dumps(f'sh -c {json.dumps(script)}')}\n"
        'ready_pattern = "^ready>"\n')


def test_create_shows_that_it_waits_for_the_agent_to_be_ready(sandbox) -> None:
    gate = sandbox.root / "open"
    _slow_to_be_ready(sandbox, gate)
    _on(sandbox, "xterm-256color")

    def open_once_waiting(screen: bytes, terminal: int) -> bool:
        if b"waiting for slowpoke to be ready" in screen:
            gate.touch()
            return True
        return False

    status, screen = run_in_pty(sandbox, ["create", "slowpoke", "-t", "slow", "--no-connect", "--initial-message",
                                          "hi"], open_once_waiting)
    assert status == 0, screen[-2000:]
    assert gate.exists()  # the line was there while the agent was not ready yet
    assert b"(up to 60 s)" in screen
    last_drawn = screen.rindex(b"waiting for slowpoke")
    result = screen.index(RESULT, last_drawn)
    assert CLEAR in screen[last_drawn:result]  # cleared before the result


def test_create_in_a_pipe_says_nothing_while_it_waits(sandbox) -> None:
    gate = sandbox.root / "open"
    _slow_to_be_ready(sandbox, gate)
    _on(sandbox, "xterm-256color")
    process = subprocess.Popen([str(MNGR_BIN), "create", "slowpoke", "-t", "slow", "--no-connect",
                                "--initial-message", "hi"], env=sandbox.env, cwd=sandbox.work_dir,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: "mngr-slowpoke" in sandbox.sessions(), "the agent's session")
        time.sleep(1)  # not asserted on: long enough for a line to be drawn, were it drawn here
        gate.touch()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stderr == b""
    assert RESULT in stdout


@pytest.mark.docker
def test_a_docker_image_build_shows_its_steps(dock, tmp_path: Path) -> None:  # noqa: F811
    dockerfile = tmp_path / "Dockerfile"
    # (this test's own image, removed with the namespace's: the comment makes it unique)
    dockerfile.write_text(f"FROM {dock.env['MNGR_PROVIDERS__DOCKER__BASE_IMAGE']}\n# {dock.namespace}\n"
                          "RUN sleep 2\nRUN true\n")
    _on(dock, "xterm-256color")
    status, screen = run_in_pty(dock, ["create", "built", "command", "--in", "docker", "--no-connect",
                                       "--build-arg", f"--dockerfile {dockerfile}", "--", "sleep", "600"],
                                lambda screen, terminal: True)
    assert status == 0, screen[-2000:]
    assert b"building image mngr-image:" in screen and b"RUN sleep 2" in screen, screen[-2000:]
    assert re.search(rb"\b[1-5]/5 steps", _plain(screen)), _plain(screen)[-1500:]  # FROM, 2 RUN, 2 LABEL


@pytest.mark.docker
def test_a_failed_docker_build_says_why_in_one_line(dock, tmp_path: Path) -> None:  # noqa: F811
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {dock.env['MNGR_PROVIDERS__DOCKER__BASE_IMAGE']}\n# {dock.namespace}\n"
                          "RUN exit 7\n")
    created = dock.mngr("create", "broken", "command", "--in", "docker", "--no-connect",
                        "--build-arg", f"--dockerfile {dockerfile}", "--", "sleep", "600", timeout=300)
    assert created.returncode == 1
    assert created.stderr.startswith("mngr: error: building the image failed: ") and "7" in created.stderr
    assert len(created.stderr.strip().splitlines()) == 1, created.stderr
