"""How listings' outcomes make a host reachable, unreachable since when, and dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller import host_registry
from mngr.controller.host_registry import HostStatus


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path))


def _status(host: str = "box") -> HostStatus:
    return host_registry.read().of("ssh", host)


def test_a_host_is_unreachable_since_its_first_failure_and_back_when_it_answers() -> None:
    assert _status() == HostStatus()
    host_registry.note(host_registry.read(), [("ssh", "box")], [], now=100.0)
    assert _status() == HostStatus(last_seen=100.0)
    host_registry.note(host_registry.read(), [], [("ssh", "box")], now=200.0)
    host_registry.note(host_registry.read(), [], [("ssh", "box")], now=300.0)
    assert _status() == HostStatus(last_seen=100.0, unreachable_since=200.0)
    assert _status().unreachable_for(350.0) == 150.0
    host_registry.note(host_registry.read(), [], [("ssh", "box")], [("ssh", "box")], now=400.0)
    assert _status() == HostStatus(last_seen=100.0, unreachable_since=200.0, dropped=True)
    host_registry.note(host_registry.read(), [("ssh", "box")], [], now=500.0)
    assert _status() == HostStatus(last_seen=500.0)


def test_an_answer_soon_after_the_last_is_not_written(tmp_path: Path) -> None:
    host_registry.note(host_registry.read(), [("ssh", "box")], [], now=1000.0)
    status_file = tmp_path / host_registry.STATUS_FILE
    marked = status_file.read_text() + " "  # a rewrite would drop the mark
    status_file.write_text(marked)
    host_registry.note(host_registry.read(), [("ssh", "box")], [], now=1010.0)
    assert status_file.read_text() == marked and _status().last_seen == 1000.0
    host_registry.note(host_registry.read(), [("ssh", "box")], [], now=1100.0)
    assert _status().last_seen == 1100.0


def test_hosts_of_two_providers_are_apart_and_remove_forgets_one() -> None:
    host_registry.note(host_registry.read(), [("docker", "box")], [("ssh", "box")], now=10.0)
    assert host_registry.read().of("docker", "box") == HostStatus(last_seen=10.0)
    assert _status() == HostStatus(unreachable_since=10.0)
    host_registry.remove("ssh", "box")
    assert _status() == HostStatus()
    assert host_registry.read().of("docker", "box") == HostStatus(last_seen=10.0)


def test_a_damaged_file_reads_as_nothing_known(tmp_path: Path) -> None:
    status_file = tmp_path / host_registry.STATUS_FILE
    status_file.write_text('{"hosts": {"ssh/box": {"last_seen": "yesterday", "dropped": 1}}}')
    assert _status() == HostStatus()
    status_file.write_text("not json")
    assert _status() == HostStatus()
