"""`mngr create --upload-file`, `--extra-window` and `--reuse` through the CLI, on a real
tmux server on this machine and on an SSH test host. Every create runs outside any git
repository (the sandbox's work dir), where the local host runs the agent in place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.integration.test_docker import dock  # noqa: F401  (the fixture)
from tests.sshd import SshHost, unavailable_reason
from tests.terminal import run_in_pty

SHOW_UPLOADS = "cat key.txt conf/app.ini; stat -c 'mode %a' key.txt conf/app.ini; echo shown; sleep 600"


def _agents(sandbox) -> dict[str, dict]:
    listed = sandbox.mngr("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {agent["name"]: agent for agent in json.loads(listed.stdout)["agents"]}


def _local_files(sandbox) -> Path:
    source = sandbox.root / "upload"
    (source / "conf").mkdir(parents=True)
    (source / "key.txt").write_text("key-contents\n")
    (source / "key.txt").chmod(0o640)
    (source / "conf" / "app.ini").write_text("[app]\n")
    (source / "conf" / "app.ini").chmod(0o600)
    return source


def _transcript_shows(sandbox, name: str, marker: str) -> str:
    def shown() -> str:
        text = sandbox.mngr("transcript", name).stdout
        return text if marker in text else ""

    return wait_for(shown, f"{marker!r} in the transcript of {name}")


def test_uploads_are_there_with_their_modes_when_the_command_starts(sandbox) -> None:
    source = _local_files(sandbox)
    outside = sandbox.root / "elsewhere"
    created = sandbox.mngr("create", "up", "command", "--no-connect",
                           "--upload-file", str(source / "key.txt"),
                           "--upload-file", f"{source / 'conf'}:conf",
                           "--upload-file", f"{source / 'key.txt'}:{outside}/copy.txt",
                           "--", "sh", "-c", SHOW_UPLOADS)
    assert created.returncode == 0, created.stderr
    # The command printed them itself: they were there before it started.
    screen = _transcript_shows(sandbox, "up", "shown")
    assert "key-contents" in screen and "[app]" in screen and "mode 640" in screen and "mode 600" in screen
    assert (outside / "copy.txt").read_text() == "key-contents\n"
    assert (outside / "copy.txt").stat().st_mode & 0o777 == 0o640
    assert not [path for path in sandbox.work_dir.rglob("*.mngr-*")], "no temp file is left"


def test_a_missing_upload_leaves_nothing(sandbox) -> None:
    (sandbox.root / "present.txt").write_text("x")
    failed = sandbox.mngr("create", "nope", "command", "--no-connect",
                          "--upload-file", str(sandbox.root / "present.txt"),
                          "--upload-file", str(sandbox.root / "missing.txt"), "--", "sleep", "600")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"mngr: error: --upload-file {sandbox.root / 'missing.txt'}: No such file or directory"]
    assert sandbox.sessions() == [] and _agents(sandbox) == {}
    assert not (sandbox.host_dir / "agents").exists() or not list((sandbox.host_dir / "agents").iterdir())
    assert list(sandbox.work_dir.iterdir()) == []


def test_a_file_in_the_way_is_refused_and_nothing_is_made_unless_overwriting(sandbox) -> None:
    source = _local_files(sandbox)
    (sandbox.work_dir / "key.txt").write_text("the user's own\n")
    # In place: the user's own file is in the work dir the agent would run in.
    args = ("create", "clash", "command", "--no-connect", "--transfer", "none", "--upload-file", f"{source / 'conf'}:conf",
            "--upload-file", str(source / "key.txt"))
    refused = sandbox.mngr(*args, "--", "sh", "-c", SHOW_UPLOADS)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"mngr: error: host 'local': upload to {sandbox.work_dir / 'key.txt'}: a file "
                                      f"is there already (--upload-overwrite replaces it)")
    assert (sandbox.work_dir / "key.txt").read_text() == "the user's own\n"
    assert not (sandbox.work_dir / "conf").exists(), "all uploads land, or none"
    assert sandbox.sessions() == [] and _agents(sandbox) == {}

    replaced = sandbox.mngr(*args, "--upload-overwrite", "--", "sh", "-c", SHOW_UPLOADS)
    assert replaced.returncode == 0, replaced.stderr
    assert (sandbox.work_dir / "key.txt").read_text() == "key-contents\n"
    _transcript_shows(sandbox, "clash", "shown")


def test_an_upload_that_leaves_the_work_dir_is_a_usage_error(sandbox) -> None:
    (sandbox.root / "a.txt").write_text("x")
    failed = sandbox.mngr("create", "out", "command", "--no-connect", "--upload-file",
                          f"{sandbox.root / 'a.txt'}:../a.txt", "--", "sleep", "600")
    assert failed.returncode == 2 and "DEST leads out of the agent's work dir" in failed.stderr
    assert sandbox.sessions() == []


def _window_pid(sandbox, session: str, window: str) -> int:
    shown = sandbox.tmux("display-message", "-p", "-t", f"={session}:={window}", "#{pane_pid}")
    assert shown.returncode == 0, shown.stderr
    return int(shown.stdout)


def _window_screen(sandbox, session: str, window: str) -> str:
    return sandbox.tmux("capture-pane", "-p", "-t", f"={session}:={window}").stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_extra_window_runs_beside_the_agent_and_follows_stop_and_start(sandbox) -> None:
    created = sandbox.mngr("create", "dev", "command", "--no-connect", "--env", "PORT=8123",
                           "--extra-window", "web=echo serving $MNGR_AGENT_NAME on $PORT in $(pwd); sleep 600",
                           "--extra-window", "api=sleep 600",
                           "--", "sh", "-c", "echo agent-window; sleep 600")
    assert created.returncode == 0, created.stderr

    def windows() -> list[str]:
        return sandbox.tmux("list-windows", "-t", "=mngr-dev", "-F", "#{window_name} #{window_active}").stdout.split()

    assert windows() == ["agent", "1", "web", "0", "api", "0"], "in the order given; the agent's stays the one shown"
    wait_for(lambda: f"serving dev on 8123 in {sandbox.host_dir / 'work' / 'dev'}" in _window_screen(sandbox, "mngr-dev", "web"),
             "the extra window's command, with the agent's environment, in its work dir")
    # capture and transcript stay on the agent's own pane.
    _transcript_shows(sandbox, "dev", "agent-window")
    captured = sandbox.mngr("capture", "dev").stdout
    assert "agent-window" in captured and "serving" not in captured
    listed = _agents(sandbox)["dev"]["extra_windows"]
    assert list(listed.items()) == [("web", "echo serving $MNGR_AGENT_NAME on $PORT in $(pwd); sleep 600"),
                                    ("api", "sleep 600")]

    web = _window_pid(sandbox, "mngr-dev", "web")
    assert sandbox.mngr("stop", "dev").returncode == 0
    assert sandbox.sessions() == [] and not _alive(web), "stop ends the extra window's processes too"
    assert sandbox.mngr("start", "dev").returncode == 0
    wait_for(lambda: "serving dev" in _window_screen(sandbox, "mngr-dev", "web"), "the extra window, back")
    assert _window_pid(sandbox, "mngr-dev", "web") != web
    assert windows() == ["agent", "1", "web", "0", "api", "0"]
    assert list(_agents(sandbox)["dev"]["extra_windows"]) == ["web", "api"]


def test_connect_lands_on_the_agents_window(sandbox) -> None:
    assert sandbox.mngr("create", "two", "command", "--no-connect", "--extra-window", "side=echo side-window; "
                        "sleep 600", "--", "sh", "-c", "echo agent-marker; sleep 600").returncode == 0
    assert sandbox.tmux("select-window", "-t", "=mngr-two:=side").returncode == 0

    def attached_on_the_agent(screen: bytes, terminal: int) -> bool:
        if b"agent-marker" not in screen:
            return False
        listed = sandbox.tmux("list-clients", "-t", "=mngr-two", "-F", "#{?client_control_mode,,#{client_name}}")
        for client in listed.stdout.split():
            sandbox.tmux("detach-client", "-t", client)
        return True

    code, screen = run_in_pty(sandbox, ["connect", "two"], attached_on_the_agent)
    assert code == 0 and b"agent-marker" in screen and b"side-window" not in screen


@pytest.mark.parametrize(("spec", "message"), [
    ("web", "--extra-window expects NAME=CMD, got 'web'"),
    ("=npm start", "empty window name"),
    ("agent=npm start", "'agent' is the agent's own window"),
])
def test_a_bad_extra_window_is_a_usage_error(sandbox, spec: str, message: str) -> None:
    failed = sandbox.mngr("create", "bad", "command", "--no-connect", "--extra-window", spec, "--", "sleep", "600")
    assert failed.returncode == 2 and message in failed.stderr and len(failed.stderr.splitlines()) == 1
    assert sandbox.sessions() == []


def test_a_window_name_given_twice_is_a_usage_error(sandbox) -> None:
    failed = sandbox.mngr("create", "bad", "command", "--no-connect", "--extra-window", "a=x", "--extra-window",
                          "a=y", "--", "sleep", "600")
    assert failed.returncode == 2 and "--extra-window 'a' given twice" in failed.stderr
    assert sandbox.sessions() == []


def test_reuse_returns_the_matching_agent_and_refuses_another(sandbox) -> None:
    args = ("create", "svc", "command", "--no-connect", "--reuse", "--label", "team=a", "--format", "json")
    made = sandbox.mngr(*args, "--", "sleep", "600")
    assert made.returncode == 0, made.stderr
    first = json.loads(made.stdout)

    again = sandbox.mngr(*args, "--", "sleep", "600")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["id"] == first["id"] and second.keys() == first.keys(), "the same agent, the same record shape"
    assert sandbox.sessions() == ["mngr-svc"] and list(_agents(sandbox)) == ["svc"]
    human = sandbox.mngr("create", "svc", "command", "--no-connect", "--reuse", "--", "sleep", "600")
    assert human.stdout == "reused agent svc (command) on local [RUNNING]\n"

    other = sandbox.mngr("create", "svc", "command", "--no-connect", "--reuse", "--label", "team=b",
                         "--", "sleep", "5")
    assert other.returncode == 1
    assert other.stderr.strip() == ("mngr: error: --reuse: agent 'svc' exists but is not the one asked for: its "
                                    "command is 'sleep 600', not 'sleep 5'; its label team is 'a', not 'b'")
    assert sandbox.sessions() == ["mngr-svc"]

    assert sandbox.mngr("stop", "svc").returncode == 0
    started = sandbox.mngr(*args, "--", "sleep", "600")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["id"] == first["id"] and json.loads(started.stdout)["state"] in (
        "RUNNING", "WAITING")
    assert sandbox.sessions() == ["mngr-svc"]


def test_reuse_without_an_agent_of_that_name_creates_it(sandbox) -> None:
    made = sandbox.mngr("create", "fresh", "command", "--no-connect", "--reuse", "--", "sleep", "600")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "created agent fresh (command) on local [RUNNING]\n"
    assert sandbox.sessions() == ["mngr-fresh"]


ssh_only = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@pytest.fixture
def ssh_host(sandbox) -> Iterator[SshHost]:
    client_dir = sandbox.root / "client"
    client_dir.mkdir()
    host = SshHost("testhost", client_dir)
    try:
        host.trust()
        config = sandbox.root / "ssh_config"
        config.write_text(host.client_config())
        sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        yield host
    finally:
        host.stop()


@ssh_only
def test_uploads_extra_windows_and_reuse_on_an_ssh_host(sandbox, ssh_host: SshHost) -> None:
    source = _local_files(sandbox)
    at_home = Path(ssh_host.user.pw_dir) / f".mngr-test-upload-{os.getpid()}"
    args = ("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect", "--reuse",
            "--upload-file", str(source / "key.txt"), "--upload-file", f"{source / 'conf'}:conf",
            "--upload-file", f"{source / 'key.txt'}:~/{at_home.name}/",
            "--extra-window", "web=echo remote-serving $MNGR_AGENT_NAME; sleep 600")
    try:
        created = sandbox.mngr(*args, "--", "sh", "-c", SHOW_UPLOADS)
        assert created.returncode == 0, created.stderr
        assert (at_home / "key.txt").read_text() == "key-contents\n", "~ is the home of the host's user"
    finally:
        shutil.rmtree(at_home, ignore_errors=True)
    work = ssh_host.remote_host_dir / "work" / "far"
    screen = _transcript_shows(sandbox, "far", "shown")
    assert "key-contents" in screen and "[app]" in screen and "mode 640" in screen and "mode 600" in screen
    assert (work / "key.txt").stat().st_uid == ssh_host.user.pw_uid, "written by the host's user"

    def web_screen() -> str:
        shown = sandbox.mngr("exec", "far", "tmux capture-pane -p -t =mngr-far:=web")
        return shown.stdout if "remote-serving far" in shown.stdout else ""

    wait_for(web_screen, "the extra window on the ssh host")
    assert sandbox.mngr("stop", "far").returncode == 0
    assert sandbox.mngr("start", "far").returncode == 0
    wait_for(web_screen, "the extra window on the ssh host, after a start")

    again = sandbox.mngr(*args, "--", "sh", "-c", SHOW_UPLOADS)
    assert again.returncode == 0 and again.stdout == "reused agent far (command) on testhost [RUNNING]\n", again.stderr
    elsewhere = sandbox.mngr("create", "far", "command", "--no-connect", "--reuse", "--", "sh", "-c", SHOW_UPLOADS)
    assert elsewhere.returncode == 1 and len(elsewhere.stderr.splitlines()) == 1
    assert "it is on testhost (ssh), not local (local)" in elsewhere.stderr
    assert list(_agents(sandbox)) == ["far"]


def _uploads_and_a_window_on(sandbox, provider: str) -> None:
    source = _local_files(sandbox)
    created = sandbox.mngr("create", "boxed", "command", "--in", provider, "--no-connect",
                           "--upload-file", str(source / "key.txt"), "--upload-file", f"{source / 'conf'}:conf",
                           "--extra-window", "web=echo boxed-serving $MNGR_AGENT_NAME; sleep 600",
                           "--", "sh", "-c", SHOW_UPLOADS)
    assert created.returncode == 0, created.stderr
    screen = _transcript_shows(sandbox, "boxed", "shown")
    assert "key-contents" in screen and "[app]" in screen and "mode 640" in screen and "mode 600" in screen

    def web_screen() -> str:
        shown = sandbox.mngr("exec", "boxed", "tmux capture-pane -p -t =mngr-boxed:=web")
        return shown.stdout if "boxed-serving boxed" in shown.stdout else ""

    wait_for(web_screen, f"the extra window on the {provider} host")


@pytest.mark.docker
def test_uploads_and_an_extra_window_in_a_docker_container(request: pytest.FixtureRequest) -> None:
    # test_docker's fixture: the sandbox with a docker namespace of its own
    _uploads_and_a_window_on(request.getfixturevalue("dock"), "docker")


@pytest.mark.docker
def test_uploads_and_an_extra_window_in_a_modal_sandbox(modal_server) -> None:
    _uploads_and_a_window_on(modal_server, "modal")


def test_a_clone_and_a_snapshot_bring_the_extra_windows_along(sandbox) -> None:
    window = "web=echo serving $MNGR_AGENT_NAME; sleep 600"
    created = sandbox.mngr("create", "orig", "command", "--no-connect", "--extra-window", window,
                           "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    cloned = sandbox.mngr("clone", "orig", "copy")
    assert cloned.returncode == 0, cloned.stderr
    wait_for(lambda: "serving copy" in _window_screen(sandbox, "mngr-copy", "web"), "the clone's extra window")
    snapshot = sandbox.mngr("snapshot", "orig", "--format", "{id}")
    assert snapshot.returncode == 0, snapshot.stderr
    restored = sandbox.mngr("create", "again", "--no-connect", "--snapshot", snapshot.stdout.strip())
    assert restored.returncode == 0, restored.stderr
    wait_for(lambda: "serving again" in _window_screen(sandbox, "mngr-again", "web"), "the restored extra window")
    listed = _agents(sandbox)
    assert {name: listed[name]["extra_windows"] for name in listed} == {
        name: {"web": "echo serving $MNGR_AGENT_NAME; sleep 600"} for name in ("orig", "copy", "again")}


def test_an_upload_refused_on_the_host_takes_back_the_worktree_and_branch(sandbox) -> None:
    repo = sandbox.root / "repo"
    repo.mkdir()
    (repo / "config.ini").write_text("committed\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "config.ini"], ["commit", "-qm", "first"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    (sandbox.root / "mine.ini").write_text("my own\n")
    refused = sandbox.mngr("create", "wt", "command", "--no-connect", "--upload-file",
                           f"{sandbox.root / 'mine.ini'}:config.ini", "--", "sleep", "600", cwd=repo)
    assert refused.returncode == 1 and "a file is there already (--upload-overwrite replaces it)" in refused.stderr
    assert sandbox.sessions() == [] and _agents(sandbox) == {}
    branches = subprocess.run([*git, "branch", "--list", "mngr/*"], capture_output=True, text=True, check=True)
    assert branches.stdout == "", "the branch made for the agent goes with it"
    assert not (sandbox.host_dir / "work" / "wt").exists()

    replaced = sandbox.mngr("create", "wt", "command", "--no-connect", "--upload-overwrite", "--upload-file",
                            f"{sandbox.root / 'mine.ini'}:config.ini", "--", "sleep", "600", cwd=repo)
    assert replaced.returncode == 0, replaced.stderr
    assert (sandbox.host_dir / "work" / "wt" / "config.ini").read_text() == "my own\n"
    assert (repo / "config.ini").read_text() == "committed\n", "your own work tree is untouched"
