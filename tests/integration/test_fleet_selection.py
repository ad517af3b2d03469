"""Selecting agents in a fleet of 32 (24 local, 8 on an SSH test host), through the CLI:
filters, sorts, fields and ids of `mngr list` against a reference computed here from
`mngr list --format json`; names piped into a bulk command; dry runs that change nothing;
--on-error with one target that fails.

The fleet is made once for the module. Tests that change it act on agents labelled for
them alone, and every reference is computed from a listing taken in the test, so the
tests hold in any order. `sleep` agents turn from RUNNING to WAITING as they stay quiet,
so the filters compared here ask of states that do not change by themselves.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox
from tests.integration.test_ssh import started_host
from tests.sshd import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

LOCAL = 24
REMOTE = 8


def _labels(index: int) -> list[str]:
    labels = [] if index % 5 == 0 else [f"team={'a' if index % 2 else 'b'}"]
    labels.append(f"tier={index % 4}")
    if index in (3, 17, 103):
        labels.append("batch=doomed")
    if index in (4, 9, 104):
        labels.append("batch=napping")
    return [word for label in labels for word in ("--label", label)]


def _specs() -> list[tuple[str, str | None, list[str], list[str]]]:
    """(name, SSH host or None, create options, command) for each agent of the fleet."""
    specs = []
    for index in range(LOCAL):
        name = f"{('web', 'db', 'job')[index % 3]}-{index:02d}"
        command = ["sh", "-c", "exit 3"] if index % 7 == 6 else ["sleep", "600"]
        specs.append((name, None, _labels(index), command))
    for index in range(REMOTE):
        specs.append((f"ssh-{index}", "testhost", _labels(index + 100), ["sleep", "600"]))
    return specs


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    tmux_dir = Path(tempfile.mkdtemp(prefix="mngr-t-", dir="/tmp"))
    box = Sandbox(tmp_path_factory.mktemp("fleet"), tmux_dir)
    try:
        with started_host(box, "testhost"):
            box.config_dir.mkdir(parents=True, exist_ok=True)
            (box.config_dir / "config.toml").write_text("[hosts.testhost]\n")

            def create(spec: tuple[str, str | None, list[str], list[str]]) -> None:
                name, host, options, command = spec
                where = ["--in", "ssh", "--host", host] if host else []
                made = box.mngr("create", name, "command", *where, "--no-connect", *options, "--", *command)
                assert made.returncode == 0, made.stderr

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(create, _specs()))
            stopped = box.mngr("stop", "web-00", "web-12", "db-10", "ssh-0", "ssh-5")
            assert stopped.returncode == 0, stopped.stderr
            yield box
    finally:
        box.tear_down()


def listing(box: Sandbox, *options: str) -> list[dict[str, Any]]:
    listed = box.mngr("list", "--format", "json", *options)
    assert listed.returncode == 0, listed.stderr
    agents: list[dict[str, Any]] = json.loads(listed.stdout)["agents"]
    return agents


def label(row: dict[str, Any], key: str) -> str | None:
    value: str | None = row["labels"].get(key)
    return value


LIVE = ("RUNNING", "WAITING")

# Each filter and the same question asked in Python of a row of `list --format json`.
FILTERS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("state == stopped", lambda r: r["state"] == "STOPPED"),
    ("state in [running, waiting]", lambda r: r["state"] in LIVE),
    ("state == done && exit_status == 3", lambda r: r["state"] == "DONE" and r["exit_status"] == 3),
    ("labels.team == a && host == local", lambda r: label(r, "team") == "a" and r["host"] == "local"),
    ("name ~ 'web-*' || labels.tier == 3", lambda r: r["name"].startswith("web-") or label(r, "tier") == "3"),
    ("!labels.team && state != stopped", lambda r: label(r, "team") is None and r["state"] != "STOPPED"),
    ("host == testhost && (labels.team == b || state == stopped)",
     lambda r: r["host"] == "testhost" and (label(r, "team") == "b" or r["state"] == "STOPPED")),
    ("labels.tier in (0, 2) and not name ~ db-*",
     lambda r: label(r, "tier") in ("0", "2") and not r["name"].startswith("db-")),
    ("provider == ssh || name > job-20", lambda r: r["provider"] == "ssh" or r["name"] > "job-20"),
    ("idle < 1d", lambda r: r["idle_seconds"] is not None),
    ("age < 1d && created_at > 2020-01-01", lambda r: True),
]


@pytest.mark.parametrize(("expression", "reference"), FILTERS, ids=[f for f, _ in FILTERS])
def test_a_filter_selects_what_the_same_question_of_the_listing_does(
    fleet: Sandbox, expression: str, reference: Callable[[dict[str, Any]], bool]
) -> None:
    everything = listing(fleet)
    assert len(everything) >= 30
    expected = sorted(row["id"] for row in everything if reference(row))
    assert expected, f"{expression} selects nothing in this fleet: a weak test"
    selected = listing(fleet, "--include", expression)
    assert sorted(row["id"] for row in selected) == expected
    # the same as the complement: what --exclude leaves
    left = listing(fleet, "--exclude", expression)
    assert sorted(row["id"] for row in left) == sorted(row["id"] for row in everything if not reference(row))


def test_includes_and_excludes_combine(fleet: Sandbox) -> None:
    everything = listing(fleet)
    expected = sorted(r["id"] for r in everything
                      if r["host"] == "local" and r["name"].startswith("job-") and label(r, "team") != "b")
    selected = listing(fleet, "--filter", "host == local", "--include", "name ~ job-*",
                       "--exclude", "labels.team == b")
    assert sorted(r["id"] for r in selected) == expected and expected


def _order_key(row: dict[str, Any], field: str) -> Any:
    return row["labels"].get(field[len("labels."):]) if field.startswith("labels.") else row[field]


@pytest.mark.parametrize("sort", ["host,-name", "labels.team,name", "-created_at", "-labels.tier,host,id"])
def test_sort_orders_as_the_reference_does(fleet: Sandbox, sort: str) -> None:
    everything = listing(fleet)
    expected = list(everything)
    for part in reversed(sort.split(",")):
        field = part.lstrip("-")
        present = [r for r in expected if _order_key(r, field) is not None]
        absent = [r for r in expected if _order_key(r, field) is None]
        present.sort(key=lambda r, f=field: _order_key(r, f), reverse=part.startswith("-"))  # type: ignore[misc]
        expected = present + absent
    got = listing(fleet, "--sort", sort)
    assert [r["id"] for r in got] == [r["id"] for r in expected]


def test_limit_fields_and_ids(fleet: Sandbox) -> None:
    everything = sorted(listing(fleet), key=lambda r: r["name"], reverse=True)
    first = listing(fleet, "--sort", "-name", "--limit", "5", "--fields", "name,labels.team,host")
    assert first == [{"name": r["name"], "labels.team": label(r, "team"), "host": r["host"]} for r in everything[:5]]
    ids = fleet.mngr("list", "--ids", "--include", "host == testhost")
    assert ids.returncode == 0, ids.stderr
    assert sorted(ids.stdout.split("\n")[:-1]) == sorted(r["id"] for r in everything if r["host"] == "testhost")
    table = fleet.mngr("list", "--fields", "name,state", "--include", "name == web-00")
    assert table.stdout.split("\n")[:2] == ["NAME    STATE", "web-00  STOPPED"]


@pytest.mark.parametrize(("argv", "message"), [
    (["list", "--include", "stat == running"], "unknown field 'stat'"),
    (["list", "--include", "state == running &&"], "expected a field name"),
    (["list", "--sort", "name,-bogus"], "unknown field 'bogus'"),
    (["list", "--fields", "name,bogus"], "unknown field 'bogus'"),
    (["list", "--ids", "--format", "json"], "--ids prints ids only"),
    (["stop", "--include", "idle > soon"], "is a duration"),
    (["destroy", "-f", "--exclude", "state == sleepy"], "no state 'sleepy'"),
    (["message", "--include", "(name == x", "-m", "hi"], "expected ')'"),
    (["exec", "--include", "nmae == x", "true"], "unknown field 'nmae'"),
])
def test_a_bad_filter_is_a_usage_error_and_changes_nothing(fleet: Sandbox, argv: list[str], message: str) -> None:
    before = {r["id"]: r["state"] for r in listing(fleet) if r["state"] not in LIVE}
    refused = fleet.mngr(*argv)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and message in refused.stderr and refused.stdout == ""
    assert {r["id"]: r["state"] for r in listing(fleet) if r["state"] not in LIVE} == before


def test_dry_runs_name_what_would_be_done_and_do_nothing(fleet: Sandbox) -> None:
    before = {r["id"]: r["state"] for r in listing(fleet)}
    team_a = sorted(r["name"] for r in listing(fleet) if label(r, "team") == "a")
    destroy = fleet.mngr("destroy", "--include", "labels.team == a", "--dry-run", "--format", "json")
    assert destroy.returncode == 0, destroy.stderr
    rows = json.loads(destroy.stdout)
    assert sorted(r["name"] for r in rows) == team_a and {r["result"] for r in rows} == {"would destroy"}
    stop = fleet.mngr("stop", "--include", "labels.team == a", "--dry-run")
    assert stop.returncode == 0, stop.stderr
    assert sorted(line.split()[3] for line in stop.stdout.splitlines() if line.startswith("would stop")) == sorted(
        r["name"] for r in listing(fleet) if label(r, "team") == "a" and r["state"] != "STOPPED")
    piped = fleet.mngr("destroy", "-", "--dry-run", input="web-15\nssh-1\n")
    assert piped.returncode == 0, piped.stderr
    assert [line.split()[3] for line in piped.stdout.splitlines()] == ["web-15", "ssh-1"]
    message = fleet.mngr("message", "--include", "labels.team == a", "-m", "never", "--dry-run", "--format", "json")
    assert sorted(r["name"] for r in json.loads(message.stdout)) == team_a
    after = {r["id"]: r["state"] for r in listing(fleet)}
    assert after.keys() == before.keys()
    assert {i: s for i, s in after.items() if s not in LIVE} == {i: s for i, s in before.items() if s not in LIVE}
    for name in team_a:
        if fleet.tmux("has-session", "-t", f"=mngr-{name}").returncode == 0:
            pane = fleet.tmux("capture-pane", "-p", "-t", f"=mngr-{name}:")
            assert "never" not in pane.stdout


def test_a_piped_bulk_destroy_removes_what_was_listed_and_nothing_else(fleet: Sandbox) -> None:
    before = listing(fleet)
    doomed = [r for r in before if label(r, "batch") == "doomed"]
    assert {r["host"] for r in doomed} == {"local", "testhost"}
    ids = fleet.mngr("list", "--ids", "--include", "labels.batch == doomed")
    destroyed = fleet.mngr("destroy", "-f", "-", "--format", "jsonl", input=ids.stdout)
    assert destroyed.returncode == 0, destroyed.stderr
    results = [json.loads(line) for line in destroyed.stdout.splitlines()]
    assert sorted((r["name"], r["result"]) for r in results) == sorted((r["name"], "destroyed") for r in doomed)
    after = listing(fleet)
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in before if label(r, "batch") != "doomed")
    empty = fleet.mngr("destroy", "-f", "-", input=fleet.mngr("list", "--ids", "--include",
                                                                "labels.batch == doomed").stdout)
    assert empty.returncode == 0 and empty.stdout == "no agents to destroy\n"


def test_stop_and_start_by_filter_and_by_names_on_stdin(fleet: Sandbox) -> None:
    napping = sorted(r["name"] for r in listing(fleet) if label(r, "batch") == "napping")
    assert len(napping) == 3
    stopped = fleet.mngr("stop", "--include", "labels.batch == napping", "--format", "json")
    assert stopped.returncode == 0, stopped.stderr
    assert sorted((r["name"], r["result"]) for r in json.loads(stopped.stdout)) == [(n, "stopped") for n in napping]
    states = {r["name"]: r["state"] for r in listing(fleet)}
    assert {states[n] for n in napping} == {"STOPPED"}
    started = fleet.mngr("start", "-", input="\n".join(napping) + "\n# a comment line\n\n")
    assert started.returncode == 0, started.stderr
    assert started.stdout.count("started agent") == 3
    assert {r["state"] for r in listing(fleet) if r["name"] in napping} <= set(LIVE)


def _pane(box: Sandbox, name: str) -> str:
    return box.tmux("capture-pane", "-p", "-t", f"=mngr-{name}:").stdout


def test_message_on_error_continue_and_abort(fleet: Sandbox) -> None:
    # web-00 is stopped: a message to it fails (no --start); it is named first, so its
    # host's first agent, which runs alone.
    names = "web-00\nweb-15\nweb-18\n"
    aborted = fleet.mngr("message", "-", "-m", "first-note", "--on-error", "abort", "--format", "json", input=names)
    assert aborted.returncode == 1
    rows = {r["name"]: r for r in json.loads(aborted.stdout)}
    assert rows["web-00"]["result"] == "failed" and "is stopped" in rows["web-00"]["error"]
    for name in ("web-15", "web-18"):
        assert rows[name]["result"] == "failed" and "another agent failed" in rows[name]["error"]
        assert "first-note" not in _pane(fleet, name)
    going_on = fleet.mngr("message", "-", "-m", "second-note", "--format", "json", input=names)
    assert going_on.returncode == 1
    rows = {r["name"]: r for r in json.loads(going_on.stdout)}
    assert rows["web-00"]["result"] == "failed"
    assert rows["web-15"]["result"] == rows["web-18"]["result"] == "sent"
    assert "second-note" in _pane(fleet, "web-15") and "second-note" in _pane(fleet, "web-18")


def test_exec_on_error_continue_and_abort_over_two_hosts(fleet: Sandbox) -> None:
    command = 'test "$MNGR_AGENT_NAME" != job-02 && echo ran-on-$MNGR_AGENT_NAME'
    names = "job-02\njob-05\nssh-2\n"
    going_on = fleet.mngr("exec", "-", command, "--format", "json", input=names)
    assert going_on.returncode == 1
    rows = {r["name"]: r for r in json.loads(going_on.stdout)}
    assert rows["job-02"]["exit_code"] == 1 and rows["job-02"]["result"] == "failed"
    assert rows["job-05"]["stdout"] == "ran-on-job-05\n" and rows["ssh-2"]["stdout"] == "ran-on-ssh-2\n"
    aborted = fleet.mngr("exec", "-", command, "--format", "jsonl", "--on-error", "abort", input="job-02\njob-05\n")
    assert aborted.returncode == 1
    rows = {r["name"]: r for r in map(json.loads, aborted.stdout.splitlines())}
    assert rows["job-02"]["exit_code"] == 1
    assert rows["job-05"]["exit_code"] is None and "another agent failed" in rows["job-05"]["error"]
    selected = fleet.mngr("exec", "--include", "host == testhost && state != stopped", "echo here")
    assert selected.returncode == 0, selected.stderr
    live_remote = sorted(r["name"] for r in listing(fleet) if r["host"] == "testhost" and r["state"] != "STOPPED")
    assert sorted(selected.stdout.splitlines()) == [f"{name}: here" for name in live_remote]


def test_stdin_cannot_hold_both_names_and_the_message(fleet: Sandbox) -> None:
    refused = fleet.mngr("message", "-", "--message-file", "-", input="web-15\n")
    assert refused.returncode == 2 and "stdin cannot hold both" in refused.stderr


def test_provision_takes_the_same_selection(fleet: Sandbox) -> None:
    remote = sorted(r["name"] for r in listing(fleet) if r["host"] == "testhost")
    selected = fleet.mngr("provision", "--include", "host == testhost", "--dry-run", "--format", "json")
    assert selected.returncode == 0, selected.stderr
    assert sorted(row["name"] for row in json.loads(selected.stdout)) == remote
    piped = fleet.mngr("provision", "-", "--dry-run", "--format", "json", input="web-15\nssh-1\n")
    assert piped.returncode == 0, piped.stderr
    assert [row["name"] for row in json.loads(piped.stdout)] == ["web-15", "ssh-1"]
