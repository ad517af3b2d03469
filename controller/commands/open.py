"""open: make one of an agent's URLs reachable from this machine.

An agent's URLs are as seen on its host (``http://localhost:8000/``). One whose address is
the host's loopback is checked there first (the helper tries to connect: ProbePorts), so
that a port nobody listens on is an error naming the port and the host, not a browser tab
that never loads; then the agent's provider makes the port reachable from here
(``Provider.reach_port``: the same address on the local host, a forward through the SSH
master, a container's address, a Modal tunnel) and the URL is rewritten to point there.
A URL on any other address (``https://example.com/``) is given as it is.

The agent's URLs come from its record (``AgentInfo.urls``: ``mngr create --port``, its
type's defaults, or what it wrote to ``$MNGR_AGENT_DIR/urls`` at run time). A port given
by number needs no declaring: any port something listens on can be opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ..errors import MngrError, UsageError

if TYPE_CHECKING:
    from mngr.providers.base import Reached

    from ..cli.app import App

# Names a URL may give its host by, that mean the machine it is seen on.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Of those, the ones a browser connects to (0.0.0.0 and :: mean "every address" to a server).
_CONNECTABLE_LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass
class OpenRequest:
    agent: str  # agent name or id (as other commands resolve it)
    target: str | None = None  # a URL name or a port number; None: the agent's first URL


@dataclass
class Opened:
    agent: str
    host: str
    provider: str
    name: str  # the URL's name ("" for a bare port not declared)
    remote_url: str  # as on the host
    local_url: str  # what answers on THIS machine


def open_url(app: App, request: OpenRequest) -> Opened:
    """The URL ``request`` names, made reachable from this machine; MngrError (one line)
    for an agent, URL name or port that cannot be opened."""
    from ..agent_lookup import located_agent

    port_number = _port_number(request.target)
    with located_agent(app, request.agent) as agent:
        info = agent.info
        if info.state == "GONE":
            raise MngrError(f"agent {info.name!r} cannot be opened: its host {agent.host} is gone")
        if info.state == "STOPPED":  # its processes are gone; and asking would start a stopped container
            raise MngrError(f"agent {info.name!r} is stopped: start it first (mngr start {info.name})")
        name, remote_url = _chosen(info.name, info.urls, request.target, port_number)
        port = loopback_port(remote_url)
        if port is None:  # not on the host's loopback: anyone reaches it as it is
            return Opened(info.name, agent.host, agent.provider, name, remote_url, remote_url)
        if port not in agent.handle.listening_ports([port]):
            ended = f" (agent {info.name} is {info.state})" if info.state not in ("RUNNING", "WAITING") else ""
            raise MngrError(f"nothing listens on port {port} on host {agent.host}{ended}")
        reached = agent.handle.provider.reach_port(agent.host, port, info.id)
        return Opened(info.name, agent.host, agent.provider, name, remote_url, local_url(remote_url, reached))


def _port_number(target: str | None) -> int | None:
    """``target`` as a port number, when it is all digits (a URL name may be one too)."""
    if target is None or not target.isdigit():
        return None
    number = int(target)
    if not 0 < number < 65536:
        raise UsageError(f"invalid port {target!r}: a TCP port is 1 to 65535")
    return number


def _chosen(agent: str, urls: Mapping[str, str], target: str | None, port: int | None) -> tuple[str, str]:
    """(name, URL on the host) that ``target`` names among the agent's ``urls``."""
    if target is None:
        if not urls:
            raise MngrError(f"agent {agent!r} has no URLs: name a port (mngr open {agent} PORT), "
                            "or declare one (mngr create --port PORT[:NAME])")
        return next(iter(urls.items()))
    if target in urls:
        return target, urls[target]
    if port is None:
        names = ", ".join(urls) if urls else "none"
        raise MngrError(f"agent {agent!r} has no URL named {target!r} (its URLs: {names})")
    for name, url in urls.items():  # a declared URL on that port keeps its name and path
        if loopback_port(url) == port:
            return name, url
    return "", f"http://localhost:{port}/"


def loopback_port(url: str) -> int | None:
    """The TCP port of ``url`` when its address is the host's loopback, else None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if (parts.hostname or "") not in LOOPBACK_NAMES:
        return None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def local_url(remote_url: str, reached: Reached) -> str:
    """``remote_url`` pointed at where this machine reaches its port."""
    parts = urlsplit(remote_url)
    scheme = reached.scheme or parts.scheme
    if (scheme == parts.scheme and reached.port == loopback_port(remote_url) and reached.host in LOOPBACK_NAMES
            and parts.hostname in _CONNECTABLE_LOOPBACK):
        return remote_url  # the same machine's loopback: the URL as the agent gave it
    host = f"[{reached.host}]" if ":" in reached.host else reached.host
    netloc = host if _DEFAULT_PORTS.get(scheme) == reached.port else f"{host}:{reached.port}"
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, parts.fragment))
