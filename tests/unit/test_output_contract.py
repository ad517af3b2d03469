"""The output contract (docs/output.md), checked on every command of the click group, in
process: --format takes human, json, jsonl or a template and refuses anything else with
exit status 2; what json and jsonl print decodes into the record types of
controller/records.py; docs/schema/ is what `mngr schema` prints; -q, -v and --debug are
accepted by the group and by every command.

A command added later that prints records without output.format_option, or takes an
option of its own named --format, fails here until it follows the contract (or is listed
in PRINTS_NO_RECORDS, with what it prints instead)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec
import pytest

from mngr.controller import output, records, verbosity
from mngr.controller.cli.main import cli, run

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "docs" / "schema"

# Commands that print no records: what they print instead.
PRINTS_NO_RECORDS = {
    "connect": "attaches the terminal",
    "transcript": "an agent's history, as text",
    "capture": "an agent's screen, as text",
    "keepalive": "one confirmation line",
    "pair": "a running log of what moves, until Ctrl-C",
    "bootstrap": "a Dockerfile",
    "completion": "shell code",
    "schema": "a JSON Schema",
    "snapshot destroy": "one line per snapshot destroyed",
    "schedule add": "one confirmation line",
    "schedule remove": "one line per schedule removed",
    "schedule run": "what the run said",
    "schedule tick": "one line per schedule run",
    "schedule serve": "runs until Ctrl-C",
    "web": "its URL, then serves the dashboard until Ctrl-C",
    "host forget": "one line per host forgotten",
    "config get": "a value",
    "config set": "nothing",
    "config unset": "nothing",
    "config edit": "opens an editor",
    "config path": "file paths",
}


@pytest.fixture
def in_sandbox(sandbox, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    sandbox.apply_env(monkeypatch)
    monkeypatch.chdir(sandbox.work_dir)
    yield sandbox
    verbosity.set_level(verbosity.NORMAL)


def _walk(group: click.Group, ctx: click.Context, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _walk(command, ctx, f"{path} ")


def _all_commands() -> dict[str, click.Command]:
    with click.Context(cli, info_name="mngr") as ctx:
        return dict(_walk(cli, ctx))


def _format_param(command: click.Command) -> click.Parameter | None:
    return next((param for param in command.params if "--format" in getattr(param, "opts", ())), None)


def test_every_command_takes_the_format_contract_or_prints_no_records(in_sandbox) -> None:
    commands = _all_commands()
    assert {"list", "stop", "snapshot list", "schedule log", "config list"} <= set(commands)  # the walk sees them
    taking = {}
    for path, command in commands.items():
        param = _format_param(command)
        if isinstance(command, click.Group):
            assert param is None, path
            continue
        if param is None:
            assert path in PRINTS_NO_RECORDS, f"mngr {path}: prints records without --format (output.format_option)"
            continue
        assert getattr(param, "contract", None) == path, f"mngr {path}: --format is not output.format_option"
        taking[path] = param
    assert set(taking) == set(records.CONTRACTS), set(taking) ^ set(records.CONTRACTS)


def test_every_command_and_group_takes_q_v_and_debug(in_sandbox) -> None:
    for path, command in {"": cli, **_all_commands()}.items():
        names = {opt for param in command.params for opt in getattr(param, "opts", ())}
        assert {"-q", "--quiet", "-v", "--verbose", "--debug"} <= names, f"mngr {path}"


@pytest.mark.parametrize("args", [["-v", "list", "--help"], ["list", "-v", "--help"], ["--debug", "config", "list", "--help"],
                                  ["config", "-q", "list", "--help"], ["snapshot", "list", "--debug", "--help"]])
def test_verbosity_options_go_before_or_after_the_command(in_sandbox, args: list[str], capsys) -> None:
    assert run(args) == 0
    assert "Usage: mngr" in capsys.readouterr().out


def test_quiet_and_verbose_together_are_a_usage_error(in_sandbox, capsys) -> None:
    assert run(["-q", "list", "-v"]) == 2
    assert capsys.readouterr().err == "mngr: error: -q and -v/--debug ask for opposite things: give one\n"


def _kinds(command: str) -> list[str]:
    return ["human", "json", "jsonl", "{" + records.record_fields(command)[0] + "}"]


@pytest.mark.parametrize("command", sorted(records.CONTRACTS))
def test_each_record_command_accepts_the_four_kinds(in_sandbox, command: str) -> None:
    target = _all_commands()[command]
    param = _format_param(target)
    assert param is not None and param.callback is not None
    with click.Context(target, info_name=command) as ctx:
        for kind in _kinds(command):
            assert param.callback(ctx, param, kind) == kind


@pytest.mark.parametrize("command", sorted(records.CONTRACTS))
@pytest.mark.parametrize("bad, says", [("JSON", "unknown --format 'JSON': did you mean 'json'?"),
                                       ("jsonn", "unknown --format 'jsonn'"),
                                       ("{no_such_field}", "unknown field {no_such_field} in --format"),
                                       ("{}", "name each field")])
def test_each_record_command_refuses_a_bad_format_before_doing_anything(in_sandbox, capsys, command: str,
                                                                        bad: str, says: str) -> None:
    code = run([*command.split(), "--format", bad, *(["somebody"] if command in ("stop", "destroy") else [])])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mngr: error: ") and says in err and err.count("\n") == 1, err


def _run_json(args: list[str], capsys) -> Any:  # type: ignore[no-untyped-def]
    code = run(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("command", ["list", "config list", "plugin list", "schedule list", "schedule log",
                                     "snapshot list", "host list", "events", "gc"])
def test_what_json_and_jsonl_print_is_the_schema(in_sandbox, capsys, command: str) -> None:
    contract = records.CONTRACTS[command]
    extra = ["--dry-run"] if command == "gc" else []
    document = _run_json([*command.split(), "--format", "json", *extra], capsys)
    decoded = msgspec.json.decode(document, type=contract.document)
    parsed = json.loads(document)
    if isinstance(parsed, dict):
        assert parsed[output.VERSION_KEY] == output.SCHEMA_VERSION
    if command == "config list":
        assert decoded["default_provider"] == "local"
    lines = _run_json([*command.split(), "--format", "jsonl", *extra], capsys).splitlines()
    if command in ("config list", "plugin list"):
        assert lines, f"mngr {command} printed no record to check"
    for line in lines:
        record = msgspec.json.decode(line, type=contract.record)
        assert record.schema_version == output.SCHEMA_VERSION  # type: ignore[attr-defined]


def test_a_template_shows_values_as_a_user_expects() -> None:
    row = {"name": "a", "labels": {"team": "web", "tier": "1"}, "hooks": ["x", "y"], "pid": None,
           "dry_run": False, "bytes": 42}
    assert output.render_template("{name} {labels} {hooks} [{pid}] {dry_run} {bytes:>4}", row) == \
        "a team=web,tier=1 x,y [] false   42"
    assert output.render_template("{labels[team]}/{labels[absent]}", row) == "web/"


def test_json_records_and_object_documents_carry_the_version() -> None:
    rows = [{"name": "a"}]
    assert json.loads(output.render("json", rows)) == [{"schema_version": 1, "name": "a"}]
    assert json.loads(output.render("json", rows, envelope=lambda agents: {"agents": agents})) == {
        "schema_version": 1, "agents": [{"schema_version": 1, "name": "a"}]}
    assert output.render("jsonl", rows) == '{"schema_version":1,"name":"a"}\n'
    assert output.render("{name}!", rows) == "a!\n"


def _schema_file(command: str) -> Path:
    return SCHEMA_DIR / f"{command.replace(' ', '-')}.json"


def test_docs_schema_is_what_mngr_schema_prints() -> None:
    """Regenerate with MNGR_UPDATE_GOLDEN=1 after changing controller/records.py."""
    expected = {_schema_file(command): output.to_json(records.json_schema(command)) + "\n"
                for command in records.CONTRACTS}
    if os.environ.get("MNGR_UPDATE_GOLDEN"):
        SCHEMA_DIR.mkdir(exist_ok=True)
        for stale in set(SCHEMA_DIR.glob("*.json")) - set(expected):
            stale.unlink()
        for path, text in expected.items():
            path.write_text(text)
    assert set(SCHEMA_DIR.glob("*.json")) == set(expected)
    for path, text in expected.items():
        assert path.read_text() == text, f"{path.name}: run MNGR_UPDATE_GOLDEN=1 pytest {__file__}"


def test_mngr_schema_prints_a_command_schema_and_refuses_an_unknown_one(in_sandbox, capsys) -> None:
    printed = json.loads(_run_json(["schema", "snapshot", "list"], capsys))
    assert printed["items"] == {"$ref": "#/$defs/SnapshotRecord"}
    assert printed["x-schema-version"] == output.SCHEMA_VERSION
    assert "schema_version" in printed["$defs"]["SnapshotRecord"]["required"]
    assert json.loads(_run_json(["schema", "ls"], capsys))["title"] == "mngr list --format json"
    assert run(["schema", "nope"]) == 2
    assert "no schema for 'nope'" in capsys.readouterr().err
