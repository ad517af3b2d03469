"""The filter language of ``--include`` / ``--exclude`` and the fields of ``--sort`` / ``--fields``.

An expression is read once, checked against the fields it names (an unknown field, a value
of the wrong kind or a state that does not exist is an error before any host is asked), and
then tested against each agent's listing row (cli.common.agent_row, plus plugins' fields).

    expr        := or
    or          := and ( ('||' | 'or') and )*
    and         := unary ( ('&&' | 'and') unary )*
    unary       := ('!' | 'not') unary | '(' expr ')' | test
    test        := FIELD [ OP VALUE | ['not'] 'in' LIST ]
    OP          := '==' | '=' | '!=' | '<' | '<=' | '>' | '>=' | '~' | '!~'
    LIST        := '[' VALUE (',' VALUE)* ']'  |  '(' VALUE (',' VALUE)* ')'
    VALUE       := 'quoted' | "quoted" | a bare word | null

The left of a test is always a field and the right always a value, so a bare word on the
right is text (``state == running``, ``host == local``). A field alone is true when it is
set (not null, not empty). ``~`` matches a shell pattern (``*``, ``?``, ``[abc]``). Which
values a field takes and how they compare is in ``FIELD_KINDS``; docs/commands/list.md
describes it for users.
"""

from __future__ import annotations

import datetime
import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

TEXT, STATE, NUMBER, DURATION, TIME, LABELS, BOOL, ANY = (
    "text", "state", "number", "duration", "time", "labels", "bool", "any")

# Every field of a listing row and the kind of its values; ``labels.KEY`` is text. A column
# not named here (a plugin's, one added to the listing since) is given as an extra field
# and compares as its values do (ANY).
FIELD_KINDS: dict[str, str] = {
    "id": TEXT, "name": TEXT, "type": TEXT, "state": STATE, "host": TEXT, "provider": TEXT,
    "work_dir": TEXT, "command": TEXT, "created_at": TIME, "labels": LABELS, "pid": NUMBER,
    "exit_status": NUMBER, "idle_seconds": NUMBER, "problem": TEXT, "waiting_reason": TEXT,
    "waiting_detail": TEXT, "work_dir_origin": LABELS, "extra_windows": LABELS, "urls": LABELS, "archived": BOOL,
    # computed from the others, for the question usually asked
    "idle": DURATION,  # idle_seconds
    "age": DURATION,  # seconds since created_at
}
DERIVED_FIELDS = ("idle", "age")
STATES = ("RUNNING", "WAITING", "DONE", "STOPPED", "UNKNOWN", "GONE")

_ORDERED = ("<", "<=", ">", ">=")
_OPERATORS = ("==", "!=", "<=", ">=", "!~", "&&", "||", "<", ">", "~", "=", "!", "(", ")", "[", "]", ",")
_WORD_END = set(" \t\r\n()[],!=<>~&|'\"")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_KEYWORDS = {"and", "or", "not", "in", "null"}

Row = Mapping[str, Any]
Test = Callable[[Row], bool]


class FilterError(UsageError):
    """A filter, sort or field list that cannot be used (exit status 2, as any usage error)."""


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "op", "word" (bare), "text" (quoted), "end"
    text: str
    at: int


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char.isspace():
            index += 1
            continue
        if char in "'\"":
            end = index + 1
            chars: list[str] = []
            while end < len(source) and source[end] != char:
                if source[end] == "\\" and end + 1 < len(source):
                    end += 1
                chars.append(source[end])
                end += 1
            if end >= len(source):
                raise FilterError(f"unterminated quote at position {index + 1}")
            found.append(_Token("text", "".join(chars), index))
            index = end + 1
            continue
        operator = next((op for op in _OPERATORS if source.startswith(op, index)), None)
        if operator is not None:
            found.append(_Token("op", operator, index))
            index += len(operator)
            continue
        if char in "&|":
            raise FilterError(f"unexpected {char!r} at position {index + 1} (use && or ||)")
        end = index
        while end < len(source) and source[end] not in _WORD_END:
            end += 1
        found.append(_Token("word", source[index:end], index))
        index = end
    found.append(_Token("end", "", len(source)))
    return found


class _Parser:
    def __init__(self, source: str, fields: Mapping[str, str]) -> None:
        self.source = source
        self.fields = fields
        self.tokens = _tokens(source)
        self.index = 0

    def parse(self) -> Test:
        if self.tokens[0].kind == "end":
            raise FilterError("empty filter expression")
        test = self._or()
        token = self._peek()
        if token.kind != "end":
            raise self._error(token, "expected && or || or the end")
        return test

    # each level: a test built from the next level's
    def _or(self) -> Test:
        parts = [self._and()]
        while self._is_op("||") or self._is_word("or"):
            self.index += 1
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(part(row) for part in parts)

    def _and(self) -> Test:
        parts = [self._unary()]
        while self._is_op("&&") or self._is_word("and"):
            self.index += 1
            parts.append(self._unary())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(part(row) for part in parts)

    def _unary(self) -> Test:
        if self._is_op("!") or self._is_word("not"):
            self.index += 1
            inner = self._unary()
            return lambda row: not inner(row)
        if self._is_op("("):
            self.index += 1
            inner = self._or()
            self._expect(")")
            return inner
        return self._test()

    def _test(self) -> Test:
        token = self._next()
        if token.kind != "word" or token.text in _KEYWORDS:
            raise self._error(token, "expected a field name")
        field = token.text
        kind = field_kind(field, self.fields)
        get = _getter(field)
        if self._is_word("not") and self._peek(1).kind == "word" and self._peek(1).text == "in":
            self.index += 2
            inside = _member_test(field, kind, self._list())
            return lambda row: not inside(get(row))
        if self._is_word("in"):
            self.index += 1
            member = _member_test(field, kind, self._list())
            return lambda row: member(get(row))
        token = self._peek()
        if token.kind == "op" and token.text in ("==", "=", "!=", "<", "<=", ">", ">=", "~", "!~"):
            self.index += 1
            value = self._value()
            compare = _comparison(field, kind, token.text, value)
            return lambda row: compare(get(row))
        return lambda row: _is_set(get(row))

    def _list(self) -> list[str | None]:
        opening = self._next()
        if opening.kind != "op" or opening.text not in ("[", "("):
            raise self._error(opening, "expected a list such as [a, b] after in")
        closing = "]" if opening.text == "[" else ")"
        values = [self._value()]
        while self._is_op(","):
            self.index += 1
            values.append(self._value())
        self._expect(closing)
        return values

    def _value(self) -> str | None:
        token = self._next()
        if token.kind == "text":
            return token.text
        if token.kind == "word" and token.text == "null":
            return None
        if token.kind == "word" and token.text not in _KEYWORDS:
            return token.text
        raise self._error(token, "expected a value")

    def _expect(self, op: str) -> None:
        token = self._next()
        if token.kind != "op" or token.text != op:
            raise self._error(token, f"expected {op!r}")

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def _is_op(self, op: str) -> bool:
        token = self._peek()
        return token.kind == "op" and token.text == op

    def _is_word(self, word: str) -> bool:
        token = self._peek()
        return token.kind == "word" and token.text == word

    def _error(self, token: _Token, what: str) -> FilterError:
        seen = "the end" if token.kind == "end" else repr(token.text)
        return FilterError(f"{what} at position {token.at + 1}, found {seen}")


# -- fields ---------------------------------------------------------------------------------


def _keyed(field: str, fields: Mapping[str, str] = FIELD_KINDS) -> tuple[str, str] | None:
    """(column, key) of ``column.KEY``, one key of a column of keys and values (labels,
    work_dir_origin); None for any other field."""
    column, dot, key = field.partition(".")
    if not dot or fields.get(column) != LABELS:
        return None
    return column, key


def _whole_mapping(field: str) -> str:
    if field == "labels":
        return "labels holds all labels: test one as labels.KEY"
    return f"{field} holds keys and values: test one as {field}.KEY"


def field_kind(field: str, fields: Mapping[str, str] = FIELD_KINDS) -> str:
    """The kind of ``field``'s values; FilterError for a field no row has."""
    keyed = _keyed(field, fields)
    if keyed is not None:
        if not keyed[1]:
            example = "labels.team" if keyed[0] == "labels" else f"{keyed[0]}.kind"
            noun = "a label key" if keyed[0] == "labels" else "a key"
            raise FilterError(f"{keyed[0]}. needs {noun}, as in {example}")
        return TEXT
    kind = fields.get(field)
    if kind is None:
        known = ", ".join(sorted(fields))
        raise FilterError(f"unknown field {field!r} (fields: {known}, labels.KEY)")
    return kind


def field_value(row: Row, field: str) -> Any:
    """``field`` of ``row``: a column, a label (``labels.KEY``) or a derived field."""
    return _getter(field)(row)


def _getter(field: str) -> Callable[[Row], Any]:
    keyed = _keyed(field)
    if keyed is not None:
        column, key = keyed
        return lambda row: (row.get(column) or {}).get(key)
    if field == "idle":
        return lambda row: row.get("idle_seconds")
    if field == "age":
        return _age
    return lambda row: row.get(field)


def _age(row: Row) -> float | None:
    created = _instant(row.get("created_at"))
    return None if created is None else max(0.0, time.time() - created)


def _instant(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _is_set(value: Any) -> bool:
    return value is not None and value is not False and value != "" and value != {}


# -- values and tests -----------------------------------------------------------------------


def _converted(field: str, kind: str, value: str) -> Any:
    """``value`` as ``field``'s values are, for comparing; FilterError if it cannot be one."""
    if kind == STATE:
        state = value.upper()
        if state not in STATES:
            raise FilterError(f"{field}: no state {value!r} (states: {', '.join(s.lower() for s in STATES)})")
        return state
    if kind == NUMBER:
        try:
            return float(value)
        except ValueError:
            if field == "idle_seconds":
                return _duration(field, value)
            raise FilterError(f"{field} is a number: {value!r} is not one") from None
    if kind == DURATION:
        return _duration(field, value)
    if kind == TIME:
        moment = _instant(value)
        if moment is None:
            raise FilterError(f"{field} is a time: {value!r} is not one (write 2026-12-06 or 2026-12-06T14:30)")
        return moment
    if kind == LABELS:
        raise FilterError(_whole_mapping(field))
    if kind == BOOL:
        if value.lower() not in _BOOLEANS:
            raise FilterError(f"{field} is true or false, not {value!r}")
        return _BOOLEANS[value.lower()]
    return value


_BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}


def _duration(field: str, value: str) -> float:
    cleaned = value.strip().lower()
    try:
        return float(cleaned)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(cleaned)
    if not parts or "".join(number + unit for number, unit in parts) != cleaned:
        raise FilterError(f"{field} is a duration: {value!r} is not one (write 90, 30s, 5m, 1h30m, 2d or 1w)")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _row_value(kind: str, value: Any) -> Any:
    """A row's value as its kind compares."""
    if value is None:
        return None
    if kind == STATE:
        return str(value).upper()
    if kind == TIME:
        return _instant(value)
    if kind in (NUMBER, DURATION):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == BOOL:
        return value is True
    return value


def _comparison(field: str, kind: str, op: str, given: str | None) -> Callable[[Any], bool]:
    if kind == LABELS:
        raise FilterError(_whole_mapping(field))
    if given is None:
        if op not in ("==", "=", "!="):
            raise FilterError(f"{field} {op} null: only == and != compare with null")
        return (lambda value: value is None) if op != "!=" else (lambda value: value is not None)
    if op in ("~", "!~"):
        if kind not in (TEXT, STATE, ANY):
            raise FilterError(f"{field} {op}: patterns match text fields only")
        pattern = given.upper() if kind == STATE else given

        def matches(value: Any) -> bool:
            return value is not None and fnmatch.fnmatchcase(str(_row_value(kind, value)), pattern)

        return matches if op == "~" else (lambda value: not matches(value))
    if kind == ANY:
        return _loose_comparison(op, given)
    wanted = _converted(field, kind, given)
    if kind == STATE and op in _ORDERED:
        raise FilterError(f"{field} {op}: states are not ordered; use == or in")
    if kind == BOOL and op in _ORDERED:
        raise FilterError(f"{field} {op}: true and false are not ordered; use == or !=")
    return _ordered(op, wanted, lambda value: _row_value(kind, value))


def _ordered(op: str, wanted: Any, convert: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def equal(value: Any) -> bool:
        return convert(value) == wanted

    if op in ("==", "="):
        return equal
    if op == "!=":
        return lambda value: not equal(value)

    def ordered(value: Any) -> bool:
        mine = convert(value)
        if mine is None:
            return False
        try:
            if op == "<":
                return bool(mine < wanted)
            if op == "<=":
                return bool(mine <= wanted)
            if op == ">":
                return bool(mine > wanted)
            return bool(mine >= wanted)
        except TypeError:
            return False

    return ordered


def _loose_comparison(op: str, given: str) -> Callable[[Any], bool]:
    """A plugin's field, whose kind is known only from its values: a number given compares
    with numbers as a number, anything else as text."""
    try:
        number: float | None = float(given)
    except ValueError:
        number = None

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if number is not None:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            return None if op in _ORDERED else str(value)
        return str(value)

    wanted: Any = number if number is not None else given

    def loose_convert(value: Any) -> Any:
        mine = convert(value)
        if isinstance(mine, str) and number is not None:
            return mine if mine == given else None  # equal as text, or not at all
        return mine

    if op in ("==", "=", "!="):
        def equal(value: Any) -> bool:
            mine = loose_convert(value)
            return mine is not None and mine in (wanted, given)

        return equal if op != "!=" else (lambda value: not equal(value))
    return _ordered(op, wanted, convert)


def _member_test(field: str, kind: str, values: Sequence[str | None]) -> Callable[[Any], bool]:
    tests = [_comparison(field, kind, "==", value) for value in values]
    return lambda value: any(test(value) for test in tests)


# -- what commands use ----------------------------------------------------------------------


def compile_filter(source: str, extra_fields: Iterable[str] = ()) -> Test:
    """The test ``source`` describes; FilterError (one line, naming the place) if it cannot be read."""
    fields = dict(FIELD_KINDS)
    fields.update({name: ANY for name in extra_fields if name not in fields})
    return _Parser(source, fields).parse()


@dataclass(frozen=True)
class Selection:
    """``--include`` / ``--exclude``: a row is selected if it passes every include and no exclude."""

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.includes or self.excludes)

    def compile(self, extra_fields: Iterable[str] = ()) -> Test:
        extra = tuple(extra_fields)
        includes = [_labelled("--include", text, extra) for text in self.includes]
        excludes = [_labelled("--exclude", text, extra) for text in self.excludes]
        return lambda row: all(test(row) for test in includes) and not any(test(row) for test in excludes)


def _labelled(option: str, source: str, extra: Sequence[str]) -> Test:
    try:
        return compile_filter(source, extra)
    except FilterError as exc:
        raise FilterError(f"{option} {source!r}: {exc}") from None


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


def parse_sort(text: str, extra_fields: Iterable[str] = ()) -> list[SortKey]:
    """``FIELD[,-FIELD]...``: a leading ``-`` sorts that field from the largest."""
    fields = dict(FIELD_KINDS)
    fields.update({name: ANY for name in extra_fields if name not in fields})
    keys = []
    for part in text.split(","):
        part = part.strip()
        descending = part.startswith("-")
        field = part[1:].strip() if descending else part
        if not field:
            raise FilterError(f"--sort {text!r}: an empty field")
        kind = field_kind(field, fields)
        if kind == LABELS:
            raise FilterError(f"--sort {field}: sort by one key of it, as {field}.KEY")
        keys.append(SortKey(field, descending))
    return keys


def sorted_rows(rows: Sequence[Row], keys: Sequence[SortKey]) -> list[Row]:
    """``rows`` by ``keys``, the first key first; rows without a value last whichever the
    direction; ties keep their order."""
    ordered = list(rows)
    for key in reversed(keys):
        kind = FIELD_KINDS.get(key.field, TEXT)
        get = _getter(key.field)
        present = [row for row in ordered if _row_value(kind, get(row)) is not None]
        absent = [row for row in ordered if _row_value(kind, get(row)) is None]
        present.sort(key=lambda row: _sort_value(_row_value(kind, get(row))), reverse=key.descending)
        ordered = present + absent
    return ordered


def _sort_value(value: Any) -> tuple[int, Any]:
    # numbers before text, so that a plugin's field of mixed values still sorts
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def parse_fields(text: str, extra_fields: Iterable[str] = ()) -> list[str]:
    """``a,b,c`` of --fields, each a field a row has."""
    fields = dict(FIELD_KINDS)
    fields.update({name: ANY for name in extra_fields if name not in fields})
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise FilterError(f"--fields {text!r}: an empty field")
    for name in names:
        field_kind(name, fields)
    return names
