"""rename, label, archive/unarchive and cleanup through the CLI, on the local host (real
tmux) and an SSH test host: `command` agents running `cat`, so a message's text shows in
what the agent prints."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, terminal_running_mngr, wait_for
from tests.integration.test_ssh import started_host
from tests.sshd import SshHost, unavailable_reason

needs_sshd = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


def create(box: Sandbox, name: str, *options: str, host: str | None = None) -> None:
    where = ["--in", "ssh", "--host", host] if host else []
    made = box.mngr("create", name, "command", *where, "--no-connect", *options, "--", "cat")
    assert made.returncode == 0, made.stderr


def rows(box: Sandbox, *options: str) -> dict[str, dict[str, Any]]:
    listed = box.mngr("list", "--format", "json", *options)
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)["agents"]}


def record_path(box: Sandbox, agent_id: str) -> Path:
    return box.host_dir / "agents" / agent_id / "record.json"


def events_of(box: Sandbox, agent_id: str) -> list[dict[str, Any]]:
    path = box.host_dir / "agents" / agent_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def shows(box: Sandbox, name: str, text: str) -> bool:
    captured = box.mngr("capture", name)
    return captured.returncode == 0 and text in captured.stdout


@pytest.fixture
def remote(sandbox: Sandbox) -> Iterator[SshHost]:
    if unavailable_reason() is not None:
        pytest.skip(unavailable_reason() or "")
    with started_host(sandbox, "testhost") as host:
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.testhost]\n")
        yield host


# -- rename -------------------------------------------------------------------------------


def test_a_renamed_running_agent_keeps_running_and_answers_to_its_new_name(sandbox: Sandbox) -> None:
    create(sandbox, "before")
    agent_id = rows(sandbox)["before"]["id"]
    pid = rows(sandbox)["before"]["pid"]
    renamed = sandbox.mngr("rename", "before", "after")
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout.strip() == "renamed agent before to after on local [RUNNING]"

    listed = rows(sandbox)
    assert list(listed) == ["after"]
    assert listed["after"]["id"] == agent_id and listed["after"]["pid"] == pid  # the same process
    assert listed["after"]["state"] in ("RUNNING", "WAITING")
    assert sandbox.sessions() == ["mngr-after"]
    assert json.loads(record_path(sandbox, agent_id).read_text())["name"] == "after"

    sent = sandbox.mngr("message", "after", "hello under a new name")
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: shows(sandbox, "after", "hello under a new name"), "the message in the agent's output")
    transcript = sandbox.mngr("transcript", "after")
    assert "hello under a new name" in transcript.stdout
    ran = sandbox.mngr("exec", "after", 'echo "$MNGR_AGENT_NAME"')
    assert ran.returncode == 0 and ran.stdout.strip() == "after", ran.stderr

    gone = sandbox.mngr("message", "before", "hello?")
    assert gone.returncode != 0 and "before" in gone.stderr

    logged = events_of(sandbox, agent_id)
    assert [(e["old_name"], e["new_name"]) for e in logged if e["event"] == "renamed"] == [("before", "after")]
    # the rename is not seen as the agent stopping and starting again
    assert not [e for e in logged if e["event"] == "state" and e["state"] == "STOPPED"]


def test_a_stopped_agent_renamed_starts_under_its_new_name(sandbox: Sandbox) -> None:
    create(sandbox, "napper")
    assert sandbox.mngr("stop", "napper").returncode == 0
    renamed = sandbox.mngr("rename", "napper", "sleeper", "--format", "{old_name}>{name} {state}")
    assert renamed.returncode == 0 and renamed.stdout.strip() == "napper>sleeper STOPPED", renamed.stderr
    assert sandbox.sessions() == []
    started = sandbox.mngr("start", "sleeper")
    assert started.returncode == 0, started.stderr
    assert sandbox.sessions() == ["mngr-sleeper"]
    ran = sandbox.mngr("exec", "sleeper", 'echo "$MNGR_AGENT_NAME"')
    assert ran.stdout.strip() == "sleeper"


def test_a_name_taken_is_refused_and_nothing_changes(sandbox: Sandbox) -> None:
    create(sandbox, "one")
    create(sandbox, "two")
    before = rows(sandbox)
    refused = sandbox.mngr("rename", "one", "two")
    assert refused.returncode != 0
    assert refused.stderr.strip() == "mngr: error: agent 'two' already exists on local (local)"
    assert rows(sandbox).keys() == before.keys()
    assert sandbox.sessions() == ["mngr-one", "mngr-two"]

    for bad, why in (("Two", "invalid agent name"), ("one", "already has that name")):
        result = sandbox.mngr("rename", "one", bad)
        assert result.returncode != 0 and why in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = sandbox.mngr("rename", "nobody", "three")
    assert missing.returncode != 0 and "nobody" in missing.stderr
    assert sandbox.sessions() == ["mngr-one", "mngr-two"]


def test_a_stray_session_of_the_new_name_is_refused(sandbox: Sandbox) -> None:
    create(sandbox, "kept")
    assert sandbox.tmux("new-session", "-d", "-s", "mngr-squatter", "sleep", "600").returncode == 0
    refused = sandbox.mngr("rename", "kept", "squatter")
    # listings show the stray session as an agent (UNKNOWN) of that name: refused before the host is asked
    assert refused.returncode != 0 and "'squatter' already exists on local" in refused.stderr
    assert "kept" in rows(sandbox)
    agent_id = rows(sandbox)["kept"]["id"]
    assert json.loads(record_path(sandbox, agent_id).read_text())["name"] == "kept"


def test_a_schedule_that_messages_the_agent_follows_the_rename(sandbox: Sandbox) -> None:
    create(sandbox, "nightly")
    added = sandbox.mngr("schedule", "add", "go", "--name", "poke", "--cron", "0 3 * * *", "--agent", "nightly",
                         "--no-install")
    assert added.returncode == 0, added.stderr
    renamed = sandbox.mngr("rename", "nightly", "nocturne")
    assert renamed.returncode == 0 and "schedule poke now messages nocturne" in renamed.stdout
    listed = sandbox.mngr("schedule", "list", "--format", "json")
    assert [entry["does"] for entry in json.loads(listed.stdout)["schedules"]] == ["message nocturne"]


def test_renames_racing_messages_and_stops_leave_record_and_session_agreeing(sandbox: Sandbox) -> None:
    """Each round renames an agent while a message to its old name and (every other round) a
    stop of it are under way: whatever order the host takes them in, the agent ends up with
    one name, its record and its session (if it runs) under that name, and a message that
    was delivered shows in its output."""
    create(sandbox, "racer-0")
    for round_number in range(6):
        _race_round(sandbox, f"racer-{round_number}", f"racer-{round_number + 1}", with_stop=round_number % 2 == 1)


def _race_round(sandbox: Sandbox, old: str, new: str, with_stop: bool) -> None:
    text = f"message to {old}"
    results: dict[str, Any] = {}

    def run(key: str, *argv: str) -> None:
        results[key] = sandbox.mngr(*argv)

    threads = [threading.Thread(target=run, args=("message", "message", old, text)),
               threading.Thread(target=run, args=("rename", "rename", old, new))]
    if with_stop:
        threads.append(threading.Thread(target=run, args=("stop", "stop", old)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["rename"].returncode == 0, results["rename"].stderr
    listed = rows(sandbox)
    assert list(listed) == [new]
    agent = listed[new]
    assert json.loads(record_path(sandbox, agent["id"]).read_text())["name"] == new
    stopped = "stop" in results and results["stop"].returncode == 0
    if agent["state"] == "STOPPED":
        assert stopped and sandbox.sessions() == []
    else:
        assert sandbox.sessions() == [f"mngr-{new}"]
    if results["message"].returncode == 0 and not stopped:
        wait_for(lambda: shows(sandbox, new, text), "the delivered message in the output")
    elif results["message"].returncode != 0:
        assert old in results["message"].stderr
    if agent["state"] == "STOPPED":
        assert sandbox.mngr("start", new).returncode == 0


def test_the_state_noter_never_sees_a_rename_half_done(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the helper itself: renames back and forth while another thread notes states as
    fast as it can. The record and the session change under the noter's lock, so no look
    finds the record without its session (which it would log as the agent STOPPED)."""
    from mngr.remote_helper import events, record_changes

    create(sandbox, "flip")
    agent_id = rows(sandbox)["flip"]["id"]
    sandbox.apply_env(monkeypatch)
    noter = events.StateNoter()
    done = threading.Event()
    looks = [0]

    def note() -> None:
        while not done.is_set():
            noter.note(10.0)
            looks[0] += 1

    watcher = threading.Thread(target=note)
    watcher.start()
    try:
        names = ["flip", "flop"]
        for turn in range(30):
            record_changes.rename_agent(names[turn % 2], names[(turn + 1) % 2])
    finally:
        done.set()
        watcher.join()
    assert looks[0] > 30  # the noter looked all along
    logged = events_of(sandbox, agent_id)
    assert len([e for e in logged if e["event"] == "renamed"]) == 30
    # (the host daemon's watcher notes states too, with its own quietness: RUNNING and WAITING may alternate)
    assert "STOPPED" not in [e["state"] for e in logged if e["event"] == "state"]
    assert sandbox.sessions() == ["mngr-flip"]


@needs_sshd
def test_rename_on_an_ssh_host_and_a_name_taken_on_another_host(sandbox: Sandbox, remote: SshHost) -> None:
    create(sandbox, "here")
    create(sandbox, "far", host="testhost")
    taken = sandbox.mngr("rename", "far", "here")
    assert taken.returncode != 0
    assert taken.stderr.strip() == "mngr: error: agent 'here' already exists on local (local)"

    renamed = sandbox.mngr("rename", "far", "farther")
    assert renamed.returncode == 0, renamed.stderr
    listed = rows(sandbox)
    assert sorted(listed) == ["farther", "here"] and listed["farther"]["host"] == "testhost"
    sent = sandbox.mngr("message", "farther", "hello over ssh")
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: shows(sandbox, "farther", "hello over ssh"), "the message on the ssh host")


# -- label --------------------------------------------------------------------------------


def test_labels_added_changed_and_removed_show_in_listings_and_filters(sandbox: Sandbox) -> None:
    create(sandbox, "web-1", "--label", "team=old", "--label", "tier=2")
    create(sandbox, "web-2")
    create(sandbox, "db-1")
    labelled = sandbox.mngr("label", "web-1", "web-2", "--add", "team=web", "--remove", "tier")
    assert labelled.returncode == 0, labelled.stderr
    assert [line.split(" [")[0] for line in labelled.stdout.splitlines()] == [
        "labelled agent web-1 (command) on local", "labelled agent web-2 (command) on local"]
    listed = rows(sandbox)
    assert listed["web-1"]["labels"] == {"team": "web"}
    assert listed["web-2"]["labels"] == {"team": "web"}
    assert listed["db-1"]["labels"] == {}
    assert sorted(rows(sandbox, "--include", "labels.team == web")) == ["web-1", "web-2"]

    again = sandbox.mngr("label", "web-1", "--add", "team=web", "--format", "json")
    assert [row["result"] for row in json.loads(again.stdout)] == ["already labelled"]

    dry = sandbox.mngr("label", "--include", "labels.team == web", "--add", "team=infra", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would label") == 2
    assert sorted(rows(sandbox, "--include", "labels.team == web")) == ["web-1", "web-2"]

    piped = sandbox.mngr("list", "--ids", "--include", "labels.team == web")
    relabelled = sandbox.mngr("label", "-", "--add", "team=infra", "--format", "jsonl", input=piped.stdout)
    assert relabelled.returncode == 0, relabelled.stderr
    assert sorted(json.loads(line)["name"] for line in relabelled.stdout.splitlines()) == ["web-1", "web-2"]
    assert sorted(rows(sandbox, "--include", "labels.team == infra")) == ["web-1", "web-2"]
    agent_id = rows(sandbox)["web-1"]["id"]
    assert any(e["event"] == "labels_changed" and e["added"] == {"team": "infra"} for e in events_of(sandbox, agent_id))


@pytest.mark.parametrize(("argv", "message"), [
    (["label", "x"], "give a label to --add"),
    (["label", "x", "--add", "team"], "--add expects KEY=VALUE"),
    (["label", "x", "--add", "bad key=1"], "invalid key"),
    (["label", "x", "--add", "k=1", "--remove", "k"], "both added and removed"),
    (["cleanup"], "say what to clean up"),
    (["cleanup", "--older-than", "soon"], "invalid --older-than"),
    (["list", "--include", "archived > yes"], "not ordered"),
])
def test_bad_input_is_one_line_and_a_usage_error(sandbox: Sandbox, argv: list[str], message: str) -> None:
    result = sandbox.mngr(*argv)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- archive ------------------------------------------------------------------------------


def test_archive_stops_hides_and_keeps_an_agent_until_unarchived(sandbox: Sandbox) -> None:
    create(sandbox, "shelved")
    create(sandbox, "active")
    agent = rows(sandbox)["shelved"]
    archived = sandbox.mngr("archive", "shelved")
    assert archived.returncode == 0, archived.stderr
    assert archived.stdout.strip() == "archived agent shelved (command) on local [STOPPED]", archived.stdout
    assert sandbox.sessions() == ["mngr-active"]
    assert list(rows(sandbox)) == ["active"]
    everything = rows(sandbox, "--all")
    assert everything["shelved"]["archived"] is True and everything["shelved"]["state"] == "STOPPED"
    assert everything["active"]["archived"] is False
    assert list(rows(sandbox, "--archived")) == ["shelved"]
    assert list(rows(sandbox, "-a", "--include", "archived")) == ["shelved"]
    assert list(rows(sandbox, "-a", "--include", "archived == false")) == ["active"]
    assert Path(agent["work_dir"]).is_dir()
    human = sandbox.mngr("list", "-a")
    assert "STOPPED (archived)" in human.stdout

    refused = sandbox.mngr("start", "shelved")
    assert refused.returncode == 1
    assert "agent 'shelved' is archived (mngr unarchive shelved, then start it)" in refused.stderr
    assert sandbox.mngr("start", "--all").stdout.strip() == "no agents to start"
    assert sandbox.sessions() == ["mngr-active"]
    again = sandbox.mngr("archive", "shelved")
    assert again.stdout.strip() == "already archived: agent shelved (command) on local [STOPPED]"

    unarchived = sandbox.mngr("unarchive", "shelved")
    assert unarchived.returncode == 0, unarchived.stderr
    assert rows(sandbox)["shelved"]["state"] == "STOPPED"
    assert sandbox.mngr("start", "shelved").returncode == 0
    sent = sandbox.mngr("message", "shelved", "back from the shelf")
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: shows(sandbox, "shelved", "back from the shelf"), "the message after unarchive")
    logged = [e["event"] for e in events_of(sandbox, agent["id"])]
    assert logged.index("stopped") < logged.index("archived") < logged.index("unarchived")
    printed = sandbox.mngr("events", "shelved", "--event", "archived,unarchived,renamed")
    assert printed.returncode == 0, printed.stderr
    assert [json.loads(line)["event"] for line in printed.stdout.splitlines()] == ["archived", "unarchived"]


@needs_sshd
def test_archive_by_pipe_and_filter_across_hosts(sandbox: Sandbox, remote: SshHost) -> None:
    create(sandbox, "old-here", "--label", "sprint=41")
    create(sandbox, "old-far", "--label", "sprint=41", host="testhost")
    create(sandbox, "new-here", "--label", "sprint=42")
    dry = sandbox.mngr("archive", "--include", "labels.sprint == 41", "--dry-run")
    assert sorted(line.split(" [")[0] for line in dry.stdout.splitlines()) == [
        "would archive agent old-far (command) on testhost", "would archive agent old-here (command) on local"]
    assert len(rows(sandbox)) == 3

    ids = sandbox.mngr("list", "--ids", "--include", "labels.sprint == 41")
    archived = sandbox.mngr("archive", "-", "--format", "json", input=ids.stdout)
    assert archived.returncode == 0, archived.stderr
    assert sorted((row["name"], row["result"], row["state"]) for row in json.loads(archived.stdout)) == [
        ("old-far", "archived", "STOPPED"), ("old-here", "archived", "STOPPED")]
    assert list(rows(sandbox)) == ["new-here"]
    assert sorted(rows(sandbox, "--archived")) == ["old-far", "old-here"]

    back = sandbox.mngr("unarchive", "--include", "host == testhost")
    assert back.returncode == 0 and "unarchived agent old-far" in back.stdout
    assert sorted(rows(sandbox)) == ["new-here", "old-far"]
    rest = sandbox.mngr("unarchive", "--all", "--format", "json")
    assert [(row["name"], row["result"]) for row in json.loads(rest.stdout)] == [("old-here", "unarchived")]
    everything = sandbox.mngr("archive", "--all", "--dry-run", "--format", "json")
    assert sorted(row["name"] for row in json.loads(everything.stdout)) == ["new-here", "old-far", "old-here"]
    assert sorted(rows(sandbox)) == ["new-here", "old-far", "old-here"]


# -- cleanup ------------------------------------------------------------------------------


def _age_record(box: Sandbox, agent_id: str, created_at: str) -> None:
    path = record_path(box, agent_id)
    record = json.loads(path.read_text())
    record["created_at"] = created_at
    path.write_text(json.dumps(record))


@needs_sshd
def test_cleanup_dry_run_then_destroy_of_agents_older_than_a_duration(sandbox: Sandbox, remote: SshHost) -> None:
    for name in ("stale-1", "stale-2", "fresh", "shelved-stale"):
        create(sandbox, name)
    create(sandbox, "far-fresh", host="testhost")
    listed = rows(sandbox)
    for name in ("stale-1", "stale-2", "shelved-stale"):
        _age_record(sandbox, listed[name]["id"], "2026-01-01T00:00:00.000+00:00")
    assert sandbox.mngr("archive", "shelved-stale").returncode == 0

    dry = sandbox.mngr("cleanup", "--older-than", "30d", "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    assert sorted((row["name"], row["result"]) for row in json.loads(dry.stdout)) == [
        ("stale-1", "would destroy"), ("stale-2", "would destroy")]
    assert sorted(rows(sandbox, "-a")) == ["far-fresh", "fresh", "shelved-stale", "stale-1", "stale-2"]
    assert len(sandbox.sessions()) == 3

    unconfirmed = sandbox.mngr("cleanup", "--older-than", "30d")
    assert unconfirmed.returncode != 0 and "stdin is not a terminal (use -y)" in unconfirmed.stderr
    assert len(rows(sandbox)) == 4

    stopped = sandbox.mngr("cleanup", "--older-than", "30d", "--action", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert {rows(sandbox)[name]["state"] for name in ("stale-1", "stale-2")} == {"STOPPED"}

    cleaned = sandbox.mngr("cleanup", "--older-than", "30d", "--state", "stopped", "-y")
    assert cleaned.returncode == 0, cleaned.stderr
    assert sorted(cleaned.stdout.splitlines()) == ["destroyed agent stale-1 (command) on local [STOPPED]",
                                                   "destroyed agent stale-2 (command) on local [STOPPED]"]
    assert sorted(rows(sandbox, "-a")) == ["far-fresh", "fresh", "shelved-stale"]
    assert rows(sandbox)["fresh"]["state"] in ("RUNNING", "WAITING")

    nothing = sandbox.mngr("cleanup", "--older-than", "30d", "-y")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "no agents to destroy"


def test_cleanup_destroy_keeps_the_lost_work_refusal(sandbox: Sandbox, tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q",
                                                "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *argv], cwd=repo, check=True)
    made = sandbox.mngr("create", "worker", "command", "--no-connect", "--", "cat", cwd=repo)
    assert made.returncode == 0, made.stderr
    agent = rows(sandbox)["worker"]
    assert agent["work_dir_origin"].get("kind") == "worktree"
    (Path(agent["work_dir"]) / "unsaved.txt").write_text("work\n")

    refused = sandbox.mngr("cleanup", "--include", "name == worker", "-y")
    assert refused.returncode != 0 and "refusing to destroy" in refused.stderr
    assert "worker" in rows(sandbox)
    forced = sandbox.mngr("cleanup", "--include", "name == worker", "-f")
    assert forced.returncode == 0, forced.stderr
    assert "worker" not in rows(sandbox)


def test_a_renamed_worktree_agent_keeps_its_branch_and_work_dir(sandbox: Sandbox, tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q",
                                                "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *argv], cwd=repo, check=True)
    made = sandbox.mngr("create", "branchy", "command", "--no-connect", "--", "cat", cwd=repo)
    assert made.returncode == 0, made.stderr
    before = rows(sandbox)["branchy"]
    assert before["work_dir_origin"]["branch"] == "mngr/branchy"
    assert sandbox.mngr("rename", "branchy", "leafy").returncode == 0
    after = rows(sandbox)["leafy"]
    assert after["work_dir"] == before["work_dir"] and Path(after["work_dir"]).is_dir()
    assert after["work_dir_origin"] == before["work_dir_origin"]
    branches = subprocess.run(["git", "branch", "--format", "%(refname:short)"], cwd=repo, capture_output=True,
                              text=True, check=True).stdout.split()
    assert sorted(branches) == ["main", "mngr/branchy"]
    head = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=after["work_dir"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head == "mngr/branchy"


def test_cleanup_asks_on_a_terminal_before_it_destroys(sandbox: Sandbox) -> None:
    for name in ("doomed", "spared"):
        create(sandbox, name)
    # stopped: the terminal's mngr runs with the sandbox's MNGR_ variables, not its tmux server
    assert sandbox.mngr("stop", "doomed", "spared").returncode == 0
    _age_record(sandbox, rows(sandbox)["doomed"]["id"], "2026-01-01T00:00:00.000+00:00")
    with terminal_running_mngr(sandbox, "cleanup", "--older-than", "30d") as terminal:
        wait_for(lambda: "Destroy doomed (local)? [y/N]" in terminal.screen(), "the question")
        terminal.press("n", "Enter")
        wait_for(lambda: "mngr: aborted" in terminal.screen(), "the answer taken")
    assert sorted(rows(sandbox)) == ["doomed", "spared"]
    with terminal_running_mngr(sandbox, "cleanup", "--older-than", "30d") as terminal:
        wait_for(lambda: "Destroy doomed (local)? [y/N]" in terminal.screen(), "the question")
        terminal.press("y", "Enter")
        wait_for(lambda: "destroyed agent doomed" in terminal.screen(), "the destroy")
    assert sorted(rows(sandbox)) == ["spared"]
