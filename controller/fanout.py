"""One bounded fan-out for everything that acts on many agents or hosts: listings, name
lookups and every command (stop, message, exec, gc, ...).

Each item runs on its own thread, at most ``limit`` at a time, and gets ``item_timeout``
seconds from the moment it starts. An item that fails (a MngrError or OSError) or runs out
of time is reported as failed; the others are done all the same. A thread whose item ran
out of time is abandoned (it is a daemon thread, blocked on a host that does not answer)
and no longer counts against the limit, so one frozen host cannot hold up the rest.

A Ctrl-C (with an ``Interruption`` given, and its handler installed by the caller: see
``interruptible``) stops new items from starting, and those under way are waited for, as
their requests went out; a second Ctrl-C stops waiting, and what was under way is reported
as unknown. Either way every outcome says what became of its item.

The requests themselves carry the host's timeout too (hosts.HostHandle); the item timeout
is the last word for what a request's timeout cannot see (a connection that hangs before
the helper is reached, a host that answers a byte at a time).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from .errors import MngrError

if TYPE_CHECKING:
    from .fleet import LocatedAgent

T = TypeVar("T")
R = TypeVar("R")

# Agents or hosts acted on at once. Each is mostly waiting on a socket or an ssh process, so
# this bounds open connections, not CPU.
MAX_PARALLEL = 32


NOT_STARTED = "not started: interrupted"
CUT_SHORT = "interrupted while under way: whether it was done is unknown"
NOT_STARTED_AFTER_FAILURE = "not started: another agent failed (--on-error abort)"
ON_ERROR_CHOICES = ("continue", "abort")


class Interruption:
    """Ctrl-C during a fan-out: ``requested`` after the first (start nothing more),
    ``abandoned`` after the second (stop waiting for what is under way).

    ``--on-error abort`` uses the same stop: ``failed`` says a failed item, not the user,
    asked that nothing more be started."""

    def __init__(self) -> None:
        self.requested = False
        self.abandoned = False
        self.failed = False

    @property
    def happened(self) -> bool:
        return self.requested or self.abandoned

    @property
    def by_user(self) -> bool:
        """Whether Ctrl-C (rather than a failure under --on-error abort) stopped the fan-out."""
        return self.abandoned or (self.requested and not self.failed)

    def abort_after_failure(self) -> None:
        if not self.requested:
            self.failed = True
        self.requested = True


def stopping_on_error(work: Callable[[T], R], on_error: str, interruption: Interruption,
                      failed: Callable[[R], bool] = lambda value: False) -> Callable[[T], R]:
    """``work``, which with ``on_error`` "abort" stops the fan-out (nothing more started) once
    an item fails: raises, or returns a value that ``failed`` says is a failure."""
    if on_error != "abort":
        return work

    def guarded(item: T) -> R:
        try:
            value = work(item)
        except (MngrError, OSError):
            interruption.abort_after_failure()
            raise
        if failed(value):
            interruption.abort_after_failure()
        return value

    return guarded


def not_started_reason(error: str | None, interruption: Interruption) -> str | None:
    """An outcome's error as it should read: an item not started because another failed
    says so, rather than blaming a Ctrl-C."""
    if error == NOT_STARTED and not interruption.by_user:
        return NOT_STARTED_AFTER_FAILURE
    return error


@contextlib.contextmanager
def interruptible(what: str) -> Iterator[Interruption]:
    """An Interruption that Ctrl-C sets while the block runs: the first is held (and said so
    on stderr), a second raises KeyboardInterrupt, which ``fan_out`` takes as ``abandoned``."""
    from .interrupts import deferred_interrupt

    interruption = Interruption()

    def first() -> None:
        interruption.requested = True

    with deferred_interrupt(what, on_hold=first):
        yield interruption


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
            limit: int = MAX_PARALLEL, interruption: Interruption | None = None) -> list[Outcome[T, R]]:
    """``work(item)`` for every item, in parallel; the outcomes in the items' order.
    ``item_timeout``: seconds (None: no limit), the same for each or each item's own.
    With ``interruption``, a KeyboardInterrupt while waiting (on the calling thread) is
    taken as the interruption's ``abandoned``: what is under way is reported cut short.

    Exceptions other than MngrError and OSError are mngr's own bugs: they propagate (after
    the items still running are left to finish on their own)."""
    outcomes: list[Outcome[T, R]] = [Outcome(item) for item in items]
    if not items:
        return outcomes
    timeouts = [item_timeout(item) if callable(item_timeout) else item_timeout for item in items]
    if len(items) == 1 and timeouts[0] is None and interruption is None:
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
            try:
                now = time.monotonic()
                for index, start in list(started_at.items()):
                    seconds = timeouts[index]
                    if not done[index] and seconds is not None and now - start >= seconds:
                        outcomes[index].error = f"no answer within {seconds:g} s"
                        outcomes[index].timed_out = True
                        done[index] = True  # abandoned: its thread may still be blocked
                running = [index for index in started_at if not done[index]]
                while next_index < len(items) and interruption is not None and interruption.happened:
                    if next_index not in started_at:  # else a Ctrl-C came while its thread started
                        outcomes[next_index].error = NOT_STARTED
                    next_index += 1
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
            except KeyboardInterrupt:  # wherever it lands, on the calling thread
                if interruption is None:
                    raise
                interruption.abandoned = True
                for index in started_at:
                    if not done[index]:
                        outcomes[index].error = CUT_SHORT
                        outcomes[index].timed_out = True  # a late answer is not taken
                        done[index] = True
    if bugs:
        raise bugs[0]
    return outcomes


def _run_one(work: Callable[[T], R], item: T) -> tuple[R | None, str | None]:
    try:
        return work(item), None
    except (MngrError, OSError) as exc:
        return None, error_text(exc)


def per_agent(work: Callable[[LocatedAgent], R], agents: Sequence[LocatedAgent], *,
              host_timeout: Callable[[int], float | None], limit: int = MAX_PARALLEL,
              interruption: Interruption | None = None, first_alone: bool = True) -> list[Outcome[LocatedAgent, R]]:
    """``work(agent)`` for every agent, hosts in parallel and each host's agents in parallel
    (after its first, with ``first_alone``: for work that may bring up what the host's
    agents share; without it, work that runs for long, as a command, runs everywhere at
    once); the outcomes in the agents' order.

    A host gets ``host_timeout(number of its agents)`` seconds for all of its agents (None:
    no limit beyond its requests' own); its agents not done by then are reported with the
    host's failure, and every other host's are done all the same. With ``interruption``,
    see ``fan_out``: an agent not started is NOT_STARTED, one under way CUT_SHORT.
    """
    outcomes: list[Outcome[LocatedAgent, R]] = [Outcome(agent) for agent in agents]
    by_host: dict[int, list[int]] = {}
    for index, agent in enumerate(agents):
        by_host.setdefault(id(agent.handle), []).append(index)
    settled: set[int] = set()
    started: set[int] = set()
    # Each agent's own end as it comes: one done before its host ran out of time (or the
    # user of patience) is reported done, whatever became of its host's others.
    ended: dict[int, tuple[R | None, str | None]] = {}
    lock = threading.Lock()
    closed = [False]

    def on_host(indices: list[int]) -> None:
        # The first agent alone, then the rest at once: the first opens the channel and
        # brings up what the host's agents share (its tmux server, which several
        # `tmux new-session` started at once on a host without one fail to start).
        def tracked(index: int) -> R:
            with lock:
                started.add(index)
            try:
                value = work(agents[index])
            except (MngrError, OSError) as exc:
                with lock:
                    ended[index] = (None, error_text(exc))
                raise
            with lock:
                ended[index] = (value, None)
            return value

        alone = 1 if first_alone else 0
        inner = fan_out(tracked, indices[:alone], item_timeout=None, interruption=interruption)
        inner += fan_out(tracked, indices[alone:], item_timeout=None, limit=limit, interruption=interruption)
        with lock:
            if closed[0]:
                return
            for index, outcome in zip(indices, inner, strict=True):
                outcomes[index].value, outcomes[index].error = outcome.value, outcome.error
                settled.add(index)

    hosts = fan_out(on_host, list(by_host.values()), item_timeout=lambda indices: host_timeout(len(indices)),
                    limit=limit, interruption=interruption)
    with lock:
        closed[0] = True
        for host in hosts:
            for index in host.item:
                if index in settled:
                    continue
                if index in ended:
                    outcomes[index].value, outcomes[index].error = ended[index]
                    continue
                error = host.error or "not done"
                if error in (NOT_STARTED, CUT_SHORT):  # what the host's own agents came to
                    error = CUT_SHORT if index in started else NOT_STARTED
                outcomes[index].error = error
                outcomes[index].timed_out = host.timed_out
    return outcomes

