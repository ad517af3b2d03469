"""``StreamReader`` and ``StreamWriter``: an exec's stdout/stderr and stdin, over real pipes.

The SDK's reader yields output as it arrives (a chunk per message from the worker; bytes with
``text=False``, decoded text otherwise, whole lines with ``bufsize=1``) and ``read()`` waits for
the end; every iterator of one reader draws from the same stream, so each chunk comes once.
Its writer buffers ``write()`` (at most 16 MiB between drains) and sends it on ``drain()``;
``write_eof()`` then ``drain()`` closes the process's stdin. The same here, on file descriptors.
"""

from __future__ import annotations

import codecs
import errno
import os
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar, cast

from .exception import ConflictError, InvalidError
from .stream_type import StreamType

T = TypeVar("T", str, bytes)

# The SDK's limit on what one drain() may carry to an exec's stdin (TASK_COMMAND_ROUTER_MAX_BUFFER_SIZE).
MAX_BUFFER_SIZE = 16 * 1024 * 1024
_CHUNK = 1 << 16


class StreamReader(Generic[T]):
    """Output of an exec; iterate it for chunks as they come, or ``read()`` it all."""

    def __init__(self, fd: int | None, file_descriptor: int, stream_type: StreamType, text: bool,
                 by_line: bool) -> None:
        if by_line and not text:
            raise ValueError("line-buffering is only supported when text=True")
        self._fd = fd
        self._file_descriptor = file_descriptor
        self._stream_type = stream_type
        self._text = text
        self._by_line = by_line
        self._lock = threading.Lock()
        self._eof = fd is None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._line_buffer = ""

    @property
    def file_descriptor(self) -> int:
        """1 for stdout, 2 for stderr."""
        return self._file_descriptor

    def read(self) -> T:
        """Everything until the end of the stream."""
        parts: list[Any] = list(self)
        joined: Any = "".join(parts) if self._text else b"".join(parts)
        return cast(T, joined)

    def __iter__(self) -> Iterator[T]:
        # Items are str or bytes by ``text``, which the type checker cannot follow: Any here.
        self._check_readable()
        for data in self._raw():
            if not self._text:
                item: Any = data
                yield item
                continue
            text = self._decoder.decode(data, final=data == b"")
            if self._by_line:
                self._line_buffer += text
                while "\n" in self._line_buffer:
                    line, self._line_buffer = self._line_buffer.split("\n", 1)
                    item = line + "\n"
                    yield item
                if data == b"" and self._line_buffer:
                    item, self._line_buffer = self._line_buffer, ""
                    yield item
            elif text:
                item = text
                yield item

    def _check_readable(self) -> None:
        if self._stream_type == StreamType.DEVNULL:
            raise ValueError("read is not supported for a stream configured with StreamType.DEVNULL")
        if self._stream_type == StreamType.STDOUT:
            raise InvalidError("Output can only be retrieved using the PIPE stream type.")

    def _raw(self) -> Iterator[bytes]:
        """Chunks as the pipe gives them; a final b"" (only in text mode) flushes the decoder."""
        while True:
            with self._lock:  # one chunk to one reader
                if self._eof:
                    return
                assert self._fd is not None
                try:
                    data = os.read(self._fd, _CHUNK)
                except OSError as exc:
                    if exc.errno != errno.EIO:  # EIO: a pty whose terminal side closed, i.e. the end
                        raise
                    data = b""
                if not data:
                    self._eof = True
                    os.close(self._fd)  # it owns its descriptor: nobody reads past the end
                    self._fd = None
            if data:
                yield data
            else:
                if self._text:
                    yield b""
                return


class StreamWriter:
    """Stdin of an exec: ``write`` buffers, ``drain`` sends, ``write_eof`` + ``drain`` closes."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd  # its own descriptor, closed at the end of input or of the process
        self._buffer = bytearray()
        self._is_closed = False
        self._lock = threading.RLock()  # drain() closes under it; so may the process, once it ends

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        if self._is_closed:
            raise ValueError("Stdin is closed. Cannot write to it.")
        if not isinstance(data, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__}")
        encoded = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        with self._lock:
            if len(self._buffer) + len(encoded) > MAX_BUFFER_SIZE:
                raise BufferError("Buffer size exceed limit. Call drain to flush the buffer.")
            self._buffer.extend(encoded)

    def write_eof(self) -> None:
        self._is_closed = True

    def drain(self) -> None:
        """Send what was written (and the end of input after ``write_eof``).

        A process that has exited cannot take input: this raises ConflictError then (the SDK's
        error for it comes from Modal's server; its type is not documented)."""
        with self._lock:
            data, eof = bytes(self._buffer), self._is_closed
            if self._fd is None:
                if data:
                    raise ConflictError("the process has exited: its stdin takes no more input")
                return
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.EIO, errno.EBADF):
                    raise
                raise ConflictError("the process has exited: its stdin takes no more input") from None
            self._buffer.clear()
            if eof:
                self._close()

    def _close(self) -> None:
        """Let go of the descriptor (the process ended, or its input did)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
