"""The host's operation lock (``$MNGR_HOST_DIR/locks/operation.lock``, an flock).

Every request that changes state holds it shared; what must see the host at rest holds it
exclusively: the idle watcher before it stops agents (it gives up at once and tries again
later), and gc (it waits a while). A process that dies lets go.
"""

import contextlib
import errno
import fcntl
import os
import time

from . import state
from .wire import RequestFailed


def _path():
    return os.path.join(state.ensure_dir(os.path.join(state.host_dir(), "locks")), "operation.lock")


def flock(fd, how):
    """``fcntl.flock(fd, how)``, again after EINTR; False if a non-blocking lock is taken."""
    while True:
        try:
            fcntl.flock(fd, how)
            return True
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise


@contextlib.contextmanager
def shared():
    """Held by every state-changing request: the watcher never acts during one."""
    fd = os.open(_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive(wait):
    """Held alone: yields True once no request holds it, or False after ``wait`` seconds
    (0: at once) with requests still at work."""
    fd = os.open(_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        taken = flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        while not taken and time.monotonic() < deadline:
            time.sleep(0.1)
            taken = flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield taken
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_or_busy(wait):
    """As ``exclusive``, raising RequestFailed ("busy") if it was not had in time."""
    with exclusive(wait) as taken:
        if not taken:
            raise RequestFailed("busy", "a mngr operation on this host has not finished in %d s; try again" % wait)
        yield
