"""The helper says it is at work while it hashes a large file, and while a large frame
arrives, so that a timeout about progress (controller/channel/rpc.py) does not take a long
computation or a slow link for a frozen host. The helper's Server in-process, on a socket pair."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from mngr.remote_helper import files, server
from mngr.remote_helper.wire import HEADER, encode_body, encode_frame


def _frames(sock: socket.socket, until: str) -> list[tuple[int, str]]:
    """(request id, type) of the frames read until one of type ``until``."""
    reader = server.FrameReader(sock.fileno())
    seen: list[tuple[int, str]] = []
    while not seen or seen[-1][1] != until:
        request_id, body_length, blob_length = HEADER.unpack(reader.read_exact(HEADER.size))
        body = json.loads(reader.read_exact(body_length))
        if blob_length:
            reader.read_exact(blob_length)
        seen.append((request_id, body["type"]))
    return seen


class _Serving:
    """The helper's Server on one end of a socket pair, on a thread; ``ours`` is the other end."""

    def __enter__(self) -> socket.socket:
        self.ours, self._theirs = socket.socketpair()
        helper = server.Server(self._theirs.fileno(), self._theirs.fileno(), "test")
        self._thread = threading.Thread(target=helper.serve, daemon=True)
        self._thread.start()
        return self.ours

    def __exit__(self, *exc_info: object) -> None:
        self.ours.shutdown(socket.SHUT_WR)  # end of input: the Server finishes and returns
        self._thread.join(timeout=10)
        self.ours.close()
        self._theirs.close()


def test_hashing_a_file_sends_progress_until_the_reply(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * (2 * 1024 * 1024))
    real = files.signatures_of

    def slow_signatures(root: str, path: str):  # type: ignore[no-untyped-def]
        time.sleep(0.6)
        return real(root, path)

    monkeypatch.setattr(files, "signatures_of", slow_signatures)
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.1)
    with _Serving() as ours:
        request = encode_body("GetSignatures", {"name": "", "path": "big.bin", "work_dir": str(tmp_path)})
        ours.sendall(encode_frame(7, request))
        seen = _frames(ours, "Signatures")
    assert seen[-1] == (7, "Signatures")
    assert seen.count((0, "Progress")) >= 3, seen


def test_a_slowly_arriving_frame_is_acknowledged_as_it_comes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(server, "PROGRESS_SECONDS", 0.05)
    with _Serving() as ours:
        frame = encode_frame(9, encode_body("Ping", {}), b"y" * 400_000)
        for start in range(0, len(frame), 50_000):
            ours.sendall(frame[start:start + 50_000])
            time.sleep(0.06)  # a slow link
        seen = _frames(ours, "Pong")
    assert seen[-1] == (9, "Pong")
    assert (0, "Progress") in seen, seen


def test_a_large_blob_read_into_a_buffer_is_exactly_its_bytes_and_the_next_frame_stays() -> None:
    # A push's batch is read straight into a bytearray: in pieces as the socket gives
    # them, what was already buffered first, nothing of the next frame taken.
    ours, theirs = socket.socketpair()
    blob = os.urandom(3 * 1024 * 1024 + 17)
    sending = threading.Thread(target=ours.sendall, args=(b"HEAD" + blob + b"NEXT",))
    sending.start()
    reader = server.FrameReader(theirs.fileno())
    assert reader.read_exact(4) == b"HEAD"
    got = reader.read_exact(len(blob), writable=True)
    assert isinstance(got, bytearray) and got == blob
    assert reader.read_exact(4) == b"NEXT"
    sending.join()
    ours.close()
    assert reader.read_exact(1, writable=True) is None  # the stream ended first
    theirs.close()
