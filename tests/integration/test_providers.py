"""One suite every provider passes: the same commands, the same results, wherever the host is.

Each test runs once per provider (local, an SSH test host, a Docker container, a Modal sandbox
of the local Modal server, through the real SDK); a provider whose host cannot be had here (no
Docker engine) skips with the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.integration.test_ssh import started_host


@dataclass
class Place:
    """Where the agents of a test go: the sandbox, and the create options that put them there."""

    sandbox: object
    provider: str
    create_options: list[str]

    def mngr(self, *args: str):  # type: ignore[no-untyped-def]
        return self.sandbox.mngr(*args)  # type: ignore[attr-defined]

    def create(self, name: str, *command: str) -> None:
        created = self.mngr("create", name, "command", "--no-connect", *self.create_options, "--", *command)
        assert created.returncode == 0, created.stderr

    def agents(self) -> dict[str, dict]:
        listed = self.mngr("list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        return {agent["name"]: agent for agent in json.loads(listed.stdout)["agents"]}


@pytest.fixture(params=["local", "ssh", "docker", "modal"])
def place(request: pytest.FixtureRequest, sandbox) -> Iterator[Place]:
    if request.param == "local":
        yield Place(sandbox, "local", [])
    elif request.param == "ssh":
        with started_host(sandbox, "testhost"):
            yield Place(sandbox, "ssh", ["--in", "ssh", "--host", "testhost"])
    elif request.param == "modal":  # the real Modal SDK and a local Modal server, its sandboxes Docker containers
        yield Place(request.getfixturevalue("modal_server"), "modal", ["--in", "modal"])
    else:
        client = request.getfixturevalue("docker_client")
        sandbox.env["MNGR_PROVIDERS__DOCKER__BASE_IMAGE"] = request.getfixturevalue("docker_base_image")
        namespace = "p" + uuid.uuid4().hex[:10]
        sandbox.env["MNGR_PROVIDERS__DOCKER__NAMESPACE"] = namespace
        try:
            yield Place(sandbox, "docker", ["--in", "docker"])
        finally:
            for container in client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
                container.remove(force=True)


def test_an_agent_lives_stops_starts_and_is_destroyed(place: Place) -> None:
    place.create("life", "sleep", "600")
    agent = place.agents()["life"]
    assert agent["provider"] == place.provider and agent["state"] in ("RUNNING", "WAITING")
    assert place.mngr("stop", "life").returncode == 0
    assert place.agents()["life"]["state"] == "STOPPED"
    assert place.mngr("start", "life").returncode == 0
    assert place.agents()["life"]["state"] in ("RUNNING", "WAITING")
    assert place.mngr("destroy", "-f", "life").returncode == 0
    assert "life" not in place.agents()


def test_messages_reach_the_agent_and_its_screen_comes_back(place: Place) -> None:
    place.create("echo", "sh", "-c", 'while IFS= read -r l; do echo "got: $l"; done')
    assert place.mngr("message", "echo", "hello; $(not run)").returncode == 0
    wait_for(lambda: "got: hello; $(not run)" in place.mngr("transcript", "echo").stdout, "the agent's reply")
    assert "got: hello; $(not run)" in place.mngr("capture", "echo").stdout


def test_exec_runs_in_the_agents_work_dir(place: Place) -> None:
    place.create("worker", "sleep", "600")
    ran = place.mngr("exec", "worker", "pwd; echo made > here.txt")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == place.agents()["worker"]["work_dir"]
    again = place.mngr("exec", "worker", "cat here.txt")
    assert again.stdout == "made\n"


def test_push_and_pull_carry_every_byte_and_mode(place: Place, tmp_path: Path) -> None:
    place.create("files", "sleep", "600")
    source = tmp_path / "source"
    (source / "deep" / "er").mkdir(parents=True)
    (source / "deep" / "er" / "data.bin").write_bytes(bytes(range(256)) * 500)
    (source / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (source / "run.sh").chmod(0o751)
    (source / "link").symlink_to("run.sh")
    pushed = place.mngr("push", "files", str(source))
    assert pushed.returncode == 0, pushed.stderr
    back = tmp_path / "back"
    pulled = place.mngr("pull", "files", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert (back / "deep" / "er" / "data.bin").read_bytes() == bytes(range(256)) * 500
    assert (back / "run.sh").stat().st_mode & 0o777 == 0o751
    assert (back / "link").is_symlink() and str((back / "link").readlink()) == "run.sh"
    again = place.mngr("push", "files", str(source))
    assert again.returncode == 0 and "nothing to push" in again.stdout
