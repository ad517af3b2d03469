"""Real claude and codex agents on an SSH host whose user has no config for either CLI.

The user's side has what a user who set the CLIs up has (tests/agent_clis.py), plus things
an agent must not get (other projects, MCP servers, another provider). The host's user has
an empty home and neither CLI: mngr copies them there. Each agent must run unattended with
only the config dir mngr wrote for it, and its API key must land nowhere but in 0600 files,
and be gone after destroy.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import agent_clis
from tests.conftest import Sandbox, wait_for
from tests.model_standin import ModelStandin
from tests.sshd import SshHost, unavailable_reason
from tests.terminal import run_in_pty

pytestmark = pytest.mark.skipif(unavailable_reason() is not None or agent_clis.missing_reason() is not None,
                                reason=unavailable_reason() or agent_clis.missing_reason() or "")

BOTH = pytest.mark.parametrize("agent_type", ["claude", "codex"])
KEY_VARIABLE = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY"}
PROMPT = {"claude": "\u276f".encode(), "codex": "\u203a".encode()}  # the first character of each input line


class Remote:
    """The module's SSH host and stand-in model server, and what the test user has there."""

    def __init__(self, host: SshHost, standin: ModelStandin, home: Path, client_dir: Path) -> None:
        self.host = host
        self.standin = standin
        self.home = home
        self.client_dir = client_dir


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    yield from started_remote(tmp_path_factory)


def started_remote(tmp_path_factory: pytest.TempPathFactory,
                   path: str = "/usr/local/bin:/usr/bin:/bin") -> Iterator[Remote]:
    """An SSH host whose user has an empty home (and ``path``: no claude or codex on it by
    default), and a stand-in model server (the fixture ``remote`` of each module using them)."""
    client_dir = tmp_path_factory.mktemp("client")
    home = Path(tempfile.mkdtemp(prefix="mngr-home-", dir="/tmp"))
    host: SshHost | None = None
    standin = ModelStandin()
    try:
        host = SshHost("cfghost", client_dir, env={"HOME": str(home), "PATH": path})
        os.chown(home, host.user.pw_uid, host.user.pw_gid)
        os.chmod(home, 0o700)
        host.trust()
        yield Remote(host, standin, home, client_dir)
    finally:
        standin.close()
        if host is not None:
            host.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def user(sandbox: Sandbox, remote: Remote) -> Sandbox:
    return set_up_user(sandbox, remote)


def set_up_user(sandbox: Sandbox, remote: Remote) -> Sandbox:
    """This test's user: the CLIs set up at home, unique API keys, the SSH host configured."""
    home = sandbox.root / "home"
    agent_clis.set_up_home(home, remote.standin, trusted=[sandbox.work_dir])
    _add_what_no_agent_may_get(home)
    sandbox.env.update(agent_clis.user_environment(home, remote.standin, sandbox.env["PATH"]))
    sandbox.env["ANTHROPIC_API_KEY"] = f"sk-ant-unique-{uuid.uuid4().hex}"
    sandbox.env["OPENAI_API_KEY"] = f"sk-openai-unique-{uuid.uuid4().hex}"
    state = json.loads((home / ".claude.json").read_text())  # the user approved their own key
    state["customApiKeyResponses"]["approved"] = [sandbox.env["ANTHROPIC_API_KEY"][-20:]]
    (home / ".claude.json").write_text(json.dumps(state))
    config = sandbox.root / "ssh_config"
    config.write_text(remote.host.client_config())
    sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
    return sandbox


def _add_what_no_agent_may_get(home: Path) -> None:
    state = json.loads((home / ".claude.json").read_text())
    state["projects"]["/home/someone/secret-project"] = {"hasTrustDialogAccepted": True, "history": ["private"]}
    state["mcpServers"] = {"private-mcp": {"command": "private-mcp-server"}}
    (home / ".claude.json").write_text(json.dumps(state))
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text(json.dumps({
        "model": "claude-standin-model", "permissions": {"defaultMode": "acceptEdits", "allow": ["Bash(rm:*)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "private-hook"}]}]}}))
    (home / ".claude" / "history.jsonl").write_text('{"display": "a private prompt"}\n')
    with (home / ".codex" / "config.toml").open("a") as handle:
        handle.write('\n[model_providers.other]\nname = "other"\nbase_url = "http://other.invalid/v1"\n'
                     'env_key = "OTHER_SECRET_KEY"\n\n[mcp_servers.private]\ncommand = "private-mcp-server"\n')
    (home / ".codex" / "history.jsonl").write_text('{"text": "a private prompt"}\n')


def _mngr(user: Sandbox, *args: str, input: str | None = None) -> str:
    result = user.mngr(*args, input=input, timeout=180)
    assert result.returncode == 0, f"mngr {' '.join(args)}: {result.stderr}\n{user.mngr('capture', args[1]).stdout}"
    return result.stdout + result.stderr


def _files_holding(root: Path, secret: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if "clis" in path.relative_to(root).parts[:2]:
            continue  # the CLIs' binaries mngr copied to the host (hundreds of MB, no secret)
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def _agent_dir(remote: Remote, name: str) -> Path:
    for record in remote.host.remote_host_dir.glob("agents/*/record.json"):
        if json.loads(record.read_text())["name"] == name:
            return record.parent
    raise AssertionError(f"no agent dir of {name} on the host")


@BOTH
def test_an_agent_on_a_bare_host_runs_resumes_and_keeps_its_key_secret(user: Sandbox, remote: Remote,
                                                                       agent_type: str) -> None:
    name = f"far-{agent_type}"
    secret = user.env[KEY_VARIABLE[agent_type]]
    outputs = [_mngr(user, "create", name, agent_type, "--in", "ssh", "--host", "cfghost", "--no-connect",
                     "--format", "json")]  # waits for the input box: a dialog would fail it
    agent_dir = _agent_dir(remote, name)
    config_dir = agent_dir / "cli-config"
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    _assert_only_what_the_agent_needs(agent_type, config_dir, user)

    outputs.append(_mngr(user, "message", name, "remember the word alpha"))
    wait_for(lambda: remote.standin.received("remember the word alpha"), "the message at the stand-in", timeout=60)
    transcript = wait_for(lambda: "heard: remember the word alpha" in (text := _mngr(user, "transcript", name))
                          and text, "the answer in the transcript", timeout=60)
    assert "remember the word alpha" in transcript
    outputs += [transcript, _mngr(user, "transcript", name, "--format", "json")]
    outputs.append(_connect_and_detach(user, remote, name, PROMPT[agent_type]).decode(errors="replace"))
    outputs += [_mngr(user, "stop", name), _mngr(user, "start", name)]
    outputs.append(_mngr(user, "message", name, "which word?"))
    (last, *_) = wait_for(lambda: [exchange for exchange in remote.standin.conversation_requests()
                                   if exchange.user_texts()[-1:] == ["which word?"]], "the second turn", timeout=60)
    assert "remember the word alpha" in last.user_texts()  # the same conversation, resumed
    outputs += [_mngr(user, "list"), _mngr(user, "list", "--format", "json"), _mngr(user, "list", "--format", "jsonl"),
                _mngr(user, "capture", name)]

    assert not [output for output in outputs if secret in output]
    holding = _files_holding(remote.host.remote_root, secret.encode())
    # Written by mngr: only its two 0600 files. Codex itself keeps snapshots of its shell's
    # environment in its config dir (shell_snapshots/), which is the agent's own and 0700.
    written_by_mngr = [path for path in holding if config_dir not in path.parents]
    assert sorted(path.name for path in written_by_mngr) == ["agent-config.json", "launch.json"], holding
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in written_by_mngr)
    assert {path.parent.name for path in holding if config_dir in path.parents} <= {"shell_snapshots"}, holding
    assert not _files_holding(user.state_dir, secret.encode())
    assert not _files_holding(user.config_dir, secret.encode())
    assert not _files_holding(remote.home, secret.encode())
    # The host user's own config stays untouched (there is none).
    assert not [path for path in remote.home.iterdir() if path.name in (".claude", ".claude.json", ".codex")]

    outputs.append(_mngr(user, "destroy", "-f", name))
    assert secret not in outputs[-1]
    assert not agent_dir.exists()
    assert not _files_holding(remote.host.remote_root, secret.encode())


def _connect_and_detach(user: Sandbox, remote: Remote, name: str, prompt: bytes) -> bytes:
    """``mngr connect`` on a terminal: the agent's screen (its answer, its input line) is drawn
    there; detaching ends the connect and leaves the agent running."""
    tmux_socket = remote.host.remote_tmux_dir / f"tmux-{remote.host.user.pw_uid}" / "default"

    def detach_once_drawn(screen: bytes, terminal: int) -> bool:
        if b"heard:" not in screen or prompt not in screen:
            return False
        subprocess.run(["tmux", "-S", str(tmux_socket), "detach-client", "-s", f"=mngr-{name}"], capture_output=True)
        return True

    code, screen = run_in_pty(user, ["connect", name], detach_once_drawn)
    assert code == 0 and b"heard:" in screen and prompt in screen, screen[-2000:]
    (agent,) = [agent for agent in json.loads(_mngr(user, "list", "--format", "json"))["agents"]
                if agent["name"] == name]
    assert agent["state"] in ("RUNNING", "WAITING"), agent
    return screen


def _assert_only_what_the_agent_needs(agent_type: str, config_dir: Path, user: Sandbox) -> None:
    # Claude saves .claude.json through a temporary file of its own (.claude.json.tmp.PID.HEX),
    # seen at 0644 while it was being made (the saved file is 0600 again): the CLI's doing,
    # and nobody else's to read, as the directory is 0700 (asserted by the caller).
    files = {path.name: path for path in config_dir.iterdir() if path.is_file() and ".tmp." not in path.name}
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    if agent_type == "claude":
        state = json.loads(files[".claude.json"].read_text())
        assert state["hasCompletedOnboarding"] is True
        assert state["customApiKeyResponses"]["approved"] == [user.env["ANTHROPIC_API_KEY"][-20:]]
        assert list(state["projects"]) == [_agent_work_dir(user, "far-claude")]
        assert "mcpServers" not in state
        assert json.loads(files["settings.json"].read_text()) == {
            "model": "claude-standin-model", "permissions": {"defaultMode": "acceptEdits"}}
    else:
        config = tomllib.loads(files["config.toml"].read_text())
        # (The CLI adds settings of its own, such as [tui] notices it has shown.)
        assert {"model", "model_provider", "model_providers", "projects"} <= set(config)
        assert "mcp_servers" not in config
        assert list(config["model_providers"]) == ["standin"]
        assert list(config["projects"]) == [_agent_work_dir(user, "far-codex")]
    assert "history.jsonl" not in files


def _agent_work_dir(user: Sandbox, name: str) -> str:
    listed = json.loads(user.mngr("list", "--format", "json").stdout)
    (agent,) = [agent for agent in listed["agents"] if agent["name"] == name]
    return os.path.realpath(agent["work_dir"])


def test_env_file_and_pass_env_values_reach_a_remote_agents_environment(user: Sandbox, remote: Remote) -> None:
    env_file = user.root / "agent.env"
    env_file.write_text('# settings for the job\nexport FROM_FILE="two words"\nQUOTED=\'$literal\'\nPLAIN=x # note\n')
    result = user.mngr("create", "envy", "command", "--in", "ssh", "--host", "cfghost", "--no-connect",
                       "--env-file", str(env_file), "--pass-env", "PASSED", "--env", "PLAIN=from-env",
                       "--", "sh", "-c", 'env > "$MNGR_AGENT_DIR/seen.env"; sleep 600',
                       env={"PASSED": "from the user's environment"})
    assert result.returncode == 0, result.stderr
    seen = wait_for(lambda: (path := _agent_dir(remote, "envy") / "seen.env").exists() and path.read_text(),
                    "the agent's environment")
    assert "FROM_FILE=two words\n" in seen and "QUOTED=$literal\n" in seen
    assert "PASSED=from the user's environment\n" in seen and "PLAIN=from-env\n" in seen
    assert user.mngr("destroy", "-f", "envy").returncode == 0


def test_a_users_file_that_cannot_be_read_fails_the_create_leaving_nothing(user: Sandbox, remote: Remote) -> None:
    (user.root / "home" / ".claude" / "settings.json").write_text('{"model": "secret-model-name"')
    result = user.mngr("create", "broken", "claude", "--in", "ssh", "--host", "cfghost", "--no-connect", timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("mngr: error: cannot read ") and "settings.json: not JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "secret-model-name" not in result.stderr
    assert not (remote.host.remote_host_dir / "work" / "broken").exists()
    assert "broken" not in user.mngr("list", "--format", "{name}").stdout


def test_a_type_listed_in_host_config_agent_types_uses_the_hosts_own_config(user: Sandbox, remote: Remote) -> None:
    user.env["MNGR_HOST_CONFIG_AGENT_TYPES"] = '["claude"]'
    user.mngr("create", "hosted", "claude", "--in", "ssh", "--host", "cfghost", "--no-connect",
              "--ready-timeout", "3")
    agent_dir = _agent_dir(remote, "hosted")
    assert not (agent_dir / "cli-config").exists() and not (agent_dir / "agent-config.json").exists()
    assert "CLAUDE_CONFIG_DIR" not in json.loads((agent_dir / "launch.json").read_text())["env"]
    assert user.mngr("destroy", "-f", "hosted").returncode == 0
    for path in remote.home.iterdir():  # what the CLI made of the host's own config: for no other test
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_a_local_agent_cloned_to_the_host_gets_a_config_of_its_own_there(user: Sandbox, remote: Remote) -> None:
    assert user.mngr("create", "near", "claude", "--no-connect", timeout=120).returncode == 0
    local_record = next(user.host_dir.glob("agents/*/record.json"))
    assert "agent_config" not in json.loads(local_record.read_text())  # a local agent keeps the user's config
    cloned = user.mngr("clone", "near", "far-copy", "--in", "ssh", "--host", "cfghost", "--pass-env", "EXTRA",
                       env={"EXTRA": "for the copy"}, timeout=180)
    assert cloned.returncode == 0, cloned.stderr
    agent_dir = _agent_dir(remote, "far-copy")
    assert json.loads((agent_dir / "record.json").read_text())["agent_config"]["env_keys"] == [
        "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_AUTOUPDATER"]
    assert json.loads((agent_dir / "env.json").read_text()) == {"EXTRA": "for the copy"}
    _mngr(user, "message", "far-copy", "hello from the copy")
    wait_for(lambda: remote.standin.received("hello from the copy"), "the copy's message at the stand-in", timeout=60)
    for name in ("near", "far-copy"):
        assert user.mngr("destroy", "-f", name).returncode == 0
