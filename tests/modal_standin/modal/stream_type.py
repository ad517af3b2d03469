"""``modal.stream_type.StreamType``: where an exec's stdout or stderr goes."""

from __future__ import annotations

import subprocess
from enum import Enum


class StreamType(Enum):
    # The same values as the SDK's: they are subprocess's constants there too.
    DEVNULL = subprocess.DEVNULL
    PIPE = subprocess.PIPE
    STDOUT = subprocess.STDOUT

    def __repr__(self) -> str:
        return f"{self.__module__}.{self.__class__.__name__}.{self.name}"
