"""Rendering listings: a human table, json, jsonl, or a user template such as ``{name} {state}``."""

from __future__ import annotations

import datetime
import json
import string
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import UsageError

FORMATS = ("human", "json", "jsonl")


def check_template(template: str, fields: Sequence[str]) -> None:
    """Reject a template that names unknown fields before any work is done."""
    if template in FORMATS:
        return
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"invalid --format template {template!r}: {exc}") from exc
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        root = field_name.split(".")[0].split("[")[0]
        if root not in fields:
            raise UsageError(f"unknown field {{{root}}} in --format; fields: {', '.join(fields)}")


class _BlankMissing(dict[str, Any]):
    """A mapping whose absent keys read as empty: `{labels[team]}` on an agent without one."""

    def __missing__(self, key: str) -> str:
        return ""


class _TemplateFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None or value == "":
            return ""  # an empty field stays empty whatever its format spec says
        return super().format_field(value, format_spec)


def render_template(template: str, row: Mapping[str, Any]) -> str:
    values = {key: _BlankMissing(value) if isinstance(value, dict) else value for key, value in row.items()}
    try:
        return _TemplateFormatter().vformat(template, (), values)
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise UsageError(f"cannot render --format {template!r}: {exc}") from exc


def to_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False)


def to_jsonl(row: Mapping[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"))


def from_json_line(line: str) -> Any:
    """One JSON line as read from a host's log, or None if it is not JSON (a torn last line)."""
    try:
        return json.loads(line)
    except ValueError:
        return None


def age(created_at: str, now: datetime.datetime | None = None) -> str:
    try:
        created = datetime.datetime.fromisoformat(created_at)
    except ValueError:
        return "-"
    now = now or datetime.datetime.now(datetime.UTC)
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        lines.append("  ".join(cell.ljust(widths[index]) for index, cell in enumerate(row)).rstrip())
    return "\n".join(lines)
