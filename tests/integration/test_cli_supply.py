"""The agent's CLI reaches an SSH host whose user has none: the real claude and codex binaries
of the test's own install (.venv/agent-clis), copied once per host and version."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.controller.cli_supply import ensure_cli
from mngr.controller.hosts import HostHandle
from mngr.providers.ssh import SshProvider
from tests import agent_clis
from tests.conftest import MNGR_BIN, wait_for
from tests.integration.test_sync_progress import _through_proxy
from tests.model_standin import ModelStandin
from tests.sshd import SshHost, ensure_test_user, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None or agent_clis.missing_reason() is not None,
                                reason=unavailable_reason() or agent_clis.missing_reason() or "")

NPM_ROOT = agent_clis.AGENT_CLI_BIN.parent
CLAUDE_BINARY = NPM_ROOT / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
CLAUDE_VERSION = json.loads((NPM_ROOT / "@anthropic-ai" / "claude-code" / "package.json").read_text())["version"]
CODEX_BINARY = NPM_ROOT / "@openai" / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex"
CODEX_VERSION = json.loads((NPM_ROOT / "@openai" / "codex" / "package.json").read_text())["version"]


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


@contextlib.contextmanager
def _host(sandbox, alias: str = "clihost", path_first: Path | None = None) -> Iterator[SshHost]:
    """A test sshd whose user has an empty home of the test's own and neither CLI on its PATH
    (unless ``path_first`` puts a dir of the test's there)."""
    client_dir = sandbox.root / "client"
    client_dir.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="mngr-home-", dir="/tmp"))
    user = ensure_test_user()
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o700)
    path = f"{path_first}:" if path_first else ""
    host = SshHost(alias, client_dir, env={"HOME": str(home), "PATH": f"{path}/usr/local/bin:/usr/bin:/bin"})
    try:
        host.trust()
        config = sandbox.root / "ssh_config"
        config.write_text(host.client_config())
        sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        yield host
    finally:
        host.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def cli_user(sandbox) -> Iterator[ModelStandin]:
    """The test's user: both CLIs installed on their PATH and set up (tests/agent_clis.py) to
    talk to the model stand-in; mngr gives each agent on a host what it needs of that."""
    standin = ModelStandin()
    try:
        home = sandbox.root / "home"
        agent_clis.set_up_home(home, standin, trusted=[sandbox.work_dir])
        sandbox.env.update(agent_clis.user_environment(home, standin, sandbox.env["PATH"]))
        yield standin
    finally:
        standin.close()


@pytest.fixture
def cli_host(sandbox, cli_user: ModelStandin) -> Iterator[SshHost]:
    with _host(sandbox) as host:
        yield host


def _create(sandbox, host: SshHost, name: str, agent_type: str, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
    """Create an agent that runs the real CLI on the host, ready for input (create waits for it)."""
    return sandbox.mngr("create", name, agent_type, "--in", "ssh", "--host", host.alias, "--no-connect",
                        timeout=timeout)


def _bundles(host: SshHost) -> list[Path]:
    clis = host.remote_host_dir / "clis"
    return sorted(path for path in clis.iterdir() if not path.name.startswith(".")) if clis.exists() else []


def _host_has_no_partial_file(host: SshHost) -> None:
    for bundle in _bundles(host):
        assert not [path for path in bundle.rglob("*") if ".part" in path.name], bundle


def _agent_env(host: SshHost, name: str) -> dict[str, str]:
    for launch in host.remote_host_dir.glob("agents/*/launch.json"):
        record = json.loads((launch.parent / "record.json").read_text())
        if record["name"] == name:
            return json.loads(launch.read_text())["env"]
    raise AssertionError(f"no agent {name} on the host")


def test_claude_and_codex_are_copied_once_and_run_on_a_host_without_them(sandbox, cli_host: SshHost) -> None:
    assert shutil.which("claude", path="/usr/local/bin:/usr/bin:/bin") is None, "the host's user has no claude"
    created = _create(sandbox, cli_host, "c1", "claude")
    assert created.returncode == 0, created.stderr
    [bundle] = _bundles(cli_host)
    landed = bundle / "claude"
    assert _sha256(landed) == _sha256(CLAUDE_BINARY)
    assert landed.stat().st_mode & 0o777 == 0o755
    env = _agent_env(cli_host, "c1")
    assert env["PATH"].split(os.pathsep)[0] == str(bundle)
    ran = sandbox.mngr("exec", "c1", "claude --version")
    assert ran.returncode == 0 and f"{CLAUDE_VERSION} (Claude Code)" in ran.stdout, ran.stdout + ran.stderr
    listed = sandbox.mngr("list", "--format", "json")
    assert str(bundle) not in listed.stdout, "the PATH it runs with is not shown"

    # A second agent on the host copies nothing: the landed file stays the same inode, unchanged.
    before = landed.stat()
    again = _create(sandbox, cli_host, "c2", "claude")
    assert again.returncode == 0, again.stderr
    after = landed.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _bundles(cli_host) == [bundle]
    # Restarted, it still finds it.
    assert sandbox.mngr("stop", "c2").returncode == 0
    assert sandbox.mngr("start", "c2").returncode == 0
    assert _agent_env(cli_host, "c2")["PATH"].split(os.pathsep)[0] == str(bundle)

    codex = _create(sandbox, cli_host, "x1", "codex")
    assert codex.returncode == 0, codex.stderr
    [codex_bundle] = [path for path in _bundles(cli_host) if path != bundle]
    assert _sha256(codex_bundle / "bin" / "codex") == _sha256(CODEX_BINARY)
    assert (codex_bundle / "codex-path" / "rg").stat().st_mode & 0o111
    ran = sandbox.mngr("exec", "x1", "codex --version")
    assert ran.returncode == 0 and f"codex-cli {CODEX_VERSION}" in ran.stdout, ran.stdout + ran.stderr
    _host_has_no_partial_file(cli_host)


def test_a_host_with_the_same_version_keeps_its_own_under_auto(sandbox, cli_user: ModelStandin,
                                                               tmp_path: Path) -> None:
    own_bin = Path(tempfile.mkdtemp(prefix="mngr-own-", dir="/tmp"))
    try:
        os.chmod(own_bin, 0o755)
        shutil.copy2(CLAUDE_BINARY, own_bin / "claude")  # the same version, the host's own
        with _host(sandbox, path_first=own_bin) as host:
            created = _create(sandbox, host, "own", "claude")
            assert created.returncode == 0, created.stderr
            assert _bundles(host) == [], "nothing copied"
            assert str(host.remote_host_dir / "clis") not in _agent_env(host, "own")["PATH"]
            ran = sandbox.mngr("exec", "own", "command -v claude")
            assert ran.stdout.strip() == str(own_bin / "claude")
            # cli = "copy" copies regardless.
            sandbox.config_dir.mkdir(exist_ok=True)
            (sandbox.config_dir / "config.toml").write_text('[agent_types.claude]\ncli = "copy"\n')
            copied = _create(sandbox, host, "copied", "claude")
            assert copied.returncode == 0, copied.stderr
            [bundle] = _bundles(host)
            assert _agent_env(host, "copied")["PATH"].split(os.pathsep)[0] == str(bundle)
    finally:
        shutil.rmtree(own_bin, ignore_errors=True)


def test_an_install_with_no_binary_for_the_hosts_machine_fails_the_create_and_leaves_nothing(
    sandbox, cli_host: SshHost
) -> None:
    # An honest arm64-only install: the user's claude package with a binary whose ELF header
    # says aarch64 (what an install on an arm64 machine has), on this x86_64 host.
    package = sandbox.root / "arm" / "node_modules" / "@anthropic-ai" / "claude-code"
    (package / "bin").mkdir(parents=True)
    shutil.copy2(NPM_ROOT / "@anthropic-ai" / "claude-code" / "package.json", package / "package.json")
    arm = bytearray((b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xb7\x00").ljust(4096, b"\0"))
    (package / "bin" / "claude.exe").write_bytes(bytes(arm))
    (package / "bin" / "claude.exe").chmod(0o755)
    bin_dir = sandbox.root / "arm" / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(package / "bin" / "claude.exe")
    sandbox.env["PATH"] = f"{bin_dir}{os.pathsep}{sandbox.env['PATH']}"
    refused = _create(sandbox, cli_host, "armed", "claude")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot provide claude on host 'clihost'" in refused.stderr and "x86_64" in refused.stderr, refused.stderr
    assert "aarch64" in refused.stderr
    assert json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"] == []
    assert not list(cli_host.remote_host_dir.glob("agents/*"))
    assert not (cli_host.remote_host_dir / "work" / "armed").exists()
    assert _bundles(cli_host) == [] and not list((cli_host.remote_host_dir / "clis").glob(".parts/*"))
    sessions = subprocess.run(["tmux", "-L", "default", "ls"], capture_output=True, text=True,
                              env={**os.environ, "TMUX_TMPDIR": str(cli_host.remote_tmux_dir)})
    assert "mngr-armed" not in sessions.stdout


def test_a_copy_cut_off_by_kill_leaves_nothing_partial_and_the_next_create_finishes(
    sandbox, cli_host: SshHost
) -> None:
    process = subprocess.Popen(
        [str(MNGR_BIN), "create", "cut", "claude", "--in", "ssh", "--host", "clihost", "--no-connect"],
        env=sandbox.env, cwd=sandbox.work_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    parts = cli_host.remote_host_dir / "clis" / ".parts"
    try:
        wait_for(lambda: any(path.is_file() and path.stat().st_size > 0 for path in parts.rglob("*"))
                 if parts.exists() else False, "the copy under way", timeout=120)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert _bundles(cli_host) == [], "no bundle under its key from a cut copy"
    created = _create(sandbox, cli_host, "after", "claude")
    assert created.returncode == 0, created.stderr
    [bundle] = _bundles(cli_host)
    assert _sha256(bundle / "claude") == _sha256(CLAUDE_BINARY)
    _host_has_no_partial_file(cli_host)
    # What the cut copy left aside goes with gc (or with a create two minutes later).
    assert sandbox.mngr("gc", "--older-than", "0").returncode == 0
    assert list(parts.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_host_without_room_for_the_cli_fails_the_create_in_one_line_and_keeps_nothing(
    sandbox, cli_host: SshHost
) -> None:
    host_dir = cli_host.remote_host_dir
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=96m,mode=0700,uid={cli_host.user.pw_uid},"
                    f"gid={cli_host.user.pw_gid}", "tmpfs", str(host_dir)], check=True)
    try:
        refused = _create(sandbox, cli_host, "c1", "claude")
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "cannot provide claude on host 'clihost'" in refused.stderr and "MB are free" in refused.stderr
        assert json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"] == []
        assert not list(host_dir.glob("agents/*")) and not (host_dir / "work" / "c1").exists()
        assert _bundles(cli_host) == [] and not list((host_dir / "clis").glob(".parts/*"))
    finally:
        sandbox.stop_daemons()
        for pid in cli_host.remote_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["umount", "-l", str(host_dir)], check=False)


@pytest.mark.alone  # loopback measures as a fast link only on a machine not busy with other tests
def test_a_dry_run_says_what_would_be_copied_and_copies_nothing(sandbox, cli_host: SshHost,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The entry point a later `mngr provision --dry-run` uses, in-process on the real host.
    from mngr.controller.cli_supply import ensure_cli
    from mngr.controller.hosts import HostHandle
    from mngr.providers.ssh import SshProvider

    sandbox.apply_env(monkeypatch)
    monkeypatch.setenv("PATH", sandbox.env["PATH"])
    provider = SshProvider({"ssh_config": sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"]})
    with HostHandle(provider, cli_host.alias, timeout=60) as handle:
        handle.connect()
        sent_before = handle.wire_bytes()[0]
        plan = ensure_cli(handle, "claude", "auto", dry_run=True)
        assert (plan.source, plan.version, plan.machine) == ("copy", CLAUDE_VERSION, os.uname().machine)
        assert plan.bytes_to_send == CLAUDE_BINARY.stat().st_size
        assert handle.wire_bytes()[0] - sent_before < 64 * 1024 and _bundles(cli_host) == []
        done = ensure_cli(handle, "claude", "auto")
        assert done.source == "copy" and handle.wire_bytes()[0] - sent_before > plan.bytes_to_send
        [bundle] = _bundles(cli_host)
        assert done.path_dirs == [str(bundle)]
        again = ensure_cli(handle, "claude", "auto", dry_run=True)
        assert (again.source, again.path_dirs, again.bytes_to_send) == ("cache", [str(bundle)], 0)
        assert ensure_cli(handle, "claude", "host").source == "none"


def test_a_binary_that_does_not_run_on_the_host_fails_the_create_in_one_line_and_is_not_kept(
    sandbox, cli_host: SshHost
) -> None:
    # A user-side install whose native binary runs nowhere as claude (here: /bin/false, an
    # ELF of this machine that fails and prints nothing, as a binary missing its loader does).
    package = sandbox.root / "broken" / "node_modules" / "@anthropic-ai" / "claude-code"
    (package / "bin").mkdir(parents=True)
    shutil.copy2(NPM_ROOT / "@anthropic-ai" / "claude-code" / "package.json", package / "package.json")
    shutil.copy2(os.path.realpath("/bin/false"), package / "bin" / "claude.exe")
    bin_dir = sandbox.root / "broken" / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(package / "bin" / "claude.exe")
    sandbox.env["PATH"] = f"{bin_dir}{os.pathsep}{sandbox.env['PATH']}"
    refused = _create(sandbox, cli_host, "c1", "claude")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot provide claude on host 'clihost': the copied claude does not run on this host" in refused.stderr
    assert json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"] == []
    host_dir = cli_host.remote_host_dir
    assert not list(host_dir.glob("agents/*")) and not (host_dir / "work" / "c1").exists()
    assert _bundles(cli_host) == [] and not list((host_dir / "clis").glob(".parts/*"))


class _Terminal(io.StringIO):
    """What the copy writes its progress to, taken for a terminal."""

    def isatty(self) -> bool:
        return True


def _handle(sandbox, host: SshHost, monkeypatch: pytest.MonkeyPatch) -> HostHandle:
    sandbox.apply_env(monkeypatch)
    monkeypatch.setenv("PATH", sandbox.env["PATH"])
    provider = SshProvider({"ssh_config": sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"]})
    return HostHandle(provider, host.alias, timeout=60)


def test_over_a_slow_link_the_copy_goes_compressed_and_shows_how_far_it_got(
    sandbox, cli_host: SshHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = CLAUDE_BINARY.stat().st_size
    terminal = _Terminal()
    monkeypatch.setenv("TERM", "xterm")  # progress is drawn on any terminal but a dumb one
    monkeypatch.setenv("COLUMNS", "160")  # wide enough for the whole line
    with _through_proxy(sandbox, cli_host, 8 * 1024 * 1024), _handle(sandbox, cli_host, monkeypatch) as handle:
        handle.connect()
        sent_before = handle.wire_bytes()[0]
        done = ensure_cli(handle, "claude", "copy", progress_to=terminal)
        sent = handle.wire_bytes()[0] - sent_before
    assert done.source == "copy"
    # The first part (1 MiB, as it is) measured the link; the rest went compressed (claude's
    # binary packs to about a third).
    assert sent < size * 0.6, (sent, size)
    [bundle] = _bundles(cli_host)
    assert _sha256(bundle / "claude") == _sha256(CLAUDE_BINARY)
    shown = terminal.getvalue()
    assert shown.count(f"copying claude {CLAUDE_VERSION} to clihost") >= 2, shown[-500:]  # redrawn as it went
    assert " MB" in shown and "/s" in shown  # bytes and the rate
    assert shown.endswith("\x1b[2K")  # and cleared: what the command prints next starts on a clean line
    _host_has_no_partial_file(cli_host)


def _age(path: Path, days: float) -> None:
    then = time.time() - days * 24 * 3600
    os.utime(path, (then, then))


def _gc_found(sandbox, *args: str) -> list[list[str]]:
    done = sandbox.mngr("gc", "--format", "json", "--in", "ssh", *args)
    assert done.returncode == 0, done.stderr
    return [[leftover["kind"], leftover["what"]] for leftover in json.loads(done.stdout)["leftovers"]]


def test_gc_removes_a_bundle_no_agent_uses_once_nothing_ensured_it_for_a_day(sandbox, cli_host: SshHost) -> None:
    created = _create(sandbox, cli_host, "c1", "claude")
    assert created.returncode == 0, created.stderr
    assert "copying" not in created.stderr  # not a terminal: the copy said nothing
    [bundle] = _bundles(cli_host)
    _age(bundle, 2)
    assert _gc_found(sandbox, "--older-than", "0") == []  # c1 runs from it
    assert sandbox.mngr("destroy", "c1", "--force").returncode == 0
    os.utime(bundle)  # ensured a moment ago, for a create whose agent is not made yet
    assert _gc_found(sandbox, "--older-than", "0") == []
    _age(bundle, 2)
    assert _gc_found(sandbox, "--dry-run") == [["agent CLI no agent uses", str(bundle)]]
    assert _bundles(cli_host) == [bundle]
    assert _gc_found(sandbox) == [["agent CLI no agent uses", str(bundle)]]
    assert _bundles(cli_host) == [] and list((cli_host.remote_host_dir / "clis" / ".parts").iterdir()) == []


def test_create_on_a_terminal_shows_the_copy_on_one_line_of_stderr_and_clears_it(sandbox, cli_host: SshHost) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(MNGR_BIN), "create", "c1", "claude", "--in", "ssh", "--host", cli_host.alias, "--no-connect"],
            env={**sandbox.env, "TERM": "xterm", "COLUMNS": "160"}, cwd=sandbox.work_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=terminal)
    finally:
        os.close(terminal)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the command (the terminal's last user) is gone
        while chunk := os.read(controller, 65536):
            shown += chunk
    os.close(controller)
    assert process.wait(timeout=300) == 0, shown
    process.stdout.close()  # type: ignore[union-attr]
    text = shown.decode()
    assert text.count(f"copying claude {CLAUDE_VERSION} to {cli_host.alias}") >= 2, text  # redrawn
    # (then the wait for the agent to be ready, on a line of its own)
    # Each drawn on one line, redrawn in place, and erased at its end: the only line feeds
    # are those the cursor goes back up from to erase it.
    assert text.endswith("\x1b[1A\x1b[2K"), text
    one_row = re.sub(r"\r?\n(\x1b\[\?25h)?\r?\x1b\[1A\x1b\[2K", "", text)
    assert "\n" not in one_row and "\x1b[1A" not in one_row, text


@pytest.mark.alone  # loopback measures as a fast link only on a machine not busy with other tests
def test_over_loopback_the_copy_goes_as_it_is_also_for_a_bundle_that_starts_with_a_small_file(
    sandbox, cli_host: SshHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # codex's bundle starts with its small manifest: the link is measured on the first MiB.
    with _handle(sandbox, cli_host, monkeypatch) as handle:
        handle.connect()
        sent_before = handle.wire_bytes()[0]
        done = ensure_cli(handle, "codex", "copy", progress_to=io.StringIO())
        sent = handle.wire_bytes()[0] - sent_before
    assert done.source == "copy" and done.bytes_to_send > 0
    assert sent > done.bytes_to_send, (sent, done.bytes_to_send)  # nothing compressed
    [bundle] = _bundles(cli_host)
    assert _sha256(bundle / "bin" / "codex") == _sha256(CODEX_BINARY)
