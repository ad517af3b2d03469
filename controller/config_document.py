"""A config file's TOML changed in place: a key set or removed, everything else in the
file (comments, blank lines, key order, quoting) kept as the user wrote it.

tomlkit does the editing; it is imported here only, and this module only by the commands
that change a key (``mngr config set|unset``), so no other command loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.items import AoT, Comment, InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from .errors import ConfigError

# A table as tomlkit gives it: a [table], an inline {table}, or a proxy over the pieces of
# one that the file defines in several places (dotted keys, a.b.c = 1 then a.b.d = 2).
_TABLES = (Table, InlineTable, OutOfOrderTableProxy)
TableLike = Container | Table | InlineTable | OutOfOrderTableProxy


def parse(text: str | None, path: Path) -> TOMLDocument:
    try:
        return tomlkit.parse(text or "")
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from exc


def set_value(document: TOMLDocument, parts: list[str], value: Any) -> None:
    """``parts`` (a dotted key) = ``value``: an existing key keeps its place and its
    comment; missing tables are made; a new top-level key goes after the others, before
    the first table, as a person would put it."""
    table: TableLike = document
    made: Table | None = None
    child: TableLike | None
    # The deepest table made holds the keys; those above it only hold tables ("super" tables,
    # never written as a header of their own).
    holder = len(parts) - (1 if isinstance(value, dict) else 2)
    for depth, part in enumerate(parts[:-1]):
        child = table.get(part)
        if not isinstance(child, _TABLES):
            if part in table:
                del table[part]
            if isinstance(table, InlineTable):  # a table inside an inline one is inline too
                child = tomlkit.inline_table()
            else:
                # [a.b] rather than [a] followed by [a.b]: the way such files are written.
                child = made = tomlkit.table(is_super_table=depth < holder)
            _add(table, part, child)
        table = child
    key = parts[-1]
    if key in table:
        table[key] = value
    else:
        item = tomlkit.item(value)
        if isinstance(table, InlineTable) and isinstance(item, Table):
            item = tomlkit.inline_table()
            item.update(value)
        _add(table, key, item)
        if isinstance(item, Table):
            made = item
    if made is not None:
        made.add(tomlkit.nl())  # a blank line between a new table and whatever comes next


def unset_value(document: TOMLDocument, parts: list[str]) -> bool:
    """Remove the key; then every table that this leaves empty. False if it was not there."""
    chain: list[TableLike] = [document]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, _TABLES):
            return False
        chain.append(child)
    if parts[-1] not in chain[-1]:
        return False
    del chain[-1][parts[-1]]
    for depth in range(len(chain) - 1, 0, -1):
        if len(chain[depth]) > 0:
            break
        del chain[depth - 1][parts[depth - 1]]
    return True


def _add(table: TableLike, key: str, item: Any) -> None:
    if not isinstance(table, (Container, Table)):
        table[key] = item
        return
    if isinstance(item, (Table, AoT)) or isinstance(table, Table):
        table.add(key, item)
        return
    position, first = _plain_key_position(table)
    if position is None:
        table.add(key, item)
        return
    if first:  # the only plain key, just above a table: a blank line between them
        item.trivia.trail = "\n\n"
    table._insert_at(position, key, item)  # tomlkit has no public insert at a position


def _plain_key_position(container: Container) -> tuple[int | None, bool]:
    """Where a new plain key belongs in a document that has tables: after its last plain
    key, or, if it has none (the key is the first), before the comments that head its
    first table. None: at the end (no table)."""
    body = container.body
    first_table = next((index for index, (key, item) in enumerate(body)
                        if key is not None and isinstance(item, (Table, AoT))), None)
    if first_table is None:
        return None, False
    plain = [index for index, (key, _) in enumerate(body[:first_table]) if key is not None]
    if plain:
        return plain[-1] + 1, False
    position = first_table
    while position > 0 and isinstance(body[position - 1][1], Comment):
        position -= 1
    return position, True


def render(document: TOMLDocument, before: str | None) -> str:
    text = document.as_string()
    if before is not None and not before.endswith("\n\n"):
        text = text.rstrip("\n") + "\n"  # no blank line at the end that the user did not have
    if before is not None and not before.startswith("\n"):
        text = text.lstrip("\n")  # nor at the start (a first key removed, and the blank after it)
    elif before is None:
        text = text.lstrip("\n").rstrip("\n") + "\n"
    return "" if not text.strip() else text
