"""events: what happened to agents on every host, as one stream in time order.

Each host keeps its own logs (remote_helper/events.py) and hands out what follows a
cursor. A plain read asks every host `mngr list` asks, in parallel, pages each to the end
and merges the lot by time. Following keeps one long poll going per host, each on a thread
of its own: a host that stops answering is reported once and asked again every
``RETRY_SECONDS`` with the cursor it had (nothing it logged meanwhile is lost), and never
holds up the others. What arrives together is sorted by time before it is handed on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import MngrError, UsageError
from ..fanout import fan_out
from ..fleet import MAX_PARALLEL_HOSTS, LocatedAgent, listing_seconds

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from ..cli.app import App
    from ..hosts import HostHandle

# The fields every event has, first in each row, in this order; the event's own follow.
LEADING_FIELDS = ("time", "host", "provider", "agent", "agent_id", "event")
EVENT_TYPES = ("created", "started", "stopped", "message_sent", "activity", "agent_config_written", "state",
               "agent_destroyed", "stray_session_destroyed", "work_dir_removed", "idle_settings", "keepalive",
               "agent_processes_kept", "idle_decision", "shutdown", "renamed", "labels_changed", "archived",
               "unarchived")
POLL_WAIT_SECONDS = 10.0  # one long poll's wait on the host
RETRY_SECONDS = 2.0  # between two tries of a host that does not answer
DISCOVER_SECONDS = 5.0  # a follow looks for hosts mngr came to know this often


class NothingSelected(MngrError):
    """The filters select no agent: a read has nothing to print, a follow nothing to follow."""


@dataclass
class EventsRequest:
    names: Sequence[str] = ()  # only these agents' events (none: every event)
    # Only the events of agents (found when the command starts) this keeps: --include/--exclude.
    keep: Callable[[LocatedAgent], bool] | None = None
    event_types: Sequence[str] = ()  # only these (none: every type)
    since: str = ""  # an ISO time in UTC, as hosts write it: older events left out
    follow: bool = False


@dataclass
class EventsResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (host, provider, error)


def parse_event_types(words: Sequence[str]) -> list[str]:
    types: list[str] = []
    for word in words:
        for part in word.split(","):
            name = part.strip().lower()
            if name not in EVENT_TYPES:
                raise UsageError(f"--event {part.strip()!r}: not an event type (choose from {', '.join(EVENT_TYPES)})")
            if name not in types:
                types.append(name)
    return types


def since_time(text: str, now: float | None = None) -> str:
    """``--since``: a duration back from now (90s, 2h) or an ISO time (UTC if it names no
    zone), written as the hosts' logs write times, so that the two compare as text."""
    from datetime import UTC, datetime

    from ..durations import parse_duration

    try:
        stamp = (time.time() if now is None else now) - parse_duration(text, "--since")
    except UsageError:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(f"--since {text!r}: neither a duration (such as 10m) nor an ISO time") from None
        stamp = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
    millis = round(stamp * 1000)
    return datetime.fromtimestamp(millis // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}+00:00"


def event_row(raw: Mapping[str, Any], host: str, provider: str) -> dict[str, Any]:
    """A host's event as the stream gives it: the leading fields first, then its own."""
    row: dict[str, Any] = {"time": raw.get("time", ""), "host": host, "provider": provider,
                           "agent": raw.get("agent", ""), "agent_id": raw.get("agent_id", ""),
                           "event": raw.get("event", "")}
    for key in sorted(raw):
        if key not in row:
            row[key] = raw[key]
    return row


def in_time_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted by time; events of one time keep the order they came in (a host's own order)."""
    return sorted(rows, key=lambda row: str(row["time"]))


class Selection:
    """Which events a request keeps: of some types, of some agents (by name or id)."""

    def __init__(self, event_types: Sequence[str] = (), names: Sequence[str] = (), ids: Sequence[str] = ()) -> None:
        self._types = set(event_types)
        self._names = set(names)
        self._ids = set(ids)

    def keeps(self, row: Mapping[str, Any]) -> bool:
        if self._types and row["event"] not in self._types:
            return False
        return not (self._names or self._ids) or row["agent"] in self._names or row["agent_id"] in self._ids


class HostFeed:
    """One host's events, from a cursor on."""

    def __init__(self, handle: HostHandle, quiet_seconds: float, cursor: str, since: str) -> None:
        self.handle = handle
        self.cursor = cursor
        self._since = since
        self._quiet_seconds = quiet_seconds

    def offline(self) -> bool:
        """The host is not running (a stopped container or sandbox): asking it would start it."""
        from mngr.providers.base import OfflineListing

        provider = self.handle.provider
        return isinstance(provider, OfflineListing) and provider.offline_listing(self.handle.host) is not None

    def read(self, wait: float) -> list[dict[str, Any]]:
        """What the host has after the cursor (waiting up to ``wait`` seconds for something),
        every page of it; the cursor moves past it."""
        rows: list[dict[str, Any]] = []
        while True:
            reply = self.handle.read_events(self.cursor, self._since, wait, self._quiet_seconds)
            self.cursor = reply.cursor
            rows.extend(event_row(event, self.handle.host, self.handle.provider_name) for event in reply.events)
            if not reply.more:
                return rows
            wait = 0.0


def read_events(app: App, request: EventsRequest) -> EventsResult:
    """Every event the hosts have (since ``request.since``), merged in time order."""
    with _feeds(app, request, "") as (feeds, selection, result):
        # Pages of a long history each get the host's timeout; a host that hangs is given up.
        answers = fan_out(lambda feed: [] if feed.offline() else feed.read(0.0), feeds,
                          item_timeout=4 * listing_seconds(app.host_timeout), limit=MAX_PARALLEL_HOSTS)
        rows: list[dict[str, Any]] = []
        for feed, answer in zip(feeds, answers, strict=True):
            if answer.value is None:
                result.errors.append((feed.handle.host, feed.handle.provider_name, answer.error or "no answer"))
            else:
                rows.extend(row for row in answer.value if selection.keeps(row))
        result.events = in_time_order(rows)
        return result


@dataclass
class Arrival:
    """What a host's poll brought: events, or a change in whether it answers."""

    host: str
    provider: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # the host stopped answering, with this
    recovered: bool = False  # it answers again
    history: bool = False  # events from before the follow began (--since)


def follow_events(app: App, request: EventsRequest, deliver: Callable[[list[dict[str, Any]], bool], None],
                  report: Callable[[str], None], stop: threading.Event | None = None) -> None:
    """Hand each batch of new events (sorted by time, with whether they are history from
    before the follow began) to ``deliver``, until ``stop`` is set (or Ctrl-C); host
    trouble goes to ``report``, once each time a host stops answering. Hosts mngr comes to
    know meanwhile (an agent created on a new one) are followed too, from when the follow
    began (without NAMEs: with them, only their hosts are)."""
    stop = stop or threading.Event()
    began = since_time("0.001s")
    providers = [] if request.names or request.keep is not None else app.providers()
    known = {(provider.name, host) for provider in providers for host in provider.known_hosts()}
    arrivals: queue.Queue[Arrival] = queue.Queue()
    later: list[HostHandle] = []
    with _feeds(app, request, "" if request.since else "end", every_host=True) as (feeds, selection, _):
        for feed in feeds:
            known.add((feed.handle.provider_name, feed.handle.host))
            _start_polling(feed, arrivals, stop, bool(request.since))
        next_look = time.monotonic() + DISCOVER_SECONDS
        try:
            while not stop.is_set():
                if providers and time.monotonic() >= next_look:
                    for feed in _new_hosts(app, providers, known, request.since or began):
                        later.append(feed.handle)
                        _start_polling(feed, arrivals, stop, False)
                    next_look = time.monotonic() + DISCOVER_SECONDS
                try:
                    batch = [arrivals.get(timeout=0.5)]
                except queue.Empty:
                    continue
                while True:
                    try:
                        batch.append(arrivals.get_nowait())
                    except queue.Empty:
                        break
                for arrival in batch:
                    if arrival.error:
                        report(f"{arrival.host} ({arrival.provider}) does not answer: {arrival.error}; "
                               f"asking again every {RETRY_SECONDS:.0f} s")
                    elif arrival.recovered:
                        report(f"{arrival.host} ({arrival.provider}) answers again")
                for history in (True, False):
                    rows = [row for arrival in batch if arrival.history == history for row in arrival.rows
                            if selection.keeps(row)]
                    if rows:
                        deliver(in_time_order(rows), history)
        finally:
            for handle in later:
                handle.close()


def _start_polling(feed: HostFeed, arrivals: queue.Queue[Arrival], stop: threading.Event, history: bool) -> None:
    threading.Thread(target=_poll_host, args=(feed, arrivals, stop, history), daemon=True,
                     name=f"events-{feed.handle.host}").start()


def _new_hosts(app: App, providers: Sequence[Provider], known: set[tuple[str, str]], since: str) -> list[HostFeed]:
    """Feeds of the hosts ``providers`` know now that are not in ``known`` (which gets them)."""
    from ..hosts import HostHandle

    found = []
    for provider in providers:
        try:
            hosts = list(provider.known_hosts())
        except (MngrError, OSError):
            continue
        for host in hosts:
            if (provider.name, host) not in known:
                known.add((provider.name, host))
                found.append(HostFeed(HostHandle(provider, host, app.host_timeout), app.quiet_seconds, "", since))
    return found


def _poll_host(feed: HostFeed, arrivals: queue.Queue[Arrival], stop: threading.Event, with_history: bool) -> None:
    host, provider = feed.handle.host, feed.handle.provider_name
    failing = False
    history = with_history
    while not stop.is_set():
        try:
            if feed.offline():  # followed once it runs again, from where it was
                stop.wait(RETRY_SECONDS)
                continue
            rows = feed.read(0.0 if history else POLL_WAIT_SECONDS)
        except (MngrError, OSError) as exc:
            if not failing:
                arrivals.put(Arrival(host, provider, error=getattr(exc, "detail", "") or str(exc)))
                failing = True
            feed.handle.close()  # the next try connects afresh
            stop.wait(RETRY_SECONDS)
            continue
        if failing:
            arrivals.put(Arrival(host, provider, recovered=True))
            failing = False
        if rows:
            arrivals.put(Arrival(host, provider, rows=rows, history=history))
        history = False


@contextlib.contextmanager
def _feeds(app: App, request: EventsRequest, cursor: str, every_host: bool = False
           ) -> Iterator[tuple[list[HostFeed], Selection, EventsResult]]:
    """The feeds of every host that answered a listing (``every_host``: that was asked;
    with names: of those agents' hosts), which events to keep, and the hosts that did not
    answer."""
    from ..agent_lookup import fleet_listing

    with fleet_listing(app) as listing:
        result = EventsResult(errors=[(error.host, error.provider, error.error) for error in listing.errors])
        hosts = {(handle.provider_name, handle.host) for handle in listing.handles} if every_host else \
            {(report.handle.provider_name, report.handle.host) for report in listing.hosts}
        names: list[str] = []
        ids: list[str] = []
        if request.names or request.keep is not None:
            from ..agent_refs import parse_agent_ref, pick

            unanswered = ", ".join(f"{error.host} ({error.provider})" for error in listing.errors)
            located = [pick(parse_agent_ref(name), listing.agents, unanswered) for name in request.names] \
                if request.names else list(listing.agents)
            if request.keep is not None:
                located = [agent for agent in located if request.keep(agent)]
                if not located:
                    raise NothingSelected("no agent matches --include/--exclude")
            names = [agent.agent_name for agent in located]
            ids = [agent.agent_id for agent in located if agent.agent_id]
            hosts &= {(agent.provider, agent.host) for agent in located}
            if request.names:
                result.errors = []  # the hosts of the agents named all answered
        handles = [handle for handle in listing.handles if (handle.provider_name, handle.host) in hosts]
        extra = _local_handle(app, listing.handles) if not names else None
        if extra is not None:
            handles.append(extra)
        try:
            yield ([HostFeed(handle, app.quiet_seconds, cursor, request.since) for handle in handles],
                   Selection(request.event_types, names, ids), result)
        finally:
            if extra is not None:
                extra.close()


def _local_handle(app: App, listed: Sequence[HostHandle]) -> HostHandle | None:
    """The local host, which a listing skips while it has no agent: its host log may have
    events still, and a follower must see its first agent come."""
    from mngr.providers.local import LOCAL_HOST

    from ..hosts import HostHandle

    if "local" not in app.provider_names() or any(handle.provider_name == "local" for handle in listed):
        return None
    return HostHandle(app.provider("local"), LOCAL_HOST, app.host_timeout)
