"""Start a real helper the way the local provider does, and speak raw frames to it."""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Mapping

from mngr.controller.channel.bootstrap import complete_bootstrap, stage1_argv
from mngr.controller.channel.stream import BufferedReader, ProcessStream

HEADER = struct.Struct(">III")


class RawHelper:
    """A helper process plus a raw byte interface to its channel, for hostile-input tests."""

    def __init__(self, env: Mapping[str, str], python: str = sys.executable) -> None:
        self.stream = ProcessStream("test", stage1_argv(python), env)
        self.reader = BufferedReader(self.stream)
        complete_bootstrap(self.stream, self.reader, timeout=30)

    def send_raw(self, data: bytes) -> None:
        self.stream.write(data)

    def send(self, request_id: int, message: dict, blob: bytes = b"") -> None:
        body = json.dumps(message).encode()
        self.send_raw(HEADER.pack(request_id, len(body), len(blob)) + body + blob)

    def receive(self, timeout: float = 30) -> tuple[int, dict, bytes]:
        deadline = time.monotonic() + timeout
        request_id, body_length, blob_length = HEADER.unpack(self.reader.read_exact(HEADER.size, deadline))
        body = json.loads(self.reader.read_exact(body_length, deadline))
        blob = self.reader.read_exact(blob_length, deadline) if blob_length else b""
        return request_id, body, blob

    def close_input(self) -> None:
        self.stream._process.stdin.close()  # type: ignore[union-attr]

    def wait_exit(self, timeout: float = 30) -> int:
        return self.stream._process.wait(timeout=timeout)

    def remaining_output(self, timeout: float = 10) -> bytes:
        """Everything the helper writes until it closes stdout (buffered bytes included)."""
        fd = self.stream._process.stdout.fileno()  # type: ignore[union-attr]
        data = bytearray(self.reader._buffer)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                return bytes(data)
            data += chunk
        raise AssertionError("helper did not close its output")

    def kill(self) -> None:
        if self.stream._process.poll() is None:
            self.stream.terminate()


def python38() -> str | None:
    """A Python 3.8 interpreter if this machine has one (the oldest the helper supports)."""
    candidates = [os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python3.8"), "python3.8"]
    for candidate in candidates:
        try:
            result = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                    capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and result.stdout.strip() == "(3, 8)":
            return candidate
    return None
