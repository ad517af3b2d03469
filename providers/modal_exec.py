"""Commands in a Modal sandbox: the helper's channel over an exec, and a terminal attached to tmux.

The SDK hands an exec's output out as an iterator and takes its input through a buffer that
must be drained (``write`` + ``drain``, at most 16 MiB between drains). The controller's
streams are read with a timeout, so a thread moves the output into a pipe that ``select``
can wait on, and writes go out in drained slices.

``python -m mngr.providers.modal_exec attach SANDBOX_ID SESSION`` is what ``mngr connect``
runs for a Modal host: an exec of ``tmux attach-session`` with a pseudo-terminal, the local
terminal in raw mode, bytes copied both ways. The SDK fixes the terminal's size when the
exec starts; nothing later resizes it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mngr.controller.channel.stream import Stream, _read_fd, _Spinner
from mngr.controller.errors import ChannelClosed

from .base import tmux_attach_argv

WRITE_SLICE = 8 * 1024 * 1024  # under the SDK's 16 MiB limit on what one drain may carry


def sdk_failures() -> tuple[type[BaseException], ...]:
    """What the SDK raises when an exec's host or connection is gone (with OSError)."""
    import modal.exception

    return (modal.exception.Error, OSError, BufferError)


class ExecStream(Stream):
    """A stream over one exec's stdin and stdout (``text=False``)."""

    def __init__(self, host: str, process: Any) -> None:
        self.host = host
        self._process = process
        self._failures = sdk_failures()
        self._spinner = _Spinner()
        self._read_fd, write_fd = os.pipe()
        self._closed = False
        self._pump = threading.Thread(target=_copy_chunks, args=(process.stdout, write_fd, self._failures),
                                      name=f"modal-exec-{host}", daemon=True)
        self._pump.start()

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        try:
            for start in range(0, len(view), WRITE_SLICE):
                self._process.stdin.write(bytes(view[start:start + WRITE_SLICE]))
                self._process.stdin.drain()
        except self._failures as exc:
            raise ChannelClosed(self.host, f"modal exec closed while writing: {exc}") from exc

    def read(self, max_bytes: int, timeout: float | None) -> bytes:
        return _read_fd(self, self._read_fd, self._spinner, max_bytes, timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # End of input: the helper finishes what it was asked and exits, ending the exec.
        with contextlib.suppress(*self._failures):
            self._process.stdin.write_eof()
            self._process.stdin.drain()
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    def diagnostics(self) -> str:
        try:
            status = self._process.poll()
        except self._failures:
            return "the sandbox is gone"
        return "" if status is None else f"exit status {status}"


def _copy_chunks(chunks: Iterable[bytes], fd: int, failures: tuple[type[BaseException], ...]) -> None:
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    except failures:
        pass  # the exec or the reader is gone: the reader sees end of stream
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def open_exec(sandbox: Any, argv: Sequence[str], env: Mapping[str, str], *, pty: bool = False) -> Any:
    """An exec of ``argv`` with binary stdin/stdout (the SDK's ContainerProcess)."""
    return sandbox.exec(*argv, env=dict(env), text=False, pty=pty)


def attach(sandbox_id: str, session: str, env: Mapping[str, str]) -> int:
    """Attach this terminal to tmux session ``session`` in the sandbox; the exit status."""
    import termios
    import tty

    import modal

    sandbox = modal.Sandbox.from_id(sandbox_id)
    process = open_exec(sandbox, tmux_attach_argv(session), env, pty=True)
    failures = sdk_failures()
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None

    def forward_input() -> None:
        with contextlib.suppress(*failures):
            while True:
                data = os.read(stdin_fd, 65536)
                if not data:
                    process.stdin.write_eof()
                    process.stdin.drain()
                    return
                process.stdin.write(data)
                process.stdin.drain()

    try:
        if saved is not None:
            tty.setraw(stdin_fd)
        threading.Thread(target=forward_input, daemon=True).start()
        with contextlib.suppress(*failures):
            for chunk in process.stdout:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(stdout_fd, view):]
        try:
            return int(process.wait())
        except failures:
            return 1
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "attach":
        print("usage: python -m mngr.providers.modal_exec attach SANDBOX_ID SESSION", file=sys.stderr)
        return 2
    from .modal import HOST_ENV

    try:
        return attach(argv[1], argv[2], HOST_ENV)
    except sdk_failures() as exc:
        print(f"mngr: cannot attach to the modal sandbox {argv[1]}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
