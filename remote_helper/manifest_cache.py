"""Manifests of work dirs kept by the host daemon between requests, so that a push to a tree
that did not change does not walk it again.

A cached manifest is trusted only while the kernel says nothing changed: every directory of
the tree is watched with inotify (added before the directory is read, so a change during
the walk is not missed), and any event on the tree (a file written, created, removed,
renamed, its mode or times changed) makes the next request walk again. A tree whose
manifest follows .gitignore also depends on git's own files (the index, info/exclude, the
config): their lstat is compared as well. Watching costs a file descriptor per cached tree
and a kernel watch per directory; a tree that cannot be watched whole (the user's
``max_user_watches``) is simply walked every time, as without a cache.

The daemon's own writes (WriteFiles) are events too. ``writing`` tells them apart: when a
write's events name only the paths it wrote, the cached entries of those paths are read
again instead of dropping the cache, so that a push followed by another push walks once.

Each state of a cached manifest has a tag (this daemon, this tree, a generation counted up
at every change), so a controller that kept the manifest from last time asks with the tag
it has and hears "unchanged" instead of receiving it again. A write the cache took in
answers with the new tag: the controller, which knows what it wrote, updates its copy.
When the tree changed since the controller's tag by changes the cache took in (not walked
again), only the entries of the paths they touched are sent, and the paths gone
(``manifest_since``): one file changed on the host costs one entry, not the whole tree.

Only the host daemon keeps caches (``enable``): a helper that serves one command and exits
would pay for the watches and never use them. Stdlib only (ctypes), Linux only; anywhere
inotify is missing, every request walks.
"""

import contextlib
import os
import stat
import subprocess
import threading
import zlib

from . import files, inotify

MAX_TREES = 8
MAX_CHANGED_PATHS = 4096  # kept per tree for manifests sent as changes (manifest_since)

_enabled = False
_instance = ""  # random per daemon: a tag never names the state of another daemon's tree
_serials = iter(range(1, 1 << 62))
_lock = threading.Lock()
_trees = {}  # (root, include_ignored) -> _Tree, least recently used first


def enable():
    """Keep manifests in this process (the host daemon), if the kernel offers inotify."""
    global _enabled, _instance
    if not inotify.available():
        return
    _instance = os.urandom(6).hex()
    _enabled = True


def packed_manifest(root, include_ignored, guard=files.NO_GUARD, known=""):
    """(the zlib-compressed wire manifest of ``root``, without what ``guard`` hides, its
    tag, unchanged): the blob is empty when the caller's ``known`` tag is still the tree's.
    An empty tag: not cached."""
    return manifest_since(root, include_ignored, guard, known, changes=False)[:3]


def manifest_since(root, include_ignored, guard=files.NO_GUARD, known="", changes=True):
    """As packed_manifest, and a fourth: None, or the paths gone since the state tagged
    ``known`` (with everything below them), the blob then holding only the entries of the
    paths changed since (a kind other than a directory also replaces what was below it)."""
    if not _enabled:
        return files.packed_manifest(root, include_ignored, guard), "", False, None
    key = (os.path.realpath(root), include_ignored, guard.key())
    with _lock:
        tree = _trees.pop(key, None)
        if tree is not None:
            _trees[key] = tree  # most recently used last
    if tree is None:
        tree = _Tree(key[0], include_ignored, guard)
        with _lock:
            dropped = [_trees.pop(key, None)]
            _trees[key] = tree
            for old_key in list(_trees)[:-MAX_TREES]:
                dropped.append(_trees.pop(old_key))
        for old_tree in dropped:
            if old_tree is not None:
                old_tree.close()
    return tree.packed(known, changes)


class Write(object):
    """What one of the daemon's writes did: paths written (files, links, directories made or
    chmod'ed) and paths deleted (a directory with everything below it). ``tag`` is set
    afterwards: the tree's new tag if the write was taken into the cached manifest that
    had the tag ``known`` before it, else ""."""

    def __init__(self, known=""):
        self.known = known
        self.written = []
        self.deleted = []
        self.tag = ""


@contextlib.contextmanager
def writing(root, known=""):
    """Wrap the daemon's own writes to ``root``; the block fills in the Write it is given,
    so cached manifests of ``root`` can take the write in instead of walking again."""
    write = Write(known)
    if not _enabled:
        yield write
        return
    real = os.path.realpath(root)
    with _lock:
        trees = [tree for key, tree in _trees.items() if key[0] == real]
    for tree in trees:
        tree.begin_write()
    try:
        yield write
    except BaseException:
        for tree in trees:
            tree.end_write(None)
        raise
    for tree in trees:
        tree.end_write(write)


class _Tree(object):
    """One cached manifest and the watches that keep it honest."""

    def __init__(self, root, include_ignored, guard):
        self.root = root
        self.include_ignored = include_ignored
        self.guard = guard
        self._lock = threading.Lock()
        self._inotify = None
        self._dirs = {}  # wd -> directory prefix ("" for the root, "a/b/" below it)
        self._entries = None  # None: walk on the next request
        self._packed = None
        self._git_dir = None  # for a tree following .gitignore: git's files decide it too
        self._git_files = None
        self._serial = next(_serials)
        self._generation = 0
        self._tag_before_write = ""
        self._writing = 0
        self._quiet_before_write = False
        self._changed = {}  # generation -> paths it changed, for the generations taken in

    def close(self):
        with self._lock:
            self._forget()

    def tag(self):
        return "%s.%d.%d" % (_instance, self._serial, self._generation) if self._entries is not None else ""

    def packed(self, known="", changes=False):
        with self._lock:
            self._take_events()
            git_changed = self._git_dir is not None and self._git_files != _git_signature(self._git_dir)
            if self._entries is not None and git_changed:
                self._forget()
            if self._entries is None:
                try:
                    self._build()
                except inotify.Unwatchable:
                    self._forget()
                    return files.packed_manifest(self.root, self.include_ignored, self.guard), "", False, None
            if known and known == self.tag():
                return b"", known, True, None
            since = self._changed_since(known) if changes else None
            if since is not None:
                entries = self._entries
                changed = [entries[path] for path in since if path in entries]
                gone = [path for path in since if path not in entries]
                return zlib.compress(files.encode_manifest(changed), 1), self.tag(), False, gone
            if self._packed is None:
                self._packed = zlib.compress(files.encode_manifest(self._entries.values()), 1)
            return self._packed, self.tag(), False, None

    def _changed_since(self, known):
        """The paths changed since the state tagged ``known``; None if not all are known."""
        stem, _, generation = known.rpartition(".")
        if not known or stem != "%s.%d" % (_instance, self._serial) or not generation.isdigit():
            return None
        since = set()
        for later in range(int(generation) + 1, self._generation + 1):
            if later not in self._changed:
                return None
            since.update(self._changed[later])
        return sorted(since)

    def _note_changed(self, paths):
        """A new generation, made of changes to ``paths``."""
        self._packed = None
        self._generation += 1
        self._changed[self._generation] = paths
        total = sum(len(changed) for changed in self._changed.values())
        while total > MAX_CHANGED_PATHS:
            total -= len(self._changed.pop(min(self._changed)))

    def _forget(self):
        if self._inotify is not None:
            self._inotify.close()
        self._inotify = None
        self._dirs = {}
        self._entries = None
        self._packed = None
        self._changed = {}

    def _take_events(self):
        """Bring the cache up to date with what happened to the tree since it was last looked
        at: the paths the events name are read again (after the events were, so a change
        meanwhile is an event for next time). An event it cannot place (a full queue, an
        unknown watch, the root itself), any in a tree following .gitignore (whether a new
        file is listed is git's to say) and any during the daemon's own write (whose tag
        must then cover only what it wrote) drop the cache instead."""
        if self._inotify is None:
            return
        events = self._inotify.events(_PART_PREFIX, self._dirs)
        if not events:
            return
        paths = self._event_paths(events) if self._git_dir is None and not self._writing else None
        if paths is None:
            self._forget()
            return
        if not paths:
            return
        try:
            changed = self._take_in(paths)
        except (inotify.Unwatchable, OSError):
            self._forget()
            return
        self._note_changed(changed)

    def _event_paths(self, events):
        """The paths ``events`` name; None if one cannot be placed."""
        paths = []
        for wd, mask, name in events:
            if mask & inotify.IN_Q_OVERFLOW:
                return None
            prefix = self._dirs.get(wd)
            if prefix is None:
                if mask & inotify.IN_IGNORED:
                    continue  # the watch of a directory already taken out
                return None
            if name.startswith(files.PART_PREFIX):
                continue  # never listed; its rename to a listed name is an event of its own
            path = prefix + name if name else prefix[:-1]
            if not path:
                return None  # the root itself moved or went
            paths.append(path)
        return paths

    def _watch(self, prefix):
        wd = self._inotify.add(os.path.join(self.root, prefix) if prefix else self.root)
        if wd is not None:
            self._dirs[wd] = prefix

    def _build(self):
        self._forget()
        self._generation += 1
        self._inotify = inotify.Inotify()
        git_paths = None if self.include_ignored else files.git_paths_of(self.root)
        self._git_dir = None
        if git_paths is None:
            self._entries = files.manifest_entries(self.root, True, watch_dir=self._watch, guard=self.guard)
            return
        self._git_dir = _git_dir(self.root)
        if self._git_dir is None:
            raise inotify.Unwatchable("no git dir")
        self._git_files = _git_signature(self._git_dir)
        # git lists the files; watch their directories, then ask git again: a file created
        # between the first listing and its directory's watch would otherwise go unseen.
        watched = set()
        while True:
            entries = files.manifest_entries(self.root, False, git_paths=git_paths, guard=self.guard)
            for prefix in [""] + [path + "/" for path, entry in entries.items() if entry[1] == "d"]:
                if prefix not in watched:
                    watched.add(prefix)
                    self._watch(prefix)
            again = files.git_paths_of(self.root)
            if again == git_paths:
                break
            git_paths = again
        self._entries = entries

    # -- the daemon's own writes ----------------------------------------------------------

    def begin_write(self):
        with self._lock:
            self._take_events()
            if self._writing == 0:
                self._quiet_before_write = self._entries is not None
                self._tag_before_write = self.tag()
            self._writing += 1

    def end_write(self, write):
        with self._lock:
            self._writing -= 1
            if write is None or self._git_dir is not None or not self._quiet_before_write:
                # Failed half-way, or a tree following .gitignore (whether a new file is
                # ignored is git's to say): walk next time.
                self._forget()
                return
            if self._inotify is None:
                return
            if not self._only_own_events(write):
                self._forget()
                return
            try:
                changed = self._take_in(write.written + write.deleted)
            except (inotify.Unwatchable, OSError):
                self._forget()
                return
            self._note_changed(changed)
            if write.known and write.known == self._tag_before_write and self._writing == 0:
                write.tag = self.tag()

    def _only_own_events(self, write):
        # Ours: an event on a path written or deleted, on a directory on the way to one
        # (made by the write), or below a path deleted (a directory removed whole). Part
        # files are never listed, and a part's rename to a written path is seen there.
        own = set(write.written)
        own.update(write.deleted)
        for path in list(own):
            parent = path.rpartition("/")[0]
            while parent and parent not in own:
                own.add(parent)
                parent = parent.rpartition("/")[0]
        below_deleted = tuple(path + "/" for path in write.deleted)
        dirs = self._dirs
        for wd, mask, name in self._inotify.events(_PART_PREFIX, dirs):
            prefix = dirs.get(wd)
            if mask & inotify.IN_Q_OVERFLOW or prefix is None:
                return False
            path = prefix + name if name else prefix[:-1]
            if path in own or (below_deleted and path.startswith(below_deleted)):
                continue
            return False
        return True

    def _take_in(self, written):
        """Read again what a write touched, and watch (and list) the directories it made;
        the paths whose entries may have changed (one gone takes what was below it along)."""
        # One lstat per path, used both to tell what is gone and for the entry.
        base = self.root if self.root.endswith("/") else self.root + "/"
        infos = {}
        for path in written:
            if path not in infos:
                try:
                    infos[path] = os.lstat(base + path)
                except OSError:
                    infos[path] = None  # gone (or no longer reachable: as good as gone)
        gone = [path for path in written if infos[path] is None]
        changed = set(gone)
        if gone:
            gone_set = set(gone)
            prefixes = tuple(path + "/" for path in gone)
            for path in list(self._entries):
                if path in gone_set or path.startswith(prefixes):
                    del self._entries[path]
            for wd, prefix in list(self._dirs.items()):
                if prefix and (prefix.startswith(prefixes) or prefix[:-1] in gone_set):
                    del self._dirs[wd]
        # Each path with the directories on its way (always added whole: a path in
        # ``touched`` has its parents there too).
        touched = set()
        for path in set(written).difference(gone):
            if _in_skipped_dir(path) or self.guard.hides(path):
                continue
            while path and path not in touched:
                touched.add(path)
                path = path.rpartition("/")[0]
        for path in gone:  # what a removal leaves: directories whose mtime it moved
            if _in_skipped_dir(path) or self.guard.hides(path):
                continue
            path = path.rpartition("/")[0]
            while path and path not in touched:
                touched.add(path)
                path = path.rpartition("/")[0]
        watched = set(self._dirs.values())
        walked = set()  # directories listed whole just now: nothing below them to read again
        for path in sorted(touched, key=lambda item: item.count("/")):
            parent = path.rpartition("/")[0]
            if parent in walked:
                walked.add(path)
                continue
            changed.add(path)
            was = self._entries.get(path)
            if path in infos:
                info = infos[path]
            else:
                try:
                    info = os.lstat(base + path)
                except FileNotFoundError:
                    info = None
            if was is not None and was[1] == "d" and (info is None or not stat.S_ISDIR(info.st_mode)):
                self._drop_below(path, watched)  # a directory no more: nothing below it stays
            if info is None:
                self._entries.pop(path, None)
                continue
            self._entries[path] = files.entry_of(path, info, self.root)
            if stat.S_ISDIR(info.st_mode) and path + "/" not in watched:
                found = {}
                files.walk(self.root, path + "/", found, self._watch, frozenset(self.guard.paths))
                self._entries.update(found)
                changed.update(found)
                walked.add(path)
        return changed

    def _drop_below(self, path, watched):
        prefix = path + "/"
        for below in [key for key in self._entries if key.startswith(prefix)]:
            del self._entries[below]
        for wd, dir_prefix in list(self._dirs.items()):
            if dir_prefix.startswith(prefix):
                del self._dirs[wd]
                watched.discard(dir_prefix)


_PART_PREFIX = files.PART_PREFIX.encode("ascii")


def _in_skipped_dir(path):
    """True if ``path`` is or lies in a directory that never travels (.git)."""
    return any(name in path for name in files.SKIPPED_DIRS) and not files.SKIPPED_DIRS.isdisjoint(path.split("/"))


def _git_dir(root):
    try:
        completed = subprocess.run(
            ["git", "-C", root, "rev-parse", "--absolute-git-dir"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    path = completed.stdout.decode("utf-8", "surrogateescape").strip()
    return path if completed.returncode == 0 and path else None


def _git_signature(git_dir):
    """lstat of the files besides the tree that decide what git lists (None where absent)."""
    signature = []
    home = os.path.expanduser("~")
    for path in (os.path.join(git_dir, "index"), os.path.join(git_dir, "info", "exclude"),
                 os.path.join(git_dir, "config"), os.path.join(git_dir, "HEAD"),
                 os.path.join(home, ".gitconfig"), os.path.join(home, ".config", "git", "ignore")):
        try:
            info = os.lstat(path)
            signature.append((info.st_ino, info.st_size, info.st_mtime_ns))
        except OSError:
            signature.append(None)
    return signature
