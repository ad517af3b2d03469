"""The in-process SSH transport (paramiko), for machines without an ``ssh`` binary.

It reads the same ssh_config (HostName, Port, User, IdentityFile, UserKnownHostsFile) and
checks host keys the same way: unknown keys only with the user's consent, changed keys
never. TCP_NODELAY is set on the connection: without it, every small frame waits for the
peer's delayed ACK and each request costs tens of milliseconds.

known_hosts is read here, not by paramiko's loader, which gives up on the whole file at
OpenSSH's markers (``@cert-authority``, ``@revoked``); a key accepted on first use is
appended as one line, as OpenSSH does, rather than the file being rewritten (which would
drop the user's comments and marker lines).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

from mngr.controller.channel.stream import Stream
from mngr.controller.errors import ChannelClosed, ChannelTimeout


class ParamikoStream(Stream):
    """The remote command's stdin/stdout over one paramiko session channel."""

    def __init__(self, host: str, address: str, command: str, *, ssh_config: str, accept_new: bool,
                 connect_timeout: float) -> None:
        import paramiko

        self.host = host
        self.stderr_text = ""
        settings = _resolve(address, ssh_config)
        client = paramiko.SSHClient()
        known_hosts = os.path.expanduser(settings["known_hosts"])
        revoked = _load_known_hosts(known_hosts, client.get_host_keys())
        accepted = _RememberNewKey()
        client.set_missing_host_key_policy(accepted if accept_new else paramiko.RejectPolicy())
        try:
            client.connect(
                settings["hostname"], port=settings["port"], username=settings["user"],
                key_filename=settings["identity_files"] or None, timeout=connect_timeout,
                allow_agent=True, look_for_keys=not settings["identity_files"],
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ChannelClosed(host, f"the host key of {host} has CHANGED and is refused (if the host was "
                                      "really reinstalled, remove the old key with: ssh-keygen -R HOSTNAME)") from exc
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise ChannelClosed(host, f"the host key of {host} is not known yet: check it and connect once "
                                          "with ssh, or pass --accept-new-host-key") from exc
            raise ChannelClosed(host, f"ssh connection failed: {exc}") from exc
        except OSError as exc:
            client.close()
            raise ChannelClosed(host, f"cannot connect to {settings['hostname']}:{settings['port']}: {exc}") from exc
        transport = client.get_transport()
        assert transport is not None
        if transport.get_remote_server_key() in revoked:
            client.close()
            raise ChannelClosed(host, f"the host key of {host} is marked @revoked in {known_hosts}: refused")
        if accepted.entry:
            _append_known_host(known_hosts, accepted.entry)
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        self._client = client
        self._channel = transport.open_session()
        self._channel.exec_command(command)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._channel.sendall(bytes(data))  # paramiko's own slicing expects bytes
        except OSError as exc:
            raise ChannelClosed(self.host, f"ssh channel closed while writing ({exc})") from exc

    def read(self, max_bytes: int, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._channel.settimeout(timeout)
        try:
            data: bytes = self._channel.recv(max_bytes)
        except TimeoutError as exc:
            raise ChannelTimeout(self.host, f"no reply within {timeout:.1f} s") from exc
        except OSError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise ChannelTimeout(self.host, f"no reply within {timeout:.1f} s") from exc
            raise ChannelClosed(self.host, f"ssh channel failed: {exc}") from exc
        if not data:
            self._collect_stderr()
        return data

    def _collect_stderr(self) -> None:
        chunks = []
        while self._channel.recv_stderr_ready():
            chunks.append(self._channel.recv_stderr(65536))
        self.stderr_text = b"".join(chunks).decode("utf-8", "replace").strip()

    def diagnostics(self) -> str:
        self._collect_stderr()
        status = self._channel.recv_exit_status() if self._channel.exit_status_ready() else None
        last_line = self.stderr_text.splitlines()[-1] if self.stderr_text else ""
        if "python3: not found" in self.stderr_text or "python3: command not found" in self.stderr_text:
            return f"python3 is not installed on {self.host} (mngr's helper needs Python 3.8 or newer)"
        detail = f"exit status {status}" if status is not None else "channel closed"
        return f"{detail}: {last_line}" if last_line else detail

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._channel.shutdown_write()
        with contextlib.suppress(Exception):
            self._client.close()


def _load_known_hosts(path: str, into: Any) -> list[Any]:
    """Add the plain entries of known_hosts file ``path`` to ``into``; return @revoked keys.

    ``@cert-authority`` lines are skipped (paramiko does not check host certificates) and
    so are lines that cannot be read, as OpenSSH skips them.
    """
    from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

    revoked: list[Any] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return revoked
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        marker = ""
        if text.startswith("@"):
            marker, _, text = text.partition(" ")
            if marker != "@revoked":
                continue
        try:
            entry = HostKeyEntry.from_line(text, number)
        except (InvalidHostKey, ValueError):
            continue
        if entry is None:
            continue
        if marker:
            revoked.append(entry.key)
        else:
            for name in entry.hostnames:
                into.add(name, entry.key.get_name(), entry.key)
    return revoked


class _RememberNewKey:
    """Accept an unknown host key and keep its known_hosts line for after the login."""

    entry = ""

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.entry = f"{hostname} {key.get_name()} {key.get_base64()}\n"


def _append_known_host(path: str, entry: str) -> None:
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(entry)


def _resolve(address: str, ssh_config: str) -> dict[str, Any]:
    """hostname, port, user, identity files and known_hosts for ``address``, as ssh would."""
    import getpass

    import paramiko

    user, _, host_port = address.rpartition("@")
    host, port = host_port, None
    if ":" in host_port and not host_port.startswith("["):
        host, _, port_text = host_port.rpartition(":")
        port = int(port_text)
    config = paramiko.SSHConfig()
    path = os.path.expanduser(ssh_config or "~/.ssh/config")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            config.parse(handle)
    entry = config.lookup(host)
    known_hosts = entry.get("userknownhostsfile", "~/.ssh/known_hosts").split()[0]
    return {
        "hostname": entry.get("hostname", host),
        "port": port or int(entry.get("port", 22)),
        "user": user or entry.get("user") or getpass.getuser(),
        "identity_files": [os.path.expanduser(p) for p in entry.get("identityfile", [])],
        "known_hosts": known_hosts,
    }
