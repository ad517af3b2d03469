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


def settings_request(
    timeout: str | float | None,
    mode: str | None,
    sources: str | Sequence[str] | None,
    defaults: Mapping[str, Any] | None = None,
    stop_grace: str | None = None,
) -> SetIdleSettings | None:
    """The request for what the user gave; None when nothing was given and no default applies.

    ``defaults`` (a provider's idle_defaults) fill in when the user gave nothing, and
    then only for a host without settings of its own; its command always applies.
    """
    explicit = timeout is not None or mode is not None or sources is not None or stop_grace is not None
    command = str(defaults.get("command") or "") if defaults else ""
    if not explicit:
        if not defaults or defaults.get("timeout") is None:
            return None
        default_timeout = parse_duration(defaults["timeout"], "idle timeout in the provider's settings")
        return SetIdleSettings(timeout=default_timeout, command=command or None, only_if_unset=True)
    return SetIdleSettings(
        timeout=parse_duration(timeout, "--idle-timeout") if timeout is not None else None,
        mode=check_mode(mode) if mode is not None else None,
        sources=parse_sources(sources) if sources is not None else None,
        command=command or None,
        stop_grace=parse_duration(stop_grace, "--stop-grace") if stop_grace is not None else None,
    )
