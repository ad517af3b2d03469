"""The modal provider through the SDK's stand-in: sandboxes are real containers, volumes real
Docker volumes, every mngr command a real process importing the stand-in as ``modal``.

What the stand-in can and cannot show of Modal is in docs/modal-sdk.md.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import terminal_running_mngr, wait_for
from tests.modal_standin.modal import _standin

pytestmark = pytest.mark.docker


def _create(ms, name: str, *args: str, command: tuple[str, ...] = ("sleep", "600")) -> None:
    created = ms.mngr("create", name, "command", "--in", "modal", "--no-connect", *args, "--", *command, timeout=300)
    assert created.returncode == 0, created.stderr


def _agents(ms, **env: str) -> dict[str, dict]:
    listed = ms.mngr("list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    return {agent["name"]: agent for agent in json.loads(listed.stdout)["agents"]}


def _sandboxes(ms, *, running: bool = True) -> dict[str, dict[str, Any]]:
    """host -> its newest sandbox's record (running ones only, unless ``running`` is False)."""
    found: dict[str, dict[str, Any]] = {}
    for record in _standin.sandbox_records():
        if record["tags"].get("mngr-namespace") != ms.namespace or (running and record["result"] is not None):
            continue
        found.setdefault(record["tags"]["mngr-host"], record)
    return found


def _volumes(ms) -> list[str]:
    from tests.modal_standin.modal import _core

    with _core.state() as state:
        return sorted(record["name"] for record in state["volumes"].values()
                      if record["name"].startswith(f"mngr-{ms.namespace}-"))


def _one_line_failure(result: subprocess.CompletedProcess[str], code: int, expected: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_agent_gets_a_tagged_sandbox_with_its_work_on_a_volume(modal_sandbox) -> None:
    ms = modal_sandbox
    # The agent must still be RUNNING when listed last, however long the commands take.
    ms.env["MNGR_AGENT_QUIET_SECONDS"] = "600"
    _create(ms, "first")
    record = _sandboxes(ms)["first"]
    name = f"mngr-{ms.namespace}-first"
    assert record["name"] == name and record["tags"] == {"mngr-namespace": ms.namespace, "mngr-host": "first"}
    options = record["options"]
    assert options["volumes"] == {"/mngr": name}
    assert record["timeout"] == 24 * 3600  # Modal's longest, never the SDK's 5 minutes
    assert options["block_network"] is False and options["inbound_cidr_allowlist"] is None
    assert options["idle_timeout"] is None  # mngr's idle watcher decides, not Modal's
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


def test_build_args_and_settings_reach_the_sandbox(modal_sandbox) -> None:
    ms = modal_sandbox
    _standin.create_secret("mngr-test-secret", {"FROM_SECRET": "s3cret"})
    _create(ms, "tuned", "--build-arg", "--cidr-allowlist 203.0.113.0/24 --cpus 2 --memory 1g",
            "--build-arg", "--gpu A10G --region us-east --timeout 2h",
            "--build-arg", "--env GREETING=hello --secret mngr-test-secret")
    record = _sandboxes(ms)["tuned"]
    options = record["options"]
    assert options["outbound_cidr_allowlist"] == ["203.0.113.0/24"] and options["block_network"] is False
    assert (options["cpu"], options["memory"], options["gpu"], options["region"]) == (2.0, 1024, "A10G", "us-east")
    assert record["timeout"] == 7200
    shown = ms.mngr("exec", "tuned", 'echo "$GREETING $FROM_SECRET"')
    assert shown.stdout.strip() == "hello s3cret", shown.stderr
    _create(ms, "sealed", "--build-arg", "--block-network")
    assert _sandboxes(ms)["sealed"]["options"]["block_network"] is True
    links = ms.mngr("exec", "sealed", "ls /sys/class/net")
    assert links.stdout.split() == ["lo"]
    ms.env.update(MNGR_PROVIDERS__MODAL__CPUS="0.5", MNGR_PROVIDERS__MODAL__MEMORY="256")
    _create(ms, "configured")
    options = _sandboxes(ms)["configured"]["options"]
    assert (options["cpu"], options["memory"]) == (0.5, 256)


@pytest.mark.parametrize(("build_arg", "expected"), [
    ("--no-such-option", "unknown build arg '--no-such-option'"),
    ("--block-network --cidr-allowlist 10.0.0.0/8", "not both"),
    ("--cidr-allowlist somewhere", "is not a network"),
    ("--gpu A10G:two", "--gpu must look like TYPE or TYPE:COUNT"),
    ("--timeout 48h", "at most 24h"),
    ("--memory lots", "memory must look like"),
    ("--dockerfile /nowhere/Dockerfile", "no such file"),
])
def test_bad_build_args_are_one_line_and_make_nothing(modal_sandbox, build_arg: str, expected: str) -> None:
    ms = modal_sandbox
    created = ms.mngr("create", "bad", "command", "--in", "modal", "--no-connect", "--build-arg", build_arg,
                      "--", "sleep", "600")
    _one_line_failure(created, 2, expected)
    assert _sandboxes(ms, running=False) == {} and _volumes(ms) == []


@pytest.mark.parametrize(("build_arg", "expected"), [("--gpu NO-SUCH-GPU", "GPU"), ("--region mars", "region")])
def test_what_modal_refuses_is_one_line_and_leaves_nothing(modal_sandbox, build_arg: str, expected: str) -> None:
    ms = modal_sandbox
    created = ms.mngr("create", "refused", "command", "--in", "modal", "--no-connect", "--build-arg", build_arg,
                      "--", "sleep", "600")
    _one_line_failure(created, 2, "modal refused creating the sandbox")
    assert expected in created.stderr
    assert _sandboxes(ms, running=False) == {} and _volumes(ms) == []
    assert _agents(ms) == {}


def test_idle_shutdown_stops_the_sandbox_and_start_brings_the_work_back(modal_sandbox) -> None:
    ms = modal_sandbox
    _create(ms, "idler", "--idle-timeout", "4s")
    assert ms.mngr("exec", "idler", "echo kept > kept.txt && mkdir -p .cfg && echo c > .cfg/x").returncode == 0
    wait_for(lambda: "idler" not in _sandboxes(ms), "the idle sandbox to end", timeout=90)
    agent = _agents(ms)["idler"]  # read from the Volume: nothing was started to list it
    assert agent["state"] == "STOPPED" and agent["work_dir"] == "/mngr/host/work/idler"
    assert "idler" not in _sandboxes(ms)
    started = ms.mngr("start", "idler")
    assert started.returncode == 0, started.stderr
    assert "idler" in _sandboxes(ms)
    shown = ms.mngr("exec", "idler", "cat kept.txt .cfg/x")
    assert shown.stdout.split() == ["kept", "c"], shown.stderr


def test_stopping_the_last_agent_stops_the_sandbox_after_the_stop_grace(modal_sandbox) -> None:
    ms = modal_sandbox
    _create(ms, "pausing")
    limited = ms.mngr("limit", "pausing", "--stop-grace", "2s")
    assert limited.returncode == 0, limited.stderr
    assert ms.mngr("stop", "pausing").returncode == 0
    wait_for(lambda: "pausing" not in _sandboxes(ms), "the sandbox of a host with no running agent to end",
             timeout=90)
    assert _agents(ms)["pausing"]["state"] == "STOPPED"
    assert ms.mngr("start", "pausing").returncode == 0
    assert _agents(ms)["pausing"]["state"] == "RUNNING" and "pausing" in _sandboxes(ms)


@pytest.mark.parametrize("ending", ["timeout", "termination"])
def test_a_sandbox_modal_ended_lists_as_stopped_and_starts_again(modal_sandbox, ending: str) -> None:
    ms = modal_sandbox
    _create(ms, "ended")
    assert ms.mngr("exec", "ended", "echo kept > kept.txt").returncode == 0
    sandbox_id = _sandboxes(ms)["ended"]["id"]
    (_standin.simulate_timeout if ending == "timeout" else _standin.simulate_termination)(sandbox_id)
    assert _agents(ms)["ended"]["state"] == "STOPPED"
    started = ms.mngr("start", "ended")
    assert started.returncode == 0, started.stderr
    assert _sandboxes(ms)["ended"]["id"] != sandbox_id
    assert ms.mngr("exec", "ended", "cat kept.txt").stdout == "kept\n"


def test_a_host_removed_behind_mngrs_back_shows_as_gone_until_destroyed(modal_sandbox) -> None:
    ms = modal_sandbox
    _create(ms, "vanishing")
    _create(ms, "staying")
    from tests.modal_standin import modal

    _standin.simulate_termination(_sandboxes(ms)["vanishing"]["id"])
    modal.Volume.objects.delete(f"mngr-{ms.namespace}-vanishing")
    agents = _agents(ms)
    assert agents["vanishing"]["state"] == "GONE" and agents["staying"]["state"] == "RUNNING"
    destroyed = ms.mngr("destroy", "-f", "vanishing")
    assert destroyed.returncode == 0, destroyed.stderr
    assert set(_agents(ms)) == {"staying"}


def test_a_name_that_collides_with_another_namespaces_host_is_refused(modal_sandbox) -> None:
    ms = modal_sandbox
    _create(ms, "x-y")  # mngr-NS-x-y: also the name of host "y" of namespace "NS-x"
    other = {"MNGR_PROVIDERS__MODAL__NAMESPACE": ms.namespace + "-x"}
    created = ms.mngr("create", "y", "command", "--in", "modal", "--no-connect", "--", "sleep", "600", env=other)
    _one_line_failure(created, 2, "is not a host of namespace")
    assert _agents(ms, **other) == {} and len(_standin.sandbox_records()) == 1
    assert ms.mngr("exec", "x-y", "true").returncode == 0


def test_agents_share_a_host_and_the_last_one_takes_it_with_it(modal_sandbox) -> None:
    ms = modal_sandbox
    _create(ms, "agent-1", "--host", "shared-host")
    _create(ms, "agent-2", "--host", "shared-host")
    assert list(_sandboxes(ms)) == ["shared-host"]
    assert {agent["host"] for agent in _agents(ms).values()} == {"shared-host"}
    assert ms.mngr("destroy", "-f", "agent-1").returncode == 0
    assert list(_sandboxes(ms)) == ["shared-host"] and _volumes(ms) == [f"mngr-{ms.namespace}-shared-host"]
    assert ms.mngr("destroy", "-f", "agent-2").returncode == 0
    assert _sandboxes(ms) == {} and _volumes(ms) == [] and _agents(ms) == {}


def test_a_snapshot_holds_the_work_and_the_file_system_and_a_new_host_starts_from_it(modal_sandbox) -> None:
    ms = modal_sandbox
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


def test_without_credentials_create_says_how_and_list_shows_the_rest(modal_sandbox) -> None:
    ms = modal_sandbox
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


def test_a_reply_lost_during_create_leaves_nothing(modal_sandbox) -> None:
    ms = modal_sandbox
    created = ms.mngr("create", "lost", "command", "--in", "modal", "--no-connect", "--", "sleep", "600",
                      env={"MNGR_MODAL_STANDIN_FAULTS": "create-lost"})
    _one_line_failure(created, 1, "cannot reach Modal")
    assert _sandboxes(ms) == {} and _volumes(ms) == [] and _agents(ms) == {}


def test_a_network_lost_during_create_leaves_a_record_destroy_cleans_up(modal_sandbox) -> None:
    ms = modal_sandbox
    local = ms.mngr("create", "here", "command", "--no-connect", "--", "sleep", "600")
    assert local.returncode == 0, local.stderr
    created = ms.mngr("create", "halfway", "command", "--in", "modal", "--no-connect", "--", "sleep", "600",
                      env={"MNGR_MODAL_STANDIN_FAULTS": "create-lost-then-offline"})
    _one_line_failure(created, 1, "cannot reach Modal")
    assert "halfway" in _sandboxes(ms)  # made, and mngr could not remove it: Modal is out of reach
    offline = ms.mngr("list", "--format", "json")
    assert offline.returncode == 1 and [agent["name"] for agent in json.loads(offline.stdout)["agents"]] == ["here"]
    (Path(ms.env["MNGR_MODAL_STANDIN_DIR"]) / "faults").unlink()  # the network is back
    agent = _agents(ms)["halfway"]
    assert agent["state"] == "GONE" and "creation did not finish" in agent["problem"]
    destroyed = ms.mngr("destroy", "-f", "halfway")
    assert destroyed.returncode == 0, destroyed.stderr
    assert _sandboxes(ms) == {} and _volumes(ms) == [] and set(_agents(ms)) == {"here"}


def test_a_dockerfile_image_and_an_image_without_tmux(modal_sandbox, tmp_path: Path) -> None:
    ms = modal_sandbox
    base = ms.env["MNGR_MODAL_STANDIN_BASE_IMAGE"]
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


def test_connect_attaches_a_terminal_to_the_agent_in_its_sandbox(modal_sandbox) -> None:
    ms = modal_sandbox
    _create(ms, "talker", command=("sh", "-c", "echo hello-from-the-sandbox; sleep 600"))
    with terminal_running_mngr(ms, "connect", "talker") as terminal:
        wait_for(lambda: "hello-from-the-sandbox" in terminal.screen(), "the agent's screen in the terminal")
        terminal.press("C-b", "d")
        wait_for(lambda: "[detached" in terminal.screen(), "tmux in the sandbox to detach the terminal")
