"""How a command names an agent: ``NAME``, ``NAME@HOST``, ``NAME@PROVIDER/HOST`` or its id.

A name is unique across hosts for agents made by this mngr, but agents left by an older
one may share a name on several hosts; each can still be named:

- ``NAME@HOST``: the agent ``NAME`` on the host ``HOST``, as ``mngr list`` shows it. Agent
  names never hold ``@``, so everything after the first one is the host (an ssh host may
  itself be ``user@machine:2222``).
- ``NAME@PROVIDER/HOST``: the same, when two providers have a host of that name. No
  provider's host names hold ``/``.
- the agent's id (``agent-`` and 32 hex digits, ``id`` in ``mngr list --format json``),
  or a prefix of it of at least ``MIN_ID_PREFIX`` characters that only one agent has. A
  word that is an agent's name is always that name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .errors import AgentNotFound, UsageError

ID_PREFIX = "agent-"
MIN_ID_PREFIX = len(ID_PREFIX) + 6


@dataclass(frozen=True)
class AgentRef:
    text: str  # as the user wrote it
    name: str
    host: str | None = None
    provider: str | None = None

    def names_place(self, host: str, provider: str) -> bool:
        """Whether an agent on ``host`` of ``provider`` can be this one."""
        return (self.host is None or self.host == host) and (self.provider is None or self.provider == provider)


class Placed(Protocol):
    """An agent where a listing found it (fleet.LocatedAgent)."""

    @property
    def host(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def agent_name(self) -> str: ...


P = TypeVar("P", bound=Placed)


def parse_agent_ref(text: str) -> AgentRef:
    if "@" not in text:
        if not text:
            raise UsageError("an empty agent name")
        return AgentRef(text, text)
    name, _, place = text.partition("@")
    provider, slash, host = place.partition("/")
    if not slash:
        provider, host = "", place
    if not name or not host or (slash and not provider):
        raise UsageError(f"cannot read agent {text!r}: write NAME, NAME@HOST or NAME@PROVIDER/HOST")
    return AgentRef(text, name, host, provider or None)


def pick(ref: AgentRef, agents: Sequence[P], unanswered: str = "") -> P:
    """The one agent of ``agents`` that ``ref`` names; an error says why there is none or
    which ones it could be (``unanswered``: the hosts that did not answer, for the hint)."""
    placed = [agent for agent in agents if agent.agent_name == ref.name and ref.names_place(agent.host, agent.provider)]
    if not placed and ref.host is None and ref.name.startswith(ID_PREFIX) and len(ref.name) >= MIN_ID_PREFIX:
        placed = [agent for agent in agents if agent.agent_id.startswith(ref.name)]
    if not placed:
        hint = f"; hosts that did not answer: {unanswered}" if unanswered else ""
        where = f" on host {ref.host!r}" if ref.host else ""
        raise AgentNotFound(f"no agent named {ref.name!r}{where}{hint}")
    if len(placed) > 1:
        if ref.host is None and all(agent.agent_name == ref.name for agent in placed):
            where = ", ".join(f"{agent.host} ({agent.provider})" for agent in placed)
            choices = " or ".join(qualified(ref.name, agent, placed) for agent in placed)
            raise UsageError(f"agent name {ref.name!r} exists on several hosts: {where}; name one as {choices}")
        if ref.host is not None:
            choices = " or ".join(qualified(ref.name, agent, placed) for agent in placed)
            raise UsageError(f"host {ref.host!r} of agent {ref.name!r} is a host of several providers: "
                             f"name one as {choices}")
        raise UsageError(f"{ref.name!r} is the start of several agents' ids: give more of it")
    return placed[0]


def qualified(name: str, agent: Placed, others: Sequence[Placed] = ()) -> str:
    """``NAME@HOST``, or ``NAME@PROVIDER/HOST`` where another provider has a host so named."""
    if any(other.host == agent.host and other.provider != agent.provider for other in others):
        return f"{name}@{agent.provider}/{agent.host}"
    return f"{name}@{agent.host}"
