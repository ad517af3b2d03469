"""The real claude and codex CLIs, set up under a test HOME to talk to the model stand-in.

``./scripts/install.sh --test`` puts pinned versions in .venv/agent-clis. Each test gets a
HOME of its own with what a user who has set the CLIs up has: onboarding done, the API key
accepted, a model provider pointing at the stand-in; its work dir trusted unless the test
wants to see the trust dialog.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.model_standin import ModelStandin

AGENT_CLI_BIN = Path(sys.executable).parent.parent / "agent-clis" / "node_modules" / ".bin"
ANTHROPIC_KEY = "sk-ant-standin-0123456789abcdefghijKLMNOP"
OPENAI_KEY = "sk-standin-openai"


def missing_reason() -> str | None:
    for name in ("claude", "codex"):
        if not (AGENT_CLI_BIN / name).exists():
            return f"{name} is not installed in {AGENT_CLI_BIN} (run ./scripts/install.sh --test)"
    return None


def user_environment(home: Path, standin: ModelStandin, path: str) -> dict[str, str]:
    """The variables of a user whose CLIs use the stand-in (and never the network)."""
    return {
        "HOME": str(home),
        "PATH": f"{AGENT_CLI_BIN}{os.pathsep}{path}",
        "ANTHROPIC_BASE_URL": standin.base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "OPENAI_API_KEY": OPENAI_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


def set_up_home(home: Path, standin: ModelStandin, trusted: list[Path]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    claude = {
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [ANTHROPIC_KEY[-20:]], "rejected": []},
        "projects": {str(directory.resolve()): {"hasTrustDialogAccepted": True} for directory in trusted},
    }
    (home / ".claude.json").write_text(json.dumps(claude))
    codex_dir = home / ".codex"
    codex_dir.mkdir(exist_ok=True)
    projects = "".join(f'[projects.{json.dumps(str(directory.resolve()))}]\ntrust_level = "trusted"\n'
                       for directory in trusted)
    (codex_dir / "config.toml").write_text(
        'model = "gpt-5-codex"\n'
        'model_provider = "standin"\n'
        "[model_providers.standin]\n"
        'name = "standin"\n'
        f'base_url = "{standin.base_url}/v1"\n'
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n' + projects
    )


def claude_session_logs(home: Path) -> list[Path]:
    return sorted((home / ".claude" / "projects").glob("*/*.jsonl"))
