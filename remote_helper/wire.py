"""The helper's side of the framed RPC wire format, written with the standard library only.

A frame is a 12-byte header followed by a JSON body and an optional raw blob:

    >III  request_id, body_length, blob_length
    body  JSON object: {"type": "<MessageName>", ...fields}
    blob  raw bytes (file contents and other bulk data travel here, never base64)

The controller speaks the same format through msgspec Structs
(``mngr.controller.channel.protocol``);
``MESSAGES`` below is the helper's copy of that schema and a contract test keeps the two equal.
"""

import json
import struct

from .errors import RequestFailed

HEADER = struct.Struct(">III")
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BLOB_BYTES = 512 * 1024 * 1024

# Field kinds understood by ``validate``: str, int, float, bool, map (str -> str),
# list (of anything JSON), object (any JSON object), and "?"-suffixed optional variants.
REQUIRED = object()

MESSAGES = {
    # requests
    "Ping": {},
    "GetHelperInfo": {},
    "ListAgents": {"quiet_seconds": ("float", 10.0)},
    "FindAgent": {"name": ("str", REQUIRED)},
    "CreateAgent": {
        "name": ("str", REQUIRED),
        "agent_type": ("str", REQUIRED),
        "command": ("str", REQUIRED),
        "binary": ("str?", None),
        "work_dir": ("str", REQUIRED),
        "env": ("map", {}),
        "labels": ("map", {}),
        "base_env": ("map?", None),
        "umask": ("int?", None),
        "interaction": ("object?", None),
        "path_dirs": ("list", []),
        "agent_config": ("object?", None),
        "work_dir_origin": ("map?", None),
        "extra_windows": ("map", {}),
        "urls": ("map", {}),
        "uploads": ("list", []),
        "overwrite_uploads": ("bool", False),
    },
    "WriteAgentConfig": {"name": ("str", REQUIRED), "agent_config": ("object?", None), "path_dirs": ("list?", None)},
    "ReadAgentConfig": {"name": ("str", REQUIRED), "salt": ("str", REQUIRED)},
    "StopAgent": {"name": ("str", REQUIRED), "grace": ("float", 2.0)},
    "StartAgent": {"name": ("str", REQUIRED), "base_env": ("map?", None), "umask": ("int?", None)},
    "DestroyAgent": {"name": ("str", REQUIRED), "keep_work_dir": ("bool", False), "grace": ("float", 2.0)},
    # record_changes.py
    "RenameAgent": {"name": ("str", REQUIRED), "new_name": ("str", REQUIRED)},
    "SetLabels": {"name": ("str", REQUIRED), "add": ("map", {}), "remove": ("list", [])},
    "SetArchived": {"name": ("str", REQUIRED), "archived": ("bool", REQUIRED), "grace": ("float", 2.0)},
    "SendMessage": {
        "name": ("str", REQUIRED),
        "text": ("str", REQUIRED),
        "wait_ready": ("bool", False),
        "ready_pattern": ("str?", None),
        "ready_quiet_seconds": ("float", 1.0),
        "ready_timeout": ("float", 60.0),
    },
    "AwaitInput": {"name": ("str", REQUIRED), "timeout": ("float", 60.0)},
    "CapturePane": {"name": ("str", REQUIRED), "full": ("bool", False)},
    "ReadOutput": {
        "name": ("str", REQUIRED),
        "source": ("str", "output"),
        "offset": ("int?", None),
        "tail_lines": ("int", 0),
        "max_bytes": ("int", 8 * 1024 * 1024),
    },
    "NoteActivity": {"name": ("str", REQUIRED), "source": ("str", REQUIRED)},
    "SetIdleSettings": {
        "timeout": ("float?", None),
        "mode": ("str?", None),
        "sources": ("list?", None),
        "command": ("str?", None),
        "stop_grace": ("float?", None),
        "only_if_unset": ("bool", False),
        "dry_run": ("bool", False),
    },
    "KeepAlive": {"name": ("str", REQUIRED), "seconds": ("float", REQUIRED)},
    "ReadWatcherLog": {"tail_lines": ("int", 20)},
    "GetManifest": {
        "name": ("str", REQUIRED),
        "include_ignored": ("bool", False),
        "work_dir": ("str", ""),
        "with_uncommitted": ("bool", False),
        "known": ("str", ""),
    },
    "WriteFiles": {
        "name": ("str", REQUIRED),
        "dirs": ("list", []),
        "links": ("list", []),
        "parts": ("list", []),
        "deletes": ("list", []),
        "finish_dirs": ("list", []),
        "work_dir": ("str", ""),
        "known": ("str", ""),
        "expect": ("list", []),
        "session": ("str", ""),
        "sequence": ("int", 0),
        "last": ("bool", False),
    },
    "PrepareWorkDir": {
        "name": ("str", REQUIRED),
        "path": ("str", ""),
        "remove": ("bool", False),
        "branch": ("str", ""),
        "new_branch": ("str", ""),
        "clone_url": ("str", ""),
    },
    "GetAgentSpec": {"name": ("str", REQUIRED)},
    "GetWorkState": {"name": ("str", REQUIRED)},
    "GetGitBundle": {"name": ("str", REQUIRED)},
    "ReadFiles": {"name": ("str", REQUIRED), "paths": ("list", REQUIRED), "offset": ("int", 0), "length": ("int", 0),
                  "compress": ("bool", True)},
    "WatchChanges": {"name": ("str", REQUIRED), "cursor": ("str", ""), "wait": ("float", 0.0)},
    "StatPaths": {"name": ("str", REQUIRED), "paths": ("list", REQUIRED)},
    # events.py: every log of the host after a cursor, long-polled
    "ReadEvents": {"cursor": ("str", ""), "since": ("str", ""), "wait": ("float", 0.0),
                   "quiet_seconds": ("float", 10.0), "max_lines": ("int", 1000)},
    "GetSignatures": {"name": ("str", REQUIRED), "path": ("str", REQUIRED), "work_dir": ("str", "")},
    "WriteDelta": {
        "name": ("str", REQUIRED),
        "path": ("str", REQUIRED),
        "old_version": ("str", REQUIRED),
        "block": ("int", REQUIRED),
        "offset": ("int", 0),
        "final": ("bool", False),
        "mode": ("int", 0o644),
        "mtime_ns": ("int", 0),
        "digest": ("str", ""),
        "compressed": ("bool", False),
        "work_dir": ("str", ""),
        "known": ("str", ""),
    },
    "ReadDelta": {
        "name": ("str", REQUIRED),
        "path": ("str", REQUIRED),
        "block": ("int", REQUIRED),
        "old_size": ("int", REQUIRED),
        "literal_budget": ("int", 0),
        "offset": ("int", 0),
        "length": ("int", 0),
        "signatures_tag": ("str", ""),
    },
    "ExecStart": {"name": ("str", REQUIRED), "command": ("str", REQUIRED)},
    "ExecRead": {"exec_id": ("int", REQUIRED), "wait": ("float", 0.5)},
    "ExecKill": {"exec_id": ("int", REQUIRED)},
    "CollectGarbage": {"dry_run": ("bool", True), "min_age": ("float", 600.0)},
    "ProbePorts": {"ports": ("list", REQUIRED)},
    "EnsureCli": {"program": ("str", REQUIRED), "version": ("str", REQUIRED), "mode": ("str", "auto"),
                  "bundles": ("object", {})},
    "PutCliPart": {"key": ("str", REQUIRED), "upload": ("str", REQUIRED), "path": ("str", REQUIRED),
                   "offset": ("int", 0), "length": ("int", REQUIRED), "sha256": ("str", REQUIRED),
                   "compressed": ("bool", False)},
    "FinishCli": {"key": ("str", REQUIRED), "upload": ("str", REQUIRED), "program": ("str", REQUIRED),
                  "version": ("str", REQUIRED), "entry": ("str", REQUIRED), "files": ("list", [])},
    # replies
    "Pong": {},
    "HelperInfo": {
        "version": ("str", REQUIRED),
        "pid": ("int", REQUIRED),
        "python": ("str", REQUIRED),
        "hostname": ("str", REQUIRED),
        "host_dir": ("str", REQUIRED),
        "daemon_socket": ("str", ""),
    },
    "AgentList": {"agents": ("list", []), "host": ("object?", None)},
    "AgentReply": {"agent": ("object", REQUIRED)},
    "Done": {},
    "Manifest": {
        "root": ("str", REQUIRED),
        "uncommitted": ("list", []),
        "tag": ("str", ""),
        "unchanged": ("bool", False),
        "guarded": ("list", []),
        "home": ("bool", False),
        "changes_only": ("bool", False),
        "gone": ("list", []),
    },
    "Written": {"tag": ("str", ""), "skipped": ("list", []), "seconds": ("float", 0.0)},
    "AgentSpec": {
        "agent_type": ("str", REQUIRED),
        "command": ("str", REQUIRED),
        "binary": ("str?", None),
        "env": ("map", {}),
        "labels": ("map", {}),
        "work_dir": ("str", REQUIRED),
        "branch": ("str", ""),
        "extra_windows": ("map", {}),
        "urls": ("map", {}),
    },
    "WorkDir": {"path": ("str", REQUIRED)},
    "WorkState": {"uncommitted": ("list", []), "heads": ("map", {}), "unpushed": ("int", -1)},
    "AgentConfigState": {
        "configured": ("bool", False),
        "env_var": ("str", ""),
        "files": ("object", {}),
        "env": ("map", {}),
        "written_files": ("list", []),
        "pending": ("bool", False),
        "binary": ("str?", None),
        "path_dirs": ("list", []),
    },
    "Progress": {},
    "Signatures": {"block": ("int", 0), "size": ("int", 0), "version": ("str", "")},
    "DeltaData": {
        "version": ("str", ""),
        "size": ("int", 0),
        "mode": ("int", 0),
        "mtime_ns": ("int", 0),
        "digest": ("str", ""),
        "compressed": ("bool", False),
        "too_different": ("bool", False),
        "skipped": ("list", []),
    },
    "FileData": {"files": ("list", []), "skipped": ("list", []), "versions": ("list", []), "seconds": ("float", 0.0)},
    "Changes": {"cursor": ("str", ""), "paths": ("list", []), "overflow": ("bool", False)},
    "Events": {"events": ("list", []), "cursor": ("str", ""), "more": ("bool", False)},
    "IdleSettings": {
        "timeout": ("float?", REQUIRED),
        "mode": ("str", REQUIRED),
        "sources": ("list", REQUIRED),
        "command": ("str", REQUIRED),
        "stop_grace": ("float", REQUIRED),
        "cpu_threshold": ("float", REQUIRED),
    },
    "Captured": {},
    "CliPlace": {"machine": ("str", REQUIRED), "source": ("str", ""), "dirs": ("list", []),
                 "host_version": ("str", ""), "key": ("str", ""), "upload": ("str", ""),
                 "shared_dir": ("str", "")},
    "CliPartStored": {"seconds": ("float", 0.0)},
    "OutputChunk": {
        "path": ("str", REQUIRED),
        "start": ("int", REQUIRED),
        "end": ("int", REQUIRED),
        "file_id": ("str", REQUIRED),
    },
    "ExecStarted": {"exec_id": ("int", REQUIRED)},
    "ExecOutput": {"stdout_length": ("int", REQUIRED), "exit_code": ("int?", None)},
    "Garbage": {"found": ("list", [])},
    "PortsOpen": {"listening": ("list", [])},
    "Error": {"code": ("str", REQUIRED), "message": ("str", REQUIRED)},
}

# The fields of one agent as the helper reports it (the controller's ``AgentInfo``).
AGENT_INFO_FIELDS = {
    "id": ("str", REQUIRED),
    "name": ("str", REQUIRED),
    "type": ("str", REQUIRED),
    "state": ("str", REQUIRED),
    "command": ("str", REQUIRED),
    "work_dir": ("str", REQUIRED),
    "created_at": ("str", REQUIRED),
    "labels": ("map", {}),
    "work_dir_origin": ("map", {}),
    "archived": ("bool", False),
    "pid": ("int?", None),
    "exit_status": ("int?", None),
    "idle_seconds": ("float?", None),
    "problem": ("str?", None),
    "waiting_reason": ("str?", None),
    "waiting_detail": ("str", ""),
    "extra_windows": ("map", {}),
    "urls": ("map", {}),
}


# A host's idle status (the controller's ``HostIdle``).
HOST_IDLE_FIELDS = {
    "idle_timeout": ("float?", None),
    "idle_mode": ("str", ""),
    "idle_seconds": ("float?", None),
    "last_activity": ("str", ""),
    "last_activity_agent": ("str", ""),
    "last_shutdown_at": ("str", ""),
    "last_shutdown_reason": ("str", ""),
}


class ProtocolError(RequestFailed):
    """A frame or message the helper cannot accept."""


class FatalFrameError(ProtocolError):
    """The stream cannot be resynchronised after this frame: reply, then close."""


def _check_kind(kind, value):
    if kind.endswith("?"):
        if value is None:
            return True
        kind = kind[:-1]
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "map":
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    if kind == "list":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError("unknown field kind %r" % kind)


def validate(fields, raw, what):
    """Return a new dict with every field of ``fields``, defaults filled; unknown keys dropped."""
    result = {}
    for name, (kind, default) in fields.items():
        if name in raw:
            value = raw[name]
            if not _check_kind(kind, value):
                raise ProtocolError(
                    "invalid", "%s.%s must be %s, got %s" % (what, name, kind, type(value).__name__)
                )
            if kind.rstrip("?") == "float" and value is not None:
                value = float(value)
            result[name] = value
        elif default is REQUIRED:
            raise ProtocolError("invalid", "%s is missing required field %r" % (what, name))
        else:
            result[name] = _copy_default(default)
    return result


def _copy_default(default):
    if isinstance(default, dict):
        return dict(default)
    if isinstance(default, list):
        return list(default)
    return default


def decode_body(body):
    """Decode one frame body into (message_type, fields)."""
    try:
        raw = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad_frame", "frame body is not valid JSON: %s" % exc) from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_frame", "frame body must be a JSON object")
    message_type = raw.get("type")
    if not isinstance(message_type, str):
        raise ProtocolError("bad_frame", "frame body has no string 'type' field")
    fields = MESSAGES.get(message_type)
    if fields is None:
        raise ProtocolError("unknown_type", "unknown message type %r" % message_type[:100])
    return message_type, validate(fields, raw, message_type)


# One encoder for the process: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_body(message_type, fields):
    """Encode a message, field order as in the schema (msgspec does the same)."""
    ordered = {"type": message_type}
    for name in MESSAGES[message_type]:
        if name in fields:
            ordered[name] = fields[name]
    return _ENCODER.encode(ordered).encode("utf-8")


def encode_frame(request_id, body, blob=b""):
    return HEADER.pack(request_id, len(body), len(blob)) + body + blob


def parse_header(header):
    """Return (request_id, body_length, blob_length) or raise FatalFrameError for absurd sizes."""
    request_id, body_length, blob_length = HEADER.unpack(header)
    if body_length > MAX_BODY_BYTES or blob_length > MAX_BLOB_BYTES:
        raise FatalFrameError(
            "bad_frame",
            "frame too large (body %d bytes, blob %d bytes; limits %d and %d)"
            % (body_length, blob_length, MAX_BODY_BYTES, MAX_BLOB_BYTES),
        )
    if body_length == 0:
        raise FatalFrameError("bad_frame", "frame has an empty body")
    return request_id, body_length, blob_length
