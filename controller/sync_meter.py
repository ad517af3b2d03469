"""How far a push or pull got, for its progress line (progress.py).

The plan says how many bytes and files are to move. Files count once they landed; bytes
count as the larger of the file bytes that landed and the bytes the channel carried in the
transfer's direction since it began: the channel's count moves while a batch crosses the
link (the line moves on a slow link), the landed count catches up where the batch went
compressed.
"""

from __future__ import annotations

import threading

from .hosts import HostHandle
from .plan import Plan
from .progress import Progress


class TransferMeter:
    def __init__(self, progress: Progress | None, handle: HostHandle, plan: Plan, sending: bool) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._files_total = len(plan.send)
        self._files = 0
        self._landed = 0
        if progress is None:
            return
        direction = 0 if sending else 1
        started = handle.bytes_moving()[direction]
        progress.update(total=plan.bytes_to_send, note=self._note())
        progress.follow(lambda: min(plan.bytes_to_send,
                                    max(self._landed, handle.bytes_moving()[direction] - started)))

    def landed(self, file_bytes: int, files: int) -> None:
        """``files`` more files (``file_bytes`` of content) arrived whole."""
        if self._progress is None:
            return
        with self._lock:
            self._landed += file_bytes
            self._files += files
            note = self._note()
        self._progress.update(note=note)

    def _note(self) -> str:
        return f"{self._files}/{self._files_total} files"
