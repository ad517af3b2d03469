"""The ssh provider: any machine you can ssh into is a host.

A host is named the way ssh names it: an alias from ``~/.ssh/config`` (whose HostName,
User, Port, IdentityFile, ProxyJump... all apply, because mngr runs the OpenSSH client
itself), or ``user@hostname[:port]``, or a name from mngr's config::

    [hosts.build-box]
    address = "dev@build.example.com:2222"   # what to hand to ssh
    env = { MNGR_HOST_DIR = "/data/mngr" }   # environment for mngr's helper there
    python = "python3"                        # interpreter on the host (default python3)

    [providers.ssh]
    accept_new_host_keys = false   # trust a host's key on first contact (like accept-new)
    ssh_config = ""                # an ssh_config file to use instead of ~/.ssh/config
    control_dir = ""               # where connection-sharing sockets live
    connect_timeout = 10
    transport = "auto"             # openssh, or paramiko (in-process; auto: when no ssh binary)
    prefer_aes_gcm = true          # offer AES-GCM first (false: ssh's and your ssh_config's choice)

Connections are shared (ControlMaster/ControlPersist), so only the first command to a host
pays for the handshake. Host keys are always checked: an unknown key is accepted only when
the user allows it, and a changed key is refused. Hosts used once are remembered (in the
controller's state dir) so that ``mngr list`` finds their agents again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mngr.controller.channel import protocol
from mngr.controller.channel.bootstrap import helper_hash, stage1_argv
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import ProcessStream, SocketStream, Stream
from mngr.controller.errors import ConfigError, MngrError, UsageError
from mngr.controller.paths import changing_state_json, read_state_json, state_dir
from mngr.controller.plugin_spec import hookimpl

from .base import Provider, Reached, tmux_attach_argv

_ADDRESS = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._:\[\]-]+$")
_HOST_KEY_CHANGED = "REMOTE HOST IDENTIFICATION HAS CHANGED"
_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "accept_new_host_keys": bool,
    "ssh_config": str,
    "control_dir": str,
    "connect_timeout": (int, float),
    "transport": str,
    "prefer_aes_gcm": bool,
    "idle_timeout": (str, int, float),
    "idle_command": str,
}
# Agents on an SSH host that all go idle this long are stopped (see docs/concepts/idle.md).
DEFAULT_IDLE_TIMEOUT = "1h"
# OpenSSH's default ciphers (since 6.9), AES-GCM moved first: on a CPU with AES instructions
# (every x86-64 and ARM64 one of the last decade) it costs each end about half the CPU of
# ChaCha20-Poly1305, ssh's first choice, and a large transfer is mostly that cost.
_AES_GCM_FIRST = ("aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
                  "aes128-ctr,aes192-ctr,aes256-ctr")
_REFUSED_HANDSHAKE = ("kex_exchange_identification", "Connection reset by peer", "Connection closed by")
_HOST_KEY_UNKNOWN = ("Host key verification failed", "No ED25519 host key is known", "host key is not known")


_REGISTRY = "ssh_hosts.json"


def _registry_form(content: object) -> dict[str, Any]:
    """The registry as {host: when last remembered}; the older form was a list of names."""
    if isinstance(content, list):
        content = dict.fromkeys(content, 0.0)
    if not isinstance(content, dict):
        return {}
    return {host: float(stamp) for host, stamp in content.items() if isinstance(stamp, (int, float))}


def _on_path(program: str) -> bool:
    # shutil.which, without importing shutil (and the compression modules it pulls in).
    return any(
        os.access(os.path.join(directory, program), os.X_OK)
        for directory in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if directory
    )


class SshStream(ProcessStream):
    """An ssh process whose failures are explained in terms of the host, not ssh's stderr."""

    def worth_retrying(self) -> bool:
        # sshd drops handshakes beyond MaxStartups (10 by default) at random: dialling many
        # hosts behind one sshd, or one host many times at once, meets this.
        self.diagnostics()
        return any(sign in self.stderr_text for sign in _REFUSED_HANDSHAKE)

    def diagnostics(self) -> str:
        detail = super().diagnostics()
        if _HOST_KEY_CHANGED in self.stderr_text:
            return (f"the host key of {self.host} has CHANGED and is refused (if the host was really "
                    f"reinstalled, remove the old key with: ssh-keygen -R HOSTNAME)")
        if any(marker in self.stderr_text for marker in _HOST_KEY_UNKNOWN):
            return (f"the host key of {self.host} is not known yet: check it and connect once with ssh, "
                    "or let mngr accept it (mngr create --accept-new-host-key, or the setting "
                    "providers.ssh.accept_new_host_keys)")
        if "Permission denied" in self.stderr_text:
            return (f"{self.host} refused the login ({self.stderr_text.splitlines()[-1]}): check the user name "
                    "and that your key is authorized there")
        if "python3: not found" in self.stderr_text or "python3: command not found" in self.stderr_text:
            return f"python3 is not installed on {self.host} (mngr's helper needs Python 3.8 or newer)"
        return detail


class SshProvider(Provider):
    name = "ssh"

    def __init__(self, settings: Mapping[str, Any] | None = None, hosts: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings, hosts)
        for key, value in self.settings.items():
            expected = _SETTINGS.get(key)
            if expected is None:
                raise ConfigError(f"unknown setting providers.ssh.{key} (known: {', '.join(sorted(_SETTINGS))})")
            if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
                if isinstance(expected, type):
                    kind = expected.__name__
                else:
                    kind = 'duration (seconds, or such as "1h")' if str in expected else "number"
                raise ConfigError(f"providers.ssh.{key} must be a {kind}, got {value!r}")
        self.accept_new_host_keys = bool(self.settings.get("accept_new_host_keys"))

    def trust_new_host_keys(self) -> None:
        self.accept_new_host_keys = True

    # -- which hosts ---------------------------------------------------------------------

    def known_hosts(self) -> Sequence[str]:
        names = list(self.configured_hosts)
        names += [name for name in self._remembered() if name not in names]
        return names

    def idle_defaults(self, host: str) -> Mapping[str, Any]:
        """``[hosts.NAME]`` idle_timeout/idle_command, else providers.ssh's, else 1h and none."""
        section = self._host_settings(host)
        return {
            "timeout": section.get("idle_timeout", self.settings.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)),
            "command": str(section.get("idle_command", self.settings.get("idle_command", ""))),
        }

    def resolve_work_dir(self, host: str, work_dir: str | None) -> str:
        """``--work-dir`` as given; without one, "": the host makes a new, empty work dir of
        the agent's own, ``$MNGR_HOST_DIR/work/NAME`` (where ``--source`` puts one too). An
        SSH host is someone's account: its home dir holds their dotfiles and mngr's state,
        which a ``push --delete`` or a ``clone`` must never sweep along."""
        return work_dir or ""

    def default_host(self) -> str:
        raise UsageError("--in ssh needs a host: --host ALIAS or --host user@hostname[:port]")

    def check_host(self, host: str) -> None:
        address = self._address(host)
        if address.startswith("-") or not _ADDRESS.match(address):
            raise UsageError(f"invalid ssh host {host!r}: use an ssh alias or user@hostname[:port]")

    def remember(self, host: str) -> None:
        if host in self.configured_hosts:
            return
        with changing_state_json(_REGISTRY, _registry_form) as hosts:
            hosts[host] = time.time()

    def forget(self, host: str, asked_at: float) -> None:
        with changing_state_json(_REGISTRY, _registry_form) as hosts:
            # Remembered again since the listing asked: an agent may have been created since.
            if host in hosts and hosts[host] < asked_at:
                del hosts[host]

    def _remembered(self) -> dict[str, float]:
        """{host: when it was last remembered}, in the order hosts were first remembered."""
        return _registry_form(read_state_json(_REGISTRY))

    # -- reaching a host -----------------------------------------------------------------

    def _host_settings(self, host: str) -> Mapping[str, Any]:
        section = self.configured_hosts.get(host)
        return section if isinstance(section, Mapping) else {}

    def _address(self, host: str) -> str:
        return str(self._host_settings(host).get("address") or host)

    @functools.cache  # noqa: B019 - one provider per command
    def _control_dir(self) -> str:
        control_dir = os.path.expanduser(str(self.settings.get("control_dir") or os.path.join(state_dir(), "ssh")))
        os.makedirs(control_dir, mode=0o700, exist_ok=True)
        return control_dir

    def ssh_argv(self, host: str, *, tty: bool = False, mux_command: str | None = None) -> list[str]:
        """``ssh`` with mngr's options and the destination, ready for a remote command."""
        address = self._address(host)
        port = None
        bracketed = re.match(r"^(.*@)?\[([0-9A-Fa-f:.]+)\]:(\d+)$", address)  # user@[::1]:2222
        plain = re.match(r"^([^:\[\]]*):(\d+)$", address)
        if bracketed:
            address, port = (bracketed.group(1) or "") + bracketed.group(2), bracketed.group(3)
        elif plain:
            address, port = plain.group(1), plain.group(2)
        control_dir = self._control_dir()
        argv = ["ssh"]
        if self.settings.get("ssh_config"):
            argv += ["-F", str(self.settings["ssh_config"])]
        argv += [
            "-o", "BatchMode=yes",
            # Never "no": an unknown key is accepted only when the user said so, a changed one never.
            "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new_host_keys else 'yes'}",
            "-o", f"ConnectTimeout={max(1, round(self.settings.get('connect_timeout') or 10))}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control_dir}/%C",
            "-o", "ControlPersist=600",
            "-o", "LogLevel=ERROR",
            "-o", "StreamLocalBindUnlink=yes",
        ]
        if (self.settings.get("prefer_aes_gcm", True) and _cpu_has_fast_aes()
                and not _config_chooses_ciphers(str(self.settings.get("ssh_config") or ""))):
            argv += ["-o", f"Ciphers={_AES_GCM_FIRST}"]
        if mux_command:
            argv += ["-O", mux_command]
        else:
            argv.append("-t" if tty else "-T")
        if port:
            argv += ["-p", port]
        argv += ["--", address]
        return argv

    def _remote_env_prefix(self, host: str) -> list[str]:
        env = self._host_settings(host).get("env") or {}
        return ["env", *(f"{key}={value}" for key, value in env.items())] if env else []

    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        self.check_host(host)
        python = str(self._host_settings(host).get("python") or "python3")
        remote = shlex.join(self._remote_env_prefix(host) + stage1_argv(python))
        if self._uses_paramiko():
            from .ssh_paramiko import ParamikoStream

            return ParamikoStream(
                host, self._address(host), remote, ssh_config=str(self.settings.get("ssh_config") or ""),
                accept_new=self.accept_new_host_keys, connect_timeout=float(self.settings.get("connect_timeout") or 10),
            )
        forwarded = self._open_forwarded(host) if warm else None
        if forwarded is not None:
            return forwarded
        return SshStream(host, [*self.ssh_argv(host), remote])

    @functools.cache  # noqa: B019 - one provider per command
    def _uses_paramiko(self) -> bool:
        """``transport = "paramiko"``, or "auto" (the default) on a machine without ``ssh``."""
        transport = str(self.settings.get("transport") or "auto")
        if transport not in ("auto", "openssh", "paramiko"):
            raise UsageError(f"providers.ssh.transport must be auto, openssh or paramiko, not {transport!r}")
        return transport == "paramiko" or (transport == "auto" and not _on_path("ssh"))

    # -- the warm path: the host daemon's socket, forwarded by the shared connection ------

    def _forward_path(self, host: str) -> str:
        """One forward per way of reaching a helper: host name, address, ssh config, helper
        environment (which decides the host dir and so the daemon) and helper version."""
        identity = json.dumps(
            [host, self._address(host), str(self.settings.get("ssh_config", "")),
             sorted((self._host_settings(host).get("env") or {}).items()), helper_hash()]
        )
        import hashlib

        key = hashlib.sha256(identity.encode()).hexdigest()
        return os.path.join(self._control_dir(), f"fwd-{key[:20]}.sock")

    def _open_forwarded(self, host: str) -> Stream | None:
        """A stream to the host daemon through the master's forwarding.

        The master accepts the local connection even when nothing listens at the far end
        any more, so the stream is marked unproven: the host handle sends only a request
        that is safe to repeat first, and bootstraps if that finds nobody. The forward's
        name carries the helper version, so whoever answers is this mngr's helper.
        """
        path = self._forward_path(host)
        if not os.path.exists(path):
            return None
        try:
            stream = SocketStream.connect(host, path)
        except OSError:
            return None
        stream.proven = False
        return stream

    def bootstrapped(self, host: str, client: RpcClient) -> None:
        """Forward a local socket to the host daemon through the shared connection."""
        if self._uses_paramiko():
            return  # no shared connection outlives this process: every command bootstraps
        try:
            remote = client.call(protocol.GetHelperInfo(), protocol.HelperInfo, timeout=10).daemon_socket
        except MngrError:
            return
        if not remote:
            return
        import subprocess

        argv = self.ssh_argv(host, mux_command="forward")
        argv[argv.index("--"):argv.index("--")] = ["-L", f"{self._forward_path(host)}:{remote}"]
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=15, check=False)

    # -- ports of a host, reachable here: forwards through the shared connection (mngr open)

    def reach_port(self, host: str, port: int, agent_id: str) -> Reached:
        self.check_host(host)
        if self._uses_paramiko():
            raise UsageError("mngr open on an SSH host needs the OpenSSH client (ssh), which is not installed here")
        from .ssh_ports import forward

        return forward(self, host, port, agent_id)

    def release_ports(self, host: str, agent_id: str) -> None:
        if not self._uses_paramiko():
            from .ssh_ports import release

            release(self, host, agent_id)

    def mux(self, host: str, command: str, *options: str, timeout: float = 15) -> tuple[int, str]:
        """``ssh -O COMMAND OPTIONS`` to the host's shared connection: (exit status, stderr)."""
        import subprocess

        argv = self.ssh_argv(host, mux_command=command)
        argv[argv.index("--"):argv.index("--")] = options
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 255, str(exc)
        return done.returncode, done.stderr

    def share_connection(self, host: str) -> None:
        """Make sure the host has a shared connection (as the first command to it makes one)."""
        import subprocess

        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([*self.ssh_argv(host), "true"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30, check=False)

    def attach_argv(self, host: str, session: str) -> list[str]:
        self.check_host(host)
        if self._uses_paramiko():
            raise UsageError("attaching needs the OpenSSH client (ssh), which is not installed here")
        remote = [*self._remote_env_prefix(host), *tmux_attach_argv(session)]
        return [*self.ssh_argv(host, tty=True), shlex.join(remote)]


@hookimpl
def mngr_providers() -> list[type[Provider]]:
    return [SshProvider]


@functools.cache
def _cpu_has_fast_aes() -> bool:
    """Whether this machine's CPU is one where AES-GCM is the cheaper cipher (see _AES_GCM_FIRST)."""
    import platform

    return platform.machine().lower() in ("x86_64", "amd64", "aarch64", "arm64")


SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"
_CIPHERS_LINE = re.compile(rb"^\s*ciphers[\s=]", re.IGNORECASE | re.MULTILINE)
_INCLUDE_LINE = re.compile(rb"^\s*include[\s=]+(.+)$", re.IGNORECASE | re.MULTILINE)


@functools.cache
def _config_chooses_ciphers(ssh_config: str) -> bool:
    """Whether the ssh_config files ssh reads (``ssh_config`` instead of ~/.ssh/config when
    given, the system's, and what they include) name ciphers anywhere: a user's or an
    administrator's choice of ciphers (a compliance rule, say) is theirs, and mngr's
    preference would replace it, since options on the command line win."""
    import glob

    user_dir = os.path.expanduser("~/.ssh")
    system_dir = os.path.dirname(SYSTEM_SSH_CONFIG)
    pending = [ssh_config or os.path.join(user_dir, "config"), SYSTEM_SSH_CONFIG]
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            with open(path, "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        if _CIPHERS_LINE.search(text):
            return True
        for line in _INCLUDE_LINE.findall(text):
            base = system_dir if path.startswith(system_dir + os.sep) else user_dir
            for pattern in line.decode(errors="replace").split():
                pattern = os.path.expanduser(pattern.strip('"'))
                pending += sorted(glob.glob(pattern if os.path.isabs(pattern) else os.path.join(base, pattern)))
    return False
