"""The paramiko transport honours the ssh_config options that decide how a host is reached
and which key it must show: ProxyJump, ProxyCommand and HostKeyAlias. Real sshd hosts."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshHost, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@contextlib.contextmanager
def hosts(sandbox, *specs: tuple[str, str]) -> Iterator[list[SshHost]]:
    """Test sshds (alias, extra sshd_config lines), their keys trusted, stopped at the end."""
    client_dir = sandbox.root / "client"
    client_dir.mkdir(exist_ok=True)
    started: list[SshHost] = []
    try:
        for alias, sshd_options in specs:
            started.append(SshHost(alias, client_dir, sshd_options=sshd_options))
            started[-1].trust()
        yield started
    finally:
        for host in started:
            host.stop()


def use_config(sandbox, text: str) -> None:
    config = sandbox.root / "ssh_config"
    config.write_text(text)
    sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
    sandbox.env["MNGR_PROVIDERS__SSH__TRANSPORT"] = "paramiko"


def create(sandbox, name: str, *extra: str):  # type: ignore[no-untyped-def]
    return sandbox.mngr("create", name, "command", "--in", "ssh", "--host", "testhost", "--no-connect", *extra,
                        "--", "sleep", "600")


def works_end_to_end(sandbox, name: str) -> None:
    created = create(sandbox, name)
    assert created.returncode == 0, created.stderr
    ran = sandbox.mngr("exec", name, "id -un")
    assert (ran.returncode, ran.stdout) == (0, "mngr-test\n"), ran.stderr
    assert sandbox.mngr("destroy", "-f", name).returncode == 0


def test_proxy_jump_goes_through_the_jump_host_and_checks_its_key(sandbox) -> None:
    with hosts(sandbox, ("testhost", ""), ("jumpbox", ""), ("closedjump", "AllowTcpForwarding no\n")) as started:
        target, jump, closed = started
        target_block = target.client_config()
        use_config(sandbox, target_block + "  ProxyJump jumpbox\n" + jump.client_config() + closed.client_config())
        works_end_to_end(sandbox, "jumped")
        # Through a jump host that forwards nothing, the target cannot be reached: so the
        # connection above did go through the jump host.
        use_config(sandbox, target_block + "  ProxyJump closedjump\n" + closed.client_config())
        refused = create(sandbox, "not-through")
        assert refused.returncode == 1
        assert (f"the jump host closedjump could not reach 127.0.0.1:{target.port} (ProxyJump)"
                in refused.stderr), refused.stderr
        # A chain of two, written as OpenSSH takes it, each hop's key checked.
        by_address = (f"Host 127.0.0.1\n  IdentityFile {jump.client_key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {jump.known_hosts}\n")
        use_config(sandbox, target_block + "  ProxyJump jumpbox,ssh://mngr-test@127.0.0.1:" + str(jump.port)
                   + "\n" + jump.client_config() + by_address)
        works_end_to_end(sandbox, "jumped-twice")
        jump.known_hosts.write_text(target.host_key_line())  # the jump host's key is now unknown
        use_config(sandbox, target_block + "  ProxyJump jumpbox\n" + jump.client_config())
        unknown = create(sandbox, "unknown-jump")
        assert unknown.returncode == 1
        assert "the host key of the jump host jumpbox is not known yet" in unknown.stderr, unknown.stderr


def test_proxy_command_carries_the_connection(sandbox) -> None:
    relay = sandbox.root / "relay.py"
    used = sandbox.root / "relay-used"
    relay.write_text(
        "import os, socket, sys, threading\n"
        f"open({str(used)!r}, 'a').write(sys.argv[1] + ':' + sys.argv[2] + '\\n')\n"
        "connection = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "def upstream():\n"
        "    while data := os.read(0, 65536):\n"
        "        connection.sendall(data)\n"
        "    connection.shutdown(socket.SHUT_WR)\n"
        "threading.Thread(target=upstream, daemon=True).start()\n"
        "while data := connection.recv(65536):\n"
        "    os.write(1, data)\n"
    )
    with hosts(sandbox, ("testhost", "")) as (target,):
        # Run through a shell, as OpenSSH runs it: the variable is the shell's to expand.
        sandbox.env["RELAY_SCRIPT"] = str(relay)
        use_config(sandbox, target.client_config() + f"  ProxyCommand {sys.executable} $RELAY_SCRIPT %h %p\n")
        works_end_to_end(sandbox, "proxied")
        assert set(used.read_text().splitlines()) == {f"127.0.0.1:{target.port}"}
        use_config(sandbox, target.client_config() + "  ProxyCommand false\n")
        failed = create(sandbox, "proxy-fails")
        assert failed.returncode == 1
        assert "mngr: error: host 'testhost': ssh connection through ProxyCommand 'false' failed: " in failed.stderr
        assert len(failed.stderr.splitlines()) == 1


def test_host_key_alias_is_where_the_key_is_looked_up_and_recorded(sandbox) -> None:
    with hosts(sandbox, ("testhost", "")) as (target,):
        key = " ".join(Path(f"{target.host_key}.pub").read_text().split()[:2])
        config = target.client_config() + "  HostKeyAlias build-box.example\n"
        use_config(sandbox, config)
        # Known only under the alias: enough, as for OpenSSH.
        target.known_hosts.write_text(f"build-box.example {key}\n")
        works_end_to_end(sandbox, "aliased")
        # Known only under the address: not enough.
        target.known_hosts.write_text(target.host_key_line())
        unknown = create(sandbox, "by-address")
        assert unknown.returncode == 1
        assert "the host key of testhost (HostKeyAlias build-box.example) is not known yet" in unknown.stderr
        # Accepted on first use: recorded under the alias.
        target.known_hosts.write_text("")
        accepted = create(sandbox, "accepted", "--accept-new-host-key")
        assert accepted.returncode == 0, accepted.stderr
        assert target.known_hosts.read_text() == f"build-box.example {key}\n"
        # Another key under the alias: refused.
        other = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        target.known_hosts.write_text(f"build-box.example ssh-ed25519 {other}\n")
        changed = create(sandbox, "changed")
        assert changed.returncode == 1 and "(HostKeyAlias build-box.example) has CHANGED" in changed.stderr
