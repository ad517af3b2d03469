"""SSH hosts: real sshd servers on loopback, reached through the OpenSSH client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.controller.channel.stream import SocketStream
from mngr.controller.hosts import HostHandle
from mngr.providers.ssh import SshProvider
from tests.conftest import failure_when_cut, wait_for
from tests.sshd import SshHost, unavailable_reason
from tests.terminal import run_in_pty

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


def _use(sandbox, *hosts: SshHost) -> None:
    config = sandbox.root / "ssh_config"
    config.write_text("".join(host.client_config() for host in hosts))
    sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)


@contextlib.contextmanager
def started_host(sandbox, alias: str, **options: str) -> Iterator[SshHost]:
    """A test sshd reachable as ``alias``, its key trusted, stopped at the end."""
    client_dir = sandbox.root / "client"
    client_dir.mkdir(exist_ok=True)
    host = SshHost(alias, client_dir, **options)
    try:
        host.trust()
        _use(sandbox, host)
        yield host
    finally:
        host.stop()


@pytest.fixture
def ssh_host(sandbox) -> Iterator[SshHost]:
    with started_host(sandbox, "testhost") as host:
        yield host


def agents(sandbox) -> dict:
    result = sandbox.mngr("list", "--format", "json")
    return json.loads(result.stdout) | {"code": result.returncode}


def create_remote(sandbox, name: str, *extra: str, host: str = "testhost") -> subprocess.CompletedProcess[str]:
    return sandbox.mngr("create", name, "command", "--in", "ssh", "--host", host, "--no-connect", *extra,
                        "--", "sleep", "600")


def test_lifecycle_on_an_ssh_host(sandbox, ssh_host: SshHost) -> None:
    created = create_remote(sandbox, "far")
    assert created.returncode == 0, created.stderr
    assert sandbox.mngr("create", "near", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    listed = agents(sandbox)
    assert listed["code"] == 0 and listed["errors"] == []
    where = {a["name"]: (a["provider"], a["host"], a["state"]) for a in listed["agents"]}
    assert where["near"][:2] == ("local", "local")
    assert where["far"][:2] == ("ssh", "testhost") and where["far"][2] in ("RUNNING", "WAITING")
    far = next(a for a in listed["agents"] if a["name"] == "far")
    # A work dir of its own, made by the host (never the home dir, whose dotfiles a push
    # --delete would put at risk).
    assert far["work_dir"] == str(ssh_host.remote_host_dir / "work" / "far")
    # The agent really runs on the host, as its user, with the host's state dir.
    assert any(ssh_host.remote_host_dir.glob("agents/*/record.json"))
    assert sandbox.mngr("stop", "far").returncode == 0
    assert {a["name"]: a["state"] for a in agents(sandbox)["agents"]}["far"] == "STOPPED"
    assert sandbox.mngr("start", "far").returncode == 0
    assert sandbox.mngr("destroy", "-f", "far").returncode == 0
    assert [a["name"] for a in agents(sandbox)["agents"]] == ["near"]


def test_the_work_dir_mngr_made_goes_with_its_agent_unless_kept(sandbox, ssh_host: SshHost) -> None:
    work = ssh_host.remote_host_dir / "work"
    assert create_remote(sandbox, "far").returncode == 0
    (work / "far" / "result.txt").write_text("the agent's work")
    assert sandbox.mngr("destroy", "-f", "far").returncode == 0
    assert not (work / "far").exists() and not list(work.glob(".removed-*"))
    again = create_remote(sandbox, "far")  # the same name again: a fresh, empty work dir
    assert again.returncode == 0, again.stderr
    assert list((work / "far").iterdir()) == []
    (work / "far" / "result.txt").write_text("kept this time")
    kept = sandbox.mngr("destroy", "-f", "far", "--keep-work-dir")
    assert kept.returncode == 0, kept.stderr
    assert (work / "far" / "result.txt").read_text() == "kept this time"
    gc = sandbox.mngr("gc", "--older-than", "0", "--format", "json")
    assert gc.returncode == 0 and json.loads(gc.stdout)["leftovers"] == [], gc.stdout
    assert (work / "far" / "result.txt").exists(), "gc leaves a kept work dir alone"
    # A work dir mngr made whose destroy was cut short: gc takes it.
    (work / "orphan").mkdir()
    (work / "orphan" / "half.txt").write_text("left behind")
    for path in (work / "orphan", work / "orphan" / "half.txt"):
        os.chown(path, ssh_host.user.pw_uid, ssh_host.user.pw_gid)  # the host's user's, as mngr made it
    gc = sandbox.mngr("gc", "--older-than", "0", "--format", "json")
    assert [(row["kind"], Path(row["what"]).name) for row in json.loads(gc.stdout)["leftovers"]] == [
        ("work dir of no agent", "orphan")]
    assert not (work / "orphan").exists() and (work / "far").exists()


def test_a_work_dir_the_hosts_user_cannot_enter_is_refused(sandbox, ssh_host: SshHost) -> None:
    closed = ssh_host.remote_root / "closed"
    closed.mkdir(mode=0o700)  # root's: the host's user cannot enter it
    created = create_remote(sandbox, "shut", "--work-dir", str(closed))
    assert created.returncode != 0 and f"work dir {closed} cannot be entered and read by user" in created.stderr
    assert "shut" not in [a["name"] for a in agents(sandbox)["agents"]]
    assert not [path for path in ssh_host.remote_host_dir.glob("agents/*")]


def test_talking_to_a_remote_agent(sandbox, ssh_host: SshHost) -> None:
    script = 'while IFS= read -r l; do echo "got: $l"; done'
    created = sandbox.mngr("create", "echo", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--", "sh", "-c", script)
    assert created.returncode == 0, created.stderr
    assert sandbox.mngr("message", "echo", "hello over ssh; $(not run)").returncode == 0
    wait_for(lambda: "got: hello over ssh; $(not run)" in sandbox.mngr("transcript", "echo").stdout, "reply")
    ran = sandbox.mngr("exec", "echo", "id -un; pwd")
    assert ran.returncode == 0 and ran.stdout.split() == ["mngr-test", str(ssh_host.remote_host_dir / "work" / "echo")]
    assert "got: hello over ssh" in sandbox.mngr("capture", "echo").stdout


def test_connections_are_shared_between_commands(sandbox, ssh_host: SshHost) -> None:
    assert create_remote(sandbox, "shared").returncode == 0
    control_sockets = [p for p in (sandbox.state_dir / "ssh").iterdir() if not p.name.startswith("fwd-")]
    assert len(control_sockets) == 1
    config = sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"]
    check = subprocess.run(["ssh", "-F", config, "-o", f"ControlPath={control_sockets[0]}", "-O", "check",
                            "testhost"], capture_output=True, text=True)
    assert check.returncode == 0 and "Master running" in check.stderr


def test_later_commands_reach_the_host_daemon_through_the_shared_connection(
    sandbox, ssh_host: SshHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert create_remote(sandbox, "warm").returncode == 0
    sandbox.apply_env(monkeypatch)
    provider = SshProvider({"ssh_config": sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"]})

    def daemon_answers() -> bool:
        with HostHandle(provider, "testhost", timeout=30) as handle:
            info = handle.helper_info()
            daemons = ssh_host.remote_processes(b"daemon import main")
            return isinstance(handle.client.stream, SocketStream) and daemons == [info.pid]

    wait_for(daemon_answers, "the warm path to the host daemon")
    # If the daemon dies, the forwarded socket leads nowhere. A request that changes
    # something is not sent into it blind: the handle checks first, then bootstraps.
    for pid in ssh_host.remote_processes(b"daemon import main"):
        os.kill(pid, signal.SIGKILL)
    with HostHandle(provider, "testhost", timeout=30) as handle:
        assert isinstance(handle.client.stream, SocketStream)
        assert handle.stop_agent("warm").state == "STOPPED"
    # And a listing (safe to repeat) falls back on its own.
    for pid in ssh_host.remote_processes(b"daemon import main"):
        os.kill(pid, signal.SIGKILL)
    listed = agents(sandbox)
    assert listed["code"] == 0 and [(a["name"], a["state"]) for a in listed["agents"]] == [("warm", "STOPPED")]


def test_unknown_host_key_needs_consent(sandbox, ssh_host: SshHost) -> None:
    ssh_host.known_hosts.write_text("")
    refused = create_remote(sandbox, "careful")
    assert refused.returncode == 1
    assert "the host key of testhost is not known yet" in refused.stderr and "--accept-new-host-key" in refused.stderr
    assert refused.stderr.count("\n") == 1
    accepted = create_remote(sandbox, "careful", "--accept-new-host-key")
    assert accepted.returncode == 0, accepted.stderr
    assert f"[127.0.0.1]:{ssh_host.port}" in ssh_host.known_hosts.read_text()


def test_changed_host_key_is_refused(sandbox, ssh_host: SshHost) -> None:
    impostor = sandbox.root / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    key_type, key = Path(f"{impostor}.pub").read_text().split()[:2]
    ssh_host.known_hosts.write_text(f"[127.0.0.1]:{ssh_host.port} {key_type} {key}\n")
    for extra in ((), ("--accept-new-host-key",)):
        refused = create_remote(sandbox, "victim", *extra)
        assert refused.returncode == 1
        assert "the host key of testhost has CHANGED and is refused" in refused.stderr
        assert "ssh-keygen -R" in refused.stderr


def test_one_dead_host_does_not_hide_the_others(sandbox, ssh_host: SshHost) -> None:
    assert create_remote(sandbox, "alive").returncode == 0
    config = sandbox.config_dir / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[hosts.gone]\naddress = "mngr-test@127.0.0.1:1"\n')
    listed = agents(sandbox)
    assert listed["code"] == 1
    assert [a["name"] for a in listed["agents"]] == ["alive"]
    (error,) = listed["errors"]
    assert (error["host"], error["provider"]) == ("gone", "ssh") and error["error"]
    human = sandbox.mngr("list")
    assert human.returncode == 1 and "! gone" in human.stdout and "alive" in human.stdout


def test_login_noise_is_skipped(sandbox) -> None:
    noise = 'echo "Welcome! Last login: never"; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    with started_host(sandbox, "noisy", force_command=noise):
        created = create_remote(sandbox, "through-noise", host="noisy")
        assert created.returncode == 0, created.stderr
        assert [a["name"] for a in agents(sandbox)["agents"]] == ["through-noise"]


def test_a_host_without_python_is_named(sandbox) -> None:
    without_python = 'PATH=/nonexistent; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    with started_host(sandbox, "bare", force_command=without_python):
        result = create_remote(sandbox, "nopython", host="bare")
        assert result.returncode == 1
        assert "python3 is not installed on bare" in result.stderr and result.stderr.count("\n") == 1


def test_helper_killed_on_the_host_is_replaced(sandbox, ssh_host: SshHost) -> None:
    assert create_remote(sandbox, "survivor").returncode == 0
    helpers = ssh_host.remote_processes(b"mngr_remote_helper")
    assert helpers, "a host daemon or helper runs on the host"
    for pid in helpers:
        os.kill(pid, signal.SIGKILL)
    listed = agents(sandbox)
    assert listed["code"] == 0 and [a["name"] for a in listed["agents"]] == ["survivor"]


def test_many_hosts_behind_one_busy_sshd(sandbox) -> None:
    """sshd's default MaxStartups (10) drops handshakes beyond ten at once: list retries them."""
    with started_host(sandbox, "busy", max_startups="10:30:100") as server:
        aliases = [f"busy{i}" for i in range(24)]
        config = sandbox.root / "ssh_config"
        config.write_text("".join(server.client_config().replace("Host busy", f"Host {alias}", 1) for alias in aliases))
        sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("".join(f"[hosts.{a}]\naddress = \"{a}\"\n" for a in aliases))
        listed = agents(sandbox)
        assert listed["errors"] == [] and listed["code"] == 0


def test_paramiko_transport(sandbox, ssh_host: SshHost) -> None:
    """The in-process fallback reaches the same host, with the same host key rules."""
    sandbox.env["MNGR_PROVIDERS__SSH__TRANSPORT"] = "paramiko"
    # OpenSSH's markers and the user's comments: read past, and kept when a key is added.
    other_key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    users_lines = (f"# the user's own notes\n@cert-authority *.example.com ssh-ed25519 {other_key}\n"
                   f"@revoked old.example.com ssh-ed25519 {other_key}\nnot a key line\n")
    ssh_host.known_hosts.write_text(users_lines)
    refused = create_remote(sandbox, "via-paramiko")
    assert refused.returncode == 1 and "the host key of testhost is not known yet" in refused.stderr
    created = create_remote(sandbox, "via-paramiko", "--accept-new-host-key")
    assert created.returncode == 0, created.stderr
    host_key = " ".join(Path(f"{ssh_host.host_key}.pub").read_text().split()[:2])
    assert ssh_host.known_hosts.read_text() == users_lines + f"[127.0.0.1]:{ssh_host.port} {host_key}\n"
    listed = agents(sandbox)
    assert listed["code"] == 0 and [(a["name"], a["host"]) for a in listed["agents"]] == [("via-paramiko", "testhost")]
    ran = sandbox.mngr("exec", "via-paramiko", "id -un")
    assert ran.returncode == 0 and ran.stdout == "mngr-test\n"
    assert sandbox.mngr("destroy", "-f", "via-paramiko").returncode == 0
    # A changed key is refused here too.
    impostor = sandbox.root / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    key_type, key = Path(f"{impostor}.pub").read_text().split()[:2]
    ssh_host.known_hosts.write_text(f"[127.0.0.1]:{ssh_host.port} {key_type} {key}\n")
    changed = create_remote(sandbox, "again", "--accept-new-host-key")
    assert changed.returncode == 1 and "has CHANGED and is refused" in changed.stderr
    # A key marked @revoked is refused even when it is also listed as the host's key.
    ssh_host.known_hosts.write_text(f"[127.0.0.1]:{ssh_host.port} {host_key}\n@revoked * {host_key}\n")
    revoked = create_remote(sandbox, "again")
    assert revoked.returncode == 1 and "marked @revoked" in revoked.stderr
    assert sandbox.mngr("list", "--format", "{name}").stdout == ""


def test_bad_ssh_host_names(sandbox) -> None:
    for bad in ("-oProxyCommand=evil", "a b", "host;rm"):
        result = sandbox.mngr("create", "x", "command", "--in", "ssh", "--host", bad, "--no-connect", "--", "true")
        assert result.returncode == 2 and "invalid ssh host" in result.stderr
    missing = sandbox.mngr("create", "x", "command", "--in", "ssh", "--no-connect", "--", "true")
    assert missing.returncode == 2 and "--in ssh needs a host" in missing.stderr


def test_a_template_home_work_dir_means_the_hosts_home(sandbox, ssh_host: SshHost) -> None:
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text('[templates.far]\nwork_dir = "~"\n')
    created = create_remote(sandbox, "homed", "-T", "far")
    assert created.returncode == 0, created.stderr
    (agent,) = agents(sandbox)["agents"]
    assert agent["work_dir"] == ssh_host.user.pw_dir != os.path.expanduser("~")


def test_connect_attaches_over_ssh(sandbox, ssh_host: SshHost) -> None:
    script = "echo remote-screen-marker; sleep 600"
    created = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--", "sh", "-c", script)
    assert created.returncode == 0, created.stderr
    tmux_socket = ssh_host.remote_tmux_dir / f"tmux-{ssh_host.user.pw_uid}" / "default"

    def detach_once_drawn(screen: bytes, terminal: int) -> bool:
        if b"remote-screen-marker" not in screen:
            return False
        subprocess.run(["tmux", "-S", str(tmux_socket), "detach-client", "-s", "=mngr-far"], capture_output=True)
        return True

    code, screen = run_in_pty(sandbox, ["connect", "far"], detach_once_drawn)
    assert code == 0 and b"remote-screen-marker" in screen
    assert [a["state"] for a in agents(sandbox)["agents"]] in (["RUNNING"], ["WAITING"])


def test_unreachable_wrong_user_and_silent_hosts_are_errors_not_hangs(sandbox, ssh_host: SshHost) -> None:
    import socket
    import threading

    assert create_remote(sandbox, "fine").returncode == 0
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)  # accepts connections, never says a word
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        black_hole.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(black_hole.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept_forever)
    acceptor.start()
    try:
        config = sandbox.config_dir / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'[hosts.silent]\naddress = "mngr-test@127.0.0.1:{black_hole.getsockname()[1]}"\n'
            f'[hosts.stranger]\naddress = "nobody@127.0.0.1:{ssh_host.port}"\n'
            '[hosts.closed]\naddress = "mngr-test@127.0.0.1:1"\n'
        )
        sandbox.env.update(MNGR_HOST_TIMEOUT_SECONDS="3", MNGR_PROVIDERS__SSH__CONNECT_TIMEOUT="2",
                           MNGR_PROVIDERS__SSH__ACCEPT_NEW_HOST_KEYS="true")
        listed = agents(sandbox)
        assert listed["code"] == 1
        assert [a["name"] for a in listed["agents"]] == ["fine"]
        errors = {error["host"]: error["error"] for error in listed["errors"]}
        assert set(errors) == {"silent", "stranger", "closed"}
        assert "refused the login" in errors["stranger"]
    finally:
        stop.set()
        acceptor.join()
        for connection in held:
            connection.close()
        black_hole.close()


def test_connection_cut_mid_request_then_the_next_command_reconnects(
    sandbox, ssh_host: SshHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mngr.controller.errors import ChannelClosed

    assert create_remote(sandbox, "cut").returncode == 0
    sandbox.apply_env(monkeypatch)
    provider = SshProvider({"ssh_config": sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"]})
    handle = HostHandle(provider, "testhost")
    handle.helper_info()

    def cut() -> None:  # kill the ssh processes: the shared connection dies
        for pid in sandbox.own_processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ssh"):
                    os.kill(pid, signal.SIGKILL)

    error = failure_when_cut(handle.client, "cut", cut)
    assert isinstance(error, ChannelClosed) and "during SendMessage" in str(error)
    handle.close()
    listed = agents(sandbox)
    assert listed["code"] == 0 and [a["name"] for a in listed["agents"]] == ["cut"]


def test_two_configured_hosts_on_one_machine_stay_apart(sandbox, ssh_host: SshHost) -> None:
    """Same address, different helper environments (host dir and tmux server): never mixed up."""
    dirs = {}
    for name in ("left", "right"):
        directory = ssh_host.remote_root / name
        directory.mkdir()
        (directory / "tmux").mkdir()
        for path in (directory, directory / "tmux"):
            os.chown(path, ssh_host.user.pw_uid, ssh_host.user.pw_gid)
        dirs[name] = directory
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text("".join(
        f'[hosts.{name}]\naddress = "testhost"\n'
        f'env = {{ MNGR_HOST_DIR = "{directory}", TMUX_TMPDIR = "{directory}/tmux" }}\n'
        for name, directory in dirs.items()
    ))
    for name in ("left", "right"):
        for _ in range(2):  # the second time through the warm path, if one was set up
            listed = agents(sandbox)
            assert listed["code"] == 0, listed["errors"]
        assert create_remote(sandbox, f"on-{name}", host=name).returncode == 0
    listed = agents(sandbox)
    assert sorted((a["name"], a["host"]) for a in listed["agents"]) == [("on-left", "left"), ("on-right", "right")]
    assert len(list((dirs["left"] / "agents").iterdir())) == 1
    assert len(list((dirs["right"] / "agents").iterdir())) == 1


def _remote_decisions(ssh_host: SshHost) -> list[dict]:
    log = ssh_host.remote_host_dir / "host" / "watcher.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_ssh_hosts_get_the_default_idle_timeout_and_a_configured_one_wins(sandbox, ssh_host: SshHost) -> None:
    assert create_remote(sandbox, "defaulted").returncode == 0
    (host,) = [h for h in agents(sandbox)["hosts"] if h["provider"] == "ssh"]
    assert host["idle_timeout"] == 3600.0, "an SSH host stops idle agents after 1h unless told otherwise"
    # A later create with the provider default never overrides what the user set.
    assert sandbox.mngr("limit", "defaulted", "--idle-timeout", "2h").returncode == 0
    assert create_remote(sandbox, "second").returncode == 0
    (host,) = [h for h in agents(sandbox)["hosts"] if h["provider"] == "ssh"]
    assert host["idle_timeout"] == 7200.0


def test_the_watcher_outlives_the_connection_and_runs_the_idle_command(sandbox, ssh_host: SshHost) -> None:
    marker = ssh_host.remote_host_dir / "powered-off"
    config = Path(sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"])
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(f'[providers.ssh]\nidle_command = "touch {marker}"\n')
    assert create_remote(sandbox, "far", "--idle-timeout", "3").returncode == 0
    # Cut every connection mngr had to the host: the ssh masters go away.
    masters = [pid for pid in sandbox.own_processes() if b"[mux]" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert masters, "the create left an ssh master behind"
    for pid in masters:
        os.kill(pid, signal.SIGKILL)
    wait_for(marker.exists, "the idle command on the host", timeout=30)
    assert config.exists()
    (agent,) = agents(sandbox)["agents"]
    assert agent["state"] == "STOPPED"
    assert any(d["decision"] == "shutdown" and d["command"] == f"touch {marker}"
               for d in _remote_decisions(ssh_host))


def test_an_open_ssh_terminal_session_keeps_the_host_up(sandbox, ssh_host: SshHost) -> None:
    created = create_remote(sandbox, "far", "--idle-timeout", "3", "--activity-sources", "ssh")
    assert created.returncode == 0, created.stderr
    config = sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"]
    session = subprocess.Popen(["ssh", "-F", config, "-tt", "-o", "BatchMode=yes", "testhost", "sleep 60"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(d["decision"] == "active" and "ssh" in d["message"]
                             for d in _remote_decisions(ssh_host)), "the session to count as activity")
        time.sleep(5)  # past the timeout, with only the session to keep the host up
        assert [a["state"] for a in agents(sandbox)["agents"]] in (["RUNNING"], ["WAITING"])
    finally:
        session.kill()
        session.wait()
    wait_for(lambda: [a["state"] for a in agents(sandbox)["agents"]] == ["STOPPED"], "the stop after the session")


def test_push_and_pull_over_ssh(sandbox, ssh_host: SshHost) -> None:
    source = sandbox.root / "source"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("print('far')\n" * 1000)
    (source / "blob.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (source / "tool").write_text("#!/bin/sh\n")
    (source / "tool").chmod(0o755)
    (source / "alias").symlink_to("tool")
    work = ssh_host.remote_root / "work"  # removed with the host
    work.mkdir()
    os.chown(work, ssh_host.user.pw_uid, ssh_host.user.pw_gid)
    assert create_remote(sandbox, "far", "--work-dir", str(work)).returncode == 0
    pushed = sandbox.mngr("push", "far", str(source))
    assert pushed.returncode == 0, pushed.stderr
    assert all(info.st_uid == ssh_host.user.pw_uid for info in (p.lstat() for p in work.rglob("*")))
    for name in ("pkg/mod.py", "blob.bin", "tool"):
        assert (work / name).read_bytes() == (source / name).read_bytes()
    assert (work / "tool").stat().st_mode & 0o777 == 0o755 and os.readlink(work / "alias") == "tool"
    assert "nothing to push" in sandbox.mngr("push", "far", str(source)).stdout
    back = sandbox.root / "back"
    assert sandbox.mngr("pull", "far", str(back)).returncode == 0
    for name in ("pkg/mod.py", "blob.bin", "tool"):
        assert (back / name).read_bytes() == (source / name).read_bytes()


def test_create_from_a_source_on_an_ssh_host(sandbox, ssh_host: SshHost) -> None:
    project = sandbox.root / "project"
    project.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    (project / "main.py").write_text("print('hi')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    created = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--source", str(project), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    work = ssh_host.remote_host_dir / "work" / "far"
    assert (work / "main.py").read_text() == "print('hi')\n"
    assert work.stat().st_uid == ssh_host.user.pw_uid
    log = sandbox.mngr("exec", "far", "git log --format=%s")
    assert log.returncode == 0 and log.stdout == "start\n"


def test_migrate_between_two_ssh_hosts(sandbox) -> None:
    with started_host(sandbox, "first") as first, started_host(sandbox, "second") as second:
        _use(sandbox, first, second)
        work = first.remote_root / "work"
        work.mkdir()
        (work / "state.txt").write_text("progress so far\n")
        (work / "data.bin").write_bytes(os.urandom(300_000))
        for path in (work, work / "state.txt", work / "data.bin"):
            os.chown(path, first.user.pw_uid, first.user.pw_gid)
        created = sandbox.mngr("create", "mover", "command", "--in", "ssh", "--host", "first", "--no-connect",
                               "--work-dir", str(work), "--env", "KEEP=me", "--", "sleep", "600")
        assert created.returncode == 0, created.stderr
        moved = sandbox.mngr("migrate", "mover", "--to-host", "second", "--in", "ssh", "--format", "json")
        assert moved.returncode == 0, moved.stderr
        listed = agents(sandbox)
        assert [(a["name"], a["host"]) for a in listed["agents"]] == [("mover", "second")]
        copy = second.remote_host_dir / "work" / "mover"
        assert (copy / "state.txt").read_text() == "progress so far\n"
        assert (copy / "data.bin").read_bytes() == (work / "data.bin").read_bytes()
        assert (work / "state.txt").exists(), "the old work dir stays on the old host"
        ran = sandbox.mngr("exec", "mover", "echo $KEEP")
        assert ran.returncode == 0 and ran.stdout == "me\n"
        again = sandbox.mngr("migrate", "mover", "--to-host", "second", "--in", "ssh")
        assert again.returncode == 2 and "already on host" in again.stderr


def test_a_new_remote_agent_gets_a_work_dir_of_its_own_not_the_home_dir(sandbox, ssh_host: SshHost) -> None:
    created = create_remote(sandbox, "own")
    assert created.returncode == 0, created.stderr
    (agent,) = agents(sandbox)["agents"]
    work = ssh_host.remote_host_dir / "work" / "own"
    assert agent["work_dir"] == str(work) != ssh_host.user.pw_dir
    assert work.is_dir() and list(work.iterdir()) == [] and work.stat().st_uid == ssh_host.user.pw_uid


def _as_test_user(ssh_host: SshHost, *paths: Path) -> None:
    for path in paths:
        os.lchown(path, ssh_host.user.pw_uid, ssh_host.user.pw_gid)


def test_push_delete_into_the_home_dir_keeps_dotfiles_and_agents(sandbox, ssh_host: SshHost) -> None:
    home = Path(ssh_host.user.pw_dir)
    dotfile = home / f".mngr-test-dotfile-{os.getpid()}"
    stray = home / f"mngr-test-stray-{os.getpid()}"
    pushed_file = home / "mngr-test-main.py"
    try:
        dotfile.write_text("the user's setup\n")
        stray.write_text("only on the host\n")
        _as_test_user(ssh_host, dotfile, stray)
        assert create_remote(sandbox, "homed", "--work-dir", "~").returncode == 0
        assert create_remote(sandbox, "neighbour").returncode == 0
        project = sandbox.root / "project"
        project.mkdir()
        (project / pushed_file.name).write_text("print('hi')\n")
        dry = sandbox.mngr("push", "homed", str(project), "--delete", "--dry-run")
        assert f"- {stray.name}" in dry.stdout and f"! {dotfile.name}: not deleted" in dry.stdout
        pushed = sandbox.mngr("push", "homed", str(project), "--delete")
        assert pushed.returncode == 3, pushed.stderr
        assert dotfile.read_text() == "the user's setup\n" and not stray.exists()
        assert pushed_file.read_text() == "print('hi')\n"
        assert {agent["name"]: agent["state"] for agent in agents(sandbox)["agents"]} == {
            "homed": "RUNNING", "neighbour": "RUNNING"}
    finally:
        for path in (dotfile, stray, pushed_file):
            path.unlink(missing_ok=True)


def test_pull_dry_run_never_lists_the_host_dir_nor_other_agents_work_dirs(sandbox, ssh_host: SshHost) -> None:
    # The host dir (agents' records and env files) inside an agent's work dir stays out.
    assert create_remote(sandbox, "neighbour").returncode == 0
    assert create_remote(sandbox, "wide", "--work-dir", str(ssh_host.remote_host_dir)).returncode == 0
    dry = sandbox.mngr("pull", "wide", str(sandbox.root / "back"), "--dry-run")
    assert dry.returncode == 0 and "would pull 0 change(s)" in dry.stdout, dry.stdout
    pushed = sandbox.mngr("push", "wide", str(sandbox.root / "back"), "--delete")
    assert pushed.returncode == 0 and (ssh_host.remote_host_dir / "agents").is_dir()
    assert len(agents(sandbox)["agents"]) == 2


def test_unreadable_files_and_read_only_dirs_are_skipped_and_reported(sandbox, ssh_host: SshHost) -> None:
    assert create_remote(sandbox, "far").returncode == 0
    work = ssh_host.remote_host_dir / "work" / "far"
    (work / "locked").write_text("the test user cannot read this\n")
    (work / "readable").write_text("fine\n")
    (work / "frozen").mkdir()
    _as_test_user(ssh_host, work / "locked", work / "readable", work / "frozen")
    (work / "locked").chmod(0o000)
    (work / "frozen").chmod(0o555)
    back = sandbox.root / "back"
    pulled = sandbox.mngr("pull", "far", str(back))
    assert pulled.returncode == 3 and "skipped locked: Permission denied" in pulled.stderr, pulled.stderr
    assert (back / "readable").read_text() == "fine\n" and not (back / "locked").exists()
    source = sandbox.root / "source"
    (source / "frozen").mkdir(parents=True)
    (source / "frozen").chmod(0o555)
    (source / "frozen" / "new.txt").write_bytes(b"")
    (source / "other.txt").write_text("lands\n")
    pushed = sandbox.mngr("push", "far", str(source))
    assert pushed.returncode == 3 and "skipped frozen/new.txt: Permission denied" in pushed.stderr, pushed.stderr
    assert (work / "other.txt").read_text() == "lands\n" and not (work / "frozen" / "new.txt").exists()
    (work / "frozen").chmod(0o755)
    again = sandbox.mngr("push", "far", str(source))
    assert again.returncode == 0, again.stderr
    assert (work / "frozen" / "new.txt").exists() and (work / "frozen").stat().st_mode & 0o777 == 0o555


@pytest.mark.parametrize("name", [os.fsdecode(b"caf\xe9"), "back\\slash", "n" * 255],
                         ids=["not-utf-8", "backslash", "255-bytes"])
def test_odd_names_round_trip_over_ssh(sandbox, ssh_host: SshHost, name: str) -> None:
    assert create_remote(sandbox, "far").returncode == 0
    source = sandbox.root / "source"
    (source / name).mkdir(parents=True)
    (source / name / name).write_bytes(os.urandom(5 * 1024 * 1024))
    pushed = sandbox.mngr("push", "far", str(source))
    assert pushed.returncode == 0, pushed.stderr
    work = ssh_host.remote_host_dir / "work" / "far"
    assert (work / name / name).read_bytes() == (source / name / name).read_bytes()
    back = sandbox.root / "back"
    pulled = sandbox.mngr("pull", "far", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert (back / name / name).read_bytes() == (source / name / name).read_bytes()
