"""The modal provider through the real ``modal`` SDK and a local Modal server (tests/modal_server):
sandboxes are real containers, Volumes real directories, every mngr command a real process
whose SDK talks gRPC to the server.

What the server can and cannot show of Modal is in docs/modal-test-server.md.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from grpclib import Status

from tests.conftest import terminal_running_mngr, wait_for

pytestmark = pytest.mark.docker


def _create(ms, name: str, *args: str, command: tuple[str, ...] = ("sleep", "600")) -> None:
    created = ms.mngr("create", name, "command", "--in", "modal", "--no-connect", *args, "--", *command, timeout=300)
    assert created.returncode == 0, created.stderr


def _agents(ms, **env: str) -> dict[str, dict]:
    listed = ms.mngr("list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    return {agent["name"]: agent for agent in json.loads(listed.stdout)["agents"]}


def _sandboxes(ms, *, running: bool = True) -> dict[str, dict[str, Any]]:
    """host -> its newest sandbox as the server holds it (running ones only, unless ``running``
    is False): the definition the SDK sent, tags, the Volumes mounted by name."""
    found: dict[str, dict[str, Any]] = {}
    volumes = {volume_id: name for volume_id, name in ms.modal.run(_volume_ids(ms))}
    for record in ms.modal.sandboxes(running_only=running):
        if record["tags"].get("mngr-namespace") != ms.namespace:
            continue
        definition = record["definition"]
        record["volumes"] = {mount.mount_path: volumes.get(mount.volume_id) for mount in definition.volume_mounts}
        found.setdefault(record["tags"]["mngr-host"], record)
    return found


def _volume_ids(ms):  # type: ignore[no-untyped-def]
    async def read() -> list[tuple[str, str]]:
        return [(volume.id, volume.name) for volume in ms.modal.world.volumes.values()]

    return read


def _volumes(ms) -> list[str]:
    return [name for name in ms.modal.volume_names() if name.startswith(f"mngr-{ms.namespace}-")]


def _one_line_failure(result: subprocess.CompletedProcess[str], code: int, expected: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_agent_gets_a_tagged_sandbox_with_its_work_on_a_volume(modal_server) -> None:
    ms = modal_server
    # The agent must still be RUNNING when listed last, however long the commands take.
    ms.env["MNGR_AGENT_QUIET_SECONDS"] = "600"
    _create(ms, "first")
    record = _sandboxes(ms)["first"]
    name = f"mngr-{ms.namespace}-first"
    assert record["name"] == name and record["tags"] == {"mngr-namespace": ms.namespace, "mngr-host": "first"}
    definition = record["definition"]
    assert record["volumes"] == {"/mngr": name}
    assert definition.timeout_secs == 24 * 3600  # Modal's longest, never the SDK's 5 minutes
    assert definition.network_access.network_access_type == definition.network_access.OPEN
    assert not definition.block_network and list(definition.inbound_cidr_allowlist) == []
    assert definition.idle_timeout_secs == 0  # mngr's idle watcher decides, not Modal's
    ran = ms.mngr("exec", "first", 'pwd; echo "$HOME"; echo made > here.txt')
    # A copy of the current directory, on the Volume like the rest of mngr's host dir.
    assert ran.returncode == 0 and ran.stdout.split() == ["/mngr/host/work/first", "/mngr/home"], ran.stderr
    agent = _agents(ms)["first"]
    assert (agent["state"], agent["host"], agent["provider"]) == ("RUNNING", "first", "modal")
    # Modal alone tells where the agents are: a machine with no memory of them lists them too.
    elsewhere = _agents(ms, MNGR_STATE_DIR=str(ms.root / "another-state"))
    assert elsewhere["first"]["state"] == "RUNNING" and elsewhere["first"]["provider"] == "modal"
    # ... and another namespace sees none of them.
    assert _agents(ms, MNGR_PROVIDERS__MODAL__NAMESPACE=ms.namespace + "x") == {}
    # `mngr --in modal` is `mngr create --in modal`.
    bare = ms.mngr("--in", "modal", "--no-connect", "second", "command", "--", "sleep", "600", timeout=300)
    assert bare.returncode == 0, bare.stderr
    assert _agents(ms)["second"]["provider"] == "modal" and set(_sandboxes(ms)) == {"first", "second"}


def test_build_args_and_settings_reach_the_sandbox(modal_server) -> None:
    ms = modal_server
    ms.modal.create_secret("mngr-test-secret", {"FROM_SECRET": "s3cret"})
    _create(ms, "tuned", "--build-arg", "--cidr-allowlist 203.0.113.0/24 --cpus 2 --memory 1g",
            "--build-arg", "--region us-east --timeout 2h",
            "--build-arg", "--env GREETING=hello --secret mngr-test-secret")
    definition = _sandboxes(ms)["tuned"]["definition"]
    access = definition.network_access
    assert access.network_access_type == access.ALLOWLIST and list(access.allowed_cidrs) == ["203.0.113.0/24"]
    assert (definition.resources.milli_cpu, definition.resources.memory_mb) == (2000, 1024)
    assert list(definition.scheduler_placement.regions) == ["us-east"] and definition.timeout_secs == 7200
    shown = ms.mngr("exec", "tuned", 'echo "$GREETING $FROM_SECRET"')
    assert shown.stdout.strip() == "hello s3cret", shown.stderr
    _create(ms, "sealed", "--build-arg", "--block-network")
    sealed = _sandboxes(ms)["sealed"]["definition"]
    assert sealed.block_network or sealed.network_access.network_access_type == sealed.network_access.BLOCKED
    links = ms.mngr("exec", "sealed", "ls /sys/class/net")
    assert links.stdout.split() == ["lo"]
    # A GPU makes the SDK create a V1 sandbox (other calls, other ids): mngr works the same with it.
    _create(ms, "accelerated", "--build-arg", "--gpu A10G:2")
    gpu = _sandboxes(ms)["accelerated"]["definition"].resources.gpu_config
    assert (gpu.gpu_type, gpu.count) == ("A10G", 2) and ms.modal.calls["SandboxCreate"] == 1
    assert ms.mngr("exec", "accelerated", "echo $HOME").stdout == "/mngr/home\n"
    ms.env.update(MNGR_PROVIDERS__MODAL__CPUS="0.5", MNGR_PROVIDERS__MODAL__MEMORY="256")
    _create(ms, "configured")
    resources = _sandboxes(ms)["configured"]["definition"].resources
    assert (resources.milli_cpu, resources.memory_mb) == (500, 256)


@pytest.mark.parametrize(("build_arg", "expected"), [
    ("--no-such-option", "unknown build arg '--no-such-option'"),
    ("--block-network --cidr-allowlist 10.0.0.0/8", "not both"),
    ("--cidr-allowlist somewhere", "is not a network"),
    ("--gpu A10G:two", "--gpu must look like TYPE or TYPE:COUNT"),
    ("--timeout 48h", "at most 24h"),
    ("--memory lots", "memory must look like"),
    ("--dockerfile /nowhere/Dockerfile", "no such file"),
])
def test_bad_build_args_are_one_line_and_make_nothing(modal_server, build_arg: str, expected: str) -> None:
    ms = modal_server
    created = ms.mngr("create", "bad", "command", "--in", "modal", "--no-connect", "--build-arg", build_arg,
                      "--", "sleep", "600")
    _one_line_failure(created, 2, expected)
    assert _sandboxes(ms, running=False) == {} and _volumes(ms) == []


@pytest.mark.parametrize(("build_arg", "expected"), [("--gpu NO-SUCH-GPU", "GPU"), ("--region mars", "region")])
def test_what_modal_refuses_is_one_line_and_leaves_nothing(modal_server, build_arg: str, expected: str) -> None:
    ms = modal_server
    created = ms.mngr("create", "refused", "command", "--in", "modal", "--no-connect", "--build-arg", build_arg,
                      "--", "sleep", "600")
    _one_line_failure(created, 2, "modal refused creating the sandbox")
    assert expected in created.stderr
    assert _sandboxes(ms, running=False) == {} and _volumes(ms) == []
    assert _agents(ms) == {}


def test_idle_shutdown_stops_the_sandbox_and_start_brings_the_work_back(modal_server) -> None:
    ms = modal_server
    _create(ms, "idler", "--idle-timeout", "4s")
    assert ms.mngr("exec", "idler", "echo kept > kept.txt && mkdir -p .cfg && echo c > .cfg/x").returncode == 0
    wait_for(lambda: "idler" not in _sandboxes(ms), "the idle sandbox to end", timeout=90)
    agent = _agents(ms)["idler"]  # read from the Volume: nothing was started to list it
    assert agent["state"] == "STOPPED" and agent["work_dir"] == "/mngr/host/work/idler"
    assert "idler" not in _sandboxes(ms)
    started = ms.mngr("start", "idler")
    assert started.returncode == 0, started.stderr
    assert "idler" in _sandboxes(ms)
    # Idle again after 4 s, the host may stop between the listing of an exec and the exec itself
    # (on a loaded machine): an exec that finds it stopped starts it again.
    wait_for(lambda: ms.mngr("exec", "idler", "cat kept.txt .cfg/x").stdout.split() == ["kept", "c"],
             "the work back in a new sandbox", timeout=120)


def test_stopping_the_last_agent_stops_the_sandbox_after_the_stop_grace(modal_server) -> None:
    ms = modal_server
    _create(ms, "pausing")
    limited = ms.mngr("limit", "pausing", "--stop-grace", "2s")
    assert limited.returncode == 0, limited.stderr
    assert ms.mngr("stop", "pausing").returncode == 0
    wait_for(lambda: "pausing" not in _sandboxes(ms), "the sandbox of a host with no running agent to end",
             timeout=90)
    assert _agents(ms)["pausing"]["state"] == "STOPPED"
    assert ms.mngr("start", "pausing").returncode == 0
    assert _agents(ms)["pausing"]["state"] == "RUNNING" and "pausing" in _sandboxes(ms)


@pytest.mark.parametrize("ending", ["timeout", "terminated", "crashed"])
def test_a_sandbox_modal_ended_lists_as_stopped_and_starts_again(modal_server, ending: str) -> None:
    ms = modal_server
    _create(ms, "ended")
    assert ms.mngr("exec", "ended", "echo kept > kept.txt").returncode == 0
    sandbox_id = _sandboxes(ms)["ended"]["id"]
    ms.modal.end_sandbox(sandbox_id, ending)
    assert _agents(ms)["ended"]["state"] == "STOPPED"
    started = ms.mngr("start", "ended")
    assert started.returncode == 0, started.stderr
    assert _sandboxes(ms)["ended"]["id"] != sandbox_id
    assert ms.mngr("exec", "ended", "cat kept.txt").stdout == "kept\n"


def test_a_host_removed_behind_mngrs_back_shows_as_gone_until_destroyed(modal_server) -> None:
    ms = modal_server
    _create(ms, "vanishing")
    _create(ms, "staying")
    ms.modal.end_sandbox(_sandboxes(ms)["vanishing"]["id"], "terminated")
    ms.modal.delete_volume(f"mngr-{ms.namespace}-vanishing")
    agents = _agents(ms)
    assert agents["vanishing"]["state"] == "GONE" and agents["staying"]["state"] == "RUNNING"
    destroyed = ms.mngr("destroy", "-f", "vanishing")
    assert destroyed.returncode == 0, destroyed.stderr
    assert set(_agents(ms)) == {"staying"}


def test_a_name_that_collides_with_another_namespaces_host_is_refused(modal_server) -> None:
    ms = modal_server
    _create(ms, "x-y")  # mngr-NS-x-y: also the name of host "y" of namespace "NS-x"
    other = {"MNGR_PROVIDERS__MODAL__NAMESPACE": ms.namespace + "-x"}
    created = ms.mngr("create", "y", "command", "--in", "modal", "--no-connect", "--", "sleep", "600", env=other)
    _one_line_failure(created, 2, "is not a host of namespace")
    assert _agents(ms, **other) == {} and len(ms.modal.sandboxes()) == 1
    assert ms.mngr("exec", "x-y", "true").returncode == 0


def test_hosts_of_one_image_share_what_modal_built_once(modal_server) -> None:
    ms = modal_server
    _create(ms, "one")
    _create(ms, "two")
    sandboxes = _sandboxes(ms)
    assert sandboxes["one"]["image_id"] == sandboxes["two"]["image_id"]
    assert len(ms.modal.world.images) == 2  # debian_slim and its apt layer, each built once


def test_agents_share_a_host_and_the_last_one_takes_it_with_it(modal_server) -> None:
    ms = modal_server
    _create(ms, "agent-1", "--host", "shared-host")
    _create(ms, "agent-2", "--host", "shared-host")
    assert list(_sandboxes(ms)) == ["shared-host"]
    assert {agent["host"] for agent in _agents(ms).values()} == {"shared-host"}
    assert ms.mngr("destroy", "-f", "agent-1").returncode == 0
    assert list(_sandboxes(ms)) == ["shared-host"] and _volumes(ms) == [f"mngr-{ms.namespace}-shared-host"]
    assert ms.mngr("destroy", "-f", "agent-2").returncode == 0
    assert _sandboxes(ms) == {} and _volumes(ms) == [] and _agents(ms) == {}


def test_a_snapshot_holds_the_work_and_the_file_system_and_a_new_host_starts_from_it(modal_server) -> None:
    ms = modal_server
    _create(ms, "doomed")
    made = ms.mngr("exec", "doomed", "echo precious > work.txt && mkdir -p /opt/extra && echo sys > /opt/extra/f")
    assert made.returncode == 0, made.stderr
    taken = ms.mngr("snapshot", "doomed", "--format", "{id}")
    assert taken.returncode == 0, taken.stderr
    snapshot_id = taken.stdout.strip()
    listed = json.loads(ms.mngr("snapshot", "list", "--format", "json").stdout)
    assert [(row["id"], row["agent"], row["provider"]) for row in listed] == [(snapshot_id, "doomed", "modal")]
    assert ms.mngr("destroy", "-f", "doomed").returncode == 0
    created = ms.mngr("create", "newer", "--snapshot", snapshot_id, "--no-connect", timeout=300)
    assert created.returncode == 0, created.stderr
    shown = ms.mngr("exec", "newer", "cat work.txt /opt/extra/f; ls /var/lib/mngr-snapshot 2>&1 | head -1")
    assert shown.stdout.split()[:2] == ["precious", "sys"], shown.stderr
    assert "No such file" in shown.stdout  # the copy of the old Volume is not left in the new host
    agents = _agents(ms)
    assert set(agents) == {"newer"} and agents["newer"]["type"] == "command"
    destroyed = ms.mngr("snapshot", "destroy", snapshot_id)
    assert destroyed.returncode == 0, destroyed.stderr
    assert json.loads(ms.mngr("snapshot", "list", "--format", "json").stdout) == []


def test_without_credentials_create_says_how_and_list_shows_the_rest(modal_server) -> None:
    ms = modal_server
    local = ms.mngr("create", "here", "command", "--no-connect", "--", "sleep", "600")
    assert local.returncode == 0, local.stderr
    no_credentials = {"MODAL_TOKEN_ID": "", "MODAL_TOKEN_SECRET": ""}
    quiet = ms.mngr("list", "--format", "{name}", env=no_credentials)
    assert quiet.returncode == 0 and quiet.stdout.split() == ["here"] and quiet.stderr == ""
    created = ms.mngr("create", "there", "command", "--in", "modal", "--no-connect", "--", "sleep", "600",
                      env=no_credentials)
    _one_line_failure(created, 1, "modal token new")
    assert _sandboxes(ms, running=False) == {}
    # A host this machine made is reported, with the same line, and the rest still lists.
    _create(ms, "there")
    listed = ms.mngr("list", "--format", "json", env=no_credentials)
    report = json.loads(listed.stdout)
    assert listed.returncode == 1 and [agent["name"] for agent in report["agents"]] == ["here"]
    assert "modal token new" in report["errors"][0]["error"]


def test_a_create_whose_reply_was_lost_once_is_retried_and_makes_one_sandbox(modal_server) -> None:
    ms = modal_server
    ms.modal.faults.lose_reply("SandboxCreateV2")  # made, the reply lost: the SDK retries with the same key
    _create(ms, "retried")
    assert ms.modal.calls["SandboxCreateV2"] == 2
    assert [record["name"] for record in ms.modal.sandboxes()] == [f"mngr-{ms.namespace}-retried"]
    assert _agents(ms)["retried"]["state"] in ("RUNNING", "WAITING")


def test_a_create_whose_replies_are_all_lost_leaves_nothing(modal_server) -> None:
    ms = modal_server
    ms.modal.faults.lose_reply("SandboxCreateV2", times=10)  # more than the SDK's retries
    created = ms.mngr("create", "lost", "command", "--in", "modal", "--no-connect", "--", "sleep", "600")
    _one_line_failure(created, 1, "modal: creating the sandbox failed")
    assert ms.modal.sandboxes(running_only=False)  # it was made, then removed
    assert _sandboxes(ms) == {} and _volumes(ms) == [] and _agents(ms) == {}


def test_errors_modal_retries_are_invisible_and_the_rest_are_one_line(modal_server) -> None:
    ms = modal_server
    ms.modal.faults.fail("SandboxListV2", times=2)  # transient: the SDK retries (3 times at most)
    ms.modal.faults.fail("TaskExecStart", times=1)
    _create(ms, "steady")
    assert _agents(ms)["steady"]["state"] in ("RUNNING", "WAITING")
    ms.modal.faults.fail("SandboxListV2", times=10, status=Status.INTERNAL, message="the scheduler is down")
    listed = ms.mngr("list", "--format", "json")
    report = json.loads(listed.stdout)
    assert listed.returncode == 1 and report["agents"] == []
    assert "the scheduler is down" in report["errors"][0]["error"]
    ms.modal.faults.clear()
    ms.modal.faults.fail("TaskExecStart", status=Status.PERMISSION_DENIED, message="token lacks sandbox access")
    denied = ms.mngr("exec", "steady", "true")
    _one_line_failure(denied, 1, "agent 'steady' was last seen on host 'steady' (modal), which does not answer: "
                                 "modal: starting the helper failed: PermissionDeniedError: token lacks sandbox access")
    assert ms.mngr("exec", "steady", "true").returncode == 0


def test_a_slow_modal_answer_is_cut_at_the_call_timeout(modal_server) -> None:
    ms = modal_server
    _create(ms, "patient")
    ms.modal.faults.delay("SandboxListV2", 30, times=5)
    slow = ms.mngr("list", "--format", "json", env={"MNGR_PROVIDERS__MODAL__CALL_TIMEOUT": "2"})
    report = json.loads(slow.stdout)
    assert slow.returncode == 1 and report["agents"] == []
    assert "no answer from Modal within 2 s (listing sandboxes)" in report["errors"][0]["error"]


def test_a_network_lost_during_create_leaves_a_record_destroy_cleans_up(modal_server) -> None:
    ms = modal_server
    ms.env["MNGR_PROVIDERS__MODAL__CALL_TIMEOUT"] = "4"
    local = ms.mngr("create", "here", "command", "--no-connect", "--", "sleep", "600")
    assert local.returncode == 0, local.stderr
    ms.modal.faults.lose_reply("SandboxCreateV2", then_offline=True)
    created = ms.mngr("create", "halfway", "command", "--in", "modal", "--no-connect", "--", "sleep", "600")
    _one_line_failure(created, 1, "cannot reach Modal (creating the sandbox)")
    assert "halfway" in _sandboxes(ms)  # made, and mngr could not remove it: Modal is out of reach
    offline = ms.mngr("list", "--format", "json")
    assert offline.returncode == 1 and [agent["name"] for agent in json.loads(offline.stdout)["agents"]] == ["here"]
    ms.modal.go_online()  # the network is back
    agent = _agents(ms)["halfway"]
    assert agent["state"] == "GONE" and "creation did not finish" in agent["problem"]
    destroyed = ms.mngr("destroy", "-f", "halfway")
    assert destroyed.returncode == 0, destroyed.stderr
    assert _sandboxes(ms) == {} and _volumes(ms) == [] and set(_agents(ms)) == {"here"}


def test_a_dockerfile_image_and_an_image_without_tmux(modal_server, tmp_path: Path) -> None:
    ms = modal_server
    base = ms.modal.world.base_image
    good = tmp_path / "good" / "Dockerfile"
    good.parent.mkdir()
    (good.parent / "greeting.txt").write_text("from the context\n")
    good.write_text(f"FROM {base}\nCOPY greeting.txt /etc/greeting.txt\n")
    _create(ms, "custom", "--build-arg", f"--dockerfile {good}")
    assert ms.mngr("exec", "custom", "cat /etc/greeting.txt").stdout == "from the context\n"
    bad = tmp_path / "bad" / "Dockerfile"
    bad.parent.mkdir()
    bad.write_text(f"FROM {base}\nRUN rm -f /usr/bin/tmux\n")
    created = ms.mngr("create", "notmux", "command", "--in", "modal", "--no-connect",
                      "--build-arg", f"--dockerfile {bad}", "--", "sleep", "600", timeout=300)
    _one_line_failure(created, 1, "has no tmux")
    assert set(_sandboxes(ms)) == {"custom"} and _volumes(ms) == [f"mngr-{ms.namespace}-custom"]


def test_connect_attaches_a_terminal_to_the_agent_in_its_sandbox(modal_server) -> None:
    ms = modal_server
    _create(ms, "talker", command=("sh", "-c", "echo hello-from-the-sandbox; sleep 600"))
    with terminal_running_mngr(ms, "connect", "talker") as terminal:
        wait_for(lambda: "hello-from-the-sandbox" in terminal.screen(), "the agent's screen in the terminal")
        terminal.press("C-b", "d")
        wait_for(lambda: "[detached" in terminal.screen(), "tmux in the sandbox to detach the terminal")
