"""Create templates: resolution order, merging, and how config checks [templates.NAME]."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller import config as config_module
from mngr.controller.cli.common import ENV_NAME_PATTERN, LABEL_KEY_PATTERN
from mngr.controller.config import Config
from mngr.controller.errors import ConfigError, UsageError
from mngr.controller.templates import apply, resolve

TEMPLATES = {
    "base": {"agent_type": "command", "env": {"A": "1", "B": "1"}, "labels": {"team": "a"},
             "args": ["sleep", "1"], "ready_timeout": 5},
    "gpu": {"provider": "local", "env": {"B": "2", "C": "2"}, "labels": {"gpu": "yes"},
            "work_dir": "~/src", "connect": False},
}


def test_later_templates_win_and_tables_merge() -> None:
    merged = resolve(TEMPLATES, ["base", "gpu"])
    assert merged == {
        "agent_type": "command",
        "provider": "local",
        "env": {"A": "1", "B": "2", "C": "2"},
        "labels": {"team": "a", "gpu": "yes"},
        "args": ["sleep", "1"],
        "ready_timeout": 5,
        "work_dir": "~/src",
        "connect": False,
    }
    assert resolve(TEMPLATES, ["gpu", "base"])["env"] == {"A": "1", "B": "1", "C": "2"}
    assert resolve(TEMPLATES, []) == {}


def test_resolve_does_not_change_the_config() -> None:
    resolve(TEMPLATES, ["base", "gpu"])["env"]["Z"] = "9"
    assert TEMPLATES["base"]["env"] == {"A": "1", "B": "1"}


def test_explicit_options_win_and_tables_merge_with_them() -> None:
    merged = resolve(TEMPLATES, ["base"])
    options = apply(merged, {"agent_type": "claude", "env": {"B": "flag"}, "labels": {}, "args": []})
    assert options["agent_type"] == "claude"
    assert options["env"] == {"A": "1", "B": "flag"}
    assert options["labels"] == {"team": "a"}
    assert options["args"] == []
    assert options["ready_timeout"] == 5
    assert apply({}, {}) == {}
    with pytest.raises(ValueError, match="name"):
        apply(merged, {"name": "x"})


@pytest.mark.parametrize(("known", "message"), [
    (TEMPLATES, "unknown template 'nope' (known: base, gpu)"),
    ({}, "unknown template 'nope' (known: none)"),
])
def test_unknown_template(known, message: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        resolve(known, ["base", "nope"] if known else ["nope"])
    assert str(excinfo.value) == message


def test_key_patterns_match_the_cli() -> None:
    assert config_module._ENV_NAME.pattern == ENV_NAME_PATTERN.pattern
    assert config_module._LABEL_KEY.pattern == LABEL_KEY_PATTERN.pattern


@pytest.fixture
def user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNGR_CONFIG_DIR", str(tmp_path / "user"))
    (tmp_path / "user").mkdir()
    return tmp_path / "user" / "config.toml"


def test_a_full_template_is_valid(user_file: Path, tmp_path: Path) -> None:
    user_file.write_text(
        '[templates.full]\nagent_type = "command"\nprovider = "local"\nhost = "local"\n'
        'work_dir = "~"\ninitial_message = "hi"\nready_timeout = 2.5\nconnect = false\n'
        'args = ["sleep", "600"]\n[templates.full.env]\nFOO_1 = "x"\n[templates.full.labels]\n"a.b-c" = "y"\n'
    )
    config = Config.load(environ={}, cwd=tmp_path)
    assert config.get("templates.full.connect") is False
    assert config.get("templates.full.labels") == {"a.b-c": "y"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("templates = 1", "templates must be a table"),
        ("[templates]\nx = 1", "templates.x must be a table"),
        ("[templates.x]\nbogus = 1", "unknown key templates.x.bogus (known: activity_sources, agent_type, args, "
                                     "connect, env, host, idle_mode, idle_timeout, initial_message, labels, "
                                     "ports, provider, ready_timeout, source, work_dir)"),
        ("[templates.x]\nname = 'a'", "templates.x.name: a template cannot set the agent name"),
        ("[templates.x]\nagent_type = 3", "templates.x.agent_type must be a str, got 3"),
        ("[templates.x]\nready_timeout = true", "templates.x.ready_timeout must be a number"),
        ("[templates.x]\nready_timeout = '5'", "templates.x.ready_timeout must be a number"),
        ("[templates.x]\nconnect = 1", "templates.x.connect must be a boolean"),
        ("[templates.x]\nargs = 'sleep 1'", "templates.x.args must be a list"),
        ("[templates.x]\nargs = ['sleep', 1]", "templates.x.args[1] must be a str, got 1"),
        ("[templates.x]\nenv = 'A=1'", "templates.x.env must be a table"),
        ("[templates.x.env]\nA = 1", "templates.x.env.A must be a str, got 1"),
        ("[templates.x.env]\n1A = 'v'", "invalid key '1A' in templates.x.env"),
        ("[templates.x.labels]\n'-bad' = 'v'", "invalid key '-bad' in templates.x.labels"),
        ("[templates.x]\ninitial_message = '  '", "templates.x.initial_message is empty"),
    ],
)
def test_invalid_templates_are_clear_errors(user_file: Path, tmp_path: Path, body: str, fragment: str) -> None:
    user_file.write_text(body + "\n")
    with pytest.raises(ConfigError) as excinfo:
        Config.load(environ={}, cwd=tmp_path)
    assert fragment in str(excinfo.value)
    assert str(excinfo.value).startswith(f"{user_file}: ")


def test_templates_from_the_environment(user_file: Path, tmp_path: Path) -> None:
    environ = {
        "MNGR_TEMPLATES__GPU__AGENT_TYPE": "command",
        "MNGR_TEMPLATES__GPU__ARGS": '["sleep", "600"]',
        "MNGR_TEMPLATES__GPU__CONNECT": "false",
        "MNGR_TEMPLATES__GPU__ENV": '{ FOO = "bar" }',
    }
    config = Config.load(environ=environ, cwd=tmp_path)
    assert config.section("templates") == {
        "gpu": {"agent_type": "command", "args": ["sleep", "600"], "connect": False, "env": {"FOO": "bar"}}
    }
    with pytest.raises(ConfigError, match=r"^environment: unknown key templates\.gpu\.bogus"):
        Config.load(environ={"MNGR_TEMPLATES__GPU__BOGUS": "1"}, cwd=tmp_path)
