"""`mngr config get|set|list|path` on real files."""

from __future__ import annotations

import json


def test_set_get_list_path(sandbox) -> None:
    path = sandbox.mngr("config", "path", "--scope", "user")
    assert path.stdout.strip() == str(sandbox.config_dir / "config.toml")
    assert sandbox.mngr("config", "set", "default_agent_type", "command").returncode == 0
    assert sandbox.mngr("config", "set", "agent_types.bot.command", "bot --fast").returncode == 0
    assert sandbox.mngr("config", "get", "default_agent_type").stdout == "command\n"
    assert sandbox.mngr("config", "get", "agent_types.bot.command").stdout == "bot --fast\n"
    listing = sandbox.mngr("config", "list").stdout.splitlines()
    assert "agent_types.bot.command = bot --fast" in listing
    assert "default_provider = local" in listing
    document = json.loads(sandbox.mngr("config", "list", "--format", "json").stdout)
    assert document["agent_types"] == {"bot": {"command": "bot --fast"}}
    # The value set is used: a create with no type gets the configured default.
    created = sandbox.mngr("create", "cfg", "--no-connect", "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    assert "(command)" in created.stdout


def test_project_scope_and_precedence(sandbox) -> None:
    (sandbox.work_dir / ".mngr").mkdir()
    assert sandbox.mngr("config", "set", "default_agent_type", "codex").returncode == 0
    assert sandbox.mngr("config", "set", "--scope", "project", "default_agent_type", "command").returncode == 0
    assert (sandbox.work_dir / ".mngr" / "config.toml").read_text() == 'default_agent_type = "command"\n'
    assert sandbox.mngr("config", "get", "default_agent_type").stdout == "command\n"
    env_wins = sandbox.mngr("config", "get", "default_agent_type", env={"MNGR_DEFAULT_AGENT_TYPE": "claude"})
    assert env_wins.stdout == "claude\n"


def test_config_errors_are_one_line(sandbox) -> None:
    missing = sandbox.mngr("config", "get", "no.such.key")
    assert missing.returncode == 1 and missing.stderr == "mngr: error: no.such.key is not set\n"
    bad_type = sandbox.mngr("config", "set", "default_provider", "7")
    assert bad_type.returncode == 1 and "default_provider must be a str" in bad_type.stderr
    assert not (sandbox.config_dir / "config.toml").exists(), "a rejected value must not be written"
    (sandbox.config_dir).mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text("[broken\n")
    broken = sandbox.mngr("list")
    assert broken.returncode == 1 and broken.stderr.startswith("mngr: error: invalid TOML in ")
    assert broken.stderr.count("\n") == 1
    outside = sandbox.mngr("config", "set", "--scope", "project", "a", "b", cwd=sandbox.root)
    assert outside.returncode == 2 and "not inside a project" in outside.stderr
