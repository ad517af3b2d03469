"""Marking a work dir trusted in an agent CLI's own config keeps everything else in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mngr.controller.agent_types import CLAUDE_INTERACTION, CODEX_INTERACTION
from mngr.remote_helper import trust


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_claude_trust_is_set_for_the_real_path_and_the_rest_kept(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "réal"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    config = {"hasCompletedOnboarding": True, "projects": {"/other": {"allowedTools": ["x"]}}}
    (home / ".claude.json").write_text(json.dumps(config))
    trust.trust_work_dir(CLAUDE_INTERACTION.trust, str(tmp_path / "link"), {"HOME": str(home)})
    after = json.loads((home / ".claude.json").read_text())
    assert after["projects"][str(real)] == {"hasTrustDialogAccepted": True}
    assert after["projects"]["/other"] == {"allowedTools": ["x"]}
    assert after["hasCompletedOnboarding"] is True


def test_claude_config_dir_from_the_agents_environment(home: Path, tmp_path: Path) -> None:
    trust.trust_work_dir(CLAUDE_INTERACTION.trust, str(tmp_path), {"HOME": str(home),
                                                                   "CLAUDE_CONFIG_DIR": str(tmp_path / "cc")})
    assert json.loads((tmp_path / "cc" / ".claude.json").read_text())["projects"][str(tmp_path)]


def test_codex_trust_adds_or_updates_the_projects_table(home: Path, tmp_path: Path) -> None:
    config = home / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'model = "o3"\n[projects."{tmp_path}"]\ntrust_level = "untrusted"\nnote = "kept"\n[other]\nx = 1\n')
    trust.trust_work_dir(CODEX_INTERACTION.trust, str(tmp_path), {"HOME": str(home)})
    text = config.read_text()
    assert f'[projects."{tmp_path}"]\ntrust_level = "trusted"\nnote = "kept"\n' in text
    assert 'model = "o3"' in text and "[other]\nx = 1" in text and "untrusted" not in text
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    trust.trust_work_dir(CODEX_INTERACTION.trust, str(fresh), {"HOME": str(home)})
    trust.trust_work_dir(CODEX_INTERACTION.trust, str(fresh), {"HOME": str(home)})  # twice: one table
    import tomllib

    parsed = tomllib.loads(config.read_text())
    assert parsed["projects"][str(fresh)] == {"trust_level": "trusted"}
    assert parsed["projects"][str(tmp_path)]["trust_level"] == "trusted"
