"""``ContainerProcess``: a command run in a sandbox by ``Sandbox.exec`` (here a ``docker exec``)."""

from __future__ import annotations

import subprocess
import time
from typing import Generic, TypeVar

from .exception import InvalidError
from .io_streams import StreamReader, StreamWriter

T = TypeVar("T", str, bytes)


class ContainerProcess(Generic[T]):
    def __init__(self, process: subprocess.Popen[bytes], stdout: StreamReader[T], stderr: StreamReader[T],
                 stdin: StreamWriter, deadline: float | None) -> None:
        self._process = process  # the docker CLI client of the exec
        self._stdout: StreamReader[T] = stdout
        self._stderr: StreamReader[T] = stderr
        self._stdin = stdin
        self._deadline = deadline
        self._returncode: int | None = None

    def __repr__(self) -> str:
        return f"ContainerProcess(process_id={self._process.pid!r})"

    @property
    def stdout(self) -> StreamReader[T]:
        return self._stdout

    @property
    def stderr(self) -> StreamReader[T]:
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        return self._stdin

    @property
    def returncode(self) -> int:
        if self._returncode is None:
            raise InvalidError("You must call wait() before accessing the returncode. "
                               "To poll for the status of a running process, use poll() instead.")
        return self._returncode

    def poll(self) -> int | None:
        """Its exit status if it has finished, else None (-1 once past the exec's ``timeout``)."""
        if self._returncode is None:
            status = self._process.poll()
            if status is None and self._deadline is not None and time.monotonic() >= self._deadline:
                status = self._expire()
            if status is not None:
                self._finish(status)
        return self._returncode

    def wait(self) -> int:
        """Wait for it to finish; its exit status (128+N if signal N killed it, -1 past its
        ``timeout``: the SDK's own value for that)."""
        if self._returncode is None:
            try:
                timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
                status = self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                status = self._expire()
            self._finish(status)
        assert self._returncode is not None
        return self._returncode

    def _expire(self) -> int:
        # As on Modal, the command is given up on; only the docker client is killed here, so
        # what it ran may go on in the container (Modal too kills only the top process).
        self._process.kill()
        self._process.wait()
        return -1

    def _finish(self, status: int) -> None:
        self._returncode = status
        self._stdin._close()
