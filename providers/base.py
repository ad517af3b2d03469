"""The interface every provider implements: where hosts come from and how to reach them.

A provider knows its hosts (by name) and can open a byte stream to the first stage of the
helper on any of them. Everything else mngr does on a host goes through that stream, so a
new provider is mostly "how do I run ``python3 -c STAGE1`` there with a pipe to it".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from mngr.controller.channel.protocol import AgentList
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import Stream


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

    # -- hosts that come and go (providers that make their hosts, such as docker) ----------

    removes_empty_hosts: ClassVar[bool] = False  # destroy calls host_emptied for a host left empty

    def host_for_new_agent(self, agent_name: str) -> str:
        """The host a new agent goes to when the user names none."""
        return self.default_host()

    def prepare_host(self, host: str, build_args: Sequence[str], snapshot: str = "", agent: str = "") -> bool:
        """Make ``host`` ready for new agent ``agent`` (make or start it); True if it was made
        now, so that a failed create removes it again (``discard_host``). ``snapshot``: one of
        this provider's own snapshots (``snapshot_host``) to make the host from. By default
        hosts exist already, and build args mean nothing."""
        if build_args:
            from mngr.controller.errors import UsageError

            raise UsageError(f"provider {self.name!r} takes no --build-arg")
        return False

    # -- snapshots of a whole host (providers that have their own kind, such as images) -----

    def snapshot_host(self, host: str, meta: dict[str, Any]) -> int | None:
        """Record ``host`` whole as snapshot ``meta["id"]`` (``meta``: what mngr knows of it,
        kept with it); its size in bytes, or None when this provider has no snapshots of its
        own (mngr then archives the agent's work dir)."""
        return None

    def snapshots(self) -> list[dict[str, Any]]:
        """The metadata (as given to ``snapshot_host``, plus ``bytes``) of its snapshots."""
        return []

    def destroy_snapshot(self, snapshot_id: str) -> bool:
        """Delete one of its snapshots; False if it has none of that id."""
        return False

    def discard_host(self, host: str) -> None:  # noqa: B027 - optional hook
        """Remove a host ``prepare_host`` made (its agent could not be created)."""

    def host_emptied(self, host: str) -> None:  # noqa: B027 - optional hook
        """The last agent on ``host`` was destroyed (only if ``removes_empty_hosts``)."""

    def listing_problem(self) -> str:
        """Why this provider cannot tell which hosts it has ("" if it can), asked after
        ``known_hosts``: a listing reports it once, as an error of the whole provider."""
        return ""

    def offline_listing(self, host: str) -> AgentList | None:
        """The agents of a host that is not running, without starting it; None to ask the
        host's helper (the default). Raise a MngrError for a host that cannot be asked."""
        return None

    def listed(self, host: str, names: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """``host`` answered a listing with the agents ``names``."""

    def agent_created(self, host: str, name: str) -> None:  # noqa: B027 - optional hook
        """Agent ``name`` was created on ``host``."""

    def forget_agent(self, host: str, name: str) -> None:  # noqa: B027 - optional hook
        """Forget agent ``name`` of a host that is gone (state GONE): ``mngr destroy`` of it."""

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

    def bootstrapped(self, host: str, client: RpcClient) -> None:  # noqa: B027
        """Called after a helper was bootstrapped on ``host`` (a provider may set up a warm path)."""

    def remember(self, host: str) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Note that ``host`` has agents, so later listings search it without being told."""

    def forget(self, host: str, asked_at: float) -> None:  # noqa: B027
        """Note that ``host`` had no agents when asked at ``asked_at`` (time.time()).

        A host remembered again since then keeps its place (its first agent may have been
        created after it answered). A configured host is always searched.
        """

    def trust_new_host_keys(self) -> None:  # noqa: B027
        """Accept the key of a host seen for the first time (providers that check keys)."""

    def agent_base_env(self, host: str) -> dict[str, str] | None:
        """The environment agents on ``host`` start from; None means the helper's own."""
        return None

    def agent_umask(self, host: str) -> int | None:
        """The umask agents on ``host`` run with; None means the one the helper found."""
        return None

    def check_host(self, host: str) -> None:
        """Raise a MngrError if ``host`` cannot belong to this provider (e.g. unknown name)."""
        if host not in self.known_hosts():
            from mngr.controller.errors import UsageError

            raise UsageError(f"provider {self.name!r} has no host named {host!r}")
