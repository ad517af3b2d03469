"""The docker provider against a real Docker engine: hosts are containers mngr makes."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import terminal_running_mngr, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def dock(sandbox, docker_client, docker_base_image: str) -> Iterator:
    """The sandbox, with the docker provider in a namespace of its own (so this test sees
    only its containers), building its base image from the local test image."""
    namespace = "t" + uuid.uuid4().hex[:10]
    sandbox.env["MNGR_PROVIDERS__DOCKER__NAMESPACE"] = namespace
    sandbox.env["MNGR_PROVIDERS__DOCKER__BASE_IMAGE"] = docker_base_image
    sandbox.namespace = namespace
    sandbox.docker = docker_client
    try:
        yield sandbox
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            container.remove(force=True)
        for image in docker_client.images.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            if image.labels.get("mngr.image") != "base":  # snapshots and this test's builds
                docker_client.images.remove(image.id, force=True)


def _containers(dock) -> dict[str, str]:
    """host -> container status, for this test's namespace."""
    found = dock.docker.containers.list(all=True, filters={"label": f"mngr.namespace={dock.namespace}"})
    return {container.labels["mngr.host"]: container.status for container in found}


def _agents(dock) -> dict[str, dict]:
    listed = dock.mngr("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {agent["name"]: agent for agent in json.loads(listed.stdout)["agents"]}


def _create(dock, name: str, *args: str) -> None:
    created = dock.mngr("create", name, "command", "--in", "docker", "--no-connect", *args, "--", "sleep", "600")
    assert created.returncode == 0, created.stderr


def test_an_agent_gets_a_container_and_every_command_works_in_it(dock, tmp_path: Path) -> None:
    _create(dock, "first")
    assert _containers(dock) == {"first": "running"}
    agent = _agents(dock)["first"]
    assert (agent["state"], agent["host"], agent["provider"]) == ("RUNNING", "first", "docker")
    ran = dock.mngr("exec", "first", "hostname; id -u")
    assert ran.returncode == 0 and ran.stdout.split() == ["first", "0"], ran.stderr
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.txt").write_text("into the container\n")
    assert dock.mngr("push", "first", str(source)).returncode == 0
    shown = dock.mngr("exec", "first", "cat sub/data.txt")
    assert shown.stdout == "into the container\n"
    assert dock.mngr("exec", "first", "echo made there > back.txt").returncode == 0
    back = tmp_path / "back"
    assert dock.mngr("pull", "first", str(back)).returncode == 0
    assert (back / "back.txt").read_text() == "made there\n" and (back / "sub" / "data.txt").exists()
    assert dock.mngr("message", "first", "hello").returncode == 0


def test_agents_share_a_host_and_the_last_one_takes_the_container_with_it(dock) -> None:
    _create(dock, "one", "--host", "shared")
    _create(dock, "two", "--host", "shared")
    assert _containers(dock) == {"shared": "running"}
    agents = _agents(dock)
    assert agents["one"]["host"] == agents["two"]["host"] == "shared"
    assert dock.mngr("destroy", "-f", "one").returncode == 0
    assert _containers(dock) == {"shared": "running"}
    destroyed = dock.mngr("destroy", "-f", "two")
    assert destroyed.returncode == 0 and "removed host shared" in destroyed.stdout
    assert _containers(dock) == {}
    assert _agents(dock) == {}


def test_a_stopped_container_lists_its_agents_as_stopped_and_start_brings_them_back(dock) -> None:
    _create(dock, "sleeper", "--port", "8000:web")
    dock.docker.containers.get(f"mngr-{dock.namespace}-sleeper").stop(timeout=1)
    assert _agents(dock)["sleeper"]["state"] == "STOPPED"
    assert _agents(dock)["sleeper"]["urls"] == {"web": "http://localhost:8000/"}  # from its record alone
    assert _containers(dock) == {"sleeper": "exited"}  # listing read it without starting it
    started = dock.mngr("start", "sleeper")
    assert started.returncode == 0, started.stderr
    assert _containers(dock) == {"sleeper": "running"}
    assert _agents(dock)["sleeper"]["state"] in ("RUNNING", "WAITING")


def test_idle_shutdown_stops_the_container(dock) -> None:
    _create(dock, "idler", "--idle-timeout", "3s")
    wait_for(lambda: _containers(dock).get("idler") == "exited", "the idle container to stop", timeout=60)
    listed = dock.mngr("list", "--format", "json")
    assert json.loads(listed.stdout)["agents"][0]["state"] == "STOPPED"


def test_block_network_leaves_only_loopback(dock) -> None:
    _create(dock, "offline", "--build-arg", "--block-network")
    container = dock.docker.containers.get(f"mngr-{dock.namespace}-offline")
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    links = dock.mngr("exec", "offline", "ls /sys/class/net")
    assert links.stdout.split() == ["lo"]


def test_the_network_from_the_setting_or_the_build_arg_which_wins(dock) -> None:
    dock.env["MNGR_PROVIDERS__DOCKER__NETWORK"] = "no-such-network"
    refused = dock.mngr("create", "lost", "command", "--in", "docker", "--no-connect", "--", "sleep", "600")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "could not create docker host 'lost'" in refused.stderr and "no-such-network" in refused.stderr
    assert _containers(dock) == {}
    _create(dock, "near", "--build-arg", "--network host")
    container = dock.docker.containers.get(f"mngr-{dock.namespace}-near")
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    dock.env["MNGR_PROVIDERS__DOCKER__NETWORK"] = "a b"
    bad = dock.mngr("create", "odd", "command", "--in", "docker", "--no-connect", "--", "sleep", "600")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "mngr: error: providers.docker.network must be host, bridge or the name of a docker network, not 'a b'")


def test_limits_from_build_args_and_config(dock) -> None:
    _create(dock, "small", "--build-arg", "--cpus 1.5", "--build-arg", "--memory=256m")
    config = dock.docker.containers.get(f"mngr-{dock.namespace}-small").attrs["HostConfig"]
    assert config["NanoCpus"] == 1_500_000_000 and config["Memory"] == 256 * 1024 * 1024
    # the same from [providers.docker] in config, for every new host
    dock.env.update(MNGR_PROVIDERS__DOCKER__CPUS="0.5", MNGR_PROVIDERS__DOCKER__MEMORY="128m")
    _create(dock, "configured")
    config = dock.docker.containers.get(f"mngr-{dock.namespace}-configured").attrs["HostConfig"]
    assert config["NanoCpus"] == 500_000_000 and config["Memory"] == 128 * 1024 * 1024


@pytest.mark.parametrize(("build_arg", "expected"), [
    ("--cidr-allowlist 203.0.113.0/24", "only the modal provider"),
    ("--no-such-option", "unknown build arg '--no-such-option'"),
    ("--cpus lots", "--cpus must be a positive number"),
    ("--cpus nan", "--cpus must be a positive number"),
    ("--dockerfile /nowhere/Dockerfile", "no such file"),
    ("--block-network --network host", "give --block-network or --network, not both"),
    ("--network 'a b'", "--network must be host, bridge or the name of a docker network, not 'a b'"),
])
def test_bad_build_args_are_one_line_and_make_nothing(dock, build_arg: str, expected: str) -> None:
    created = dock.mngr("create", "bad", "command", "--in", "docker", "--no-connect", "--build-arg", build_arg,
                        "--", "sleep", "600")
    assert created.returncode == 2
    assert expected in created.stderr and len(created.stderr.strip().splitlines()) == 1
    assert _containers(dock) == {}


def test_an_image_without_tmux_is_refused_by_name_and_leaves_nothing(dock, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    # (this test's own image, removed with the namespace's: the comment makes it unique)
    dockerfile.write_text(f"FROM {dock.env['MNGR_PROVIDERS__DOCKER__BASE_IMAGE']}\n# {dock.namespace}\n"
                          "RUN rm -f /usr/bin/tmux\n")
    created = dock.mngr("create", "notmux", "command", "--in", "docker", "--no-connect",
                        "--build-arg", f"--dockerfile {dockerfile}", "--", "sleep", "600", timeout=300)
    assert created.returncode == 1
    assert "has no tmux" in created.stderr and len(created.stderr.strip().splitlines()) == 1
    assert _containers(dock) == {}


def test_a_container_removed_behind_mngrs_back_shows_as_gone_until_destroyed(dock) -> None:
    _create(dock, "vanishing")
    _create(dock, "staying")
    dock.docker.containers.get(f"mngr-{dock.namespace}-vanishing").remove(force=True)
    agents = _agents(dock)
    assert agents["vanishing"]["state"] == "GONE" and agents["staying"]["state"] in ("RUNNING", "WAITING")
    gone = dock.mngr("list", "--state", "gone", "--format", "{name}")
    assert gone.returncode == 0 and gone.stdout.split() == ["vanishing"]
    destroyed = dock.mngr("destroy", "-f", "vanishing")
    assert destroyed.returncode == 0, destroyed.stderr
    assert set(_agents(dock)) == {"staying"}


def test_hosts_of_another_namespace_are_not_this_ones(dock) -> None:
    _create(dock, "mine")
    other = dock.mngr("list", "--format", "json", env={"MNGR_PROVIDERS__DOCKER__NAMESPACE": dock.namespace + "x"})
    assert other.returncode == 0 and json.loads(other.stdout)["agents"] == []


def test_no_engine_is_one_line_and_the_other_providers_still_list(dock) -> None:
    local = dock.mngr("create", "here", "command", "--no-connect", "--", "sleep", "600")
    assert local.returncode == 0, local.stderr
    _create(dock, "there")
    nowhere = {"DOCKER_HOST": f"unix://{dock.root}/no-engine.sock"}
    listed = dock.mngr("list", "--format", "json", env=nowhere)
    assert listed.returncode == 1
    report = json.loads(listed.stdout)
    assert [agent["name"] for agent in report["agents"]] == ["here"]
    assert report["errors"] and "no Docker engine answers" in report["errors"][0]["error"]
    created = dock.mngr("create", "more", "command", "--in", "docker", "--no-connect", "--", "true", env=nowhere)
    assert created.returncode != 0 and "no Docker engine answers" in created.stderr
    assert len(created.stderr.strip().splitlines()) == 1
    # With no docker host remembered, a missing engine says nothing at all.
    os.unlink(dock.state_dir / f"docker_hosts.{dock.namespace}.json")
    quiet = dock.mngr("list", env=nowhere)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_snapshot_is_a_committed_image_and_a_new_agent_starts_from_it(dock) -> None:
    _create(dock, "doomed")
    made = dock.mngr("exec", "doomed", "echo precious > work.txt && mkdir -p /opt/extra && echo sys > /opt/extra/f")
    assert made.returncode == 0, made.stderr
    taken = dock.mngr("snapshot", "doomed", "--format", "{id}")
    assert taken.returncode == 0, taken.stderr
    snapshot_id = taken.stdout.strip()
    try:
        listed = json.loads(dock.mngr("snapshot", "list", "--format", "json").stdout)
        assert [(row["id"], row["agent"], row["provider"]) for row in listed] == [(snapshot_id, "doomed", "docker")]
        assert dock.mngr("destroy", "-f", "doomed").returncode == 0
        wrong = dock.mngr("create", "elsewhere", "--snapshot", snapshot_id, "--in", "local", "--no-connect")
        assert wrong.returncode == 2 and "--in docker" in wrong.stderr
        created = dock.mngr("create", "newer", "--snapshot", snapshot_id, "--no-connect")
        assert created.returncode == 0, created.stderr
        shown = dock.mngr("exec", "newer", "cat work.txt /opt/extra/f")
        assert shown.stdout.split() == ["precious", "sys"]  # the work dir and the rest of the container
        agents = _agents(dock)
        assert set(agents) == {"newer"} and agents["newer"]["type"] == "command"  # not the old agent's record
    finally:
        destroyed = dock.mngr("snapshot", "destroy", snapshot_id)
    assert destroyed.returncode == 0, destroyed.stderr
    assert json.loads(dock.mngr("snapshot", "list", "--format", "json").stdout) == []


def test_connect_attaches_a_terminal_to_the_agent_in_its_container(dock) -> None:
    created = dock.mngr("create", "talker", "command", "--in", "docker", "--no-connect", "--",
                        "sh", "-c", "echo hello-from-the-container; sleep 600")
    assert created.returncode == 0, created.stderr
    with terminal_running_mngr(dock, "connect", "talker") as terminal:
        wait_for(lambda: "hello-from-the-container" in terminal.screen(), "the agent's screen in the terminal")


def test_an_image_that_runs_as_another_user_works_stopped_or_running(dock, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {dock.env['MNGR_PROVIDERS__DOCKER__BASE_IMAGE']}\n# {dock.namespace}\n"
                          "RUN useradd --create-home --uid 4321 agent\nUSER agent\n")
    _create(dock, "plain", "--build-arg", f"--dockerfile {dockerfile}", "--idle-timeout", "300")
    ran = dock.mngr("exec", "plain", "id -un; pwd")
    assert ran.stdout.split() == ["agent", "/home/agent/.mngr/work/plain"], ran.stderr
    limits = dock.mngr("limit", "plain", "--format", "json")
    assert limits.returncode == 0, limits.stderr
    # the host daemon (and its idle watcher) runs: its socket is in the shared directory
    assert list((dock.state_dir / "dk").glob("*/daemon-*.sock"))
    dock.docker.containers.get(f"mngr-{dock.namespace}-plain").stop(timeout=1)
    assert _agents(dock)["plain"]["state"] == "STOPPED"  # read from /home/agent/.mngr
    assert dock.mngr("start", "plain").returncode == 0
    assert _agents(dock)["plain"]["state"] in ("RUNNING", "WAITING")
