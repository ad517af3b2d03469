"""The kernel's file-system events (inotify) through ctypes: one watch set, read without
waiting. Shared by the manifests the host daemon keeps (manifest_cache.py) and the change
feeds of ``mngr pair`` (change_feed.py). Stdlib only, Linux only: ``Unwatchable`` where
it is missing.
"""

import ctypes
import errno
import os
import struct

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
_IN_ONLYDIR = 0x01000000
_IN_DONT_FOLLOW = 0x02000000
_IN_EXCL_UNLINK = 0x04000000
# Everything that changes what a listing of the directory says, never through a link.
WATCH_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF | _IN_ONLYDIR | _IN_DONT_FOLLOW | _IN_EXCL_UNLINK
)
_EVENT_HEADER = struct.Struct("iIII")
_READ_BYTES = 256 * 1024  # a write of thousands of files queues tens of thousands of events

_libc = None


class Unwatchable(Exception):
    """No inotify here, or no room for another watch (the user's limit)."""


def available():
    """True if the kernel offers inotify (loaded once)."""
    try:
        _load()
    except Unwatchable:
        return False
    return True


def _load():
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch  # noqa: B018 - missing outside Linux
        except (OSError, AttributeError):
            raise Unwatchable("inotify is not available") from None
        _libc = libc
    return _libc


class Inotify(object):
    """One inotify instance: its watches and its queue of events."""

    def __init__(self):
        libc = _load()
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise Unwatchable(os.strerror(ctypes.get_errno()))
        self.fd = fd

    def add(self, path):
        """The watch of the directory ``path``; None if it went (or is no directory any
        more) since it was listed: an event says so."""
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise Unwatchable(os.strerror(code))
        return wd

    def remove(self, wd):
        _libc.inotify_rm_watch(self.fd, wd)

    def events(self, skip_prefix=b"", skip_in=()):
        """[(wd, mask, name)] of everything queued, without waiting. Events on a name that
        starts with ``skip_prefix`` in a watch of ``skip_in`` are left out unread: a
        write of many files makes several events per file on its part files, and decoding
        them would cost more than the write's own system calls."""
        found = []
        append = found.append
        unpack = _EVENT_HEADER.unpack_from
        header = _EVENT_HEADER.size
        fsdecode = os.fsdecode
        while True:
            try:
                data = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                return found
            offset = 0
            end = len(data)
            while offset + header <= end:
                wd, mask, _cookie, length = unpack(data, offset)
                offset += header
                if length and skip_prefix and data.startswith(skip_prefix, offset) and wd in skip_in:
                    offset += length
                    continue
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                append((wd, mask, fsdecode(name)))

    def close(self):
        os.close(self.fd)
