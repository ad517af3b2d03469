"""The controller's stream reader over a real socket: a large blob is read straight into its
own buffer, whole, and nothing after it is taken from the next frame."""

from __future__ import annotations

import os
import random
import socket
import threading

import pytest

from mngr.controller.channel.stream import BufferedReader, SocketStream


def test_a_large_blob_arrives_whole_and_the_next_frame_is_left_alone() -> None:
    blob = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
    after = b"the next frame"
    ours, theirs = socket.socketpair()
    sent = b"head" + blob + after

    def send() -> None:
        for start in range(0, len(sent), 100_000):  # in pieces, as a pipe or socket delivers them
            theirs.sendall(sent[start:start + 100_000])

    sender = threading.Thread(target=send)
    sender.start()
    try:
        reader = BufferedReader(SocketStream("box", ours))
        seen: list[int] = []
        reader.on_data = seen.append
        assert reader.read_exact(4, None) == b"head"
        assert reader.read_exact(len(blob), None) == blob
        assert reader.read_exact(len(after), None) == after
        assert sum(seen) == len(sent)
    finally:
        sender.join()
        ours.close()
        theirs.close()


def test_a_stream_that_ends_inside_a_large_blob_is_a_closed_channel() -> None:
    from mngr.controller.errors import ChannelClosed

    ours, theirs = socket.socketpair()

    def send_part_and_go() -> None:
        theirs.sendall(os.urandom(2 * 1024 * 1024))
        theirs.close()

    sender = threading.Thread(target=send_part_and_go)
    sender.start()
    try:
        reader = BufferedReader(SocketStream("box", ours))
        with pytest.raises(ChannelClosed):
            reader.read_exact(3 * 1024 * 1024, None)
    finally:
        sender.join()
        ours.close()
