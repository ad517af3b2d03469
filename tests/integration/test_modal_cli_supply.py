"""Real agents on Modal hosts (the real Modal SDK and the local Modal server: sandboxes are
containers of the test image, without claude or codex): a host gets the agent's CLI the way it
gets any file, the helper's copy over its channel; claude and codex then talk to the tests'
model stand-in, are stopped with their sandbox and resume their conversation in a new one."""

from __future__ import annotations

import json

import pytest

from tests import agent_clis
from tests.conftest import wait_for
from tests.model_standin import ModelStandin

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(agent_clis.missing_reason() is not None, reason=agent_clis.missing_reason() or "")]

NPM_ROOT = agent_clis.AGENT_CLI_BIN.parent
CLAUDE_VERSION = json.loads((NPM_ROOT / "@anthropic-ai" / "claude-code" / "package.json").read_text())["version"]


def test_a_claude_agent_in_a_modal_sandbox_runs_the_users_own_copied_claude(modal_server) -> None:
    ms = modal_server
    standin = ModelStandin()
    try:
        home = ms.root / "home"
        agent_clis.set_up_home(home, standin, trusted=[ms.work_dir])
        ms.env.update(agent_clis.user_environment(home, standin, ms.env["PATH"]))
        created = ms.mngr("create", "m1", "claude", "--in", "modal", "--no-connect", timeout=300)
        assert created.returncode == 0, created.stderr
        where = ms.mngr("exec", "m1", "command -v claude; claude --version")
        assert where.returncode == 0, where.stderr
        path, version = where.stdout.strip().splitlines()
        assert "/clis/" in path and path.endswith("/claude"), path
        assert version == f"{CLAUDE_VERSION} (Claude Code)"
    finally:
        standin.close()


@pytest.mark.parametrize("agent_type", ["claude", "codex"])
def test_a_real_agent_in_a_modal_sandbox_talks_stops_and_resumes(modal_server, agent_type: str) -> None:
    ms = modal_server
    ms.modal.world.host_network = True  # the model stand-in is on this machine's loopback
    standin = ModelStandin()
    try:
        home = ms.root / "home"
        agent_clis.set_up_home(home, standin, trusted=[ms.work_dir])
        ms.env.update(agent_clis.user_environment(home, standin, ms.env["PATH"]))
        name = f"sandboxed-{agent_type}"
        # Waits for the input box: a dialog, or a CLI that does not start, fails it.
        created = ms.mngr("create", name, agent_type, "--in", "modal", "--no-connect", timeout=300)
        assert created.returncode == 0, created.stderr
        first = f"remember the word alpha, {agent_type}"
        assert ms.mngr("message", name, first, timeout=120).returncode == 0
        answer = f"heard: {first}"[:47]  # the stand-in echoes the first 40 characters
        wait_for(lambda: answer in ms.mngr("transcript", name, timeout=120).stdout, "the answer in the transcript",
                 timeout=90)
        # Stopped (its sandbox ends after the stop grace), then started in a new sandbox: the
        # conversation is on the Volume and resumes.
        assert ms.mngr("limit", name, "--stop-grace", "1s").returncode == 0
        assert ms.mngr("stop", name, timeout=120).returncode == 0
        wait_for(lambda: not ms.modal.sandboxes(running_only=True), "the sandbox to end", timeout=90)
        started = ms.mngr("start", name, timeout=300)
        assert started.returncode == 0, started.stderr
        assert ms.mngr("message", name, "which word?", timeout=120).returncode == 0
        (last, *_) = wait_for(lambda: [exchange for exchange in standin.conversation_requests()
                                       if exchange.user_texts()[-1:] == ["which word?"]
                                       and first in exchange.user_texts()], "the second turn", timeout=90)
        assert last.user_texts().count(first) == 1  # the same conversation, resumed (not replayed)
    finally:
        standin.close()
