"""The dashboard's listing thread (controller/web/fleet_watch.py), in-process: a listing under
way never hides the last one, and one that fails leaves it standing with the CLI's error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from mngr.controller.errors import MngrError
from mngr.controller.web.fleet_watch import FleetWatch, Snapshot
from tests.conftest import wait_for


class ScriptedListings:
    """Listings handed out one at a time: each waits until the test releases it."""

    def __init__(self) -> None:
        self.answers: list[object] = []  # a document, or an exception to raise
        self.released = threading.Semaphore(0)
        self.asked = 0

    def __call__(self) -> str:
        self.asked += 1
        self.released.acquire()
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return json.dumps(answer)

    def release(self, answer: object) -> None:
        self.answers.append(answer)
        self.released.release()


@pytest.fixture
def listings() -> Iterator[tuple[ScriptedListings, FleetWatch]]:
    scripted = ScriptedListings()
    watch = FleetWatch(scripted, interval=3600)  # the next listing only when refresh() asks
    watch.start()
    try:
        yield scripted, watch
    finally:
        watch.stop()
        scripted.release({})  # a listing still waiting ends


def _listed(watch: FleetWatch, count: int) -> Snapshot | None:
    snapshot = watch.snapshot()
    return snapshot if snapshot.listing and len(snapshot.listing["agents"]) == count else None


def test_the_last_listing_is_served_while_the_next_is_under_way(listings) -> None:
    scripted, watch = listings
    wait_for(lambda: scripted.asked == 1, "the first listing asked for")
    first = watch.snapshot()
    assert first.listing is None and first.refreshing_since is not None  # nothing to show yet
    scripted.release({"agents": [{"name": "a"}]})
    done = wait_for(lambda: _listed(watch, 1), "the first listing")
    assert done.refreshing_since is None and done.error is None and done.listed_at is not None
    watch.refresh()
    wait_for(lambda: scripted.asked == 2, "the second listing asked for")
    during = wait_for(lambda: watch.snapshot() if watch.snapshot().refreshing_since else None, "refreshing")
    assert during.listing == {"agents": [{"name": "a"}]} and during.listed_at == done.listed_at
    scripted.release({"agents": [{"name": "a"}, {"name": "b"}]})
    wait_for(lambda: _listed(watch, 2), "the second listing")


def test_a_listing_that_fails_leaves_the_last_one_with_the_clis_error(listings) -> None:
    scripted, watch = listings
    scripted.release({"agents": [{"name": "a"}]})
    wait_for(lambda: _listed(watch, 1), "the first listing")
    watch.refresh()
    scripted.release(MngrError("config file /x/config.toml: invalid TOML\n  at line 3"))
    failed = wait_for(lambda: watch.snapshot() if watch.snapshot().error else None, "the failure")
    assert failed.error == "mngr: error: config file /x/config.toml: invalid TOML at line 3"
    assert failed.listing == {"agents": [{"name": "a"}]} and failed.refreshing_since is None
    watch.refresh()
    scripted.release({"agents": []})
    recovered = wait_for(lambda: _listed(watch, 0), "a listing again")
    assert recovered.error is None
