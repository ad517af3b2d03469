"""Real SSH test hosts: an sshd of our own on a loopback port, logging in a test user.

The test user's login shell is /bin/sh (root's profile on these machines is slow), login is
by key only, and MaxStartups is raised so that many parallel handshakes are not refused.
Each host gets its own host key and its own remote MNGR_HOST_DIR and TMUX_TMPDIR, so tests
never see each other's agents. Everything started for a host is stopped by ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.processes import pids_where

TEST_USER = "mngr-test"
SSHD = "/usr/sbin/sshd"


def unavailable_reason() -> str | None:
    """Why real SSH hosts cannot run here (None when they can)."""
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        return "openssh-server/openssh-client not installed (./scripts/install.sh --test installs them)"
    if os.geteuid() != 0:
        return "starting sshd for a test user needs root"
    return None


def ensure_test_user() -> pwd.struct_passwd:
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], check=True)
        # useradd leaves the account locked ("!"), and sshd refuses locked accounts even for
        # key logins; "*" means no password can ever match, without locking.
        subprocess.run(["usermod", "-p", "*", TEST_USER], check=True)
    return pwd.getpwnam(TEST_USER)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (from /proc)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in table:
        fields = line.split()
        # local address "0100007F:1F90", state 0A: LISTEN, then the socket's inode (10th field)
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
            return True
    return False


class SshHost:
    """One sshd on 127.0.0.1 plus the client-side files to reach it as ``alias``; ``env``: more
    variables for the test user's sessions there (no spaces in values); ``sshd_options``:
    more sshd_config lines."""

    def __init__(self, alias: str, client_dir: Path, force_command: str | None = None,
                 max_startups: str = "200:30:400", env: dict[str, str] | None = None,
                 sshd_options: str = "") -> None:
        self.alias = alias
        self.user = ensure_test_user()
        # Short paths: sockets live here (tmux's, the host daemon's).
        self.remote_root = Path(tempfile.mkdtemp(prefix="mngr-r-", dir="/tmp"))
        os.chmod(self.remote_root, 0o755)
        self.remote_host_dir = self.remote_root / "host"
        self.remote_tmux_dir = self.remote_root / "tmux"
        for directory in (self.remote_host_dir, self.remote_tmux_dir):
            directory.mkdir()
            os.chown(directory, self.user.pw_uid, self.user.pw_gid)
            os.chmod(directory, 0o700)
        self.server_dir = self.remote_root / "sshd"
        self.server_dir.mkdir()
        self.host_key = self.server_dir / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True)
        self.client_key = client_dir / "id_ed25519"
        if not self.client_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)], check=True)
        authorized = self.server_dir / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        os.chmod(authorized, 0o644)
        self.known_hosts = client_dir / "known_hosts"
        self.config_path = self.server_dir / "sshd_config"
        self._settings = (
            f"ListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {self.server_dir}/sshd.pid\nAuthorizedKeysFile {authorized}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "UsePAM no\nStrictModes no\n"
            f"MaxStartups {max_startups}\nMaxSessions 200\n"
            f"AllowUsers {TEST_USER}\nAllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n"
            "LogLevel ERROR\nPrintMotd no\n"
            # The host's mngr state and tmux server are this test's own, with no mngr config.
            f"SetEnv MNGR_HOST_DIR={self.remote_host_dir} TMUX_TMPDIR={self.remote_tmux_dir}"
            + "".join(f" {key}={value}" for key, value in (env or {}).items()) + "\n"
            + (f"ForceCommand {force_command}\n" if force_command else "")
            + sshd_options
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        self._start_on_a_free_port()

    def _start_on_a_free_port(self) -> None:
        """Start sshd on a port that was free a moment ago. Between the probe and sshd's bind
        another process (another test process's sshd) may take the port: then sshd exits
        with the address in use, and another port is tried."""
        error = ""
        for _ in range(5):
            self.port = _free_port()
            self.config_path.write_text(f"Port {self.port}\n{self._settings}")
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            if self._listening():
                return
            error = self.process.stderr.read().decode()  # type: ignore[union-attr]
            self.process.stderr.close()  # type: ignore[union-attr]
            if "Address already in use" not in error:
                raise RuntimeError(f"sshd exited: {error}")
        raise RuntimeError(f"sshd found no free port: {error}")

    def _listening(self) -> bool:
        """Whether our sshd listens on its port (False: it exited). A connection is not proof
        enough: another process may hold the port, and ours not have failed yet."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _listens_on(self.process.pid, self.port):
                return True
            time.sleep(0.05)
        raise RuntimeError("sshd never listened")

    def host_key_line(self) -> str:
        key_type, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n"

    def trust(self) -> None:
        """Record the host key in the client's known_hosts (as if accepted earlier)."""
        with self.known_hosts.open("a") as handle:
            handle.write(self.host_key_line())

    def client_config(self) -> str:
        return (
            f"Host {self.alias}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {TEST_USER}\n"
            f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {self.known_hosts}\n"
        )

    def remote_processes(self, command_contains: bytes = b"") -> list[int]:
        """Processes on the 'host' started for it (their environment names its dirs), if their
        command line contains ``command_contains``; processes that end meanwhile are skipped."""
        prefixes = tuple(f"{key}={self.remote_root}/".encode() for key in ("TMUX_TMPDIR", "MNGR_HOST_DIR"))
        return pids_where(
            lambda environ, command_line: any(item.startswith(prefixes) for item in environ)
            and command_contains in command_line
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        for _ in range(3):
            for pid in self.remote_processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        shutil.rmtree(self.remote_root, ignore_errors=True)
