"""A Modal host gets the agent's CLI the way it gets any file: the helper's copy over its
channel (the real Modal SDK and the local Modal server: sandboxes are containers of the test
image, without claude)."""

from __future__ import annotations

import json

import pytest

from tests import agent_clis
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
