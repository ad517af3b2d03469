"""The in-process SSH transport (paramiko), for machines without an ``ssh`` binary.

It reads the same ssh_config (HostName, Port, User, IdentityFile, UserKnownHostsFile,
HostKeyAlias, ProxyJump, ProxyCommand) and checks host keys the same way (each jump host's
too): unknown keys only with the user's consent, changed keys
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
        self.host = host
        self.stderr_text = ""
        # The target's client last; before it, those of the jump hosts it is reached through.
        self._clients = _connect(host, address, _Options(ssh_config, accept_new, connect_timeout))
        for client in self._clients:
            if isinstance(client.get_transport().sock, socket.socket):  # not a proxy command's pipe
                client.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = self._clients[-1].get_transport()
        assert transport is not None
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
        for client in reversed(self._clients):
            with contextlib.suppress(Exception):
                client.close()


class _Options:
    def __init__(self, ssh_config: str, accept_new: bool, timeout: float) -> None:
        self.ssh_config = ssh_config
        self.accept_new = accept_new
        self.timeout = timeout


# OpenSSH stops at a few levels of ProxyJump too; more is a loop in the config.
_MAX_JUMP_DEPTH = 8


def _connect(host: str, address: str, options: _Options, jumps: list[str] | None = None,
             depth: int = 0, shown: str = "") -> list[Any]:
    """Logged-in clients: those of the jump hosts ``address`` is reached through (outermost
    first), then its own. ``jumps`` overrides the ProxyJump of ``address``'s ssh config;
    ``shown``: what to call ``address`` in errors (``host``, the host mngr was asked for,
    prefixes every one)."""
    import logging

    import paramiko

    # paramiko's transport thread logs a failed connection (a traceback, through logging's
    # last-resort handler): mngr reports it in one line instead.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    settings = _resolve(address, options.ssh_config)
    if jumps is None:
        jumps = settings["proxy_jump"]
    if jumps and settings["proxy_command"]:
        raise ChannelClosed(host, f"the ssh config of {address} sets both ProxyJump and ProxyCommand: "
                                  "keep one of them")
    if depth > _MAX_JUMP_DEPTH:
        raise ChannelClosed(host, f"ProxyJump goes through more than {_MAX_JUMP_DEPTH} hosts to reach "
                                  f"{address}: is there a loop in the ssh config?")
    clients: list[Any] = []
    sock: Any = None
    target = (settings["hostname"], settings["port"])
    try:
        if jumps:
            # As OpenSSH does: "ProxyJump a,b" reaches b through a, then the target through b.
            clients = _connect(host, jumps[-1], options, jumps[:-1] or None, depth + 1, f"the jump host {jumps[-1]}")
            jump_transport = clients[-1].get_transport()
            try:
                sock = jump_transport.open_channel("direct-tcpip", target, ("127.0.0.1", 0),
                                                   timeout=options.timeout)
            except (paramiko.SSHException, OSError) as exc:
                raise ChannelClosed(host, f"the jump host {jumps[-1]} could not reach "
                                          f"{target[0]}:{target[1]} (ProxyJump): {exc}") from exc
        elif settings["proxy_command"]:
            import shlex

            # Through a shell, as OpenSSH runs it (pipes, quotes and variables work), exec'd so
            # that closing the connection ends the command itself.
            sock = paramiko.ProxyCommand("/bin/sh -c " + shlex.quote("exec " + settings["proxy_command"]))
        clients.append(_login(host, shown or host, settings, sock, options))
    except BaseException:
        for client in reversed(clients):
            with contextlib.suppress(Exception):
                client.close()
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.close()
        raise
    return clients


def _login(host: str, shown: str, settings: dict[str, Any], sock: Any, options: _Options) -> Any:
    """A client logged in to ``settings``' host (over ``sock`` when given), its key checked."""
    import paramiko

    hostname, port = settings["hostname"], settings["port"]
    # The name paramiko looks the host key up under; with HostKeyAlias, the alias's keys are
    # filed under it, and a key accepted on first use is recorded under the alias.
    lookup_name = hostname if port == 22 else f"[{hostname}]:{port}"
    alias = settings["host_key_alias"]
    client = paramiko.SSHClient()
    known_hosts = os.path.expanduser(settings["known_hosts"])
    revoked = _load_known_hosts(known_hosts, client.get_host_keys(), alias, lookup_name)
    accepted = _RememberNewKey(alias)
    client.set_missing_host_key_policy(accepted if options.accept_new else paramiko.RejectPolicy())
    if alias:
        shown = f"{shown} (HostKeyAlias {alias})"
    try:
        client.connect(
            hostname, port=port, username=settings["user"], sock=sock,
            key_filename=settings["identity_files"] or None, timeout=options.timeout,
            allow_agent=True, look_for_keys=not settings["identity_files"],
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise ChannelClosed(host, f"the host key of {shown} has CHANGED and is refused (if the host was "
                                  "really reinstalled, remove the old key with: ssh-keygen -R HOSTNAME)") from exc
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc):
            raise ChannelClosed(host, f"the host key of {shown} is not known yet: check it and connect once "
                                      "with ssh, or pass --accept-new-host-key") from exc
        if settings["proxy_command"] and isinstance(sock, paramiko.ProxyCommand):
            detail = exc.error if isinstance(exc, paramiko.ProxyCommandFailure) else exc
            raise ChannelClosed(host, f"ssh connection through ProxyCommand {settings['proxy_command']!r} "
                                      f"failed: {detail}") from exc
        raise ChannelClosed(host, f"ssh connection failed: {exc}") from exc
    except OSError as exc:
        client.close()
        raise ChannelClosed(host, f"cannot connect to {hostname}:{port}: {exc}") from exc
    transport = client.get_transport()
    assert transport is not None
    if transport.get_remote_server_key() in revoked:
        client.close()
        raise ChannelClosed(host, f"the host key of {shown} is marked @revoked in {known_hosts}: refused")
    if accepted.entry:
        _append_known_host(known_hosts, accepted.entry)
    return client


def _load_known_hosts(path: str, into: Any, alias: str | None = None, lookup_name: str = "") -> list[Any]:
    """Add the plain entries of known_hosts file ``path`` to ``into``; return @revoked keys.
    With ``alias`` (HostKeyAlias), only the alias's keys are added, as ``lookup_name``'s.

    ``@cert-authority`` lines are skipped (paramiko does not check host certificates) and
    so are lines that cannot be read, as OpenSSH skips them.
    """
    from paramiko.hostkeys import HostKeyEntry, HostKeys, InvalidHostKey

    if alias:
        every = HostKeys()
        revoked_keys = _load_known_hosts(path, every)
        for key_type, key in (every.lookup(alias) or {}).items():
            into.add(lookup_name, key_type, key)
        return revoked_keys

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
    """Accept an unknown host key and keep its known_hosts line (under the host's
    HostKeyAlias, if it has one) for after the login."""

    entry = ""

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.entry = f"{self.alias or hostname} {key.get_name()} {key.get_base64()}\n"


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
    proxy_jump = entry.get("proxyjump", "none")
    proxy_command = entry.get("proxycommand", "none")
    return {
        "hostname": entry.get("hostname", host),
        "port": port or int(entry.get("port", 22)),
        "user": user or entry.get("user") or getpass.getuser(),
        "identity_files": [os.path.expanduser(p) for p in entry.get("identityfile", [])],
        "known_hosts": known_hosts,
        "host_key_alias": entry.get("hostkeyalias") or None,
        # "none" turns each off, as in OpenSSH (for a host a wider pattern gave one to)
        "proxy_jump": [] if proxy_jump.lower() == "none" else [_jump_address(hop) for hop in proxy_jump.split(",")],
        "proxy_command": None if proxy_command.lower() == "none" else proxy_command,
    }


def _jump_address(hop: str) -> str:
    """A ProxyJump hop (``[user@]host[:port]`` or ``ssh://[user@]host[:port]``) as an address."""
    hop = hop.strip()
    return hop[len("ssh://"):] if hop.startswith("ssh://") else hop
