"""One bounded fan-out for every command that acts on many agents or hosts.

Each item runs on its own thread, at most ``limit`` at a time, and gets ``item_timeout``
seconds from the moment it starts. An item that fails (a MngrError or OSError) or runs out
of time is reported as failed; the others are done all the same. A thread whose item ran
out of time is abandoned (it is a daemon thread, blocked on a host that does not answer)
and no longer counts against the limit, so one frozen host cannot hold up the rest.

The requests themselves carry the host's timeout too (hosts.HostHandle); the item timeout
is the last word for what a request's timeout cannot see (a connection that hangs before
the helper is reached, a host that answers a byte at a time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import MngrError
from ..fleet import LocatedAgent

T = TypeVar("T")
R = TypeVar("R")

# Agents or hosts acted on at once. Each is mostly waiting on a socket or an ssh process, so
# this bounds open connections, not CPU.
MAX_PARALLEL = 32


@dataclass
class Outcome(Generic[T, R]):
    """What became of one item: its ``value``, or why it failed (``error``)."""

    item: T
    value: R | None = None
    error: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def error_text(exc: BaseException) -> str:
    """A failure as one line: a host's own message without the host prefix where it has one."""
    return str(getattr(exc, "detail", None) or exc or type(exc).__name__)


def fan_out(work: Callable[[T], R], items: Sequence[T], *,
            item_timeout: float | Callable[[T], float | None] | None,
            limit: int = MAX_PARALLEL) -> list[Outcome[T, R]]:
    """``work(item)`` for every item, in parallel; the outcomes in the items' order.
    ``item_timeout``: seconds (None: no limit), the same for each or each item's own.

    Exceptions other than MngrError and OSError are mngr's own bugs: they propagate (after
    the items still running are left to finish on their own)."""
    outcomes: list[Outcome[T, R]] = [Outcome(item) for item in items]
    if not items:
        return outcomes
    timeouts = [item_timeout(item) if callable(item_timeout) else item_timeout for item in items]
    if len(items) == 1 and timeouts[0] is None:
        outcomes[0].value, outcomes[0].error = _run_one(work, items[0])
        return outcomes
    finished = threading.Condition()
    done: list[bool] = [False] * len(items)
    bugs: list[BaseException] = []
    started_at: dict[int, float] = {}
    next_index = 0

    def run(index: int) -> None:
        value: R | None = None
        error: str | None = None
        try:
            value, error = _run_one(work, items[index])
        except BaseException as exc:  # handed to the caller's thread
            bugs.append(exc)
        with finished:
            if not outcomes[index].timed_out:  # a late answer does not undo the report of its absence
                outcomes[index].value, outcomes[index].error = value, error
            done[index] = True
            finished.notify_all()

    with finished:
        while True:
            now = time.monotonic()
            for index, start in list(started_at.items()):
                seconds = timeouts[index]
                if not done[index] and seconds is not None and now - start >= seconds:
                    outcomes[index].error = f"no answer within {seconds:g} s"
                    outcomes[index].timed_out = True
                    done[index] = True  # abandoned: its thread may still be blocked
            running = [index for index in started_at if not done[index]]
            while next_index < len(items) and len(running) < limit:
                started_at[next_index] = time.monotonic()
                threading.Thread(target=run, args=(next_index,), daemon=True,
                                 name=f"mngr-fan-out-{next_index}").start()
                running.append(next_index)
                next_index += 1
            if not running and next_index >= len(items):
                break
            deadlines = [started_at[index] + seconds for index in running
                         if (seconds := timeouts[index]) is not None]
            finished.wait(max(0.0, min(deadlines) - time.monotonic()) if deadlines else None)
    if bugs:
        raise bugs[0]
    return outcomes


def _run_one(work: Callable[[T], R], item: T) -> tuple[R | None, str | None]:
    try:
        return work(item), None
    except (MngrError, OSError) as exc:
        return None, error_text(exc)


def per_agent(work: Callable[[LocatedAgent], R], agents: Sequence[LocatedAgent], *,
              host_timeout: Callable[[int], float | None], limit: int = MAX_PARALLEL
              ) -> list[Outcome[LocatedAgent, R]]:
    """``work(agent)`` for every agent, hosts in parallel and each host's agents in parallel
    (after its first); the outcomes in the agents' order.

    A host gets ``host_timeout(number of its agents)`` seconds for all of its agents (None:
    no limit beyond its requests' own); its agents not done by then are reported with the
    host's failure, and every other host's are done all the same.
    """
    outcomes: list[Outcome[LocatedAgent, R]] = [Outcome(agent) for agent in agents]
    by_host: dict[int, list[int]] = {}
    for index, agent in enumerate(agents):
        by_host.setdefault(id(agent.handle), []).append(index)
    settled: set[int] = set()
    lock = threading.Lock()
    closed = [False]

    def on_host(indices: list[int]) -> None:
        # The first agent alone, then the rest at once: the first opens the channel and
        # brings up what the host's agents share (its tmux server, which several
        # `tmux new-session` started at once on a host without one fail to start).
        host_agents = [agents[index] for index in indices]
        inner = fan_out(work, host_agents[:1], item_timeout=None)
        inner += fan_out(work, host_agents[1:], item_timeout=None, limit=limit)
        with lock:
            if closed[0]:
                return
            for index, outcome in zip(indices, inner, strict=True):
                outcomes[index].value, outcomes[index].error = outcome.value, outcome.error
                settled.add(index)

    hosts = fan_out(on_host, list(by_host.values()), item_timeout=lambda indices: host_timeout(len(indices)),
                    limit=limit)
    with lock:
        closed[0] = True
        for host in hosts:
            for index in host.item:
                if index not in settled:
                    outcomes[index].error = host.error or "not done"
                    outcomes[index].timed_out = host.timed_out
    return outcomes

