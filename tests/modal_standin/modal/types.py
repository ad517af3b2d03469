"""``modal.types``: the entries ``Volume.listdir`` returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FileEntryType(enum.IntEnum):
    """Type of a file entry listed from a Modal volume."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5


@dataclass(frozen=True)
class FileEntry:
    """A file or directory entry listed from a Modal volume (``path`` relative to its root)."""

    path: str
    type: FileEntryType
    mtime: int
    size: int
