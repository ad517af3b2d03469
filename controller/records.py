"""What each command's ``--format json`` and ``jsonl`` print, as msgspec types: the source of
``mngr schema`` and of docs/schema/*.json (docs/output.md tells the rules).

A command's ``record`` is what one ``jsonl`` line holds and what a template's fields name;
its ``document`` is what ``json`` prints. The commands build plain dicts; the tests decode
what they print into these types, so that the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .output import SCHEMA_VERSION, VERSION_KEY


class _Record(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    schema_version: int  # output.SCHEMA_VERSION when printed


class AgentRecord(_Record):
    """An agent as `mngr list` shows it. `mngr list` adds the fields of plugins (mngr_list_fields)."""

    id: str
    name: str
    type: str
    state: str  # RUNNING, WAITING, DONE, STOPPED, UNKNOWN or GONE
    host: str
    provider: str
    work_dir: str
    work_dir_origin: dict[str, str]
    command: str
    created_at: str  # ISO 8601
    labels: dict[str, str]
    extra_windows: dict[str, str]  # name -> command of the session's other windows (create --extra-window)
    archived: bool  # mngr archive: listed only with list -a or --archived
    pid: int | None
    exit_status: int | None
    idle_seconds: float | None
    problem: str | None
    waiting_reason: str | None
    waiting_detail: str
    urls: dict[str, str]  # name -> URL as on its host: declared at create, or published by the agent


class HostIdleRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str
    provider: str
    idle_timeout: float | None
    idle_mode: str
    idle_seconds: float | None
    last_activity: str
    last_activity_agent: str
    last_shutdown_at: str
    last_shutdown_reason: str


class HostFailure(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str
    provider: str
    error: str


class ListDocument(_Record):
    agents: list[AgentRecord]
    hosts: list[HostIdleRecord]
    errors: list[HostFailure]


class AgentResult(_Record):
    """What stop, start and destroy did to an agent; an agent that failed has only name, host,
    provider, result ("failed") and error."""

    name: str
    host: str
    provider: str
    result: str  # stopped, started, destroyed, already stopped, would stop, failed, ...
    error: str | None
    id: str | None = None
    type: str | None = None
    state: str | None = None
    work_dir: str | None = None
    work_dir_origin: dict[str, str] | None = None
    command: str | None = None
    created_at: str | None = None
    labels: dict[str, str] | None = None
    extra_windows: dict[str, str] | None = None
    archived: bool | None = None
    pid: int | None = None
    exit_status: int | None = None
    idle_seconds: float | None = None
    problem: str | None = None
    waiting_reason: str | None = None
    waiting_detail: str | None = None
    urls: dict[str, str] | None = None


class RenameRecord(AgentRecord):
    """The agent `mngr rename` renamed, as `mngr list` shows it under its new name."""

    old_name: str
    schedules: list[str]  # the schedules that now message it by its new name


class OpenRecord(_Record):
    """The URL `mngr open` made reachable from this machine."""

    agent: str
    host: str
    provider: str
    name: str  # the URL's name; "" for a port given by number that the agent did not declare
    remote_url: str  # as on the agent's host
    local_url: str  # what answers on this machine
    browser: str  # the program that opened it; "" when none did (--print, or no browser here)


class WaitRecord(AgentRecord):
    outcome: str  # reached, pending (timed out), unreachable
    why: str


class MessageResult(_Record):
    name: str
    host: str
    provider: str
    result: str  # sent, would send, failed
    error: str | None


class ExecRecord(_Record):
    name: str
    host: str
    provider: str
    result: str  # ok, failed, would run
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    error: str | None = None


class EventRecord(_Record, forbid_unknown_fields=False):
    """One event; the fields after ``event`` depend on its type (docs/commands/events.md)."""

    time: str
    host: str
    provider: str
    agent: str | None
    agent_id: str | None
    event: str


# Fields some types of event have (a template may name them; they are empty in the others).
EVENT_TYPE_FIELDS = ("state", "waiting_reason", "waiting_detail", "exit_status", "bytes", "source", "agent_type",
                     "files", "decision", "message", "session", "work_dir")


class TranscriptEntry(_Record):
    role: str  # user, assistant (from the agent CLI's session log), or output (a line it printed)
    text: str
    time: str | None


class Transcript(_Record):
    name: str
    source: str  # session or output
    entries: list[TranscriptEntry]


class SnapshotRecord(_Record):
    id: str
    agent: str
    host: str
    provider: str
    created_at: str
    bytes: int


class ScheduleRecord(_Record):
    name: str
    cron: str
    timezone: str
    next: str
    does: str
    message: str
    last_run: dict[str, Any] | None


class ScheduleList(_Record):
    schedules: list[ScheduleRecord]
    crontab: bool


class ScheduleLogEntry(_Record, forbid_unknown_fields=False):
    schedule: str
    at: str
    outcome: str  # ok, failed, skipped, missed
    detail: str = ""
    due: str | None = None
    by: str | None = None
    exit_status: int | None = None
    missed: int | None = None


class ConfigEntry(_Record):
    key: str  # dotted, as `mngr config get` takes it
    value: Any
    origin: str | None = None  # with --show-origin: default, user:FILE, project:FILE or env:VARIABLE


class PluginRecord(_Record):
    name: str
    origin: str
    status: str  # loaded, disabled, failed
    detail: str
    hooks: list[str]


class Leftover(_Record):
    host: str
    provider: str
    kind: str
    what: str


class GcDocument(_Record):
    dry_run: bool
    leftovers: list[Leftover]
    errors: list[HostFailure]


class LimitRecord(HostIdleRecord):
    """A host's idle record (as in `mngr list --format json`'s hosts) and its settings."""

    schema_version: int
    activity_sources: list[str]
    idle_command: str
    stop_grace: float | None
    decisions: list[Any]


class HostRecord(_Record):
    host: str
    provider: str
    origin: str  # configured, remembered, local
    state: str  # answering, unreachable, dropped
    agents: int | None
    cached_agents: int
    last_seen: str | None
    unreachable_since: str | None
    error: str


class HostList(_Record):
    hosts: list[HostRecord]


class Change(msgspec.Struct, forbid_unknown_fields=True):
    change: str
    path: str


class Missed(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    reason: str


class WireBytes(msgspec.Struct, forbid_unknown_fields=True):
    sent: int
    received: int


class SyncRecord(_Record):
    """What a push or pull did (or, with --dry-run, would do)."""

    agent: str
    local_path: str
    dry_run: bool
    changes: list[Change]
    refused: list[Missed]
    skipped: list[Missed]
    bytes: int
    wire: WireBytes
    branches: list[str] | None = None  # pull only: the agent's branches brought back


class ProvisionRecord(_Record):
    name: str
    host: str
    provider: str
    outcome: str
    reason: str
    files: list[str]
    removed_files: list[str]
    env: list[str]
    removed_env: list[str]
    cli: str | None
    restart: str
    state: str


class AskSource(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    section: str


class AskRecord(_Record):
    question: str
    command: str | None
    comment: str | None
    source: AskSource | None
    also: list[str]
    composed: str | None


@dataclass(frozen=True)
class Contract:
    record: type[msgspec.Struct]
    document: Any  # the type --format json prints


# Every command that takes --format (output.format_option), by its words after `mngr`.
CONTRACTS: dict[str, Contract] = {
    "list": Contract(AgentRecord, ListDocument),
    "create": Contract(AgentRecord, AgentRecord),
    "clone": Contract(AgentRecord, AgentRecord),
    "migrate": Contract(AgentRecord, AgentRecord),
    "stop": Contract(AgentResult, list[AgentResult]),
    "start": Contract(AgentResult, list[AgentResult]),
    "destroy": Contract(AgentResult, list[AgentResult]),
    "rename": Contract(RenameRecord, RenameRecord),
    "label": Contract(AgentResult, list[AgentResult]),
    "archive": Contract(AgentResult, list[AgentResult]),
    "unarchive": Contract(AgentResult, list[AgentResult]),
    "cleanup": Contract(AgentResult, list[AgentResult]),
    "wait": Contract(WaitRecord, list[WaitRecord]),
    "open": Contract(OpenRecord, OpenRecord),
    "message": Contract(MessageResult, list[MessageResult]),
    "exec": Contract(ExecRecord, list[ExecRecord]),
    "events": Contract(EventRecord, list[EventRecord]),
    "transcript": Contract(TranscriptEntry, Transcript),
    "snapshot create": Contract(SnapshotRecord, SnapshotRecord),
    "snapshot list": Contract(SnapshotRecord, list[SnapshotRecord]),
    "schedule list": Contract(ScheduleRecord, ScheduleList),
    "schedule log": Contract(ScheduleLogEntry, list[ScheduleLogEntry]),
    "config list": Contract(ConfigEntry, dict[str, Any]),
    "plugin list": Contract(PluginRecord, list[PluginRecord]),
    "gc": Contract(Leftover, GcDocument),
    "limit": Contract(LimitRecord, LimitRecord),
    "host list": Contract(HostRecord, HostList),
    "push": Contract(SyncRecord, SyncRecord),
    "pull": Contract(SyncRecord, SyncRecord),
    "provision": Contract(ProvisionRecord, list[ProvisionRecord]),
    "ask": Contract(AskRecord, AskRecord),
}


def record_fields(command: str) -> tuple[str, ...]:
    """The fields a --format template of ``command`` may name."""
    record = CONTRACTS[command].record
    fields = tuple(name for name in record.__struct_fields__ if name != VERSION_KEY)
    if command == "events":
        fields = (*fields, *EVENT_TYPE_FIELDS)
    return fields


def json_schema(command: str) -> dict[str, Any]:
    """The JSON Schema of ``mngr COMMAND --format json``; ``$defs`` also holds the record
    each ``--format jsonl`` line is (named by ``x-jsonl-record``)."""
    contract = CONTRACTS[command]
    (document, record), definitions = msgspec.json.schema_components([contract.document, contract.record])
    if command == "config list":  # the settings, as config files nest them
        document = {"type": "object", "properties": {VERSION_KEY: {"type": "integer"}},
                    "required": [VERSION_KEY], "additionalProperties": True}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"mngr {command} --format json",
        "description": f"Output of `mngr {command} --format json`; each line of `--format jsonl` is one "
                       f"{record['$ref'].rsplit('/', 1)[-1]} (see docs/output.md).",
        "x-schema-version": SCHEMA_VERSION,
        "x-jsonl-record": record,
        **document,
        "$defs": definitions,
    }
