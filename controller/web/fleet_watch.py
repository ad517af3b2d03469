"""The listing the page shows, renewed on a thread of its own.

Listing every host takes as long as the slowest host (up to the host timeout for one that
does not answer): no request waits for it. The page is served the last listing that
finished, with when it was made and, while the next one is under way, since when; a
listing that fails as a whole (the config cannot be read) leaves the last one standing,
with the CLI's one-line error beside it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import error_line

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class Snapshot:
    listing: dict[str, Any] | None  # `mngr list --format json`'s document; None until the first one
    listed_at: float | None  # when the listing ended (epoch seconds)
    took: float | None  # seconds it took
    refreshing_since: float | None  # a listing is under way since then (None: none is)
    error: str | None  # the last listing failed as a whole: the CLI's message

    def as_json(self) -> dict[str, Any]:
        return {"listing": self.listing, "listed_at": self.listed_at, "took": self.took,
                "refreshing_since": self.refreshing_since, "error": self.error, "now": time.time()}


class FleetWatch:
    """``list_document()`` (the JSON text `mngr list --format json` prints) again and again,
    ``interval`` seconds after each one ends, or at once when ``refresh`` asks."""

    def __init__(self, list_document: Callable[[], str], interval: float) -> None:
        self._list_document = list_document
        self._interval = interval
        self._lock = threading.Lock()
        self._snapshot = Snapshot(None, None, None, None, None)
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mngr-web-listing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wanted.set()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def refresh(self) -> None:
        """List again as soon as the listing under way (if any) ends: something was changed."""
        self._wanted.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wanted.clear()
            started = time.time()
            with self._lock:
                self._snapshot = _replace(self._snapshot, refreshing_since=started)
            try:
                document = json.loads(self._list_document())
            except Exception as exc:  # reported on the page; the thread lists again later
                with self._lock:
                    self._snapshot = _replace(self._snapshot, refreshing_since=None, error=error_line(exc))
            else:
                ended = time.time()
                with self._lock:
                    self._snapshot = Snapshot(document, ended, ended - started, None, None)
            self._wanted.wait(self._interval)


def _replace(snapshot: Snapshot, **changes: Any) -> Snapshot:
    from dataclasses import replace

    return replace(snapshot, **changes)


def listing_document(app: App) -> str:
    """What `mngr list --format json` prints now (the same operation and the same records)."""
    from ..cli.common import AGENT_FIELDS
    from ..cli.listing import json_document, listed_records
    from ..commands.listing import ListRequest, list_agents

    plugin_fields = app.registry.list_fields(AGENT_FIELDS)
    rows, hosts, errors = listed_records(list_agents(app, ListRequest()), plugin_fields)
    return json_document(rows, hosts, errors)
