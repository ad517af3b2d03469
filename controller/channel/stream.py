"""Byte streams to a helper: the one thing every provider hands the controller.

A provider starts a process whose stdin/stdout reach the helper's first stage (``ssh HOST
python3 -c ...``, ``docker exec -i ...``, or the first stage itself for the local host) and
wraps it in a Stream. Everything above (bootstrap, framing, RPC) is the same for all hosts.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

from ..errors import ChannelClosed, ChannelTimeout

_SPIN_SECONDS = 0.0002


class _Spinner:
    """Poll briefly, yielding the CPU, before blocking, while the peer answers quickly.

    See remote_helper.server.wait_briefly_for_input: this saves a cross-CPU wake-up per
    reply from a local helper, and costs nothing with a slow or remote one (after the
    first slow reply it stops spinning until replies come quickly again).
    """

    def __init__(self) -> None:
        self._peer_is_quick = False
        self._started = 0.0

    def before_read(self, fd: int) -> None:
        self._started = time.monotonic()
        if not self._peer_is_quick:
            return
        deadline = self._started + _SPIN_SECONDS
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0)[0]:
                return
            os.sched_yield()

    def after_read(self) -> None:
        self._peer_is_quick = time.monotonic() - self._started < _SPIN_SECONDS


class Stream(ABC):
    """A bidirectional byte stream to a helper process on one host."""

    host: str
    # False for a stream that reaches an already running helper (the host daemon's socket):
    # there is no first stage to talk to.
    needs_bootstrap: bool = True
    # False for a stream whose far end may turn out to be nothing (a forwarded socket): the
    # first request on it must be one that is safe to repeat elsewhere.
    proven: bool = True

    @abstractmethod
    def write(self, data: bytes | memoryview) -> None:
        """Write all of ``data``; raise ChannelClosed if the other end is gone."""

    @abstractmethod
    def read(self, max_bytes: int, timeout: float | None) -> bytes:
        """Return 1..max_bytes bytes, b"" at end of stream; raise ChannelTimeout on timeout."""

    def read_into(self, view: memoryview, timeout: float | None) -> int:
        """Read 1..len(view) bytes into ``view``: how many, 0 at end of stream; raise
        ChannelTimeout on timeout. Streams over a descriptor read straight into it."""
        data = self.read(len(view), timeout)
        view[:len(data)] = data
        return len(data)

    @abstractmethod
    def close(self) -> None:
        """Release the stream; the helper sees end of input and exits once its work is done."""

    def abort(self) -> None:
        """Cut the stream off now, from any thread: a write blocked on it fails."""
        self.close()

    def diagnostics(self) -> str:
        """What the transport knows about a failure (exit status, stderr), for error messages."""
        return ""

    def worth_retrying(self) -> bool:
        """After a failure: was it a refusal a second try may not meet (a busy server)?"""
        return False


def _read_fd(stream: Stream, fd: int, spinner: _Spinner, max_bytes: int, timeout: float | None) -> bytes:
    """The read of every fd-backed stream: poll while the peer is quick, wait, read."""
    _wait_readable(stream, fd, spinner, timeout)
    try:
        data = os.read(fd, max_bytes)
    except OSError as exc:
        raise ChannelClosed(stream.host, f"helper stream failed: {exc}") from exc
    spinner.after_read()
    return data


def _read_fd_into(stream: Stream, fd: int, spinner: _Spinner, view: memoryview, timeout: float | None) -> int:
    """As _read_fd, into ``view``: a large frame is read where it is kept, with no buffer
    allocated per read and none joined afterwards."""
    _wait_readable(stream, fd, spinner, timeout)
    try:
        count = os.readv(fd, [view])
    except OSError as exc:
        raise ChannelClosed(stream.host, f"helper stream failed: {exc}") from exc
    spinner.after_read()
    return count


def _wait_readable(stream: Stream, fd: int, spinner: _Spinner, timeout: float | None) -> None:
    spinner.before_read(fd)
    if timeout is not None:
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not ready:
            raise ChannelTimeout(stream.host, f"no reply within {timeout:.1f} s")


class ProcessStream(Stream):
    """A stream over a child process's stdin/stdout (stderr kept for diagnostics)."""

    def __init__(self, host: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        import subprocess

        self.host = host
        self._spinner = _Spinner()
        self.argv = list(argv)
        self.stderr_text = ""  # what the process said on stderr, once it has exited
        try:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise ChannelClosed(host, f"cannot start {self.argv[0]!r}: {exc.strerror}") from exc
        assert self._process.stdin is not None and self._process.stdout is not None
        self._in_fd = self._process.stdin.fileno()
        self._out_fd = self._process.stdout.fileno()

    @property
    def pid(self) -> int:
        return self._process.pid

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._in_fd, view)
                view = view[written:]
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError) as exc:
            raise ChannelClosed(self.host, f"helper stream closed while writing{self._why()}") from exc

    def read(self, max_bytes: int, timeout: float | None) -> bytes:
        return _read_fd(self, self._out_fd, self._spinner, max_bytes, timeout)

    def read_into(self, view: memoryview, timeout: float | None) -> int:
        return _read_fd_into(self, self._out_fd, self._spinner, view, timeout)

    def close(self) -> None:
        for pipe in (self._process.stdin, self._process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        # The helper finishes in-flight work after its stdin closes; reap it without blocking.
        if self._process.poll() is None:
            return
        self._close_stderr()

    def _close_stderr(self) -> None:
        if self._process.stderr is not None:
            with contextlib.suppress(OSError):
                self._process.stderr.close()

    def abort(self) -> None:
        self.terminate()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        self._process.wait()
        self._close_stderr()

    def diagnostics(self) -> str:
        import subprocess

        try:
            returncode = self._process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return ""
        if self._process.stderr is not None and not self.stderr_text:
            with contextlib.suppress(OSError, ValueError, TypeError):
                os.set_blocking(self._process.stderr.fileno(), False)
                self.stderr_text = (self._process.stderr.read(65536) or b"").decode("utf-8", "replace").strip()
        text = self.stderr_text
        last_line = text.splitlines()[-1] if text else ""
        status = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        return f"{status}: {last_line}" if last_line else status

    def _why(self) -> str:
        detail = self.diagnostics()
        return f" ({detail})" if detail else ""


class SocketStream(Stream):
    """A stream over a connected unix socket to a running host daemon."""

    needs_bootstrap = False

    def __init__(self, host: str, sock: socket.socket, path: str = "") -> None:
        self.host = host
        self.path = path
        self._spinner = _Spinner()
        self._socket = sock
        self._fd = sock.fileno()
        # Requests sent on this connection before it was handed over (early_channel.py):
        # {request id: body}, for the RPC client to use their replies.
        self.prefetched: dict[int, bytes] = {}

    @classmethod
    def connect(cls, host: str, path: str) -> SocketStream:
        """Connect to the daemon's socket; OSError if nothing listens there. The connection
        a push or pull opened to ``path`` while mngr loaded is this one, if there is one."""
        from . import early as early_connections

        early = early_connections.take(path)
        if early is not None:
            stream = cls(host, early.sock, path)
            stream.prefetched = early.sent
            return stream
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return cls(host, sock, path)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._socket.sendall(data)
        except OSError as exc:
            raise ChannelClosed(self.host, f"host daemon connection closed while writing ({exc})") from exc

    def read(self, max_bytes: int, timeout: float | None) -> bytes:
        return _read_fd(self, self._fd, self._spinner, max_bytes, timeout)

    def read_into(self, view: memoryview, timeout: float | None) -> int:
        return _read_fd_into(self, self._fd, self._spinner, view, timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()

    def abort(self) -> None:
        import socket

        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self.close()

    def diagnostics(self) -> str:
        return "the host daemon closed the connection"


Deadline = float | Callable[[], float] | None
_READ_INTO_BYTES = 1 << 20  # a blob at least this large is read into its own buffer


def _timeout(deadline: Deadline) -> float | None:
    if deadline is None:
        return None
    return max(0.0, (deadline() if callable(deadline) else deadline) - time.monotonic())


class BufferedReader:
    """Exact-length reads over a Stream, keeping whatever arrived past the last request.

    A deadline is a moment (time.monotonic) or a function giving it, asked again after a
    wait: one that moves while bytes flow makes a timeout about progress, not size.
    ``on_data`` hears of every chunk read.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.on_data: Callable[[int], None] | None = None

    def _read(self, max_bytes: int, deadline: Deadline) -> bytes:
        while True:
            try:
                chunk = self._stream.read(max_bytes, _timeout(deadline))
            except ChannelTimeout:
                if callable(deadline) and _timeout(deadline):
                    continue  # bytes moved meanwhile (another thread's): the deadline moved
                raise
            if chunk and self.on_data is not None:
                self.on_data(len(chunk))
            return chunk

    def read_exact(self, count: int, deadline: Deadline) -> bytes:
        if len(self._buffer) >= count:
            data = bytes(self._buffer[:count])
            del self._buffer[:count]
            return data
        if count >= _READ_INTO_BYTES:
            return self._read_into_new(count, deadline)
        # A frame's chunks are joined once, not grown into the buffer and copied out of it again.
        chunks = [bytes(self._buffer)]
        have = len(self._buffer)
        self._buffer = bytearray()
        while have < count:
            chunk = self._read(max(65536, count - have), deadline)
            if not chunk:
                detail = self._stream.diagnostics()
                suffix = f" ({detail})" if detail else ""
                raise ChannelClosed(self._stream.host, f"helper exited unexpectedly{suffix}")
            if have + len(chunk) > count:  # the start of the next frame: kept for it
                self._buffer += chunk[count - have:]
                chunk = chunk[:count - have]
            chunks.append(chunk)
            have += len(chunk)
        return b"".join(chunks)

    def _read_into_new(self, count: int, deadline: Deadline) -> bytes:
        """``count`` bytes (a large blob: a pull's part) read straight into one new buffer,
        nothing read past them."""
        data = bytearray(count)
        view = memoryview(data)
        have = len(self._buffer)
        view[:have] = self._buffer
        self._buffer = bytearray()
        while have < count:
            while True:
                try:
                    got = self._stream.read_into(view[have:], _timeout(deadline))
                    break
                except ChannelTimeout:
                    if callable(deadline) and _timeout(deadline):
                        continue  # bytes moved meanwhile (another thread's): the deadline moved
                    raise
            if not got:
                detail = self._stream.diagnostics()
                suffix = f" ({detail})" if detail else ""
                raise ChannelClosed(self._stream.host, f"helper exited unexpectedly{suffix}")
            if self.on_data is not None:
                self.on_data(got)
            have += got
        view.release()
        return data  # type: ignore[return-value]  # a bytearray: bytes-like for every use

    def read_until(self, marker: bytes, limit: int, deadline: Deadline) -> bytes:
        """Return everything up to and including ``marker``; the rest stays buffered."""
        start = 0
        while True:
            index = self._buffer.find(marker, start)
            if index >= 0:
                end = index + len(marker)
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                return data
            if len(self._buffer) > limit:
                raise ChannelClosed(self._stream.host, f"no {marker!r} within {limit} bytes")
            start = max(0, len(self._buffer) - len(marker) + 1)
            chunk = self._read(65536, deadline)
            if not chunk:
                detail = self._stream.diagnostics()
                suffix = f" ({detail})" if detail else ""
                raise ChannelClosed(self._stream.host, f"helper exited before it started{suffix}")
            self._buffer += chunk
