"""What changed in a work dir since a cursor, told by the kernel (inotify), so that a
controller keeping two trees in step (``mngr pair``) waits for changes instead of listing
the tree again and again.

A feed watches every directory of its tree (a directory created or moved in is watched,
then listed, and everything found in it counts as changed: a file written before its
directory's watch was added is not missed). Each change is a path relative to the root,
numbered; a cursor names a feed and a number, and ``since(cursor)`` answers the paths
changed after it, waiting up to a timeout for the first one.

When the feed cannot say what changed (the kernel's event queue overflowed, more changes
piled up than the feed keeps, the cursor is from another feed or is new) it answers
"overflow": the caller compares the whole trees once, then follows the feed again.

Only the host daemon keeps feeds; a feed nobody asked for in ``IDLE_SECONDS`` closes.
Stdlib only, Linux only (inotify.py).
"""

import collections
import os
import select
import threading
import time

from . import files, inotify

MAX_CHANGES = 65536  # paths kept for a slow reader; past that, it hears "overflow"
MAX_FEEDS = 8
IDLE_SECONDS = 600.0
MAX_WAIT = 30.0

_enabled = False
_lock = threading.Lock()
_feeds = {}  # root -> _Feed


# No feed for this tree (no inotify, too many directories to watch): compare whole trees.
Unavailable = inotify.Unwatchable


def enable():
    """Keep feeds in this process (the host daemon: a helper serving one command never would)."""
    global _enabled
    _enabled = True


def enabled():
    return _enabled


def changes_since(root, cursor, wait, max_changes=MAX_CHANGES):
    """(new cursor, [changed paths], overflow) for the tree at ``root``: the paths changed
    after ``cursor``, waiting up to ``wait`` seconds for one. Unavailable if it cannot be
    watched."""
    real = os.path.realpath(root)
    with _lock:
        feed = _feeds.get(real)
        if feed is not None and feed.closed:
            feed = None
        if feed is None:
            for old_root, old in list(_feeds.items()):
                if old.closed:
                    del _feeds[old_root]
            if len(_feeds) >= MAX_FEEDS:
                oldest = min(_feeds, key=lambda key: _feeds[key].last_asked)
                _feeds.pop(oldest).close()
            feed = _Feed(real, max_changes)
            _feeds[real] = feed
    return feed.since(cursor, min(max(wait, 0.0), MAX_WAIT))


def close_all():
    with _lock:
        feeds = list(_feeds.values())
        _feeds.clear()
    for feed in feeds:
        feed.close()


class _Feed(object):
    def __init__(self, root, max_changes):
        self.root = root
        self.closed = False
        self.last_asked = time.monotonic()
        self._max_changes = max_changes
        self._inotify = inotify.Inotify()
        self._dirs = {}  # wd -> prefix ("" for the root, "a/b/" below it)
        self._id = os.urandom(6).hex()
        self._epoch = 0  # counted up at each overflow: older cursors are void
        self._serial = 0
        self._changes = collections.deque()  # (serial, path)
        self._changed = threading.Condition()
        try:
            self._watch_tree("")
        except Unavailable:
            self._inotify.close()
            raise
        self._thread = threading.Thread(target=self._run, name="change-feed")
        self._thread.daemon = True
        self._thread.start()

    def close(self):
        with self._changed:
            if self.closed:
                return
            self.closed = True
            self._changed.notify_all()

    def _cursor(self):
        return "%s.%d.%d" % (self._id, self._epoch, self._serial)

    def since(self, cursor, wait):
        deadline = time.monotonic() + wait
        with self._changed:
            self.last_asked = time.monotonic()
            parts = cursor.split(".")
            if len(parts) != 3 or parts[0] != self._id or parts[1] != str(self._epoch):
                return self._cursor(), [], True
            try:
                after = int(parts[2])
            except ValueError:
                return self._cursor(), [], True
            if after > self._serial or (self._changes and self._changes[0][0] > after + 1):
                return self._cursor(), [], True  # what came after it is no longer kept
            if not self._changes and after < self._serial:
                return self._cursor(), [], True
            while self._serial <= after and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            if self.closed:
                return self._cursor(), [], True
            if parts[1] != str(self._epoch):
                return self._cursor(), [], True
            if self._changes and self._changes[0][0] > after + 1:
                return self._cursor(), [], True
            seen = set()
            paths = []
            for serial, path in self._changes:
                if serial > after and path not in seen:
                    seen.add(path)
                    paths.append(path)
            self.last_asked = time.monotonic()
            return self._cursor(), paths, False

    # -- the reading thread -------------------------------------------------------------

    def _run(self):
        try:
            while True:
                with self._changed:
                    if self.closed or time.monotonic() - self.last_asked > IDLE_SECONDS:
                        self.closed = True
                        break
                readable, _, _ = select.select([self._inotify.fd], [], [], 1.0)
                if readable:
                    self._take_events()
        finally:
            self._inotify.close()

    def _take_events(self):
        changed = []
        overflow = False
        for wd, mask, name in self._inotify.events():
            if mask & inotify.IN_Q_OVERFLOW:
                overflow = True
                continue
            prefix = self._dirs.get(wd)
            if prefix is None:
                continue
            if mask & inotify.IN_IGNORED:
                del self._dirs[wd]
                continue
            if not name:
                continue  # the directory itself: its entry in its parent tells
            if name.startswith(files.PART_PREFIX) or name in files.SKIPPED_DIRS:
                continue
            path = prefix + name
            changed.append(path)
            if mask & inotify.IN_ISDIR and mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO):
                try:
                    changed.extend(self._watch_tree(path + "/"))
                except Unavailable:
                    overflow = True
        if overflow:
            self._start_over()
            return
        if not changed:
            return
        with self._changed:
            for path in changed:
                self._serial += 1
                self._changes.append((self._serial, path))
            while len(self._changes) > self._max_changes:
                self._changes.popleft()  # a reader this far behind hears "overflow"
            self._changed.notify_all()

    def _start_over(self):
        """Forget every change and watch the tree anew: readers compare whole trees."""
        for wd in list(self._dirs):
            self._inotify.remove(wd)
        self._dirs = {}
        try:
            self._watch_tree("")
        except Unavailable:
            self.close()
        with self._changed:
            self._start_over_locked()
            self._changed.notify_all()

    def _start_over_locked(self):
        self._epoch += 1
        self._changes.clear()

    def _watch_tree(self, prefix):
        """Watch the directory ``prefix`` and every one below it; the paths found below it."""
        found = {}

        def watch(directory):
            path = os.path.join(self.root, directory) if directory else self.root
            wd = self._inotify.add(path)
            if wd is not None:  # else gone since it was listed: an event says so
                self._dirs[wd] = directory

        files.walk(self.root, prefix, found, watch)
        return list(found)
