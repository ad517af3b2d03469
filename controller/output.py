"""The output contract of every command that prints records (docs/output.md).

``--format`` is one of:

- ``human``: the command's own text, for people (not stable);
- ``json``: one JSON document: an array of records, one record, or an object holding them;
- ``jsonl``: one record per line (each a JSON object), for streams and ``jq -c``;
- a template such as ``'{name} {state}'``: a line per record, each ``{field}`` replaced.

Every JSON record carries ``schema_version`` (SCHEMA_VERSION), and so does a json document
that is an object; ``mngr schema COMMAND`` prints the JSON Schema (controller/records.py).
An unknown format, or a template naming a field the records do not have, is a usage error
before anything is done. ``format_option`` is the one ``--format`` option of every such
command; ``render`` and ``emit`` the one renderer."""

from __future__ import annotations

import datetime
import functools
import json
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import click

FORMATS = ("human", "json", "jsonl")
# Bumped when a field is removed or changes meaning (not when one is added): docs/output.md.
SCHEMA_VERSION = 1
VERSION_KEY = "schema_version"
FORMAT_HELP = "human, json, jsonl, or a template such as '{name}' (fields: mngr schema COMMAND)."


def check_format(output_format: str, fields: Sequence[str] | None, kinds: Sequence[str] = FORMATS) -> None:
    """Refuse an unknown format, or a template naming no field or an unknown one (``fields``
    None: the names are checked later, by the command, which knows them only then)."""
    if output_format in kinds:
        return
    if output_format.lower() in FORMATS:
        hint = f"did you mean {output_format.lower()!r}?" if output_format.lower() in kinds else \
            f"this command takes {', '.join(kinds)} or a template"
        raise UsageError(f"unknown --format {output_format!r}: {hint}")
    try:
        parsed = list(string.Formatter().parse(output_format))
    except ValueError as exc:
        raise UsageError(f"invalid --format template {output_format!r}: {exc}") from exc
    named = [field_name for _, field_name, _, _ in parsed if field_name is not None]
    if not named:
        raise UsageError(f"unknown --format {output_format!r}: give {', '.join(kinds)}, or a template that "
                         "names fields, such as '{name}'")
    if fields is not None:
        check_template(output_format, fields)


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
        if field_name == "" or field_name.isdigit():
            raise UsageError(f"--format template {template!r}: name each field, such as {{name}}")
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
        return super().format_field(template_value(value), format_spec)


def template_value(value: Any) -> Any:
    """A value as a template shows it: labels as k=v,k=v; a list comma-joined; true/false;
    a time in ISO 8601; None as nothing. Numbers stay numbers (for format specs like :>6)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{key}={template_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(template_value(item)) for item in value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


def render_template(template: str, row: Mapping[str, Any]) -> str:
    values = {key: _BlankMissing(value) if isinstance(value, dict) else value for key, value in row.items()}
    try:
        return _TemplateFormatter().vformat(template, (), values)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise UsageError(f"cannot render --format {template!r}: {exc}") from exc


def versioned(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with schema_version first."""
    return {VERSION_KEY: SCHEMA_VERSION, **{key: value for key, value in record.items() if key != VERSION_KEY}}


def render(output_format: str, records: Sequence[Mapping[str, Any]],
           envelope: Callable[[list[dict[str, Any]]], Mapping[str, Any]] | None = None,
           single: bool = False) -> str:
    """What a machine format prints, newline-terminated ("" for no line): json is ``envelope``
    of the records (an object), or the one record when ``single``, or else their array."""
    if output_format == "json":
        marked = [versioned(record) for record in records]
        document: Any = marked
        if envelope is not None:
            document = versioned(envelope(marked))
        elif single and len(marked) == 1:
            document = marked[0]
        return to_json(document) + "\n"
    if output_format == "jsonl":
        return "".join(to_jsonl(versioned(record)) + "\n" for record in records)
    if output_format == "human":
        raise ValueError("the human format is each command's own")
    return "".join(render_template(output_format, record) + "\n" for record in records)


def emit(output_format: str, records: Sequence[Mapping[str, Any]], human: Callable[[], None],
         envelope: Callable[[list[dict[str, Any]]], Mapping[str, Any]] | None = None,
         single: bool = False) -> None:
    """Print ``records`` as ``output_format`` asks; ``human`` prints the human format."""
    if output_format == "human":
        human()
        return
    text = render(output_format, records, envelope, single)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def say(output_format: str, message: str) -> None:
    """A line that is not a record (``removed host ...``): on stdout with the human format,
    on stderr with a machine one (where stdout is the records' alone); never with -q."""
    from . import verbosity

    if verbosity.quiet():
        return
    if output_format == "human":
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        verbosity.note(message)


def format_option(command: str, default: str = "human", kinds: Sequence[str] = FORMATS,
                  check_fields: bool = True, help: str | None = None) -> Callable[[Any], Any]:
    """The ``--format`` option of a command that prints records (passed as ``output_format``):
    checked as it is parsed, against the fields of ``command``'s records (records.CONTRACTS;
    ``check_fields`` False: the command checks them itself, knowing more of them)."""
    import click

    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if ctx.resilient_parsing:
            return value
        fields = None
        if check_fields and value not in kinds:
            from .records import record_fields

            fields = record_fields(command)
        check_format(value, fields, kinds)
        return value

    return click.option("--format", "output_format", cls=_format_option_class(), contract=command, kinds=tuple(kinds),
                        default=default, show_default=True, metavar="FORMAT", callback=check,
                        help=help or FORMAT_HELP)


@functools.cache
def _format_option_class() -> type[click.Option]:
    """Made on first use: this module is loaded without click by push and pull (direct.py)."""
    import click

    class _FormatOption(click.Option):
        """Tells `mngr schema` and the tests which records the command prints (``contract``)."""

        def __init__(self, *args: Any, contract: str, kinds: tuple[str, ...], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.contract = contract
            self.kinds = kinds

    return _FormatOption


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
