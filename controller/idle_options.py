"""Idle settings as the CLI takes them (--idle-timeout, --idle-mode, --activity-sources).

Checked here, before anything is sent to a host: bad input is one clear error and
changes nothing. The helper checks again (it trusts no controller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mngr.remote_helper.idle import MODES, SOURCES

from .channel.protocol import SetIdleSettings
from .durations import parse_duration
from .errors import UsageError

MODE_NAMES = tuple(MODES)
MODES_HELP = ", ".join(MODE_NAMES)
SOURCES_HELP = ", ".join(SOURCES)


def parse_sources(text: str | Sequence[str]) -> list[str]:
    """``output,cpu`` (or a list from a template) as a checked list of activity sources."""
    names = [part.strip() for part in text.split(",")] if isinstance(text, str) else [str(part) for part in text]
    names = [name for name in names if name]
    if not names:
        raise UsageError("--activity-sources is empty (to turn idle shutdown off: --idle-mode disabled)")
    for name in names:
        if name not in SOURCES:
            raise UsageError(f"unknown activity source {name!r} (known: {SOURCES_HELP})")
    return names


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown idle mode {mode!r} (known: {MODES_HELP})")
    return mode


_OFF = ("off", "disabled", "none", "0", 0)


def default_timeout(defaults: Mapping[str, Any] | None) -> float | None:
    """A provider's default idle timeout in seconds (None: off, or no default)."""
    value = defaults.get("timeout") if defaults else None
    if value is None or (isinstance(value, str) and value.strip().lower() in _OFF) or value == 0:
        return None
    return parse_duration(value, "idle_timeout in the provider's settings")


def settings_requests(
    timeout: str | float | None,
    mode: str | None,
    sources: str | Sequence[str] | None,
    defaults: Mapping[str, Any] | None = None,
    stop_grace: str | None = None,
) -> list[SetIdleSettings]:
    """The requests that apply what the user gave, in order; [] when there is nothing to do.

    A provider's default timeout (``defaults``, from idle_defaults) only ever fills in a
    host without settings of its own (``only_if_unset``), including when the user gave
    a mode or sources but no timeout. The provider's idle command is part of every
    explicit change, so the configuration stays what decides it ("" removes it).
    """
    explicit = timeout is not None or mode is not None or sources is not None or stop_grace is not None
    requests = []
    if timeout is None:
        fallback = default_timeout(defaults)
        if fallback is not None:
            command = str(defaults.get("command") or "") if defaults else ""
            requests.append(SetIdleSettings(timeout=fallback, command=command or None, only_if_unset=True))
    if explicit:
        requests.append(SetIdleSettings(
            timeout=parse_duration(timeout, "--idle-timeout") if timeout is not None else None,
            mode=check_mode(mode) if mode is not None else None,
            sources=parse_sources(sources) if sources is not None else None,
            command=str(defaults.get("command") or "") if defaults else None,
            stop_grace=parse_duration(stop_grace, "--stop-grace") if stop_grace is not None else None,
        ))
    return requests
