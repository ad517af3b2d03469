"""What a push or pull must do: the comparison of two manifests, and nothing else.

Kept apart from the transfer (sync.py) so that the process listing the local tree
(local_walk.py) can make the plan itself without loading the channel and its protocol.
A file travels when it is missing on the receiving side or differs in size, modification
time or mode, like rsync's quick check; a symlink when its target differs; a directory is
created (or its mode fixed) when it is missing. A directory's modification time is set
last, like rsync's: where it differs, and on every directory whose entries the transfer
changes (landing a file changes it).

Like rsync, nothing that only the receiving side has is removed without ``delete``: an
entry of another kind there (a directory where the source has a file, a file where it has
a link, ...) is refused, not replaced, and reported. With ``delete`` it is replaced, and
everything below a directory that goes is listed (``gone_below``) so a dry run shows it.
"""

from __future__ import annotations

import zlib

from mngr.remote_helper import files

# As typing.TYPE_CHECKING (and no dataclass): loaded early by local_walk.py, where typing
# and dataclasses would cost about 15 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

Entry = list  # [path, kind, mode, size, mtime_ns, link target]


REFUSED_TYPE_CHANGE = "is a %s here and a %s in the source: not replaced without --delete"
_KINDS = {"f": "file", "d": "directory", "l": "symlink"}


class Plan:
    def __init__(self, send: list[Entry] | None = None, dirs: list[Entry] | None = None,
                 delete: list[str] | None = None, replace: list[str] | None = None,
                 new: set[str] | None = None, bytes_to_send: int = 0,
                 refused: list[list[str]] | None = None, gone_below: list[str] | None = None,
                 dir_times: list[Entry] | None = None) -> None:
        self.send: list[Entry] = send or []  # files and links, from the source
        self.dirs: list[Entry] = dirs or []
        self.delete: list[str] = delete or []
        self.replace: list[str] = replace or []  # of another kind on the receiving side
        self.new: set[str] = new or set()  # sent paths the receiving side does not have
        self.bytes_to_send = bytes_to_send
        self.refused: list[list[str]] = refused or []  # [path, why]: left as it is on the receiving side
        self.gone_below: list[str] = gone_below or []  # below a replaced directory: removed with it
        # Source directories whose mode and mtime are set once everything in them landed
        # (those in ``dirs`` are too): metadata only, so not listed among the changes.
        self.dir_times: list[Entry] = dir_times or []
        self.skipped: list[list[str]] = []  # [path, why]: could not be carried out (filled in by the transfer)

    @property
    def empty(self) -> bool:
        return not (self.send or self.dirs or self.delete or self.dir_times)

    def changes(self) -> list[tuple[str, str]]:
        """(mark, path) for each change: + new, ~ changed, - deleted (a replaced directory's
        contents included); sorted by path."""
        marked = [("+" if entry[0] in self.new else "~", entry[0]) for entry in self.send]
        marked += [("+" if entry[0] in self.new else "~", entry[0]) for entry in self.dirs]
        marked += [("-", path) for path in self.delete + self.gone_below]
        return sorted(marked, key=lambda item: item[1])

    def keep(self, why_not_delete: Callable[[str], str]) -> None:
        """Take out of the plan every deletion (and replacement) the receiving side will not
        carry out (``why_not_delete(path)`` says why, "" when it will): they are refused."""
        kept: list[str] = []
        for path in sorted(path for path in self.delete if why_not_delete(path)):
            self.delete.remove(path)
            if not any(path.startswith(above + "/") for above in kept):  # reported once, at the top
                kept.append(path)
                self.refused.append([path, "not deleted: " + why_not_delete(path)])
        for path in [path for path in self.replace if why_not_delete(path)]:
            self.replace.remove(path)
            self.refused.append([path, "not replaced: " + why_not_delete(path)])
            self.send = [entry for entry in self.send if entry[0] != path]
            self.dirs = [entry for entry in self.dirs if entry[0] != path]
            self.dir_times = [entry for entry in self.dir_times if entry[0] != path]
            self.gone_below = [gone for gone in self.gone_below if not gone.startswith(path + "/")]


def decode_manifest(blob: bytes) -> list[Entry]:
    """A host's zlib-compressed wire manifest as entries; ValueError if it is not one."""
    try:
        entries: list[Entry] = files.parse_manifest(zlib.decompress(blob))
    except zlib.error as exc:
        raise ValueError(str(exc)) from exc
    return entries


def with_changes(entries: list[Entry], changed: list[Entry], gone: list[str]) -> list[Entry]:
    """``entries`` (a manifest) with the host's changes since it applied (see
    protocol.Manifest's ``changes_only``): ``gone`` paths removed with what was below them,
    what was below a ``changed`` entry that is no directory removed, ``changed`` set."""
    by_path = {entry[0]: entry for entry in entries}
    dropped = list(gone) + [entry[0] for entry in changed if entry[1] != "d"]
    if dropped:
        gone_paths = set(gone)
        below = tuple(path + "/" for path in dropped)
        by_path = {path: entry for path, entry in by_path.items()
                   if path not in gone_paths and not path.startswith(below)}
    for entry in changed:
        by_path[entry[0]] = entry
    return list(by_path.values())


def make_plan(source: list[Entry], receiver: list[Entry], delete: bool) -> Plan:
    have = {entry[0]: entry for entry in receiver}
    plan = Plan()
    # A directory in the source where the receiving side keeps a file or link: what the
    # source has below it has nowhere to go.
    refused_dirs = () if delete else tuple(
        entry[0] + "/" for entry in source if entry[1] == "d" and entry[0] in have and have[entry[0]][1] != "d")
    for entry in source:
        path, kind = entry[0], entry[1]
        if refused_dirs and path.startswith(refused_dirs):
            continue
        there = have.get(path)
        if there is None:
            plan.new.add(path)
        elif there[1] != kind:  # a file where a directory was, a link where a file was, ...
            if not delete:
                plan.refused.append([path, REFUSED_TYPE_CHANGE % (_KINDS[there[1]], _KINDS[kind])])
                continue
            plan.replace.append(path)
            plan.new.add(path)
            there = None
        if kind == "d":
            if there is None or there[2] != entry[2]:
                plan.dirs.append(entry)
            elif there[4] != entry[4] and entry[4]:
                plan.dir_times.append(entry)
        elif kind == "l":
            if there is None or there[5] != entry[5]:
                plan.send.append(entry)
        elif there is None or there[3] != entry[3] or there[4] != entry[4] or there[2] != entry[2]:
            plan.send.append(entry)
            plan.bytes_to_send += entry[3]
    if delete:
        wanted = {entry[0] for entry in source}
        replaced = tuple(path + "/" for path in plan.replace)
        for path in have:
            if path in wanted:
                continue
            # Below a directory replaced by a file: it goes with the directory (listed all the same).
            (plan.gone_below if replaced and path.startswith(replaced) else plan.delete).append(path)
    _add_parents_times(plan, source)
    return plan


def _add_parents_times(plan: Plan, source: list[Entry]) -> None:
    """Every source directory one of whose entries the plan writes or removes gets its
    mtime set at the end: the transfer itself changes it on the receiving side."""
    touched = {entry[0] for entry in plan.send} | {entry[0] for entry in plan.dirs}
    touched.update(plan.delete, plan.replace)
    parents = {path.rpartition("/")[0] for path in touched}
    parents.discard("")
    if not parents:
        return
    parents.difference_update(entry[0] for entry in plan.dirs)
    parents.difference_update(entry[0] for entry in plan.dir_times)
    for entry in source:
        if entry[0] in parents and entry[1] == "d" and entry[4]:
            plan.dir_times.append(entry)


def directories_to_finish(plan: Plan) -> list[list[Any]]:
    """[path, mode, mtime_ns] of each directory given its own mode and mtime last."""
    return [[entry[0], entry[2], entry[4]] for entry in plan.dirs + plan.dir_times]


def plan_to_wire(plan: Plan) -> tuple[Any, ...]:
    """``plan`` as plain values (for marshal)."""
    return (plan.send, plan.dirs, plan.delete, plan.replace, sorted(plan.new), plan.bytes_to_send, plan.refused,
            plan.gone_below, plan.dir_times)


def plan_from_wire(values: tuple[Any, ...]) -> Plan:
    send, dirs, delete, replace, new, bytes_to_send, refused, gone_below, dir_times = values
    return Plan(send=send, dirs=dirs, delete=delete, replace=replace, new=set(new), bytes_to_send=bytes_to_send,
                refused=refused, gone_below=gone_below, dir_times=dir_times)
