"""Ports of SSH hosts made reachable here for `mngr open`: forwards in the shared connection.

A forward is ``ssh -O forward -L 127.0.0.1:LPORT:localhost:PORT`` to the host's connection
master (the one every mngr command to the host shares), so it costs no handshake and only
this machine's loopback listens. mngr notes each in ``ssh_port_forwards.json`` in its state
dir, {key: forward}, one per port of one way of reaching a host, with the ids of the agents
it was opened for; the file is changed under its lock, so two opens at once make one forward.

A later open asks the master for the noted forward again: a master that holds it answers
that it does (OpenSSH skips a forward it has), so the same URL is reused and no listener is
added; one that does not (the master exited, as it does 10 minutes after its last use) makes
it again on the same local port when that is free, so a page left open in the browser works
again. When the last agent it was opened for stops or goes, the forward is cancelled.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

from mngr.controller.errors import MngrError
from mngr.controller.paths import changing_state_json, read_state_dict

from .base import Reached

if TYPE_CHECKING:
    from .ssh import SshProvider

FORWARDS_FILE = "ssh_port_forwards.json"
# What ssh -O forward says when another program listens on the local port.
_PORT_TAKEN = ("forwarding failed", "Address already in use", "cannot listen")
# ... and when the host has no connection master to ask.
_NO_MASTER = ("Control socket connect", "No such file")
_ATTEMPTS = 4


def forward(provider: SshProvider, host: str, port: int, agent_id: str) -> Reached:
    """127.0.0.1:LPORT here, forwarded to ``port`` on ``host``'s loopback for ``agent_id``."""
    key = json.dumps([host, provider._address(host), str(provider.settings.get("ssh_config", "")), port])
    with changing_state_json(FORWARDS_FILE) as forwards:
        known = forwards.get(key)
        known = known if isinstance(known, dict) and isinstance(known.get("local_port"), int) else {}
        local_port = _forwarded(provider, host, port, known.get("local_port", 0))
        agents = [agent for agent in known.get("agents", []) if isinstance(agent, str)]
        forwards[key] = {"host": host, "port": port, "local_port": local_port, "spec": _spec(local_port, port),
                         "agents": list(dict.fromkeys([*agents, agent_id]))}
    return Reached("127.0.0.1", local_port)


def release(provider: SshProvider, host: str, agent_id: str) -> None:
    """Cancel the forwards to ``host`` opened for ``agent_id`` that no other agent needs."""
    if not any(_names(forward, host, agent_id) for forward in read_state_dict(FORWARDS_FILE).values()):
        return  # the usual case: nothing opened for it, and no lock taken
    with changing_state_json(FORWARDS_FILE) as forwards:
        for key, noted in list(forwards.items()):
            if not _names(noted, host, agent_id):
                continue
            noted["agents"].remove(agent_id)
            if not noted["agents"]:
                del forwards[key]
                # Fails harmlessly when the master, and the forward with it, is gone already.
                provider.mux(host, "cancel", "-L", str(noted.get("spec", "")), timeout=5)


def _names(noted: Any, host: str, agent_id: str) -> bool:
    return isinstance(noted, dict) and noted.get("host") == host and agent_id in (noted.get("agents") or [])


def _forwarded(provider: SshProvider, host: str, port: int, noted_port: int) -> int:
    """The local port the host's master forwards to ``port``: ``noted_port`` when the master
    holds that forward or can make it again, else a new free one."""
    problem = ""
    local_port = noted_port or _free_port()
    for _ in range(_ATTEMPTS):
        status, said = provider.mux(host, "forward", "-L", _spec(local_port, port))
        if status == 0:
            return local_port
        problem = _last_line(said)
        if any(sign in said for sign in _NO_MASTER):
            provider.share_connection(host)  # it exited since the helper was reached
        elif any(sign in said for sign in _PORT_TAKEN):
            local_port = _free_port()  # another program took it since
        else:
            break
    raise MngrError(f"could not forward port {port} of ssh host {host} to this machine: {problem or 'ssh failed'}")


def _spec(local_port: int, port: int) -> str:
    # "localhost" as the host resolves it: a server listening on its ::1 only is reached too.
    return f"127.0.0.1:{local_port}:localhost:{port}"


def _free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now, as the system picks one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
