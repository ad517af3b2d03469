"""Connections opened, and requests sent on them, before the command asked for them
(controller/early_channel.py says when and why): held here until the provider opens the
same socket (stream.SocketStream.connect takes it) or the command ends (``discard``)."""

from __future__ import annotations

# As typing.TYPE_CHECKING: loaded before the rest of mngr (see local_walk.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


class Prefetched:
    """A connection to ``path`` with requests already on their way: {request id: body}."""

    def __init__(self, path: str, sock: socket.socket, sent: dict[int, bytes]) -> None:
        self.path = path
        self.sock = sock
        self.sent = sent


_offered: Prefetched | None = None


def offer(early: Prefetched) -> None:
    global _offered
    discard()
    _offered = early


def take(path: str) -> Prefetched | None:
    """The early connection, if it is to ``path``; it is then the caller's to close."""
    global _offered
    early = _offered
    if early is None or early.path != path:
        return None
    _offered = None
    return early


def discard() -> None:
    """Close an early connection nobody took."""
    global _offered
    if _offered is not None:
        _offered.sock.close()
        _offered = None
