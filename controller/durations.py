"""Durations as users write them: ``90`` (seconds), ``30s``, ``5m``, ``1h``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re

from .errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str | float | int, what: str) -> float:
    """Seconds in ``text``; UsageError naming ``what`` if it is not a positive duration."""
    if isinstance(text, bool):
        raise UsageError(f"invalid {what} {text!r}: use seconds or a duration such as 30s, 5m, 1h")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        cleaned = text.strip().lower()
        try:
            seconds = float(cleaned)
        except ValueError:
            parts = _PART.findall(cleaned)
            if not parts or "".join(number + unit for number, unit in parts) != cleaned:
                raise UsageError(
                    f"invalid {what} {text!r}: use seconds or a duration such as 30s, 5m, 1h"
                ) from None
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not 0 < seconds < 10**9 or seconds != seconds:
        raise UsageError(f"invalid {what} {text!r}: it must be more than 0 seconds")
    return seconds


def format_duration(seconds: float | None) -> str:
    """``seconds`` the short way round: 45s, 5m, 1h30m; "-" for None."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours}h{rest // 60}m" if rest // 60 else f"{hours}h"
    days, rest = divmod(whole, 86400)
    return f"{days}d{rest // 3600}h" if rest // 3600 else f"{days}d"
