"""The controller's msgspec schema and the helper's stdlib schema must describe one protocol."""

from __future__ import annotations

import json
import os
import types
import typing
from pathlib import Path

import msgspec
import pytest

from mngr.controller.channel import protocol
from mngr.remote_helper import wire

GOLDEN_DIR = Path(__file__).parent.parent / "golden"

AGENT = protocol.AgentInfo(
    id="agent-0123", name="demo", type="command", state="RUNNING", command="sleep 60",
    work_dir="/tmp/wd", created_at="2026-01-01T00:00:00.000+00:00", labels={"team": "infra"},
    work_dir_origin={"kind": "worktree", "branch": "mngr/demo", "repo": "/home/u/project"},
    archived=True, pid=42, exit_status=None, idle_seconds=1.5, problem=None,
)

# One instance of every message type, with awkward values where a field allows them.
SAMPLES: dict[str, msgspec.Struct] = {
    "Ping": protocol.Ping(),
    "GetHelperInfo": protocol.GetHelperInfo(),
    "ListAgents": protocol.ListAgents(quiet_seconds=2.5),
    "FindAgent": protocol.FindAgent(name="demo"),
    "CreateAgent": protocol.CreateAgent(
        name="demo", agent_type="command", command="echo 'héllo' \"$(x)\"; \\", binary="echo",
        work_dir="/tmp/wd", env={"A": "1\n2", "B": "\u2603"}, labels={"k": "v"}, base_env={"PATH": "/bin"},
        umask=0o027, interaction={"ready_pattern": "^> ", "dialogs": [["trust", "Trust\\?", ""]], "session_id": ""},
        path_dirs=["/h/clis/" + "ab" * 32],
        agent_config={"dir": "cli-config", "env_var": "CLAUDE_CONFIG_DIR", "files": {".claude.json": "{}\n"},
                      "env": {"ANTHROPIC_API_KEY": "sk-x"}},
        work_dir_origin={"kind": "copy", "branch": "mngr/demo", "base": "0" * 40},
    ),
    "WriteAgentConfig": protocol.WriteAgentConfig(name="demo", agent_config={
        "dir": "cli-config", "env_var": "CODEX_HOME", "files": {"config.toml": 'model = "o3"\n'}, "env": {}},
        path_dirs=["/h/clis/k/bin", "/h/clis/k/codex-path"]),
    "ReadAgentConfig": protocol.ReadAgentConfig(name="demo", salt="0f1e2d3c"),
    "StopAgent": protocol.StopAgent("demo"),
    "StartAgent": protocol.StartAgent("demo", base_env=None),
    "DestroyAgent": protocol.DestroyAgent(name="demo"),
    "RenameAgent": protocol.RenameAgent(name="demo", new_name="demo-2"),
    "SetLabels": protocol.SetLabels(name="demo", add={"team": "in fra", "tier": ""}, remove=["old"]),
    "SetArchived": protocol.SetArchived(name="demo", archived=True, grace=0.5),
    "SendMessage": protocol.SendMessage(name="demo", text="line1\nline2\t\x01", wait_ready=True,
                                        ready_pattern=r"^\$ ", ready_quiet_seconds=0.5, ready_timeout=9.0),
    "AwaitInput": protocol.AwaitInput(name="demo", timeout=12.5),
    "CapturePane": protocol.CapturePane(name="demo", full=True),
    "ReadOutput": protocol.ReadOutput(name="demo", source="claude", offset=None, tail_lines=100, max_bytes=1024),
    "NoteActivity": protocol.NoteActivity(name="demo", source="attach"),
    "SetIdleSettings": protocol.SetIdleSettings(timeout=90.0, mode="custom", sources=["output", "cpu"],
                                                command="sudo poweroff", stop_grace=None, only_if_unset=True,
                                                dry_run=True),
    "KeepAlive": protocol.KeepAlive(name="demo", seconds=7200.0),
    "ReadWatcherLog": protocol.ReadWatcherLog(tail_lines=5),
    "GetManifest": protocol.GetManifest(name="demo", include_ignored=True, work_dir="",
                                          with_uncommitted=True, known="a1b2c3.4.5"),
    "WriteFiles": protocol.WriteFiles(name="demo", dirs=[["src", 0o755]], links=[["l", "../t"]],
                                      parts=[["src/a b.txt", 0o644, 1700000000123456789, 0, 5, False, 0, True]],
                                      deletes=["old/ünï"], known="a1b2c3.4.5",
                                      expect=[["src/a b.txt", "-", 0, 0, 0, ""],
                                              ["old/ünï", "f", 0o644, 5, 1700000000123456789, ""]]),
    "ReadFiles": protocol.ReadFiles(name="demo", paths=["src/a b.txt", "x"]),
    "WatchChanges": protocol.WatchChanges(name="demo", cursor="a1b2c3.0.17", wait=5.0),
    "ReadEvents": protocol.ReadEvents(cursor='{"host":[12,340]}', since="2026-01-02T03:04:05.000+00:00", wait=10.0,
                                      quiet_seconds=1.5, max_lines=100),
    "StatPaths": protocol.StatPaths(name="demo", paths=["src/a b.txt", "gone"]),
    "GetSignatures": protocol.GetSignatures(name="demo", path="big/ä.bin"),
    "WriteDelta": protocol.WriteDelta(name="demo", path="big.bin", old_version="1:2:3:4:5", block=65536,
                                      offset=4194304, final=True, mode=0o640, mtime_ns=1700000000123456789,
                                      digest="ab" * 32, compressed=True, known="a1b2c3.4.5"),
    "ReadDelta": protocol.ReadDelta(name="demo", path="big.bin", block=65536, old_size=314572800,
                                    literal_budget=16777216, offset=33554432, length=33554432),
    "PrepareWorkDir": protocol.PrepareWorkDir(name="demo", path="~/work/demo", remove=False,
                                                branch="feature/x", new_branch="mngr/demo",
                                                clone_url="https://example.com/r.git"),
    "GetGitBundle": protocol.GetGitBundle(name="demo"),
    "GetAgentSpec": protocol.GetAgentSpec(name="demo"),
    "GetWorkState": protocol.GetWorkState(name="demo"),
    "ExecStart": protocol.ExecStart(name="demo", command="ls -la; echo $HOME"),
    "ExecRead": protocol.ExecRead(exec_id=3, wait=0.25),
    "ExecKill": protocol.ExecKill(exec_id=3),
    "CollectGarbage": protocol.CollectGarbage(dry_run=False, min_age=0.0),
    "ProbePorts": protocol.ProbePorts(ports=[8000, 65535]),
    "EnsureCli": protocol.EnsureCli(program="claude", version="2.1.197", mode="copy",
                                    bundles={"x86_64": ["ab" * 32, 245517112, ["."]]}),
    "PutCliPart": protocol.PutCliPart(key="ab" * 32, upload="0123456789abcdef", path="codex-path/rg",
                                      offset=8388608, length=8388608, sha256="ef" * 32, compressed=True),
    "FinishCli": protocol.FinishCli(key="ab" * 32, upload="0123456789abcdef", program="codex", version="0.171.0",
                                    entry="bin/codex", files=[["bin/codex", "cd" * 32, 315109048, 0o755,
                                                               ["ef" * 32, "01" * 32]]]),
    "CliPartStored": protocol.CliPartStored(seconds=0.031),
    "CliPlace": protocol.CliPlace(machine="aarch64", source="cache", dirs=["/h/clis/k/bin", "/h/clis/k/codex-path"],
                                  host_version="2.0.1 (Claude Code)", key="ab" * 32, upload="",
                                  shared_dir="/mngr-agent-clis"),
    "Pong": protocol.Pong(),
    "HelperInfo": protocol.HelperInfo(version="abc", pid=1, python="3.8.18", hostname="h", host_dir="/x",
                                      daemon_socket="/x/host/daemon-1.sock"),
    "AgentList": protocol.AgentList([AGENT, AGENT], protocol.HostIdle(
        idle_timeout=60.0, idle_mode="io", idle_seconds=12.5, last_activity="output", last_activity_agent="demo",
        last_shutdown_at="2026-01-01T00:00:00.000+00:00", last_shutdown_reason="idle for 61 s")),
    "AgentReply": protocol.AgentReply(AGENT),
    "Done": protocol.Done(),
    "Manifest": protocol.Manifest(root="/work", uncommitted=["notes.md"], tag="a1b2c3.4.6", unchanged=False),
    "Written": protocol.Written(tag="a1b2c3.4.7"),
    "WorkDir": protocol.WorkDir(path="/home/u/.mngr/work/demo"),
    "WorkState": protocol.WorkState(uncommitted=["notes.txt"], heads={"HEAD": "0" * 40, "refs/heads/mngr/demo": "0" * 40},
                                    unpushed=3),
    "AgentSpec": protocol.AgentSpec(agent_type="claude", command="claude --model opus", binary="claude",
                                    env={"API_KEY": "x y"}, labels={"team": "a"}, work_dir="/w", branch="main"),
    "AgentConfigState": protocol.AgentConfigState(
        configured=True, env_var="CLAUDE_CONFIG_DIR",
        files={".claude.json": {"sha256": "ab" * 32, "tree": {"projects": {}, "hasCompletedOnboarding": "cd" * 32}},
               "settings.json": {"sha256": "ef" * 32, "tree": None}},
        env={"ANTHROPIC_API_KEY": "12" * 32}, written_files=[".claude.json", "settings.json"], pending=True,
        binary="claude", path_dirs=["/h/clis/k/."]),
    "Progress": protocol.Progress(),
    "Signatures": protocol.Signatures(block=65536, size=314572800, version="1:2:3:4:5"),
    "DeltaData": protocol.DeltaData(version="1:2:3:4:5", size=10, mode=0o600, mtime_ns=1700000000123456789,
                                    digest="cd" * 32, compressed=True, skipped=[["x", "gone"]]),
    "FileData": protocol.FileData(files=[["x", 0, 3, True, 0o600, 1700000000123456789, 10]]),
    "Changes": protocol.Changes(cursor="a1b2c3.0.18", paths=["src/a b.txt", "gone"], overflow=False),
    "Events": protocol.Events(events=[{"time": "2026-01-02T03:04:05.000+00:00", "event": "state", "agent": "fixer",
                                       "agent_id": "agent-1", "state": "WAITING", "waiting_reason": "input"}],
                              cursor='{"host":[12,400]}', more=True),
    "IdleSettings": protocol.IdleSettings(timeout=None, mode="disabled", sources=[], command="", stop_grace=30.0,
                                          cpu_threshold=0.05),
    "Captured": protocol.Captured(),
    "OutputChunk": protocol.OutputChunk(path="/x/output.log", start=10, end=20, file_id="1:2"),
    "ExecStarted": protocol.ExecStarted(exec_id=3),
    "ExecOutput": protocol.ExecOutput(stdout_length=5, exit_code=None),
    "Garbage": protocol.Garbage(found=[["tmux session without a record", "mngr-ghost"]]),
    "PortsOpen": protocol.PortsOpen(listening=[8000]),
    "Error": protocol.Error(code="not_found", message="no agent named 'x'"),
}


def _kind(annotation: object) -> str:
    """The helper's field kind for a msgspec field annotation."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        (annotation,) = members
    origin = typing.get_origin(annotation)
    if annotation is str:
        kind = "str"
    elif annotation is bool:
        kind = "bool"
    elif annotation is int:
        kind = "int"
    elif annotation is float:
        kind = "float"
    elif origin is dict and typing.get_args(annotation) == (str, str):
        kind = "map"
    elif origin is dict and typing.get_args(annotation) == (str, typing.Any):
        kind = "object"
    elif origin is list:
        kind = "list"
    elif isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        kind = "object"
    else:
        raise AssertionError(f"no helper kind for {annotation!r}")
    return kind + ("?" if optional else "")


def _schema(struct_type: type[msgspec.Struct]) -> dict[str, tuple[str, object]]:
    hints = typing.get_type_hints(struct_type)
    schema = {}
    for field in msgspec.structs.fields(struct_type):
        default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory
        if default is msgspec.NODEFAULT:
            default = wire.REQUIRED
        elif callable(default):
            default = default()
        schema[field.name] = (_kind(hints[field.name]), default)
    return schema


def test_every_message_type_is_known_to_both_sides() -> None:
    controller_types = {t.__name__ for t in protocol.REQUEST_TYPES + protocol.REPLY_TYPES}
    assert controller_types == set(wire.MESSAGES)
    assert controller_types == set(SAMPLES)


@pytest.mark.parametrize("struct_type", protocol.REQUEST_TYPES + protocol.REPLY_TYPES, ids=lambda t: t.__name__)
def test_field_names_kinds_and_defaults_match(struct_type: type[msgspec.Struct]) -> None:
    assert _schema(struct_type) == wire.MESSAGES[struct_type.__name__]


def test_agent_info_fields_match() -> None:
    assert _schema(protocol.AgentInfo) == wire.AGENT_INFO_FIELDS


def test_host_idle_fields_match() -> None:
    assert _schema(protocol.HostIdle) == wire.HOST_IDLE_FIELDS


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_through_both_codecs(name: str) -> None:
    message = SAMPLES[name]
    body = protocol.encode_body(message)
    message_type, fields = wire.decode_body(body)
    assert message_type == name
    helper_body = wire.encode_body(message_type, fields)
    assert helper_body == body, "helper re-encoding must be byte-identical"
    decoded = protocol.decode_request(helper_body) if name in {t.__name__ for t in protocol.REQUEST_TYPES} \
        else protocol.decode_reply(helper_body)
    assert decoded == message


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_golden_frames(name: str) -> None:
    """Frames checked into tests/golden: a change to the wire format shows up as a diff."""
    frame = protocol.encode_frame(7, SAMPLES[name], b"\x00\xff" if name == "Ping" else b"")
    golden = GOLDEN_DIR / f"{name}.frame"
    if os.environ.get("MNGR_UPDATE_GOLDEN"):
        golden.write_bytes(frame)
    assert golden.exists(), f"missing {golden}; run with MNGR_UPDATE_GOLDEN=1 once to record it"
    assert frame == golden.read_bytes()
    request_id, body_length, blob_length = wire.parse_header(frame[: wire.HEADER.size])
    assert request_id == 7
    body = frame[wire.HEADER.size : wire.HEADER.size + body_length]
    assert wire.decode_body(body)[0] == name
    assert len(frame) == wire.HEADER.size + body_length + blob_length


def test_helper_rejects_wrong_types_and_missing_fields() -> None:
    with pytest.raises(wire.ProtocolError) as excinfo:
        wire.decode_body(json.dumps({"type": "StopAgent"}).encode())
    assert excinfo.value.code == "invalid"
    with pytest.raises(wire.ProtocolError):
        wire.decode_body(json.dumps({"type": "StopAgent", "name": 5}).encode())
    with pytest.raises(wire.ProtocolError):
        wire.decode_body(json.dumps({"type": "CreateAgent", "name": "a", "agent_type": "x", "command": "c",
                                     "work_dir": "/", "env": {"A": 1}}).encode())
    with pytest.raises(wire.ProtocolError) as excinfo:
        wire.decode_body(b'{"type": "Nope"}')
    assert excinfo.value.code == "unknown_type"
    with pytest.raises(wire.ProtocolError):
        wire.decode_body(b"\xff\xfe")
    with pytest.raises(wire.ProtocolError):
        wire.decode_body(b"[1, 2]")


def test_new_fields_from_a_newer_peer_are_ignored() -> None:
    message_type, fields = wire.decode_body(b'{"type": "StopAgent", "name": "a", "future_field": 1}')
    assert (message_type, fields) == ("StopAgent", {"name": "a", "grace": 2.0})
