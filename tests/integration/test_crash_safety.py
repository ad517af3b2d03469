"""Crashes lose nothing: a helper killed mid-request, a write killed before its rename."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mngr.controller.channel import bootstrap, protocol
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import ProcessStream
from mngr.controller.errors import ChannelClosed
from tests.conftest import MNGR_BIN, failure_when_cut


def test_helper_killed_mid_request_gives_a_clear_error_and_the_next_command_works(sandbox) -> None:
    assert sandbox.mngr("create", "victim", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    client = RpcClient.bootstrap(ProcessStream("local", bootstrap.stage1_argv(sys.executable), sandbox.env))
    helper_pid = client.call(protocol.GetHelperInfo(), protocol.HelperInfo).pid
    error = failure_when_cut(client, "victim", lambda: os.kill(helper_pid, signal.SIGKILL))
    assert isinstance(error, ChannelClosed)
    assert "helper exited unexpectedly" in str(error) and "during SendMessage" in str(error)
    assert "killed by signal 9" in str(error)
    with pytest.raises(ChannelClosed):
        client.call(protocol.Ping(), protocol.Pong)
    client.close()

    listed = sandbox.mngr("list", "--format", "{name} {state}")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:1] == ["victim"]
    assert sandbox.mngr("destroy", "-f", "victim").returncode == 0


_CRASH_DURING_WRITE = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from mngr.remote_helper import state
def die(*args):
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = die
state.atomic_write_json(sys.argv[2], {"name": "new", "status": "half"})
"""


def test_crash_between_temp_write_and_rename_leaves_the_old_record(sandbox) -> None:
    assert sandbox.mngr("create", "solid", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    (agent_dir,) = (sandbox.host_dir / "agents").iterdir()
    record_path = agent_dir / "record.json"
    before = record_path.read_bytes()
    repo_root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    crashed = subprocess.run([sys.executable, "-c", _CRASH_DURING_WRITE, repo_root, str(record_path)],
                             env=sandbox.env, capture_output=True)
    assert crashed.returncode == -signal.SIGKILL
    assert record_path.read_bytes() == before
    assert json.loads(before)["name"] == "solid"
    # The record's own temp file only: the host daemon's watcher may be writing the event
    # log's state.json (also temp + rename) at this very moment.
    leftovers = [p.name for p in agent_dir.iterdir() if p.name.startswith(".record.json.tmp-")]
    assert len(leftovers) == 1, "the crash happened after the temp file was written"
    listed = sandbox.mngr("list", "--format", "{name} {state}")
    assert listed.returncode == 0 and listed.stdout.split() in (["solid", "RUNNING"], ["solid", "WAITING"])
    stopped = sandbox.mngr("stop", "solid")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(record_path.read_text())["status"] == "stopped"


def test_interrupted_controller_leaves_no_orphan(sandbox) -> None:
    """SIGINT to the CLI while it creates: the helper (own session) finishes, nothing half-made."""
    process = subprocess.Popen(
        [str(MNGR_BIN), "create", "interrupted", "command", "--no-connect", "--", "sleep", "600"],
        env=sandbox.env, cwd=sandbox.work_dir, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.15)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)

    def consistent() -> bool:
        listed = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
        live = [f"mngr-{a['name']}" for a in listed if a["state"] in ("RUNNING", "WAITING")]
        return all(a["state"] != "UNKNOWN" for a in listed) and live == sandbox.sessions()

    deadline = time.monotonic() + 20
    while not consistent():
        assert time.monotonic() < deadline, "records and tmux sessions never agreed"
        time.sleep(0.1)
