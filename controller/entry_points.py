"""Finding the ``mngr`` entry points of installed distributions, quickly.

``importlib.metadata`` costs about 15 ms to import, more than the rest of a ``mngr list`` on
the local host, and every command needs the plugins. The entry points of a distribution
live in one small file, ``<name>.dist-info/entry_points.txt``; this module reads just those
files for one group. It follows importlib.metadata's rules where they matter here: the
first distribution of a name on ``sys.path`` wins, and later duplicates are ignored.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

_SECTION = re.compile(r"^\[\s*(.+?)\s*\]\s*$")


@dataclass(frozen=True)
class EntryPoint:
    name: str
    value: str
    distribution: str

    def load(self) -> object:
        module_name, _, attribute = self.value.partition(":")
        module = __import__(module_name.strip(), fromlist=["__name__"])
        for part in filter(None, attribute.strip().split(".")):
            module = getattr(module, part)
        return module


def _distribution_name(folder: str) -> str:
    stem = folder.rsplit(".", 1)[0]
    name = stem.split("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(text: str, group: str) -> Iterable[tuple[str, str]]:
    in_group = False
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        section = _SECTION.match(line)
        if section:
            in_group = section.group(1) == group
            continue
        if in_group and "=" in line:
            name, _, value = line.partition("=")
            yield name.strip(), value.strip()


# group -> (sys.path then, its entry points): see keep.
_kept: dict[str, tuple[tuple[str, ...], list[EntryPoint]]] = {}


def keep(group: str) -> None:
    """Remember ``group``'s entry points for this process and its forks, used while
    sys.path is as it is now. For the resident mngr (controller/resident.py), whose
    commands would each read every distribution's metadata again (~3 ms): its identity
    holds the mtime of every sys.path directory, so a distribution installed, upgraded or
    removed since makes it another mngr's, which no client reaches."""
    _kept[group] = (tuple(sys.path), entry_points(group))


def entry_points(group: str, paths: Iterable[str] | None = None) -> list[EntryPoint]:
    if paths is None:
        kept = _kept.get(group)
        if kept is not None and kept[0] == tuple(sys.path):
            return list(kept[1])
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for path in sys.path if paths is None else paths:
        try:
            entries = os.listdir(path or ".")
        except OSError:
            continue
        for entry in sorted(entries):
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            distribution = _distribution_name(entry)
            if distribution in seen:
                continue
            seen.add(distribution)
            try:
                with open(os.path.join(path, entry, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            found.extend(EntryPoint(name, value, distribution) for name, value in _parse(text, group))
    return found
