"""RPC over one helper stream: many requests in flight, replies matched by request id.

There is no dedicated reader thread. Whichever caller is waiting takes the read lock and
reads frames off the stream, keeping replies meant for other callers; the others wait on a
condition until their reply shows up or the read lock is free for them to take. A lone
caller (the common case) therefore reads its own reply directly, with no thread hand-off,
which is what keeps a round trip in the tens of microseconds.

A request's timeout is about progress: it fails when no byte moved on the channel, either
way, for that long, so a slow link that keeps moving never times out and a frozen host
fails in bounded time. A write of a large frame is watched too: one blocked that long cuts
the stream off.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import msgspec

from ..errors import (
    ChannelClosed,
    ChannelTimeout,
    HelperUnresponsive,
    MngrError,
    ProtocolViolation,
    remote_error,
)
from . import protocol
from .bootstrap import complete_bootstrap
from .stream import BufferedReader, Stream

ReplyT = TypeVar("ReplyT")

_WRITE_SLICE = 64 * 1024  # progress is noted per slice: a slow link moves one in well under a second
_WATCHED_WRITE = 64 * 1024  # a frame that may not fit in the pipe: its write may block


class RpcClient:
    def __init__(self, stream: Stream, reader: BufferedReader | None = None) -> None:
        self.stream = stream
        self.host = stream.host
        self._reader = reader or BufferedReader(stream)
        self._reader.on_data = self._received
        self._last_progress = time.monotonic()
        # Requests already sent on the stream (early_channel.py): their ids are taken, and a
        # call of an equal request waits for that reply instead of sending it again.
        self._prefetched = dict(getattr(stream, "prefetched", None) or {})
        self._ids = itertools.count(max(self._prefetched, default=0) + 1)
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._replies_changed = threading.Condition()
        self._replies: dict[int, tuple[protocol.Reply, bytes]] = {}
        # A reply's bytes count as received when its caller takes it: an early reply nobody
        # asked for (see _already_sent) was no part of what the command moved.
        self._reply_bytes: dict[int, int] = {}
        self._failure: MngrError | None = None
        self.helper_was_sent = False
        # The bytes of frames this client sent and read (what a transfer cost on the wire).
        self.bytes_sent = 0
        self.bytes_received = 0
        self.bytes_arrived = 0  # as they are read, reply or not: how far a transfer got, live

    @classmethod
    def bootstrap(cls, stream: Stream, timeout: float | None = 30.0) -> RpcClient:
        """Run the first-stage handshake on a fresh stream and return a client for it."""
        reader = BufferedReader(stream)
        client = cls(stream, reader)
        client.helper_was_sent = complete_bootstrap(stream, reader, timeout)
        return client

    def call(
        self,
        request: msgspec.Struct,
        expect: type[ReplyT],
        blob: bytes = b"",
        timeout: float | None = None,
    ) -> ReplyT:
        reply, _ = self.call_with_blob(request, expect, blob, timeout)
        return reply

    def call_with_blob(
        self,
        request: msgspec.Struct,
        expect: type[ReplyT],
        blob: bytes = b"",
        timeout: float | None = None,
        probe: float | None = None,
    ) -> tuple[ReplyT, bytes]:
        """Send ``request`` and wait for its reply; an Error reply raises the matching RemoteError.

        With a ``probe``, a Ping goes just before the request (no extra round trip): the far
        end answers Pings at once, so no Pong within ``probe`` seconds raises
        HelperUnresponsive, however long the request itself may take.
        """
        if self._failure is not None:
            raise self._failure
        what = type(request).__name__
        request_id = self._already_sent(request) if self._prefetched and not blob else 0
        ping_id: int | None = None
        if request_id:
            if probe is not None:  # an early Ping went ahead of the early requests (early_channel.py)
                ping_id = self._already_sent(protocol.Ping()) or None
        else:
            ping_id = next(self._ids) if probe is not None else None
            request_id = next(self._ids)
            head = protocol.encode_head(request_id, request, len(blob))
            with self._send_lock:
                if ping_id is not None:
                    self._write([protocol.encode_frame(ping_id, protocol.Ping())], probe, "Ping")
                # A large blob (a batch of files: megabytes) is written as it is, not copied behind its head.
                self._write([head, blob] if len(blob) > _WATCHED_WRITE else [head + blob], timeout, what)
        if ping_id is not None:
            try:
                self._wait_for(ping_id, probe, "Ping")
            except ChannelTimeout as exc:
                raise HelperUnresponsive(self.host, f"no answer to a Ping within {probe:g} s") from exc
        reply, reply_blob = self._wait_for(request_id, timeout, what)
        if isinstance(reply, protocol.Error):
            raise remote_error(self.host, reply.code, reply.message)
        if not isinstance(reply, expect):
            raise ProtocolViolation(
                self.host, f"expected {expect.__name__} for {type(request).__name__}, got {type(reply).__name__}"
            )
        return reply, reply_blob

    def _already_sent(self, request: msgspec.Struct) -> int:
        """The id of an early request equal to ``request`` (taken: each is used once), or 0."""
        with self._send_lock:
            for request_id, body in self._prefetched.items():
                try:
                    same = protocol.decode_request(body) == request
                except msgspec.DecodeError:
                    same = False
                if same:
                    del self._prefetched[request_id]
                    self.bytes_sent += protocol.HEADER.size + len(body)  # it is this call's, sent early
                    return request_id
        return 0

    def _received(self, count: int) -> None:
        self._last_progress = time.monotonic()
        self.bytes_arrived += count

    def _stalled_at(self, stall: float) -> Callable[[], float]:
        """The moment the channel counts as stuck: ``stall`` seconds after bytes last moved."""
        return lambda: self._last_progress + stall

    def _write(self, pieces: list[bytes], stall: float | None, what: str) -> None:
        """Write the frame made of ``pieces``."""
        if stall is None or sum(len(piece) for piece in pieces) <= _WATCHED_WRITE:
            for piece in pieces:
                self.stream.write(piece)
                self._last_progress = time.monotonic()
                self.bytes_sent += len(piece)
            return
        writing = threading.Event()
        stuck = threading.Event()

        def watch() -> None:
            while not writing.wait(min(1.0, stall / 4)):
                if time.monotonic() - self._last_progress > stall:
                    stuck.set()
                    self.stream.abort()
                    return

        watchdog = threading.Thread(target=watch, daemon=True)
        watchdog.start()
        try:
            for piece in pieces:
                view = memoryview(piece)
                for start in range(0, len(piece), _WRITE_SLICE):
                    self.stream.write(view[start:start + _WRITE_SLICE])
                    self._last_progress = time.monotonic()
                    self.bytes_sent += min(_WRITE_SLICE, len(piece) - start)
        except ChannelClosed as exc:
            if stuck.is_set():
                self._fail(ChannelTimeout(self.host, f"sending {what} made no progress for {stall:.0f} s"))
            else:
                self._fail(exc)
            raise self._failure from exc  # type: ignore[misc]
        finally:
            writing.set()
            watchdog.join()

    def _wait_for(self, request_id: int, stall: float | None, what: str) -> tuple[protocol.Reply, bytes]:
        deadline = None if stall is None else self._stalled_at(stall)
        while True:
            with self._replies_changed:
                if request_id in self._replies:
                    return self._take(request_id)
                if self._failure is not None:
                    raise self._failure
            if self._read_lock.acquire(blocking=False):
                try:
                    # A reply may have landed between the check above and taking the lock.
                    with self._replies_changed:
                        if request_id in self._replies:
                            return self._take(request_id)
                    self._read_one_frame(deadline, what)
                finally:
                    self._read_lock.release()
                    with self._replies_changed:
                        self._replies_changed.notify_all()
            else:
                if deadline is not None and time.monotonic() >= deadline():
                    raise ChannelTimeout(self.host, f"no reply to {what}: nothing moved for {stall:.0f} s")
                with self._replies_changed:
                    if request_id not in self._replies and self._failure is None:
                        self._replies_changed.wait(timeout=0.05)

    def _take(self, request_id: int) -> tuple[protocol.Reply, bytes]:
        """The reply to ``request_id``, taken (with the lock of ``_replies_changed`` held)."""
        self.bytes_received += self._reply_bytes.pop(request_id, 0)
        return self._replies.pop(request_id)

    def _read_one_frame(self, deadline: Callable[[], float] | None, what: str) -> None:
        try:
            # A timeout before any byte of the header arrived leaves the stream in step; one
            # after it (mid-frame) does not, so from then on the client is unusable.
            header = self._reader.read_exact(protocol.HEADER.size, deadline)
            request_id, body_length, blob_length = protocol.HEADER.unpack(header)
            if body_length > protocol.MAX_BODY_BYTES or blob_length > protocol.MAX_BLOB_BYTES:
                raise ProtocolViolation(self.host, f"reply frame too large ({body_length}+{blob_length} bytes)")
            try:
                body = self._reader.read_exact(body_length, deadline)
                blob = self._reader.read_exact(blob_length, deadline) if blob_length else b""
            except ChannelTimeout as exc:
                self._fail(ChannelTimeout(self.host, f"reply to {what} stopped arriving mid-frame"))
                raise self._failure from exc  # type: ignore[misc]
        except ChannelClosed as exc:
            self._fail(ChannelClosed(self.host, f"{exc.detail} during {what}"))
            raise self._failure from exc  # type: ignore[misc]
        except ProtocolViolation as exc:
            self._fail(exc)
            raise
        try:
            reply = protocol.decode_reply(body)
        except msgspec.DecodeError as exc:
            self._fail(ProtocolViolation(self.host, f"malformed reply: {exc}"))
            raise self._failure from exc  # type: ignore[misc]
        with self._replies_changed:
            if request_id == 0 and isinstance(reply, protocol.Progress):
                self.bytes_received += len(header) + body_length + blob_length
                return  # its bytes were the news (see _received)
            self._replies[request_id] = (reply, blob)
            self._reply_bytes[request_id] = len(header) + body_length + blob_length

    def _fail(self, error: MngrError) -> None:
        with self._replies_changed:
            if self._failure is None:
                self._failure = error
            self._replies_changed.notify_all()

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
