"""The cache completion reads: what a listing keeps of hosts that did not answer, or were not asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller import completion
from mngr.controller.paths import state_dir


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path))


def test_a_listing_replaces_what_it_saw_and_keeps_what_it_could_not_see() -> None:
    completion.remember(["local", "ssh", "modal"], [("a", "local", "local"), ("b", "box", "ssh"), ("m", "m", "modal")],
                        [])
    completion.remember(["local", "ssh", "modal"], [("a2", "local", "local")], [("ssh", "box"), ("modal", "*")])
    assert completion.cached_agents() == [("a2", "local", "local"), ("b", "box", "ssh"), ("m", "m", "modal")]
    completion.remember(["ssh"], [], [])  # `mngr list --in ssh`: the others are untouched
    assert completion.cached_agents() == [("a2", "local", "local"), ("m", "m", "modal")]


def test_create_and_destroy_change_it_at_once() -> None:
    completion.agent_added("new", "local", "local")
    completion.agent_added("other", "box", "ssh")
    completion.agent_removed("new", "local", "local")
    assert completion.cached_agents() == [("other", "box", "ssh")]


def test_a_damaged_cache_is_no_cache() -> None:
    (Path(state_dir()) / completion.CACHE).write_text('{"agents": [["only-two", "x"], 5]}')
    assert completion.cached_agents() == []


def test_a_name_on_several_hosts_completes_as_name_at_host() -> None:
    completion.remember(["ssh", "docker"], [("a", "h1", "ssh"), ("b", "h1", "ssh"), ("b", "h2", "ssh"),
                                            ("c", "box", "ssh"), ("c", "box", "docker")], [])
    assert completion.agent_choices("") == ["a", "b@h1", "b@h2", "c@docker/box", "c@ssh/box"]
    assert completion.agent_choices("b") == ["b@h1", "b@h2"]
    assert completion.agent_choices("a@") == ["a@h1"]
    assert completion.agent_choices("x") == []
