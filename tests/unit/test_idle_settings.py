"""Idle settings as typed by users and as the helper checks them, without a host."""

from __future__ import annotations

import pytest

from mngr.controller.durations import format_duration, parse_duration
from mngr.controller.errors import UsageError
from mngr.controller.idle_options import settings_requests
from mngr.remote_helper import idle
from mngr.remote_helper.wire import RequestFailed


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60.0), ("2.5", 2.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0),
     ("2d", 172800.0), (" 10M ", 600.0), (90, 90.0)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text, "--idle-timeout") == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 m", "m5", "1h-", "-5", "0", "0s", "nan", "1e12", "5x", True])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="--idle-timeout"):
        parse_duration(text, "--idle-timeout")


def test_durations_print_short() -> None:
    assert [format_duration(s) for s in (None, 4.4, 60, 90, 3600, 5400, 86400, 90000)] == [
        "-", "4s", "1m", "1m30s", "1h", "1h30m", "1d", "1d1h"]


def test_nothing_given_and_no_default_sends_nothing() -> None:
    assert settings_requests(None, None, None, {"timeout": None, "command": ""}) == []
    assert settings_requests(None, None, None, {"timeout": "off", "command": "halt"}) == []


def test_a_provider_default_only_fills_a_host_without_settings() -> None:
    (request,) = settings_requests(None, None, None, {"timeout": "1h", "command": "sudo poweroff"})
    assert request.only_if_unset
    assert (request.timeout, request.command) == (3600.0, "sudo poweroff")


def test_explicit_settings_win_and_carry_the_providers_command() -> None:
    (request,) = settings_requests("90s", "agent", "output,cpu", {"timeout": "1h", "command": "halt"})
    assert not request.only_if_unset
    assert (request.timeout, request.mode, request.sources, request.command) == (90.0, "agent", ["output", "cpu"],
                                                                                  "halt")


def test_a_mode_alone_keeps_the_default_timeout_for_a_new_host() -> None:
    default, explicit = settings_requests(None, "agent", None, {"timeout": "1h", "command": ""})
    assert default.only_if_unset and default.timeout == 3600.0
    assert explicit.mode == "agent" and explicit.timeout is None and explicit.command == ""


def test_a_bad_default_is_named_as_such() -> None:
    with pytest.raises(UsageError, match="idle_timeout in the provider's settings"):
        settings_requests(None, None, None, {"timeout": "soonish", "command": ""})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": -1}, "idle timeout must be a positive number"),
        ({"timeout": True}, "idle timeout must be a positive number"),
        ({"mode": "sometimes"}, "unknown idle mode 'sometimes'"),
        ({"sources": ["output", "vibes"]}, "unknown activity source 'vibes'"),
        ({"sources": "output"}, "activity sources must be a list"),
        ({"command": "a\0b"}, "the idle command must be a string"),
        ({"stop_grace": -3}, "stop_grace must be a number >= 0"),
    ],
)
def test_the_helper_refuses_bad_settings(fields: dict, message: str) -> None:
    with pytest.raises(RequestFailed, match=message):
        idle._checked(fields)


def test_sources_decide_the_mode_and_modes_decide_the_sources() -> None:
    assert idle._checked({"mode": "run"})["sources"] == list(idle.MODES["run"])
    assert idle._checked({"sources": ["boot"]})["mode"] == "boot"
    assert idle._checked({"sources": ["output", "boot"]})["mode"] == "custom"
    assert not idle.enabled({**idle.default_settings(), "timeout": 60.0, "sources": []})
    assert not idle.enabled(idle.default_settings()), "no timeout: idle shutdown is off"


def test_untrusted_modes_count_nothing_an_agent_can_fake() -> None:
    for mode in ("create", "boot"):
        assert set(idle.MODES[mode]) <= {"create", "boot"}
