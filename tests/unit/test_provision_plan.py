"""What `mngr provision` finds to change: the user's plan against what the helper says the
agent's config dir holds (salted hashes), and the helper's writing of it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mngr.controller import agent_config
from mngr.controller.channel.protocol import AgentConfigState
from mngr.remote_helper import agent_config as helper

KEY = "sk-ant-provision-test-key-0123456789abcdef"
SALT = "c0ffee"


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    agent_dir = tmp_path / "host" / "agents" / "agent-1"
    agent_dir.mkdir(parents=True)
    (agent_dir / "launch.json").write_text("{}")
    return agent_dir


def _user(tmp_path: Path, model: str = "opus", key: str = KEY) -> agent_config.AgentConfigPlan:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"model": model}))
    return agent_config.plan("claude", {"HOME": str(home), "ANTHROPIC_API_KEY": key})


def _written(plan: agent_config.AgentConfigPlan, record: dict) -> None:
    spec = plan.wire()
    earlier = record.get("agent_config", {})
    helper.write("agent-1", spec, earlier.get("files", []))
    record["agent_config"] = helper.record_entry(spec)


def _there(record: dict, salt: str = SALT) -> AgentConfigState:
    return AgentConfigState(**helper.state_of("agent-1", record, salt))


def test_what_the_host_holds_is_told_without_a_value(host: Path, tmp_path: Path) -> None:
    record: dict = {}
    _written(_user(tmp_path), record)
    told = json.dumps(helper.state_of("agent-1", record, SALT))
    assert KEY not in told and KEY[-20:] not in told and "opus" not in told
    assert helper.state_of("agent-1", record, "other salt") != helper.state_of("agent-1", record, SALT)


def test_a_plan_the_host_holds_differs_in_nothing(host: Path, tmp_path: Path) -> None:
    record: dict = {}
    plan = _user(tmp_path)
    _written(plan, record)
    assert not agent_config.differences(plan, _there(record), SALT).any


def test_a_new_key_and_model_are_named_and_nothing_else(host: Path, tmp_path: Path) -> None:
    record: dict = {}
    _written(_user(tmp_path), record)
    changed = _user(tmp_path, model="haiku", key=KEY + "-new")
    found = agent_config.differences(changed, _there(record), SALT)
    # .claude.json: the new key's approval
    assert (found.files, found.env, found.removed_env) == ((".claude.json", "settings.json"), ("ANTHROPIC_API_KEY",), ())
    assert found.variables and not found.env_var_changed
    _written(changed, record)
    assert not agent_config.differences(changed, _there(record), SALT).any


def test_the_clis_own_state_in_its_config_file_stays_and_is_no_difference(host: Path, tmp_path: Path) -> None:
    record: dict = {}
    plan = _user(tmp_path)
    _written(plan, record)
    state_file = host / "cli-config" / ".claude.json"
    document = json.loads(state_file.read_text())
    document.update({"numStartups": 3, "projects": {"/w": {"hasTrustDialogAccepted": True}}})
    state_file.write_text(json.dumps(document))
    assert not agent_config.differences(plan, _there(record), SALT).any
    changed = _user(tmp_path, key=KEY + "-new")
    assert agent_config.differences(changed, _there(record), SALT).files == (".claude.json",)
    _written(changed, record)
    merged = json.loads(state_file.read_text())
    assert merged["numStartups"] == 3 and merged["projects"] == {"/w": {"hasTrustDialogAccepted": True}}
    assert merged["customApiKeyResponses"]["approved"] == [(KEY + "-new")[-20:]]


def test_a_file_and_a_variable_the_user_no_longer_has_are_removed(host: Path, tmp_path: Path) -> None:
    record: dict = {}
    _written(_user(tmp_path), record)
    (tmp_path / "home" / ".claude" / "settings.json").unlink()
    home = str(tmp_path / "home")
    without = agent_config.plan("claude", {"HOME": home})
    found = agent_config.differences(without, _there(record), SALT)
    assert (found.removed_files, found.removed_env) == (("settings.json",), ("ANTHROPIC_API_KEY",))
    _written(without, record)
    assert not (host / "cli-config" / "settings.json").exists()
    assert "ANTHROPIC_API_KEY" not in helper.env("agent-1")


def _launched(host: Path, **extra: str) -> None:
    """The agent's process started with what its config dir adds now (and ``extra``)."""
    (host / "launch.json").write_text(json.dumps({"env": {**helper.env("agent-1"), "PATH": "/bin", **extra}}))


def test_variables_the_running_process_lacks_are_pending_until_it_starts_again(host: Path, tmp_path: Path) -> None:
    record: dict = {}
    _written(_user(tmp_path), record)
    _launched(host)
    assert not _there(record).pending
    _written(_user(tmp_path, model="haiku"), record)  # a file only
    assert not _there(record).pending
    _written(_user(tmp_path, key=KEY + "-new"), record)
    assert _there(record).pending
    _launched(host)
    assert not _there(record).pending
    (host / "env.json").write_text(json.dumps({"ANTHROPIC_API_KEY": "from --env"}))  # --env wins at launch
    assert _there(record).pending
    _launched(host, ANTHROPIC_API_KEY="from --env")
    assert not _there(record).pending


def test_what_the_cli_writes_into_its_files_is_no_difference_a_change_of_the_users_is(host: Path,
                                                                                      tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text('model = "o3"\n')
    plan = agent_config.plan("codex", {"HOME": str(home), "OPENAI_API_KEY": KEY})
    record: dict = {}
    _written(plan, record)
    with (host / "cli-config" / "config.toml").open("a") as config:  # trust, and the CLI's own notes
        config.write('[projects."/w"]\ntrust_level = "trusted"\n[notice]\nhide_full_access_warning = true\n')
    assert not agent_config.differences(plan, _there(record), SALT).any
    (home / ".codex" / "config.toml").write_text('model = "o4"\n')
    changed = agent_config.plan("codex", {"HOME": str(home), "OPENAI_API_KEY": KEY})
    assert agent_config.differences(changed, _there(record), SALT).files == ("config.toml",)
    (host / "cli-config" / "config.toml").unlink()  # gone from the host: written again
    assert agent_config.differences(plan, _there(record), SALT).files == ("config.toml",)


def test_an_agent_written_before_mngr_kept_what_it_wrote_is_compared_by_content(host: Path,
                                                                                tmp_path: Path) -> None:
    record: dict = {}
    plan = _user(tmp_path)
    _written(plan, record)
    settings = json.loads((host / "agent-config.json").read_text())
    del settings["written"]
    (host / "agent-config.json").write_text(json.dumps(settings))
    assert not agent_config.differences(plan, _there(record), SALT).any
    (host / "cli-config" / "settings.json").write_text('{"model": "sonnet"}')
    assert agent_config.differences(plan, _there(record), SALT).files == ("settings.json",)


def test_an_agent_without_a_config_dir_gets_everything(host: Path, tmp_path: Path) -> None:
    plan = _user(tmp_path)
    found = agent_config.differences(plan, _there({}), SALT)
    assert found.env_var_changed and found.files == (".claude.json", "settings.json")
    assert found.env == ("ANTHROPIC_API_KEY",)
