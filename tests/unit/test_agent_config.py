"""The config dir an agent gets on a host other than the user's: made from the user's files
and environment, holding only what the agent needs, described without a value."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from mngr.controller import agent_config
from mngr.controller.agent_types import BUILTIN_AGENT_TYPES, from_config
from mngr.controller.config import DEFAULTS, Config, validate
from mngr.controller.errors import ConfigError, MngrError
from mngr.controller.hosts import HostHandle
from mngr.providers.local import LocalProvider
from mngr.providers.ssh import SshProvider
from mngr.remote_helper import agent_config as helper_agent_config
from mngr.remote_helper.wire import RequestFailed

KEY = "sk-ant-api-key-that-must-stay-secret-0123456789"
TYPES = {agent_type.name: agent_type for agent_type in BUILTIN_AGENT_TYPES}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "projects": {"/private/project": {"history": ["a private prompt"]}},
        "mcpServers": {"private": {"command": "x"}}, "oauthAccount": {"emailAddress": "me@example.com"},
        "bypassPermissionsModeAccepted": True}))
    (home / ".claude" / "settings.json").write_text(json.dumps({
        "model": "opus", "permissions": {"defaultMode": "plan", "allow": ["Bash(rm:*)"]}, "hooks": {"Stop": []}}))
    (home / ".claude" / "history.jsonl").write_text("{}\n")
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(
        'model = "gpt-5-codex"\nmodel_provider = "proxy"\napproval_policy = "never"\nsandbox_mode = "workspace-write"\n'
        'disable_paste_burst = true\nnotify = ["private-notifier"]\n'
        '[model_providers.proxy]\nname = "Proxy \\"one\\""\nbase_url = "http://proxy:8080/v1"\nenv_key = "PROXY_KEY"\n'
        'http_headers = { "X-Team" = "ünï" }\n'
        '[model_providers.other]\nname = "other"\nenv_key = "OTHER_KEY"\n'
        '[mcp_servers.private]\ncommand = "private-mcp"\n'
        '[projects."/private/project"]\ntrust_level = "trusted"\n')
    return home


def _user_env(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/bin", "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://gw",
            "OPENAI_API_KEY": "sk-openai", "PROXY_KEY": "proxy-secret", "OTHER_KEY": "other-secret",
            "AWS_SECRET_ACCESS_KEY": "aws-secret", **extra}


def test_claude_gets_onboarding_its_key_approved_model_and_permission_mode_only(home: Path) -> None:
    plan = agent_config.plan("claude", _user_env(home))
    assert plan.env_var == "CLAUDE_CONFIG_DIR"
    assert plan.env == {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://gw"}
    assert set(plan.files) == {".claude.json", "settings.json"}
    state = json.loads(plan.files[".claude.json"])
    assert state == {"hasCompletedOnboarding": True, "projects": {}, "bypassPermissionsModeAccepted": True,
                     "customApiKeyResponses": {"approved": [KEY[-20:]], "rejected": []}}
    assert json.loads(plan.files["settings.json"]) == {"model": "opus", "permissions": {"defaultMode": "plan"}}


def test_claude_credentials_file_comes_with_the_account_it_belongs_to(home: Path) -> None:
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "tok"}}')
    environment = _user_env(home)
    del environment["ANTHROPIC_API_KEY"]
    plan = agent_config.plan("claude", environment)
    assert plan.files[".credentials.json"] == '{"claudeAiOauth": {"accessToken": "tok"}}'
    state = json.loads(plan.files[".claude.json"])
    assert state["oauthAccount"] == {"emailAddress": "me@example.com"} and "customApiKeyResponses" not in state


def test_claude_reads_the_users_own_config_dir_when_set(home: Path, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "settings.json").write_text('{"model": "haiku"}')
    plan = agent_config.plan("claude", _user_env(home, CLAUDE_CONFIG_DIR=str(own)))
    assert json.loads(plan.files["settings.json"]) == {"model": "haiku"}
    assert "bypassPermissionsModeAccepted" not in json.loads(plan.files[".claude.json"])  # not in own/.claude.json


def test_codex_gets_its_model_the_provider_in_use_and_that_providers_key_only(home: Path) -> None:
    (home / ".codex" / "auth.json").write_text('{"OPENAI_API_KEY": null, "tokens": {}}')
    plan = agent_config.plan("codex", _user_env(home))
    assert plan.env_var == "CODEX_HOME"
    assert plan.env == {"PROXY_KEY": "proxy-secret"}
    assert set(plan.files) == {"config.toml", "auth.json"}
    assert tomllib.loads(plan.files["config.toml"]) == {
        "model": "gpt-5-codex", "model_provider": "proxy", "approval_policy": "never",
        "sandbox_mode": "workspace-write", "disable_paste_burst": True,
        "model_providers": {"proxy": {"name": 'Proxy "one"', "base_url": "http://proxy:8080/v1", "env_key": "PROXY_KEY",
                                      "http_headers": {"X-Team": "ünï"}}}}


def test_codex_with_the_builtin_provider_gets_the_openai_key(home: Path) -> None:
    (home / ".codex" / "config.toml").write_text('model = "o3"\n')
    plan = agent_config.plan("codex", _user_env(home, OPENAI_BASE_URL="http://base"))
    assert plan.env == {"OPENAI_API_KEY": "sk-openai", "OPENAI_BASE_URL": "http://base"}
    assert tomllib.loads(plan.files["config.toml"]) == {"model": "o3"}


def test_a_user_without_any_config_gets_what_skips_the_dialogs(tmp_path: Path) -> None:
    plan = agent_config.plan("claude", {"HOME": str(tmp_path), "ANTHROPIC_API_KEY": KEY})
    assert set(plan.files) == {".claude.json"}
    assert agent_config.plan("codex", {"HOME": str(tmp_path)}).files == {"config.toml": "\n"}


def test_a_broken_user_file_is_one_line_naming_it_without_its_content(home: Path) -> None:
    (home / ".claude" / "settings.json").write_text('{"model": "secret-value"')
    with pytest.raises(MngrError) as claude_error:
        agent_config.plan("claude", _user_env(home))
    (home / ".codex" / "config.toml").write_text('model = "secret-value\n')
    with pytest.raises(MngrError) as codex_error:
        agent_config.plan("codex", _user_env(home))
    for error in (claude_error, codex_error):
        assert "cannot read " + str(home) in str(error.value) and "secret-value" not in str(error.value)
        assert "\n" not in str(error.value)


def test_describe_names_files_and_variables_never_values(home: Path) -> None:
    (home / ".claude" / ".credentials.json").write_text('{"token": "credential-secret"}')
    plan = agent_config.plan("claude", _user_env(home))
    described = "\n".join(plan.describe())
    assert "CLAUDE_CONFIG_DIR=<agent dir>/cli-config" in described
    assert "cli-config/.credentials.json (0600)" in described and "env ANTHROPIC_API_KEY" in described
    assert KEY not in described and "credential-secret" not in described and "http://gw" not in described


def test_only_agents_on_hosts_without_the_users_environment_get_one() -> None:
    config = Config(dict(DEFAULTS), "/nonexistent", None)
    local = HostHandle(LocalProvider(), "local")
    remote = HostHandle(SshProvider(), "box")
    assert agent_config.for_agent(config, TYPES["claude"], local) is None
    assert agent_config.for_agent(config, TYPES["command"], remote) is None
    assert agent_config.for_agent(config, TYPES["claude"], remote) is not None
    like_codex = from_config("my-codex", {"command": "codex --full-auto", "like": "codex"}, TYPES)
    assert agent_config.for_agent(config, like_codex, remote).env_var == "CODEX_HOME"  # type: ignore[union-attr]
    opted_out = Config({**DEFAULTS, "host_config_agent_types": ["claude"]}, "/nonexistent", None)
    assert agent_config.for_agent(opted_out, TYPES["claude"], remote) is None
    assert agent_config.for_agent(opted_out, TYPES["codex"], remote) is not None
    with pytest.raises(ConfigError):
        validate({"host_config_agent_types": [1]}, "test")


def test_the_helper_writes_the_files_private_and_adds_the_variables(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    agent_dir = tmp_path / "host" / "agents" / "agent-1"
    agent_dir.mkdir(parents=True)
    spec = {"dir": "cli-config", "env_var": "CLAUDE_CONFIG_DIR", "files": {".claude.json": "{}\n"},
            "env": {"ANTHROPIC_API_KEY": KEY}}
    old_umask = os.umask(0o022)  # what an agent's files would get by default
    try:
        helper_agent_config.write("agent-1", spec)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((agent_dir / "cli-config").stat().st_mode) == 0o700
    for path in (agent_dir / "cli-config" / ".claude.json", agent_dir / "agent-config.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert helper_agent_config.env("agent-1") == {"ANTHROPIC_API_KEY": KEY,
                                                  "CLAUDE_CONFIG_DIR": str(agent_dir / "cli-config")}
    assert KEY not in json.dumps(helper_agent_config.record_entry(spec))
    assert helper_agent_config.env("agent-2") == {}
    for bad in ({**spec, "dir": "../out"}, {**spec, "files": {"../x": ""}}, {**spec, "files": {"a/b": ""}},
                {**spec, "env": {"A": 1}}, {**spec, "env_var": ""}):
        with pytest.raises(RequestFailed) as error:
            helper_agent_config.check(bad)
        assert KEY not in str(error.value)
