"""The interface every provider implements: where hosts come from and how to reach them.

A provider knows its hosts (by name) and can open a byte stream to the first stage of the
helper on any of them. Everything else mngr does on a host goes through that stream, so a
new provider is mostly "how do I run ``python3 -c STAGE1`` there with a pipe to it".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

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
