"""A TCP proxy on loopback that forwards at a set rate, for links slower than loopback
(this machine's kernel has no netem)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

_CHUNK = 16 * 1024
_BURST_SECONDS = 0.05  # of the rate's bytes, what a link's buffers may pass at once


class ThrottledProxy:
    """Listens on 127.0.0.1:``port`` and forwards each connection to 127.0.0.1:``target``,
    at most ``rate`` bytes a second each way. Stop with close()."""

    def __init__(self, target: int, rate: float) -> None:
        self.target = target
        self.rate = rate
        self.forwarded = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._start(self._accept)

    def _start(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, server]
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        # When the link is next free. What an idle link could have carried is lost, not saved
        # up: a connection that sat idle for seconds (as ssh's shared one does between
        # commands) must not then burst at loopback speed, or a sender measuring the link
        # would see a fast one.
        free_at = time.monotonic()
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
                self.forwarded += len(data)
                free_at = max(free_at, time.monotonic() - _BURST_SECONDS) + len(data) / self.rate
                ahead = free_at - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
