"""The interface every provider implements: where hosts come from and how to reach them.

A provider knows its hosts (by name) and can open a byte stream to the first stage of the
helper on any of them. Everything else mngr does on a host goes through that stream, so a
new provider is mostly "how do I run ``python3 -c STAGE1`` there with a pipe to it".

``Provider`` holds only what every provider does. What some providers can do besides is a
small protocol each (``MakesHosts``, ``HostSnapshots``, ...): a provider has a capability
when it has that protocol's methods, and callers ask with ``isinstance(provider, MakesHosts)``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from mngr.controller.channel.protocol import AgentList
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import Stream


def tmux_attach_argv(session: str) -> list[str]:
    """``tmux attach-session`` run on a host for the user's terminal here.

    tmux draws characters beyond ASCII (an agent's prompt, its box lines) only for a client
    it believes takes UTF-8, which it judges by the locale where the client runs: on a host
    reached over ssh or ``docker exec`` that is the host's, often unset. What matters is the
    user's own terminal, so ``-u`` tells it when the locale here says UTF-8.
    """
    return ["tmux", *(["-u"] if local_locale_is_utf8() else []), "attach-session", "-t", agent_window_target(session)]


def agent_window_target(session: str) -> str:
    """The agent's window (its session's first) as a tmux target: attaching there lands on
    it, whichever window of the session (``mngr create --extra-window``) was last shown."""
    return f"={session}:^"


def local_locale_is_utf8() -> bool:
    """Whether this process's locale (LC_ALL, else LC_CTYPE, else LANG, as tmux reads it) is UTF-8."""
    for variable in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = os.environ.get(variable)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


@dataclass(frozen=True)
class Reached:
    """Where this machine connects to reach a TCP port of a host (``Provider.reach_port``)."""

    host: str  # a name or address this machine can connect to
    port: int
    # "https" when the way there speaks TLS whatever the server does (a Modal tunnel); ""
    # when it carries the server's own bytes, so the URL keeps its scheme.
    scheme: str = ""


class Provider(ABC):
    """One source of hosts; instantiated once per command with its config section."""

    name: ClassVar[str]

    def __init__(self, settings: Mapping[str, Any] | None = None, hosts: Mapping[str, Any] | None = None) -> None:
        self.settings: Mapping[str, Any] = settings or {}
        # ``[hosts.NAME]`` sections of the config that belong to this provider.
        self.configured_hosts: Mapping[str, Any] = hosts or {}

    @abstractmethod
    def known_hosts(self) -> Sequence[str]:
        """Names of the hosts this provider should search when listing agents."""

    @abstractmethod
    def default_host(self) -> str:
        """The host a new agent goes to when the user names none."""

    @abstractmethod
    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        """A stream to the helper on ``host``: its first stage, or (``warm``) a running one."""

    @abstractmethod
    def attach_argv(self, host: str, session: str) -> list[str]:
        """The command that attaches the user's terminal to a tmux session on ``host``."""

    def host_for_new_agent(self, agent_name: str) -> str:
        """The host a new agent goes to when the user names none."""
        return self.default_host()

    def idle_defaults(self, host: str) -> Mapping[str, Any]:
        """Idle settings for a host whose user chose none, applied when an agent is created.

        ``timeout``: seconds, or a duration such as "1h" (None: idle shutdown off).
        ``command``: run on the host after its agents are stopped for idleness ("" none).
        By default idle shutdown is off: nothing is saved by stopping an unknown machine.
        """
        return {"timeout": None, "command": ""}

    def resolve_work_dir(self, host: str, work_dir: str | None) -> str:
        """The work dir to send to the host for ``--work-dir`` (None: not given).

        By default a relative path (and ``~``) is resolved on the host, against the home dir.
        """
        return work_dir or "~"

    def reach_port(self, host: str, port: int, agent_id: str) -> Reached:
        """Make TCP ``port`` of ``host`` (where something listens on the host's loopback)
        reachable from this machine, for agent ``agent_id``'s URL: `mngr open`. Raise a
        MngrError, one line, when it cannot be."""
        from mngr.controller.errors import MngrError

        raise MngrError(f"provider {self.name!r} cannot make ports of its hosts reachable from here")

    def release_ports(self, host: str, agent_id: str) -> None:
        """Agent ``agent_id`` on ``host`` stopped or went: undo what ``reach_port`` set up
        for it alone. Best effort: never raises for what it could not undo."""
        return None  # the default reach_port sets nothing up

    def check_host(self, host: str) -> None:
        """Raise a MngrError if ``host`` cannot belong to this provider (e.g. unknown name)."""
        if host not in self.known_hosts():
            from mngr.controller.errors import UsageError

            raise UsageError(f"provider {self.name!r} has no host named {host!r}")


# -- optional capabilities: a provider has one when it has the protocol's methods ---------


@runtime_checkable
class MakesHosts(Protocol):
    """A provider that makes a host for new agents (a docker container, a Modal sandbox)
    and removes it with its last agent."""

    def prepare_host(self, host: str, build_args: Sequence[str], snapshot: str = "", agent: str = "") -> bool:
        """Make ``host`` ready for new agent ``agent`` (make or start it); True if it was made
        now, so that a failed create removes it again (``discard_host``). ``snapshot``: one of
        this provider's own snapshots (``HostSnapshots.snapshot_host``) to make the host from."""

    def discard_host(self, host: str) -> None:
        """Remove a host ``prepare_host`` made (its agent could not be created)."""

    def host_emptied(self, host: str) -> None:
        """The last agent on ``host`` was destroyed: remove the host."""


@runtime_checkable
class PortsAtMaking(Protocol):
    """A provider whose hosts make a port reachable from outside only if it was named when
    the host was made (a docker container's published ports, a Modal sandbox's tunnels)."""

    def ports_for_new_host(self, host: str, ports: Sequence[int]) -> None:
        """The ports (of agents' URLs) that the host ``prepare_host`` makes next as ``host``
        makes reachable from outside it; a host that exists already keeps the ones it has."""


@runtime_checkable
class HostSnapshots(Protocol):
    """A provider with snapshots of a whole host of its own kind (such as images); others
    get mngr's archive of the agent's work dir."""

    def snapshot_host(self, host: str, meta: dict[str, Any]) -> int | None:
        """Record ``host`` whole as snapshot ``meta["id"]`` (``meta``: what mngr knows of it,
        kept with it); its size in bytes, or None to have mngr archive the work dir instead."""

    def snapshots(self) -> list[dict[str, Any]]:
        """The metadata (as given to ``snapshot_host``, plus ``bytes``) of its snapshots."""

    def destroy_snapshot(self, snapshot_id: str) -> bool:
        """Delete one of its snapshots; False if it has none of that id."""


@runtime_checkable
class OfflineListing(Protocol):
    """A provider that can tell the agents of a host that is not running without starting it."""

    def offline_listing(self, host: str) -> AgentList | None:
        """The agents of a host that is not running; None to ask the host's helper. Raise a
        MngrError for a host that cannot be asked."""


@runtime_checkable
class ListingProblems(Protocol):
    """A provider that may be unable to tell which hosts it has (an account not logged in)."""

    def listing_problem(self) -> str:
        """Why it cannot tell ("" if it can), asked after ``known_hosts``: a listing reports
        it once, as an error of the whole provider."""


@runtime_checkable
class HearsListings(Protocol):
    """A provider told what each of its hosts answered a listing with."""

    def listed(self, host: str, names: Sequence[str]) -> None:
        """``host`` answered a listing with the agents ``names``."""


@runtime_checkable
class AgentRegistry(Protocol):
    """A provider that keeps its own record of its hosts' agents, to report the agents of a
    host that vanished (state GONE) until they are destroyed."""

    def agent_created(self, host: str, name: str) -> None:
        """Agent ``name`` was created on ``host``."""

    def forget_agent(self, host: str, name: str) -> None:
        """Forget agent ``name`` of a host that is gone: ``mngr destroy`` of it."""


@runtime_checkable
class RemembersHosts(Protocol):
    """A provider whose hosts are found through mngr's memory of them (ssh hosts that had
    agents), besides those configured."""

    def remember(self, host: str) -> None:
        """Note that ``host`` has agents, so later listings search it without being told."""

    def forget(self, host: str, asked_at: float) -> None:
        """Note that ``host`` had no agents when asked at ``asked_at`` (time.time()). A host
        remembered again since then keeps its place (its first agent may have been created
        after it answered). A configured host is always searched."""


@runtime_checkable
class ChecksHostKeys(Protocol):
    """A provider that checks its hosts' keys (ssh)."""

    def trust_new_host_keys(self) -> None:
        """Accept the key of a host seen for the first time (a changed key is always refused)."""


@runtime_checkable
class WarmPath(Protocol):
    """A provider that sets up a faster way back to a host once its helper runs."""

    def bootstrapped(self, host: str, client: RpcClient) -> None:
        """Called after a helper was bootstrapped on ``host``."""


@runtime_checkable
class AgentEnvironment(Protocol):
    """A provider that gives agents an environment and umask of its own choosing (the local
    host: the user's, rather than the helper's)."""

    def agent_base_env(self, host: str) -> dict[str, str] | None:
        """The environment agents on ``host`` start from; None means the helper's own."""

    def agent_umask(self, host: str) -> int | None:
        """The umask agents on ``host`` run with; None means the one the helper found."""
