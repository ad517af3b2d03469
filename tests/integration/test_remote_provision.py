"""`mngr provision` on a real claude agent on an SSH host whose user has no config of its own.

The user changes their model and API key after the agent was made: a dry run names what
would change and touches nothing; provision writes it without restarting the agent;
--restart restarts it, its conversation resumed, authenticating with the new key. No key
ever appears in an output, and on the host only in mngr's 0600 files.
"""

from __future__ import annotations

import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import agent_clis
from tests.conftest import Sandbox, wait_for
from tests.integration.test_remote_agent_config import (
    Remote,
    _agent_dir,
    _files_holding,
    pytestmark,  # noqa: F401 (skipped where they are)
    set_up_user,
    started_remote,
)
from tests.model_standin import Exchange


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    yield from started_remote(tmp_path_factory)


@pytest.fixture
def user(sandbox: Sandbox, remote: Remote) -> Sandbox:
    return set_up_user(sandbox, remote)


@pytest.fixture
def remote_with_claude(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """A host of its own whose user has claude (the user's version) on PATH, and no bundle
    landed by another test."""
    yield from started_remote(tmp_path_factory, f"{agent_clis.AGENT_CLI_BIN}:/usr/local/bin:/usr/bin:/bin")


def _mngr(user: Sandbox, *args: str) -> str:
    result = user.mngr(*args, timeout=180)
    assert result.returncode == 0, f"mngr {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def _pid(user: Sandbox, name: str) -> int:
    listed = json.loads(_mngr(user, "list", "--format", "json"))
    (agent,) = [agent for agent in listed["agents"] if agent["name"] == name]
    return int(agent["pid"])


def _snapshot(config_dir: Path, agent_dir: Path) -> dict[str, tuple[bytes, int]]:
    """What mngr wrote there (the CLI's own .claude.json it rewrites itself as it likes)."""
    paths = [config_dir / "settings.json", agent_dir / "agent-config.json", agent_dir / "record.json"]
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in paths}


def _turn(remote: Remote, text: str) -> Exchange:
    (exchange, *_) = wait_for(lambda: [exchange for exchange in remote.standin.conversation_requests()
                                       if exchange.user_texts()[-1:] == [text]], f"the turn {text!r}", timeout=60)
    return exchange


def test_provision_refreshes_settings_and_key_and_restarts_only_when_asked(user: Sandbox, remote: Remote) -> None:
    name = "prov"
    old_key = user.env["ANTHROPIC_API_KEY"]
    outputs = [_mngr(user, "create", name, "claude", "--in", "ssh", "--host", "cfghost", "--no-connect")]
    agent_dir = _agent_dir(remote, name)
    config_dir = agent_dir / "cli-config"
    outputs.append(_mngr(user, "message", name, "remember the word alpha"))
    assert _turn(remote, "remember the word alpha").api_key == old_key
    pid = _pid(user, name)
    outputs.append(_mngr(user, "provision", name))
    assert outputs[-1] == f"agent {name} on cfghost: up to date\n"

    new_key = f"sk-ant-unique-{uuid.uuid4().hex}"
    user.env["ANTHROPIC_API_KEY"] = new_key
    settings = user.root / "home" / ".claude" / "settings.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "model": "claude-standin-other"}))
    before = _snapshot(config_dir, agent_dir)
    outputs.append(_mngr(user, "provision", name, "--dry-run"))
    assert outputs[-1] == (f"agent {name} on cfghost: would change file .claude.json, file settings.json, "
                           "env ANTHROPIC_API_KEY; would take effect when the agent restarts\n")
    assert _snapshot(config_dir, agent_dir) == before

    outputs.append(_mngr(user, "provision", name, "--format", "json"))
    (done,) = json.loads(outputs[-1])
    assert (done["outcome"], done["files"], done["env"], done["restart"]) == (
        "changed", [".claude.json", "settings.json"], ["ANTHROPIC_API_KEY"], "restart needed")
    assert json.loads((config_dir / "settings.json").read_text())["model"] == "claude-standin-other"
    for path in (config_dir / "settings.json", config_dir / ".claude.json", agent_dir / "agent-config.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    claude_state = json.loads((config_dir / ".claude.json").read_text())
    assert claude_state["customApiKeyResponses"]["approved"] == [new_key[-20:]]
    assert list(claude_state["projects"]) != []  # the CLI's own state (its trusted work dir) stayed
    assert _pid(user, name) == pid  # not restarted

    outputs.append(_mngr(user, "provision", name, "--restart"))
    assert outputs[-1] == f"agent {name} on cfghost: up to date; restarted\n"
    assert _pid(user, name) != pid
    outputs.append(_mngr(user, "message", name, "which word?"))
    last = _turn(remote, "which word?")
    assert "remember the word alpha" in last.user_texts()  # the same conversation, resumed
    assert last.api_key == new_key and last.body.get("model") == "claude-standin-other"

    # A write that fails under --restart leaves the agent running as it was, and says why.
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "model": "claude-standin-third"}))
    (config_dir / "settings.json").unlink()
    (config_dir / "settings.json").mkdir()
    pid = _pid(user, name)
    failed = user.mngr("provision", name, "--restart", timeout=180)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith(f"mngr: error: provision {name}: ") and len(failed.stderr.splitlines()) == 1
    assert _pid(user, name) != pid, failed.stderr  # started again
    (config_dir / "settings.json").rmdir()
    outputs += [failed.stdout + failed.stderr, _mngr(user, "stop", name)]
    user.env["ANTHROPIC_API_KEY"] = old_key
    outputs.append(_mngr(user, "provision", name))
    assert outputs[-1] == (f"agent {name} on cfghost: changed file .claude.json, file settings.json, "
                           "env ANTHROPIC_API_KEY; the agent is STOPPED: takes effect when it starts\n")
    assert not [output for output in outputs if old_key in output or new_key in output]
    for key, files in ((old_key, ["agent-config.json"]), (new_key, ["launch.json"])):  # written; launched with
        holding = [path for path in _files_holding(remote.host.remote_root, key.encode())
                   if config_dir not in path.parents]
        assert sorted(path.name for path in holding) == files
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in holding)
    assert not _files_holding(user.state_dir, new_key.encode()) and not _files_holding(user.state_dir, old_key.encode())
    _mngr(user, "destroy", "-f", name)


def test_what_codex_writes_into_its_own_config_is_no_change(user: Sandbox, remote: Remote) -> None:
    name = "provx"
    _mngr(user, "create", name, "codex", "--in", "ssh", "--host", "cfghost", "--no-connect")
    _mngr(user, "message", name, "hello codex")
    _turn(remote, "hello codex")
    config = _agent_dir(remote, name) / "cli-config" / "config.toml"
    assert "trust_level" in config.read_text()  # not what mngr's plan holds
    assert _mngr(user, "provision", name) == f"agent {name} on cfghost: up to date\n"
    user.env["OPENAI_API_KEY"] = f"sk-openai-unique-{uuid.uuid4().hex}"
    assert _mngr(user, "provision", name, "--dry-run") == (
        f"agent {name} on cfghost: would change env OPENAI_API_KEY; would take effect when the agent restarts\n")
    _mngr(user, "destroy", "-f", name)


def test_provision_brings_the_users_cli_to_the_host_when_the_setting_asks(sandbox: Sandbox,
                                                                          remote_with_claude: Remote) -> None:
    remote = remote_with_claude
    user = set_up_user(sandbox, remote)
    name = "provcli"
    _mngr(user, "create", name, "claude", "--in", "ssh", "--host", "cfghost", "--no-connect")
    agent_dir = _agent_dir(remote, name)
    assert _mngr(user, "provision", name) == f"agent {name} on cfghost: up to date\n"  # the host's own will do
    user.config_dir.mkdir(parents=True, exist_ok=True)
    with (user.config_dir / "config.toml").open("a") as config:
        config.write('\n[agent_types.claude]\ncli = "copy"\n')
    package = agent_clis.AGENT_CLI_BIN.parent / "@anthropic-ai" / "claude-code"
    version = json.loads((package / "package.json").read_text())["version"]
    megabytes = (package / "bin" / "claude.exe").stat().st_size >> 20
    clis = remote.host.remote_host_dir / "clis"
    landed_before = sorted(path.name for path in clis.iterdir()) if clis.is_dir() else []
    assert _mngr(user, "provision", name, "--dry-run") == (
        f"agent {name} on cfghost: would change cli claude {version} (would copy {megabytes} MB); "
        "would take effect when the agent restarts\n")
    assert (sorted(path.name for path in clis.iterdir() if path.name != ".parts") if clis.is_dir() else []) == [
        name for name in landed_before if name != ".parts"]
    pid = _pid(user, name)
    assert _mngr(user, "provision", name) == (
        f"agent {name} on cfghost: changed cli claude {version} (copied {megabytes} MB); "
        f"takes effect when the agent restarts (mngr provision {name} --restart)\n")
    path_dirs = json.loads((agent_dir / "record.json").read_text())["path_dirs"]
    assert [Path(path_dirs[0])] == [path for path in clis.iterdir() if path.name != ".parts"]  # clis/<key>
    assert (Path(path_dirs[0]) / "claude").is_file() and _pid(user, name) == pid
    # Still running the host's own: a later provision says so until it restarts.
    assert _mngr(user, "provision", name) == (
        f"agent {name} on cfghost: up to date; takes effect when the agent restarts (mngr provision {name} --restart)\n")
    assert _mngr(user, "provision", name, "--restart") == f"agent {name} on cfghost: up to date; restarted\n"
    launched = json.loads((agent_dir / "launch.json").read_text())["env"]["PATH"]
    assert launched.split(":")[:len(path_dirs)] == path_dirs
    assert _mngr(user, "provision", name) == f"agent {name} on cfghost: up to date\n"
    _mngr(user, "destroy", "-f", name)


def test_a_type_using_the_hosts_own_config_gets_only_its_cli_made_sure_of(user: Sandbox, remote: Remote) -> None:
    user.env["MNGR_HOST_CONFIG_AGENT_TYPES"] = '["claude"]'
    user.mngr("create", "hosted", "claude", "--in", "ssh", "--host", "cfghost", "--no-connect",
              "--ready-timeout", "3")  # (on the host's first-run screens: it has no config)
    # The host's own claude is as recent as the user's: that one stays, and no config is written.
    assert _mngr(user, "provision", "hosted") == "agent hosted on cfghost: up to date\n"
    assert not (_agent_dir(remote, "hosted") / "cli-config").exists()
    _mngr(user, "destroy", "-f", "hosted")
    for path in remote.home.iterdir():  # what the CLI made of the host's own config: for no other test
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_an_agent_mngr_provisions_nothing_for_is_left_alone(user: Sandbox, remote: Remote) -> None:
    _mngr(user, "create", "plain", "command", "--in", "ssh", "--host", "cfghost", "--no-connect", "--", "sleep", "600")
    assert _mngr(user, "provision", "plain") == (
        "agent plain on cfghost: nothing to provision: mngr writes no CLI config for agents of type 'command'\n")
    assert not (_agent_dir(remote, "plain") / "cli-config").exists()
    missing = user.mngr("provision", "plain", "nosuch")
    assert missing.returncode == 1 and missing.stderr == "mngr: error: no agent named 'nosuch'\n"
    _mngr(user, "destroy", "-f", "plain")
