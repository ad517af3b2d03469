"""When each host last answered, and since when it has not: ``<state dir>/host_status.json``.

Listings keep it: a host that answers is seen now; one that does not is unreachable since
the first listing it failed. A remembered host (not one of the config's ``[hosts]``) that
has not answered for ``forget_unreachable_after_seconds`` is reported once more and from
then on ``dropped``: default listings no longer ask it (``mngr host list`` still does, and
a host that answers there, or gets an agent, is back). Which hosts exist is each
provider's business (ssh_hosts.json for SSH hosts, the engine for docker); this file only
knows how they behaved.

The file is written only when something changed, or when a host answers more than
``_SEEN_PRECISION`` seconds after it was last noted, so the usual listing writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from .paths import as_dict, changing_state_json, read_state_json

STATUS_FILE = "host_status.json"
_SEEN_PRECISION = 60.0


@dataclass(frozen=True)
class HostStatus:
    last_seen: float | None = None  # time.time() of its last answer, if it ever answered here
    unreachable_since: float | None = None  # the first failure of the current run of failures
    dropped: bool = False  # reported as dropped: default listings skip it

    def unreachable_for(self, now: float) -> float:
        return 0.0 if self.unreachable_since is None else now - self.unreachable_since


def _key(provider: str, host: str) -> str:
    return f"{provider}/{host}"


def _status(entry: object) -> HostStatus:
    fields = as_dict(entry)

    def stamp(name: str) -> float | None:
        value = fields.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return HostStatus(stamp("last_seen"), stamp("unreachable_since"), fields.get("dropped") is True)


def _entry(status: HostStatus) -> dict[str, object]:
    entry: dict[str, object] = {}
    if status.last_seen is not None:
        entry["last_seen"] = status.last_seen
    if status.unreachable_since is not None:
        entry["unreachable_since"] = status.unreachable_since
    if status.dropped:
        entry["dropped"] = True
    return entry


class StatusBook:
    """The statuses as read once for a listing."""

    def __init__(self, content: object) -> None:
        self._entries = as_dict(as_dict(content).get("hosts"))

    def of(self, provider: str, host: str) -> HostStatus:
        return _status(self._entries.get(_key(provider, host)))


def read() -> StatusBook:
    return StatusBook(read_state_json(STATUS_FILE))


def _changed(current: HostStatus, answered: bool, dropping: bool, now: float) -> HostStatus:
    if answered:
        if current.unreachable_since is None and not current.dropped and current.last_seen is not None \
                and now - current.last_seen < _SEEN_PRECISION:
            return current
        return HostStatus(last_seen=now)
    since = current.unreachable_since if current.unreachable_since is not None else now
    return HostStatus(current.last_seen, since, current.dropped or dropping)


def note(book: StatusBook, answered: Iterable[tuple[str, str]], failed: Iterable[tuple[str, str]],
         dropping: Iterable[tuple[str, str]] = (), now: float | None = None) -> None:
    """Record a listing: the (provider, host) pairs that ``answered`` and that ``failed``;
    ``dropping``: failed hosts reported as dropped by it."""
    now = time.time() if now is None else now
    dropping = set(dropping)
    changes = {}
    for pairs, did_answer in ((answered, True), (failed, False)):
        for provider, host in pairs:
            current = book.of(provider, host)
            new = _changed(current, did_answer, (provider, host) in dropping, now)
            if new != current:
                changes[_key(provider, host)] = _entry(new)
    if not changes:
        return
    with changing_state_json(STATUS_FILE) as content:
        hosts = as_dict(content.get("hosts"))
        hosts.update(changes)
        content["hosts"] = hosts


def seen(provider: str, host: str) -> None:
    """``host`` answered (an agent was just created on it): reachable, and not dropped."""
    note(read(), [(provider, host)], [])


def remove(provider: str, host: str) -> None:
    """Forget everything about ``host`` (``mngr host forget``)."""
    if _key(provider, host) not in as_dict(as_dict(read_state_json(STATUS_FILE)).get("hosts")):
        return
    with changing_state_json(STATUS_FILE) as content:
        hosts = as_dict(content.get("hosts"))
        hosts.pop(_key(provider, host), None)
        content["hosts"] = hosts
