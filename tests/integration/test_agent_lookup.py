"""By-name commands go straight to the agent's recorded host (controller/agent_lookup.py)
and resolve a name exactly as the full listing does when the record does not place it.

"Another machine's mngr" is mngr run with a state dir of its own: it shares the hosts and
the config, not the record. "An older mngr" made two agents of one name on two hosts: here,
another machine's mngr that knows only one of the hosts (names are unique across the hosts
a create can reach).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ssh import _use, started_host
from tests.sshd import SshHost, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@pytest.fixture
def two_hosts(sandbox) -> Iterator[tuple[SshHost, SshHost]]:
    """SSH hosts ``testhost`` and ``other``, both configured, each its own sshd."""
    with started_host(sandbox, "testhost") as first, started_host(sandbox, "other") as second:
        _use(sandbox, first, second)
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.testhost]\n[hosts.other]\n")
        yield first, second


def _elsewhere(sandbox) -> dict[str, str]:
    """The environment of another machine's mngr: its own state dir (so its own record)."""
    return {"MNGR_STATE_DIR": str(sandbox.tmux_dir / "s2")}


def _knowing_only(sandbox, host: str) -> dict[str, str]:
    """Another machine's mngr whose config names ``host`` only."""
    config_dir = sandbox.root / f"config-{host}"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.toml").write_text(f"[hosts.{host}]\n")
    return {"MNGR_STATE_DIR": str(sandbox.tmux_dir / f"s-{host}"), "MNGR_CONFIG_DIR": str(config_dir)}


def _create(sandbox, name: str, host: str, env: dict[str, str] | None = None) -> None:
    created = _try_create(sandbox, name, host, env)
    assert created.returncode == 0, created.stderr


def _try_create(sandbox, name: str, host: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return sandbox.mngr("create", name, "command", "--in", "ssh", "--host", host, "--no-connect",
                        "--", "sleep", "600", env=env)


def _work_dirs(sandbox, name: str) -> dict[str, Path]:
    """Host -> work dir of the agents called ``name``, as a full listing sees them."""
    listed = json.loads(sandbox.mngr("list", "--format", "json", env=_elsewhere(sandbox)).stdout)
    return {agent["host"]: Path(agent["work_dir"]) for agent in listed["agents"] if agent["name"] == name}


def _push_file(sandbox, name: str, file_name: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    source = sandbox.root / f"src-{file_name}"
    source.mkdir(exist_ok=True)
    (source / file_name).write_text(file_name)
    return sandbox.mngr("push", name, str(source), env=env)


def _record(sandbox) -> dict:
    return json.loads((sandbox.state_dir / "completion.json").read_text())


def test_the_recorded_host_is_used_and_a_name_is_not_made_twice(sandbox, two_hosts) -> None:
    _create(sandbox, "task", "testhost")
    first = _push_file(sandbox, "task", "one")  # the create recorded where it is
    assert first.returncode == 0, first.stderr
    (work,) = _work_dirs(sandbox, "task").values()
    assert (work / "one").read_text() == "one"
    for env in (None, _elsewhere(sandbox)):  # here, or another machine that shares the hosts
        refused = _try_create(sandbox, "task", "other", env)
        assert refused.returncode != 0
        assert "agent 'task' already exists on testhost (ssh)" in refused.stderr
    assert list(_work_dirs(sandbox, "task")) == ["testhost"]
    listed = json.loads(sandbox.mngr("list", "--format", "json").stdout)
    assert [(agent["name"], agent["host"]) for agent in listed["agents"]] == [("task", "testhost")]


def test_a_name_made_elsewhere_is_seen_by_the_next_complete_listing(sandbox, two_hosts) -> None:
    """The documented limit: a same-named agent made by another machine's mngr is not seen
    until something lists every host again; then the name is ambiguous, as before."""
    _create(sandbox, "task", "testhost")
    assert _push_file(sandbox, "task", "one").returncode == 0
    _create(sandbox, "task", "other", env=_knowing_only(sandbox, "other"))
    recorded = _push_file(sandbox, "task", "two")
    assert recorded.returncode == 0, recorded.stderr
    dirs = _work_dirs(sandbox, "task")
    assert (dirs["testhost"] / "two").exists() and not (dirs["other"] / "two").exists()
    listed = sandbox.mngr("list", "--format", "json")  # sees both: the record holds two hosts now
    assert sorted(a["host"] for a in json.loads(listed.stdout)["agents"]) == ["other", "testhost"]
    ambiguous = _push_file(sandbox, "task", "three")
    assert ambiguous.returncode != 0
    assert ("agent name 'task' exists on several hosts: testhost (ssh), other (ssh); "
            "name one as task@testhost or task@other") in ambiguous.stderr
    named = _push_file(sandbox, "task@other", "four")
    assert named.returncode == 0, named.stderr
    assert (dirs["other"] / "four").exists() and not (dirs["testhost"] / "four").exists()


def test_an_agent_moved_since_the_record_is_found_where_it_is_now(sandbox, two_hosts) -> None:
    _create(sandbox, "task", "testhost")
    assert _push_file(sandbox, "task", "one").returncode == 0
    elsewhere = _elsewhere(sandbox)
    assert sandbox.mngr("destroy", "task", "--force", env=elsewhere).returncode == 0
    _create(sandbox, "task", "other", env=elsewhere)
    moved = _push_file(sandbox, "task", "two")
    assert moved.returncode == 0, moved.stderr
    (work,) = _work_dirs(sandbox, "task").values()
    assert (work / "two").read_text() == "two"
    record = _record(sandbox)
    assert [entry for entry in record["agents"] if entry[0] == "task"] == [["task", "other", "ssh"]]
    pulled = sandbox.root / "pulled"
    assert sandbox.mngr("pull", "task", str(pulled)).returncode == 0  # through the renewed record
    assert (pulled / "two").read_text() == "two"


def test_a_destroyed_agent_is_not_found_as_before(sandbox, two_hosts) -> None:
    _create(sandbox, "task", "testhost")
    assert _push_file(sandbox, "task", "one").returncode == 0
    assert sandbox.mngr("destroy", "task", "--force", env=_elsewhere(sandbox)).returncode == 0
    gone = _push_file(sandbox, "task", "two")
    assert gone.returncode != 0 and "no agent named 'task'" in gone.stderr


def _kill_host(sandbox, host: SshHost) -> None:
    """``host`` stops answering: its sshd and everything on it, and the shared connections."""
    host.stop()
    for pid in sandbox.own_processes():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ssh"):
                os.kill(pid, signal.SIGKILL)


def test_a_dead_recorded_host_is_reported_once_with_why(sandbox, two_hosts) -> None:
    _, second = two_hosts
    _create(sandbox, "task", "other")
    assert _push_file(sandbox, "task", "one").returncode == 0
    _kill_host(sandbox, second)
    failed = _push_file(sandbox, "task", "two")
    assert failed.returncode != 0
    # Where the agent was, and why that host cannot say: not "no agent named 'task'".
    assert failed.stderr.startswith("mngr: error: agent 'task' was last seen on host 'other' (ssh), which does "
                                    "not answer: "), failed.stderr
    assert failed.stderr.count("\n") == 1 and failed.stderr.count("was last seen") == 1


def test_an_agent_on_a_live_host_is_found_when_the_recorded_one_is_dead(sandbox, two_hosts) -> None:
    _, second = two_hosts
    _create(sandbox, "task", "other")
    assert _push_file(sandbox, "task", "one").returncode == 0
    _create(sandbox, "task", "testhost", env=_knowing_only(sandbox, "testhost"))
    _kill_host(sandbox, second)
    found = _push_file(sandbox, "task", "two")
    assert found.returncode == 0, found.stderr
    (work,) = [path for host, path in _work_dirs(sandbox, "task").items() if host == "testhost"]
    assert (work / "two").read_text() == "two"


def test_each_of_two_agents_of_one_name_can_be_named_by_every_command(sandbox, two_hosts) -> None:
    """Two agents called ``task`` (an older mngr's doing): NAME alone is ambiguous for every
    by-name command; NAME@HOST and the agent's id name one."""
    # The agent on testhost must still be RUNNING at the end, however long the commands take.
    sandbox.env["MNGR_AGENT_QUIET_SECONDS"] = "600"
    _create(sandbox, "task", "testhost", env=_knowing_only(sandbox, "testhost"))
    _create(sandbox, "task", "other", env=_knowing_only(sandbox, "other"))
    listed = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
    ids = {agent["host"]: agent["id"] for agent in listed}
    work_dirs = {agent["host"]: agent["work_dir"] for agent in listed}
    assert sorted(ids) == ["other", "testhost"] and work_dirs["other"] != work_dirs["testhost"]
    for command in (["stop", "task"], ["limit", "task"], ["keepalive", "task", "--for", "1h"],
                    ["message", "task", "hi"], ["exec", "task", "true"], ["transcript", "task"]):
        ambiguous = sandbox.mngr(*command)
        assert ambiguous.returncode != 0, command
        assert "name one as task@testhost or task@other" in ambiguous.stderr, command
    ran = sandbox.mngr("exec", "task@other", "pwd")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == work_dirs["other"]
    assert sandbox.mngr("limit", "task@testhost").returncode == 0
    assert sandbox.mngr("keepalive", "task@other", "--for", "1h").returncode == 0
    assert sandbox.mngr("transcript", "task@other").returncode == 0
    stopped = sandbox.mngr("stop", "task@other", "--format", "json")
    assert stopped.returncode == 0, stopped.stderr
    states = {agent["host"]: agent["state"]
              for agent in json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]}
    assert states == {"other": "STOPPED", "testhost": "RUNNING"}
    destroyed = sandbox.mngr("destroy", ids["testhost"], "--force")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "destroyed agent task on testhost" in destroyed.stdout
    left = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
    assert [(agent["host"], agent["state"]) for agent in left] == [("other", "STOPPED")]
    assert sandbox.mngr("start", "task").returncode == 0  # one left: the name alone names it


_RECORDING_PROVIDER = """
import os

from mngr.controller.plugin_spec import hookimpl
from mngr.providers.local import LocalProvider


class RecordingLocal(LocalProvider):
    def open_stream(self, host, **options):
        with open(os.environ["RECORDING_LOG"], "a") as log:
            log.write(f"{host}\\n")
        return super().open_stream(host, **options)


@hookimpl
def mngr_providers():
    return [RecordingLocal]
"""


def test_a_plugin_provider_is_the_one_used_with_or_without_the_record(sandbox) -> None:
    """An installed plugin may replace a built-in provider: then providers come from the
    registry, on the record's path too."""
    site = sandbox.root / "site"
    (site / "recording-1.0.dist-info").mkdir(parents=True)
    (site / "recording-1.0.dist-info" / "entry_points.txt").write_text("[mngr]\nrecording = recording_local\n")
    (site / "recording_local.py").write_text(_RECORDING_PROVIDER)
    log = sandbox.root / "listed.log"
    sandbox.env.update(PYTHONPATH=str(site), RECORDING_LOG=str(log))
    work = sandbox.root / "agent-work"
    work.mkdir()
    created = sandbox.mngr("create", "box", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    for file_name in ("one", "two"):  # by the full listing, then by the record
        log.unlink(missing_ok=True)
        pushed = _push_file(sandbox, "box", file_name)
        assert pushed.returncode == 0, pushed.stderr
        assert log.read_text() == "local\n"  # the plugin's provider reached the host, once
        assert (work / file_name).read_text() == file_name
    assert ["box", "local", "local"] in _record(sandbox)["agents"]
    sandbox.env["MNGR_DISABLE_PLUGINS"] = "recording"  # the built-in local provider again
    log.unlink()
    assert _push_file(sandbox, "box", "three").returncode == 0
    assert not log.exists() and (work / "three").read_text() == "three"


def test_a_wrong_or_dead_early_channel_changes_nothing(sandbox, two_hosts) -> None:
    """A push connects early to the socket that last reached the agent's recorded host
    (controller/early_channel.py). One that now leads to another host, or to nothing, is
    not used: the push lands where it would have, and the record is put right."""
    _create(sandbox, "task", "testhost")
    _create(sandbox, "job", "other")
    for name in ("task", "job", "task"):
        assert _push_file(sandbox, name, f"first-{name}").returncode == 0
    channels_file = sandbox.state_dir / "channels.json"
    channels = json.loads(channels_file.read_text())
    assert set(channels) == {"ssh/testhost", "ssh/other"}
    works = {name: _work_dirs(sandbox, name) for name in ("task", "job")}
    channels_file.write_text(json.dumps({"ssh/testhost": channels["ssh/other"],
                                         "ssh/other": str(sandbox.root / "gone.sock")}))
    assert _push_file(sandbox, "task", "swapped").returncode == 0
    assert _push_file(sandbox, "job", "dead").returncode == 0
    assert (works["task"]["testhost"] / "swapped").read_text() == "swapped"
    assert (works["job"]["other"] / "dead").read_text() == "dead"
    assert not (works["job"]["other"] / "swapped").exists()
    assert json.loads(channels_file.read_text()) == channels
