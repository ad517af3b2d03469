"""The output contract and -q/-v/--debug on real agents and hosts: what the agent commands
print with --format json and jsonl decodes into controller/records.py's types; -v shows
each action on an SSH host with its time; --debug shows an internal error's traceback;
-q leaves warnings out."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import msgspec
import pytest

from mngr.controller import records
from tests.sshd import SshHost, unavailable_reason


def _decoded(command: str, printed: subprocess.CompletedProcess[str], kind: str = "json") -> object:
    assert printed.returncode == 0, printed.stderr
    contract = records.CONTRACTS[command]
    if kind == "jsonl":
        lines = printed.stdout.splitlines()
        assert lines, f"mngr {command} printed no record"
        return [msgspec.json.decode(line, type=contract.record) for line in lines]
    return msgspec.json.decode(printed.stdout, type=contract.document)


def test_the_agent_commands_print_what_their_schema_says(sandbox, tmp_path: Path) -> None:
    mngr = sandbox.mngr
    work = tmp_path / "agent-work"
    work.mkdir()
    (work / "a.txt").write_text("a\n")
    created = _decoded("create", mngr("create", "box", "command", "--no-connect", "--work-dir", str(work),
                                      "--label", "team=web", "--format", "json", "--", "cat"))
    assert isinstance(created, records.AgentRecord) and created.labels == {"team": "web"}
    listed = mngr("list", "--format", "{name} {labels} [{pid}] {exit_status}")
    assert re.fullmatch(r"box team=web \[\d+\] \n", listed.stdout), listed.stdout
    waited = _decoded("wait", mngr("wait", "box", "--for", "running,waiting", "--format", "json"))
    assert [record.outcome for record in waited] == ["reached"]  # type: ignore[attr-defined]
    sent = _decoded("message", mngr("message", "box", "hello", "--format", "jsonl"), "jsonl")
    assert [record.result for record in sent] == ["sent"]  # type: ignore[attr-defined]
    ran = _decoded("exec", mngr("exec", "box", "cat a.txt", "--format", "json"))
    assert [(record.stdout, record.exit_code) for record in ran] == [("a\n", 0)]  # type: ignore[attr-defined]
    limit = _decoded("limit", mngr("limit", "box", "--format", "json"))
    assert isinstance(limit, records.LimitRecord) and limit.host == "local"
    local = tmp_path / "to-push"
    local.mkdir()
    (local / "b.txt").write_text("b\n")
    pushed = _decoded("push", mngr("push", "box", str(local), "--format", "jsonl"), "jsonl")
    assert [change.path for change in pushed[0].changes] == ["b.txt"]  # type: ignore[index, attr-defined]
    pulled = _decoded("pull", mngr("pull", "box", str(tmp_path / "pulled"), "--format", "json"))
    assert isinstance(pulled, records.SyncRecord) and pulled.bytes > 0
    snapshot = _decoded("snapshot create", mngr("snapshot", "box", "--format", "json"))
    assert isinstance(snapshot, records.SnapshotRecord)
    assert mngr("snapshot", "list", "--format", "{id}").stdout == f"{snapshot.id}\n"
    stopped = _decoded("stop", mngr("stop", "box", "--format", "jsonl"), "jsonl")
    assert [record.result for record in stopped] == ["stopped"]  # type: ignore[attr-defined]
    started = _decoded("start", mngr("start", "box", "--format", "json"))
    assert [record.result for record in started] == ["started"]  # type: ignore[attr-defined]
    events = _decoded("events", mngr("events", "box", "--format", "json"))
    assert {"created", "stopped", "started"} <= {event.event for event in events}  # type: ignore[attr-defined]
    provisioned = _decoded("provision", mngr("provision", "box", "--dry-run", "--format", "json"))
    assert [record.name for record in provisioned] in ([], ["box"])  # type: ignore[attr-defined]
    destroyed = _decoded("destroy", mngr("destroy", "box", "-f", "--format", "json"))
    assert [record.result for record in destroyed] == ["destroyed"]  # type: ignore[attr-defined]


def _faulty_plugin(root: Path) -> dict[str, str]:
    """A plugin whose command fails with a defect and whose list field is refused (a warning)."""
    site = root / "site"
    site.mkdir()
    (site / "faulty_commands.py").write_text(
        "import click\n"
        "from mngr.controller.plugin_spec import hookimpl\n\n"
        "@click.command('boom')\ndef boom():\n    raise RuntimeError('forced')\n\n"
        "@hookimpl\ndef mngr_cli_commands():\n    return [boom]\n\n"
        "@hookimpl\ndef mngr_list_fields():\n    return {'name': lambda row: 'taken'}\n"
    )
    info = site / "faulty_commands-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[mngr]\nfaulty = faulty_commands\n")
    return {"PYTHONPATH": str(site)}


def test_debug_shows_the_traceback_of_an_internal_error(sandbox) -> None:
    env = _faulty_plugin(sandbox.root)
    plain = sandbox.mngr("boom", env=env)
    assert plain.returncode == 1
    assert plain.stderr.endswith("mngr: internal error: RuntimeError: forced (--debug shows the traceback)\n")
    assert "Traceback" not in plain.stderr
    for args in (["boom", "--debug"], ["--debug", "boom"]):
        debugged = sandbox.mngr(*args, env=env)
        assert debugged.returncode == 1
        assert "Traceback (most recent call last)" in debugged.stderr and "raise RuntimeError('forced')" in \
            debugged.stderr, debugged.stderr
        assert debugged.stderr.endswith("mngr: internal error: RuntimeError: forced (--debug shows the traceback)\n")


def test_quiet_leaves_warnings_out_and_keeps_the_records(sandbox) -> None:
    env = _faulty_plugin(sandbox.root)
    loud = sandbox.mngr("list", "--format", "json", env=env)
    assert loud.returncode == 0 and "mngr: warning: plugin 'faulty': list field 'name' is taken" in loud.stderr
    quiet = sandbox.mngr("list", "-q", "--format", "json", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["agents"] == []


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_verbose_shows_each_action_on_an_ssh_host_and_its_time(sandbox) -> None:
    client_dir = sandbox.root / "client"
    client_dir.mkdir()
    host = SshHost("testhost", client_dir)
    try:
        host.trust()
        config = sandbox.root / "ssh_config"
        config.write_text(host.client_config())
        sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        created = sandbox.mngr("-v", "create", "far", "command", "--in", "ssh", "--host", "testhost",
                               "--no-connect", "--", "sleep", "600")
        assert created.returncode == 0, created.stderr
        err = created.stderr
        assert re.search(r"^mngr: ssh testhost: open channel: ssh .*testhost", err, re.MULTILINE), err
        assert re.search(r"^mngr: ssh testhost: bootstrap helper \(\d+\.\d{3} s\)$", err, re.MULTILINE), err
        assert re.search(r"^mngr: ssh testhost: CreateAgent.* \(\d+\.\d{3} s\)$", err, re.MULTILINE), err
        assert re.search(r"^mngr: ssh testhost: \d+ request\(s\), \d+\.\d{3} s on this host$", err, re.MULTILINE), err
        assert "created agent far" in created.stdout
        plain = sandbox.mngr("list", "--format", "{name}")
        assert plain.stderr == "" and "far" in plain.stdout.split()
        listed = sandbox.mngr("list", "--verbose", "--format", "{name}")
        assert re.search(r"^mngr: ssh testhost: ListAgents \(\d+\.\d{3} s\)$", listed.stderr, re.MULTILINE), \
            listed.stderr
        assert sandbox.mngr("destroy", "far", "-f", "-q").returncode == 0
    finally:
        host.stop()
