"""Config precedence: defaults < user file < project file < MNGR_* environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller.config import Config, parse_value
from mngr.controller.errors import ConfigError


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    user_dir = tmp_path / "user"
    project = tmp_path / "project"
    (project / ".mngr").mkdir(parents=True)
    (project / "sub" / "dir").mkdir(parents=True)
    user_dir.mkdir()
    monkeypatch.setenv("MNGR_CONFIG_DIR", str(user_dir))
    return user_dir / "config.toml", project / ".mngr" / "config.toml"


def test_defaults(layout, tmp_path: Path) -> None:
    config = Config.load(environ={}, cwd=tmp_path)
    assert config.get("default_provider") == "local"
    assert config.get("default_agent_type") == "claude"


def test_later_sources_win_and_tables_merge(layout, tmp_path: Path) -> None:
    user, project = layout
    user.write_text('default_agent_type = "codex"\ndefault_provider = "local"\n'
                    '[agent_types.bot]\ncommand = "bot"\nready_pattern = "> "\n')
    project.write_text('default_agent_type = "command"\n[agent_types.bot]\ncommand = "bot --project"\n')
    cwd = tmp_path / "project" / "sub" / "dir"
    config = Config.load(environ={}, cwd=cwd)
    assert config.get("default_agent_type") == "command"
    assert config.get("agent_types.bot") == {"command": "bot --project", "ready_pattern": "> "}
    env = {"MNGR_DEFAULT_AGENT_TYPE": "claude", "MNGR_AGENT_TYPES__BOT__COMMAND": "bot --env",
           "MNGR_AGENT_QUIET_SECONDS": "2.5", "MNGR_HOST_DIR": "/not/a/config/key"}
    config = Config.load(environ=env, cwd=cwd)
    assert config.get("default_agent_type") == "claude"
    assert config.get("agent_types.bot.command") == "bot --env"
    assert config.get("agent_quiet_seconds") == 2.5
    assert config.get("host_dir") is None
    assert config.sources == ["defaults", str(user), str(project), "environment"]


def test_git_root_is_a_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_CONFIG_DIR", str(tmp_path / "user"))
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert Config.load(environ={}, cwd=repo / "src").project_path == repo / ".mngr" / "config.toml"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("default_provider = 3\n", "default_provider must be a str"),
     ("agent_quiet_seconds = true\n", "agent_quiet_seconds must be a number"),
     ("agent_types = 1\n", "agent_types must be a table"),
     ("this is not toml\n", "invalid TOML"),
     ("host_timeout_seconds = -5\n", "host_timeout_seconds must be a number of seconds more than 0, got -5"),
     ("host_timeout_seconds = 0\n", "host_timeout_seconds must be a number of seconds more than 0"),
     ("agent_quiet_seconds = nan\n", "agent_quiet_seconds must be a number of seconds at least 0"),
     ("host_timeout_seconds = inf\n", "host_timeout_seconds must be a number of seconds"),
     ("name_check_seconds = 0\n", "name_check_seconds must be a number of seconds more than 0, got 0"),
     ('name_check_seconds = "soon"\n', "name_check_seconds must be a number"),
     ('default_provider = " "\n', "default_provider is empty")],
)
def test_invalid_files_are_clear_errors(layout, tmp_path: Path, text: str, fragment: str) -> None:
    user, _ = layout
    user.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        Config.load(environ={}, cwd=tmp_path)
    assert fragment in str(excinfo.value) and str(user) in str(excinfo.value)


def test_env_values_are_toml_when_they_parse() -> None:
    assert parse_value("42") == 42
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("plain words") == "plain words"
    assert parse_value('"quoted"') == "quoted"


def test_the_environment_is_checked_like_a_file(layout, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment: host_timeout_seconds must be a number of seconds"):
        Config.load(environ={"MNGR_HOST_TIMEOUT_SECONDS": "-1"}, cwd=tmp_path)


@pytest.mark.parametrize(("args", "fragment"), [
    (["host_timeout_seconds", "-5"], "host_timeout_seconds must be a number of seconds more than 0, got -5"),
    (["name_check_seconds", "-1"], "name_check_seconds must be a number of seconds more than 0, got -1"),
    (["default_agent_type", "bogus"], "default_agent_type: unknown agent type 'bogus'"),
    (["default_provider", "nowhere"], "default_provider: unknown provider 'nowhere'"),
])
def test_config_set_refuses_a_bad_value_and_leaves_the_file_as_it_was(layout, args: list[str], fragment: str,
                                                                      capsys) -> None:
    from mngr.controller.cli.main import run

    user, _ = layout
    user.write_text('default_agent_type = "codex"\n')
    assert run(["config", "set", *args]) != 0
    error = capsys.readouterr().err
    assert fragment in error and error.count("\n") == 1, error
    assert user.read_text() == 'default_agent_type = "codex"\n'


def test_config_set_takes_an_agent_type_the_config_defines(layout, capsys) -> None:
    from mngr.controller.cli.main import run

    user, _ = layout
    user.write_text('[agent_types.bot]\ncommand = "bot"\n')
    assert run(["config", "set", "default_agent_type", "bot"]) == 0, capsys.readouterr().err
    assert 'default_agent_type = "bot"' in user.read_text()
