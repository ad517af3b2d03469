"""The helper's side of an agent's own CLI config dir, with a real helper and tmux: written
private at create, named in the agent's environment on every launch, written again on request."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mngr.controller.errors import MngrError
from mngr.controller.hosts import HostHandle
from mngr.providers.local import LocalProvider
from tests.conftest import wait_for

SECRET = "sk-secret-value-of-the-test"


def _spec(files: dict[str, str], env: dict[str, str]) -> dict:
    return {"dir": "cli-config", "env_var": "CODEX_HOME", "files": files, "env": env}


def _environment_seen(agent_dir: Path) -> dict[str, str]:
    text = wait_for(lambda: (path := agent_dir / "seen.env").exists() and path.read_text().endswith("END=1\n")
                    and path.read_text(), "the agent's environment")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_the_config_dir_is_private_named_in_the_environment_and_can_be_written_again(
        sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.apply_env(monkeypatch)
    with HostHandle(LocalProvider(), "local", timeout=30) as handle:
        info = handle.create_agent(
            name="own", agent_type="codex-like", command='env > "$MNGR_AGENT_DIR/seen.env"; echo END=1 >> '
            '"$MNGR_AGENT_DIR/seen.env"; sleep 600', binary=None, work_dir=str(sandbox.work_dir),
            env={"FROM_ENV_OPTION": "1", "OVERRIDDEN": "by --env"},
            labels={}, agent_config=_spec({"config.toml": 'model = "a"\n'},
                                          {"OPENAI_API_KEY": SECRET, "OVERRIDDEN": "by the config"}))
        agent_dir = sandbox.host_dir / "agents" / info.id
        config_dir = agent_dir / "cli-config"
        seen = _environment_seen(agent_dir)
        assert seen["CODEX_HOME"] == str(config_dir) and seen["OPENAI_API_KEY"] == SECRET
        assert seen["OVERRIDDEN"] == "by --env"  # the user's own --env wins
        assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((config_dir / "config.toml").stat().st_mode) == 0o600
        record = json.loads((agent_dir / "record.json").read_text())
        assert record["agent_config"] == {"dir": "cli-config", "env_var": "CODEX_HOME", "files": ["config.toml"],
                                          "env_keys": ["OPENAI_API_KEY", "OVERRIDDEN"]}
        assert SECRET not in (agent_dir / "record.json").read_text()
        assert SECRET not in (agent_dir / "events.jsonl").read_text()
        assert json.loads((agent_dir / "env.json").read_text()) == {"FROM_ENV_OPTION": "1", "OVERRIDDEN": "by --env"}

        (config_dir / "sessions").mkdir()  # what the CLI wrote there itself stays
        handle.write_agent_config("own", _spec({"config.toml": 'model = "b"\n', "auth.json": "{}"},
                                               {"OPENAI_API_KEY": "sk-new"}))
        assert (config_dir / "config.toml").read_text() == 'model = "b"\n'
        assert stat.S_IMODE((config_dir / "auth.json").stat().st_mode) == 0o600
        assert (config_dir / "sessions").is_dir()
        handle.stop_agent("own")
        (agent_dir / "seen.env").unlink()
        handle.start_agent("own")
        assert _environment_seen(agent_dir)["OPENAI_API_KEY"] == "sk-new"

        with pytest.raises(MngrError) as error:
            handle.write_agent_config("own", _spec({"../escape": SECRET}, {}))
        assert "plain file name" in str(error.value) and SECRET not in str(error.value)
        assert not (agent_dir / "escape").exists()
        handle.destroy_agent("own")
        assert not agent_dir.exists()
