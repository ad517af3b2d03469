"""The order a push's batches land in when several are in flight at once.

A push keeps more than one WriteFiles on the way so that the host writes one batch while
the next one crosses the link. Requests run on threads of their own and may even arrive
out of order, yet a file's parts must be appended in order and the manifest tags chain
from one batch to the next: a batch names its push (``session``) and its place in it
(``sequence``, from 0), and waits here for the one before it. A batch after one that
failed fails too, so a push stops cleanly where it broke. Standard library only; Python 3.8.
"""

import contextlib
import threading

from .errors import RequestFailed


class _Session(object):
    __slots__ = ("failed", "next_sequence", "tag")

    def __init__(self, tag):
        self.next_sequence = 0
        self.tag = tag
        self.failed = False


class WriteOrder(object):
    """The sessions of one channel. ``turn`` waits for a batch's predecessor and hands on the
    manifest tag it left; ``close`` ends every wait (the channel went away)."""

    def __init__(self):
        self._changed = threading.Condition()
        self._sessions = {}
        self._ended = set()  # so that a stray late batch of an ended push fails instead of waiting
        self._closed = False

    @contextlib.contextmanager
    def turn(self, session, sequence, known, last):
        """Run the block when batch ``sequence`` of ``session`` is next; yields the tag the
        write starts from (``known`` for the first batch, else what the one before left) and
        takes the block's result from ``set_tag``. ``last``: the session ends with it."""
        if sequence < 0:
            raise RequestFailed("invalid", "a batch's sequence number is negative")
        with self._changed:
            if sequence == 0:
                if session in self._sessions or session in self._ended:
                    raise RequestFailed("invalid", "push session %r started twice" % session)
                self._sessions[session] = _Session(known)
            while True:
                state = self._sessions.get(session)
                if self._closed:
                    raise RequestFailed("aborted", "the channel closed before an earlier batch of this push came")
                if state is None and session in self._ended:
                    raise RequestFailed("invalid", "push session %r has ended" % session)
                if state is not None and state.next_sequence > sequence:
                    raise RequestFailed("invalid", "batch %d of push session %r came twice" % (sequence, session))
                if state is not None and state.next_sequence == sequence:
                    break
                self._changed.wait()
            if state.failed:
                self._finish(session, state, last, failed=True)
                raise RequestFailed("aborted", "an earlier batch of this push failed")
        outcome = _Outcome(state.tag)
        try:
            yield outcome
        except BaseException:
            with self._changed:
                self._finish(session, state, last, failed=True)
            raise
        with self._changed:
            state.tag = outcome.tag
            self._finish(session, state, last, failed=False)

    def _finish(self, session, state, last, failed):
        state.next_sequence += 1
        state.failed = state.failed or failed
        if last:
            del self._sessions[session]
            self._ended.add(session)
        self._changed.notify_all()

    def close(self):
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class _Outcome(object):
    """The manifest tag a batch starts from (``tag``); the block sets what it left."""

    __slots__ = ("tag",)

    def __init__(self, tag):
        self.tag = tag
