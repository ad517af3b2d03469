"""Real claude and codex agents in Docker containers from an image that has neither CLI.

Each agent's CLI comes from the read-only mount of the user's bundles, its config dir is the
one mngr writes for it, and it talks to the tests' stand-in model server on this machine's
loopback, as a user's own gateway there would be reached: through the ``network = "host"``
setting of the docker provider. Every agent command is used on it as on a local agent, and
its API key must show in no output, and be gone with the container after destroy.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest

from mngr.controller.agent_types import CLAUDE_INTERACTION, CODEX_INTERACTION
from tests import agent_clis
from tests.conftest import Sandbox, terminal_running_mngr, wait_for
from tests.model_standin import ModelStandin

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(agent_clis.missing_reason() is not None, reason=agent_clis.missing_reason() or "")]

KEY_VARIABLE = {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY"}
READY_PATTERN = {"claude": CLAUDE_INTERACTION.ready_pattern, "codex": CODEX_INTERACTION.ready_pattern}


@pytest.fixture(scope="module")
def standin() -> Iterator[ModelStandin]:
    server = ModelStandin()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def user(sandbox: Sandbox, docker_client, docker_base_image: str, standin: ModelStandin) -> Iterator[Sandbox]:
    """This test's user: the CLIs set up at home against the stand-in, unique API keys, and
    the docker provider (in a namespace of its own) on this machine's network."""
    namespace = "t" + uuid.uuid4().hex[:10]
    sandbox.env["MNGR_PROVIDERS__DOCKER__NAMESPACE"] = namespace
    sandbox.env["MNGR_PROVIDERS__DOCKER__BASE_IMAGE"] = docker_base_image
    sandbox.env["MNGR_PROVIDERS__DOCKER__NETWORK"] = "host"
    home = sandbox.root / "home"
    agent_clis.set_up_home(home, standin, trusted=[sandbox.work_dir])
    sandbox.env.update(agent_clis.user_environment(home, standin, sandbox.env["PATH"]))
    sandbox.env["ANTHROPIC_API_KEY"] = f"sk-ant-unique-{uuid.uuid4().hex}"
    sandbox.env["OPENAI_API_KEY"] = f"sk-openai-unique-{uuid.uuid4().hex}"
    state = json.loads((home / ".claude.json").read_text())  # the user approved their own key
    state["customApiKeyResponses"]["approved"] = [sandbox.env["ANTHROPIC_API_KEY"][-20:]]
    (home / ".claude.json").write_text(json.dumps(state))
    sandbox.namespace = namespace
    sandbox.docker = docker_client
    try:
        yield sandbox
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            container.remove(force=True)


def _mngr(user: Sandbox, *args: str) -> str:
    result = user.mngr(*args, timeout=300)
    assert result.returncode == 0, f"mngr {' '.join(args)}: {result.stderr}\n{user.mngr('capture', args[1]).stdout}"
    return result.stdout + result.stderr


def _containers(user: Sandbox) -> dict[str, str]:
    """host -> container status, for this test's namespace."""
    found = user.docker.containers.list(all=True, filters={"label": f"mngr.namespace={user.namespace}"})
    return {container.labels["mngr.host"]: container.status for container in found}


def _state(user: Sandbox, name: str) -> str:
    listed = user.mngr("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (agent,) = [agent for agent in json.loads(listed.stdout)["agents"] if agent["name"] == name]
    return str(agent["state"])


@pytest.mark.parametrize("agent_type", ["claude", "codex"])
def test_every_command_works_on_an_agent_in_a_container_and_its_key_stays_secret(
        user: Sandbox, standin: ModelStandin, agent_type: str) -> None:
    name = f"boxed-{agent_type}"
    secret = user.env[KEY_VARIABLE[agent_type]]
    # Waits for the input box: a dialog, or a CLI that does not start, fails it.
    outputs = [_mngr(user, "create", name, agent_type, "--in", "docker", "--no-connect", "--format", "json")]
    container = user.docker.containers.get(f"mngr-{user.namespace}-{name}")
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert container.exec_run(["sh", "-c", f"command -v {agent_type}"]).exit_code != 0, "the image has no CLI"

    first = f"remember the word alpha, {agent_type}"
    outputs.append(_mngr(user, "message", name, first))
    wait_for(lambda: standin.received(first), "the message at the stand-in", timeout=60)
    answer = f"heard: {first}"[:47]  # the stand-in echoes the first 40 characters
    transcript = wait_for(lambda: answer in (text := _mngr(user, "transcript", name)) and text,
                          "the answer in the transcript", timeout=60)
    assert first in transcript
    outputs += [transcript, _mngr(user, "transcript", name, "--format", "json")]
    captured = _mngr(user, "capture", name)
    assert answer in captured and re.search(READY_PATTERN[agent_type], captured, re.MULTILINE), captured
    outputs.append(captured)

    with terminal_running_mngr(user, "connect", name) as terminal:
        wait_for(lambda: answer in terminal.screen(), "the agent's screen through the attached terminal", timeout=60)
        terminal.press("C-b", "d")
        wait_for(lambda: "[detached" in terminal.screen(), "the detach", timeout=30)
    assert _state(user, name) in ("RUNNING", "WAITING"), "detaching leaves the agent running"

    # The last agent of a docker host stopped: after the stop grace its container stops too.
    outputs += [_mngr(user, "limit", name, "--stop-grace", "1s"), _mngr(user, "stop", name)]
    wait_for(lambda: _containers(user) == {name: "exited"}, "the container to stop", timeout=60)
    assert _state(user, name) == "STOPPED"
    outputs.append(_mngr(user, "start", name))  # starts the container, then the agent
    assert _containers(user) == {name: "running"}
    outputs.append(_mngr(user, "message", name, "which word?"))
    (last, *_) = wait_for(lambda: [exchange for exchange in standin.conversation_requests()
                                   if exchange.user_texts()[-1:] == ["which word?"]
                                   and first in exchange.user_texts()], "the second turn", timeout=60)
    assert last.user_texts().count(first) == 1  # the same conversation, resumed (not replayed)
    outputs += [_mngr(user, "list"), _mngr(user, "list", "--format", "json"), _mngr(user, "capture", name)]

    # In the container, the key is only in the two 0600 files mngr wrote (and the CLI's own config dir).
    found = container.exec_run(["sh", "-c", 'grep -rlF -- "$0" "$HOME/.mngr" | xargs -r stat -c "%a %n"', secret])
    held = dict(reversed(line.split(" ", 1)) for line in found.output.decode().split("\n") if line)
    by_mngr = {path: mode for path, mode in held.items() if "/cli-config/" not in path}
    assert sorted(path.rsplit("/", 1)[1] for path in by_mngr) == ["agent-config.json", "launch.json"], held
    assert set(by_mngr.values()) == {"600"}, held
    container.reload()  # nor in what the engine keeps of the container: its config (env) and output
    assert secret not in json.dumps(container.attrs) and secret.encode() not in container.logs()

    outputs.append(_mngr(user, "destroy", "-f", name))
    assert _containers(user) == {}, "the container goes with its last agent"
    assert not [output for output in outputs if secret in output]
    for root in (user.state_dir, user.config_dir, user.host_dir):
        assert not [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()
                    and secret.encode() in path.read_bytes()]
