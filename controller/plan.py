"""What a push or pull must do: the comparison of two manifests, and nothing else.

Kept apart from the transfer (sync.py) so that the process listing the local tree
(local_walk.py) can make the plan itself without loading the channel and its protocol.
A file travels when it is missing on the receiving side or differs in size, modification
time or mode, like rsync's quick check; a symlink when its target differs; a directory is
created (or its mode fixed) when it is missing.
"""

from __future__ import annotations

import zlib

from mngr.remote_helper import files

# As typing.TYPE_CHECKING (and no dataclass): loaded early by local_walk.py, where typing
# and dataclasses would cost about 15 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Entry = list  # [path, kind, mode, size, mtime_ns, link target]


class Plan:
    def __init__(self, send: list[Entry] | None = None, dirs: list[Entry] | None = None,
                 delete: list[str] | None = None, replace: list[str] | None = None,
                 new: set[str] | None = None, bytes_to_send: int = 0) -> None:
        self.send: list[Entry] = send or []  # files and links, from the source
        self.dirs: list[Entry] = dirs or []
        self.delete: list[str] = delete or []
        self.replace: list[str] = replace or []  # of another kind on the receiving side
        self.new: set[str] = new or set()  # sent paths the receiving side does not have
        self.bytes_to_send = bytes_to_send

    @property
    def empty(self) -> bool:
        return not (self.send or self.dirs or self.delete)

    def changes(self) -> list[tuple[str, str]]:
        """(mark, path) for each change: + new, ~ changed, - deleted; sorted by path."""
        marked = [("+" if entry[0] in self.new else "~", entry[0]) for entry in self.send]
        marked += [("+" if entry[0] in self.new else "~", entry[0]) for entry in self.dirs]
        marked += [("-", path) for path in self.delete]
        return sorted(marked, key=lambda item: item[1])


def decode_manifest(blob: bytes) -> list[Entry]:
    """A host's zlib-compressed wire manifest as entries; ValueError if it is not one."""
    try:
        entries: list[Entry] = files.parse_manifest(zlib.decompress(blob))
    except zlib.error as exc:
        raise ValueError(str(exc)) from exc
    return entries


def make_plan(source: list[Entry], receiver: list[Entry], delete: bool) -> Plan:
    have = {entry[0]: entry for entry in receiver}
    plan = Plan()
    for entry in source:
        path, kind = entry[0], entry[1]
        there = have.get(path)
        if there is None:
            plan.new.add(path)
        elif there[1] != kind:  # a file where a directory was, a link where a file was, ...
            plan.replace.append(path)
            plan.new.add(path)
            there = None
        if kind == "d":
            if there is None or there[2] != entry[2]:
                plan.dirs.append(entry)
        elif kind == "l":
            if there is None or there[5] != entry[5]:
                plan.send.append(entry)
        elif there is None or there[3] != entry[3] or there[4] != entry[4] or there[2] != entry[2]:
            plan.send.append(entry)
            plan.bytes_to_send += entry[3]
    if delete:
        wanted = {entry[0] for entry in source}
        plan.delete = [path for path in have if path not in wanted]
    return plan


def plan_to_wire(plan: Plan) -> tuple[Any, ...]:
    """``plan`` as plain values (for marshal)."""
    return (plan.send, plan.dirs, plan.delete, plan.replace, sorted(plan.new), plan.bytes_to_send)


def plan_from_wire(values: tuple[Any, ...]) -> Plan:
    send, dirs, delete, replace, new, bytes_to_send = values
    return Plan(send=send, dirs=dirs, delete=delete, replace=replace, new=set(new), bytes_to_send=bytes_to_send)
