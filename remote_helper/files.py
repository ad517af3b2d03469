"""Trees of files at either end of a push or a pull: manifests, safe paths, atomic landing.

The same code runs in the helper (the agent's work dir) and in the controller (the user's
directory), so both ends judge paths and land files the same way:

- A path from the other side is relative, in "/" form, with no "." or ".." part, no NUL
  and no empty part; anything else is refused before anything is written.
- Nothing is written through a symlink: every directory on the way to a target is checked
  with lstat, and files are opened with O_NOFOLLOW. Symlinks themselves travel as links,
  their targets untouched, and are never followed.
- A file lands whole or not at all: it is written to a temporary name and renamed over
  the target once complete. Large files arrive in parts, into a part file in their
  directory named ``.mngr-part.<16 hex digits>`` (short enough beside a name of NAME_MAX
  bytes); the whole small files of a request of many are written into one staging
  directory of that form at the root, which nothing watches (see Staging). Neither is
  ever listed in a manifest.
- An entry that cannot land (permission denied, a directory in the way, mngr's own
  state: see guarded.py) is skipped and reported; the others land.
- A writer may say what it expects a path to be (a manifest entry, or absent): the file
  or link is then renamed into place, or the path deleted, only if it still is, checked
  right before the rename or unlink; else nothing happens to it (CHANGED_MEANWHILE).

A manifest lists [path, kind, mode, size, mtime_ns, link target] for every file ("f"),
symlink ("l") and directory ("d") below the root. In a git work tree it follows
``.gitignore`` (``git ls-files``) unless asked for everything; ``.git`` itself never
travels.
"""

import contextlib
import errno
import os
import stat
import sys

from .errors import RequestFailed
from .guarded import NO_GUARD

PART_PREFIX = ".mngr-part."
VANISHED = "vanished before it could be sent"  # listed, then gone when its turn came
# Git's own entry: a repository (a directory) or, in a worktree or a submodule, a file naming
# one elsewhere on this machine. Either way it is no content to copy: a transfer leaves it out
# on both ends (a repository's history travels as a bundle, see create --source and clone).
SKIPPED_DIRS = frozenset([".git"])
# The reason given for an entry not landed because its path was no longer as the writer
# expected (see ``expect`` below): a conflict for the writer to resolve, not an error.
CHANGED_MEANWHILE = "changed meanwhile"
ABSENT = "-"  # the kind of an expected entry that says: nothing is there


def path_to_wire(path):
    """``path`` (a str, its undecodable bytes as surrogateescape) for a JSON field: as it
    is when it is UTF-8, else a NUL (never in a file name) and its bytes in base64."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        import base64

        return "\0" + base64.b64encode(path.encode("utf-8", "surrogateescape")).decode("ascii")


def path_from_wire(value):
    """The path path_to_wire made ``value`` from; RequestFailed("invalid") if it is not one."""
    if not isinstance(value, str):
        raise RequestFailed("invalid", "a path must be a string: %r" % (value,))
    if not value.startswith("\0"):
        return value
    import base64
    import binascii

    try:
        return base64.b64decode(value[1:].encode("ascii"), validate=True).decode("utf-8", "surrogateescape")
    except (ValueError, binascii.Error):
        raise RequestFailed("invalid", "a path is neither text nor base64: %r" % (value,)) from None


def check_path(path):
    """``path`` if it is a safe relative path; RequestFailed("unsafe_path") otherwise."""
    # Searches of the path framed in "/" rather than a split of it: called for every file
    # of a transfer.
    if not isinstance(path, str) or not path or "\0" in path:
        raise RequestFailed("unsafe_path", "refusing unsafe path %r" % (path,))
    framed = "/" + path + "/"
    if "//" in framed or "/./" in framed or "/../" in framed:
        raise RequestFailed("unsafe_path", "refusing unsafe path %r" % (path,))
    return path


def outside_git(root):
    """True when git would find no repository for ``root``: no ``.git`` in it or any
    directory above, and no GIT_DIR to point elsewhere. Spares a plain tree's push or pull
    the git processes that would say so (a few ms each)."""
    if "GIT_DIR" in os.environ:
        return False
    path = os.path.abspath(root)
    while True:
        if os.path.lexists(os.path.join(path, ".git")):
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def git_paths_of(root):
    """Files git would consider (tracked, and untracked but not ignored), or None if ``root``
    is not in a git work tree or git is missing."""
    if outside_git(root):
        return None
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    try:
        completed = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    if completed.returncode != 0:
        return None
    paths = set()
    for raw in completed.stdout.split(b"\0"):
        if raw:
            paths.add(raw.decode("utf-8", "surrogateescape"))
    return paths


def entry_of(path, info, root):
    """The manifest entry of ``path`` (relative to ``root``), whose lstat is ``info``."""
    if stat.S_ISLNK(info.st_mode):
        return [path, "l", 0, 0, 0, os.readlink(os.path.join(root, path))]
    if stat.S_ISDIR(info.st_mode):
        return [path, "d", stat.S_IMODE(info.st_mode), 0, info.st_mtime_ns, ""]
    return [path, "f", stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns, ""]


def current_entry(root, path):
    """The manifest entry of what is at ``path`` now, None if nothing is (or a directory on
    the way is missing); never through a symlink."""
    parent_dir = os.path.dirname(path)
    try:
        directory = _safe_directory(root, parent_dir, create=False)
        info = os.lstat(os.path.join(directory, os.path.basename(path)))
    except (FileNotFoundError, NotADirectoryError, RequestFailed):
        return None
    return entry_of(path, info, root)


def same_entry(first, second):
    """Whether two entries (or None: nothing there) name the same version of a path: a file's
    mode, size and mtime, a link's target, a directory's mode."""
    if first is None or second is None:
        return first is second
    if first[1] != second[1]:
        return False
    if first[1] == "f":
        return list(first[2:5]) == list(second[2:5])
    if first[1] == "l":
        return first[5] == second[5]
    return first[2] == second[2]


def check_expected(root, path, expected):
    """Raise Conflict unless ``path`` is what ``expected`` says (an entry, or kind ABSENT).
    Called right before a rename or unlink, so a change made since the writer looked is
    never overwritten. A directory is only checked to still be a directory."""
    now = current_entry(root, path)
    if expected[1] == ABSENT:
        matches = now is None
    elif expected[1] == "d":
        matches = now is not None and now[1] == "d"
    else:
        matches = same_entry(now, [path, *expected[1:]])
    if not matches:
        raise Conflict(path)


class Conflict(Exception):
    """The path is no longer what the writer expected: nothing was written or deleted."""


def raw_manifest(root, include_ignored=False, guard=None):
    """The manifest in its wire form: for each entry six NUL-terminated fields, path, kind
    (f, l, d), mode in octal, size, mtime in nanoseconds and link target. (GNU find's
    -printf is no faster than os.scandir here: both spend their time in lstat.)"""
    return encode_manifest(manifest_entries(root, include_ignored, guard=guard).values())


def encode_manifest(entries):
    return "".join(
        "%s\0%s\0%o\0%d\0%d\0%s\0" % tuple(entry) for entry in entries
    ).encode("utf-8", "surrogateescape")


def manifest_entries(root, include_ignored=False, watch_dir=None, git_paths=None, guard=None):
    """{path: entry} for the tree below ``root``. ``watch_dir(prefix)`` (if given) is called
    for each directory (``""``, ``"a/"``, ...) before it is read; ``git_paths`` is the
    result of git_paths(root) when the caller already has it. What ``guard`` (guarded.py)
    hides is left out."""
    wanted = None if include_ignored else (git_paths if git_paths is not None else git_paths_of(root))
    entries = {}
    hidden = frozenset(guard.paths) if guard is not None else frozenset()
    if "" in hidden:
        return entries  # the whole tree is mngr's own state
    if wanted is None:
        walk(root, "", entries, watch_dir, hidden)
        return entries
    for path in wanted:
        parts = path.split("/")
        if any(part in SKIPPED_DIRS or part.startswith(PART_PREFIX) for part in parts):
            continue
        if hidden and guard.hides(path):
            continue
        try:
            info = os.lstat(os.path.join(root, path))
        except OSError:
            continue  # listed by git, gone from the disk (deleted, not yet committed)
        if stat.S_ISDIR(info.st_mode):
            continue  # a submodule: its own repository
        entries[path] = entry_of(path, info, root)
        parent = os.path.dirname(path)
        while parent and parent not in entries:
            entries[parent] = entry_of(parent, os.lstat(os.path.join(root, parent)), root)
            parent = os.path.dirname(parent)
    return entries


def parse_manifest(raw):
    """Entries from the wire form; ValueError if it is not well formed."""
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) % 6 != 1 or fields[-1] != "":
        raise ValueError("a manifest holds six fields per entry")
    entries = []
    for index in range(0, len(fields) - 1, 6):
        path, kind, mode, size, mtime, target = fields[index : index + 6]
        if kind == "f":
            entries.append([path, "f", int(mode, 8), int(size), int(mtime), ""])
        elif kind == "d":
            entries.append([path, "d", int(mode, 8), 0, int(mtime), ""])
        elif kind == "l":
            entries.append([path, "l", 0, 0, 0, target])
        else:
            raise ValueError("unknown kind %r in a manifest" % kind)
    return entries


def walk(root, prefix, entries, watch_dir=None, hidden=frozenset()):
    """Add every entry below ``root/prefix`` to ``entries`` (iteratively, never following
    links), calling ``watch_dir(prefix)`` for each directory before reading it; the paths
    in ``hidden``, and what is below them, are left out."""
    pending = [prefix]
    while pending:
        prefix = pending.pop()
        if watch_dir is not None:
            watch_dir(prefix)
        try:
            scanner = os.scandir(os.path.join(root, prefix) if prefix else root)
        except OSError:
            continue
        with scanner:
            for item in scanner:
                name = item.name
                path = prefix + name
                if path in hidden:
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                mode = info.st_mode
                if stat.S_ISDIR(mode):
                    if name in SKIPPED_DIRS or name.startswith(PART_PREFIX):
                        continue  # .git, or a staging directory (see Staging)
                    entries[path] = [path, "d", stat.S_IMODE(mode), 0, info.st_mtime_ns, ""]
                    pending.append(path + "/")
                elif name in SKIPPED_DIRS:
                    continue  # a worktree's or submodule's .git file (or a link): see SKIPPED_DIRS
                elif stat.S_ISREG(mode):
                    if not name.startswith(PART_PREFIX):
                        entries[path] = [path, "f", stat.S_IMODE(mode), info.st_size, info.st_mtime_ns, ""]
                elif stat.S_ISLNK(mode):
                    entries[path] = [path, "l", 0, 0, 0, os.readlink(item.path)]


def uncommitted(root):
    """Paths with uncommitted changes (modified, added, untracked) in ``root``'s git work
    tree, relative to ``root``; empty when it is not one."""
    if outside_git(root):
        return []
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    try:
        top = subprocess.run(
            ["git", "-C", root, "rev-parse", "--show-prefix"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        if top.returncode != 0:
            return []
        prefix = top.stdout.decode("utf-8", "surrogateescape").strip()
        completed = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "-z", "--untracked-files=all", "."],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
    except OSError:
        return []
    if completed.returncode != 0:
        return []
    paths = []
    records = completed.stdout.split(b"\0")
    index = 0
    while index < len(records):
        record = records[index]
        index += 1
        if len(record) < 4:
            continue
        status, path = record[:2], record[3:].decode("utf-8", "surrogateescape")
        if status[:1] in (b"R", b"C"):
            index += 1  # the original path of a rename or copy follows
        if path.startswith(prefix):
            paths.append(path[len(prefix):])
    return paths


# -- landing ------------------------------------------------------------------------------


def _safe_directory(root, relative_dir, create):
    """The real path of ``relative_dir`` below ``root``, refusing symlinks on the way."""
    current = root
    if not relative_dir:
        return current
    for part in relative_dir.split("/"):
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise RequestFailed("unsafe_path", "refusing to write through the symlink %s" % current)
        if not stat.S_ISDIR(info.st_mode):
            raise RequestFailed("unsafe_path", "%s is in the way of a directory" % current)
    return current


class OpenDirs(object):
    """Descriptors of directories below ``root`` for one request's many files: each opened
    from its parent's with O_NOFOLLOW (never through a symlink, and no window in which one
    swapped in could redirect a write), so a file costs no lstat of every directory on
    its way. At most ``MAX_OPEN`` are kept; ``close`` when done."""

    MAX_OPEN = 64

    def __init__(self, root):
        self.root = root
        self._fds = {}  # relative dir -> fd, least recently used first
        self._last = None  # (relative dir, fd) of the last call: files come directory by directory
        self._umask_applies = {}  # relative dir -> see umask_applies

    def fd(self, relative_dir, create):
        """The descriptor of ``relative_dir`` ("" for the root), made if ``create``."""
        last = self._last
        if last is not None and last[0] == relative_dir:
            return last[1]
        fd = self._fds.pop(relative_dir, None)
        if fd is None:
            fd = self._open(relative_dir, create)
        self._fds[relative_dir] = fd
        while len(self._fds) > self.MAX_OPEN:
            os.close(self._fds.pop(next(iter(self._fds))))
        self._last = (relative_dir, fd)
        return fd

    def _open(self, relative_dir, create):
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        if not relative_dir:
            return os.open(self.root, flags)
        parent_dir, _, name = relative_dir.rpartition("/")
        parent = self.fd(parent_dir, create)
        try:
            return os.open(name, flags | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent)
            return os.open(name, flags | os.O_NOFOLLOW, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # Linux says ENOTDIR for a symlink too (O_DIRECTORY is checked first): which is it?
            where = os.path.join(self.root, relative_dir)
            if exc.errno == errno.ELOOP or stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
                raise RequestFailed("unsafe_path", "refusing to write through the symlink %s" % where) from None
            raise RequestFailed("unsafe_path", "%s is in the way of a directory" % where) from None

    def umask_applies(self, relative_dir):
        """True if a file made in ``relative_dir`` gets the mode it is made with less the
        umask: the directory has no default ACL, which would decide instead."""
        applies = self._umask_applies.get(relative_dir)
        if applies is None:
            try:
                names = os.listxattr(self.fd(relative_dir, create=False))
                applies = "system.posix_acl_default" not in names
            except OSError as exc:  # no extended attributes here, so no ACL either
                applies = exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)
            except AttributeError:  # no listxattr on this system: say nothing
                applies = False
            self._umask_applies[relative_dir] = applies
        return applies

    def close(self):
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
        self._last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _remove(target):
    """Remove what is at ``target``; a directory only once it is empty (but for part files
    left by a transfer cut short). A transfer names what it removes entry by entry, deepest
    first, so a directory that still holds something it did not name (files .gitignore
    excludes, a nested .git, a file made since the listing) stays, with all of it."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(target)
        return
    try:
        os.rmdir(target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        with os.scandir(target) as listing:
            leftovers = [item.path for item in listing if item.name.startswith(PART_PREFIX)]
        if not leftovers:
            return
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(target)


def part_name(name):
    """The temporary name a file (or link) called ``name`` is written under before it lands:
    short, so that a name of NAME_MAX bytes still has one, and the same for every part of
    a file (parts arrive in several requests)."""
    global _sha1
    if _sha1 is None:  # loaded when first needed: a helper that lands no file never loads hashlib
        import hashlib

        _sha1 = hashlib.sha1
    return PART_PREFIX + _sha1(name.encode(_FS_ENCODING, "surrogateescape")).hexdigest()[:16]


_sha1 = None
_FS_ENCODING = sys.getfilesystemencoding()  # os.fsencode's, without its checks per call
_umask_now = None


def _umask():
    """This process's umask, read once (Linux says it in /proc; setting it to read it would
    change it for a moment for every thread); 0o777 where it cannot be read, so every
    file gets its mode set."""
    global _umask_now
    if _umask_now is None:
        _umask_now = 0o777
        try:
            with open("/proc/self/status", "rb") as status:
                for line in status:
                    if line.startswith(b"Umask:"):
                        _umask_now = int(line.split()[1], 8)
                        break
        except (OSError, ValueError, IndexError):
            pass
    return _umask_now


def write_part(root, path, data, file_offset, final, mode, mtime_ns, expected=None, dirs=None):
    """Write ``data`` at ``file_offset`` of the file at ``path``; on ``final``, land it.
    Whatever is at ``path`` stays if it is a directory: replacing one is a deletion, which
    the planning side asks for explicitly (and only with --delete). With ``expected`` (an
    entry, see check_expected), the file lands only if ``path`` is still that; else
    Conflict. ``dirs``: the request's OpenDirs of ``root``, if it has one."""
    _write_part(root, check_path(path), data, file_offset, final, mode, mtime_ns, expected, dirs)


def _write_part(root, path, data, file_offset, final, mode, mtime_ns, expected, dirs):
    """write_part of a path already checked (check_path)."""
    parent_dir, _, name = path.rpartition("/")
    if dirs is None:
        dir_fd = None
        directory = _safe_directory(root, parent_dir, create=True)
        part, target = os.path.join(directory, part_name(name)), os.path.join(directory, name)
    else:
        dir_fd = dirs.fd(parent_dir, create=True)
        part, target = part_name(name), name
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
    made_with_mode = False
    if file_offset == 0 and final:
        # A whole file is made with its own mode: where the umask leaves it whole, that
        # spares a chmod. A part file left by a transfer cut short is started over.
        try:
            fd = os.open(part, flags | os.O_EXCL, mode & 0o777, dir_fd=dir_fd)
            made_with_mode = (dirs is not None and (mode & 0o7777) == (mode & 0o777 & ~_umask())
                              and dirs.umask_applies(parent_dir))
        except FileExistsError:
            fd = os.open(part, flags | os.O_TRUNC, 0o600, dir_fd=dir_fd)
    else:
        fd = os.open(part, flags | os.O_TRUNC if file_offset == 0 else flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            if file_offset:  # a first part starts an empty file (O_TRUNC): where it is written
                if os.fstat(fd).st_size < file_offset:
                    raise RequestFailed("invalid", "part of %s arrived out of order" % path)
                os.lseek(fd, file_offset, os.SEEK_SET)
            _write_all(fd, data)
            if final:
                if file_offset:
                    os.ftruncate(fd, file_offset + len(data))
                if not made_with_mode:
                    os.fchmod(fd, mode & 0o7777)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        if final:
            if expected is not None:
                check_expected(root, path, expected)
            os.replace(part, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except (OSError, RequestFailed, Conflict):
        # A file that cannot be finished (a full disk, a directory in the way) leaves no
        # part behind: the next transfer sends it again from its start.
        with contextlib.suppress(OSError):
            os.unlink(part, dir_fd=dir_fd)
        raise


def _write_all(fd, data):
    written = os.write(fd, data) if len(data) else 0
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


class Staging(object):
    """One request's staging directory: ``.mngr-part.<16 hex digits>`` at the root, where
    its whole files are written, each then renamed to its name in its own directory.

    A file written in the directory it lands in costs that directory's watchers (the host
    daemon's kept manifest, pair's change feed) an event for each of its creation, write,
    mode, times, close and rename; nothing watches the staging directory, so a landed file
    makes one event (its arrival). Files land exactly as they would from a part file beside
    them: whole, with their mode and mtime set before the rename. Made on first use, for a
    request of at least ``MIN_FILES`` whole files; where it cannot be made (a read-only
    root) or a file's directory is on another file system (a rename cannot cross it),
    files are written beside their targets instead. ``close`` removes it; one left by a
    process killed mid-request is never listed and goes with ``mngr gc``."""

    MIN_FILES = 16

    def __init__(self, dirs):
        self._dirs = dirs
        self._fd = None
        self._name = None
        self._unusable = False
        self._made_with_mode = None  # whether a file made here gets exactly its mode (umask, ACL)
        self._elsewhere = set()  # directories a rename from here cannot reach (EXDEV)
        self._serial = 0

    def land(self, root, path, data, mode, mtime_ns, expected):
        """Land the whole file ``path`` (checked) with ``data``, as _write_part would."""
        parent_dir, _, name = path.rpartition("/")
        if self._fd is None and not self._unusable:
            self._make()
        if self._fd is None or parent_dir in self._elsewhere:
            _write_part(root, path, data, 0, True, mode, mtime_ns, expected, self._dirs)
            return
        dir_fd = self._dirs.fd(parent_dir, create=True)
        self._serial += 1
        temporary = "%x" % self._serial
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777,
                     dir_fd=self._fd)
        try:
            try:
                _write_all(fd, data)
                if not (self._made_with_mode and (mode & 0o7777) == (mode & 0o777 & ~_umask())):
                    os.fchmod(fd, mode & 0o7777)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
            if expected is not None:
                check_expected(root, path, expected)
            os.replace(temporary, name, src_dir_fd=self._fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self._fd)
            if exc.errno != errno.EXDEV:
                raise
            self._elsewhere.add(parent_dir)  # a mount point on the way: beside the target
            _write_part(root, path, data, 0, True, mode, mtime_ns, expected, self._dirs)
        except (RequestFailed, Conflict):
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self._fd)
            raise

    def _make(self):
        self._unusable = True  # one try per request
        root_fd = self._dirs.fd("", create=False)
        name = PART_PREFIX + os.urandom(8).hex()
        try:
            os.mkdir(name, 0o700, dir_fd=root_fd)
        except OSError:
            return  # the root is read-only to us, or full: files go beside their targets
        try:
            self._fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=root_fd)
            return
        self._name = name
        try:
            self._made_with_mode = "system.posix_acl_default" not in os.listxattr(self._fd)
        except (OSError, AttributeError):  # no extended attributes (so no ACL), or no listxattr
            self._made_with_mode = False

    def close(self):
        """Remove the staging directory (with anything a failure left in it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            for name in os.listdir(fd):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(self._name, dir_fd=self._dirs.fd("", create=False))


def discard_part(root, path):
    """Remove what a file given up on left of its parts (see write_part)."""
    parent_dir, name = os.path.split(check_path(path))
    with contextlib.suppress(OSError, RequestFailed):
        os.unlink(os.path.join(_safe_directory(root, parent_dir, create=False), part_name(name)))


def write_delta(root, path, ops, file_offset, final, mode, mtime_ns, old_version, block, digest):
    """Play a chunk of delta operations (see delta.py) against the file at ``path`` into its
    part file at ``file_offset``, if what they make has the chunk's ``digest`` and the old
    file is still at ``old_version`` (see version_of); on ``final``, land the result.
    RequestFailed("delta_mismatch") otherwise: nothing lands and no part stays.

    Where the old file's signatures are remembered (delta.remember), copied blocks are not
    hashed again, and the new file's signatures are learnt on the way and remembered for
    its version once it landed: the next delta against it need not read it to sign it."""
    from . import delta

    check_path(path)
    if not delta.MIN_BLOCK <= block <= delta.MAX_BLOCK or file_offset < 0:
        raise RequestFailed("invalid", "a delta of %s with block %r from %r" % (path, block, file_offset))
    parent_dir, name = os.path.split(path)
    directory = _safe_directory(root, parent_dir, create=False)
    part = os.path.join(directory, part_name(name))
    old_fd = open_regular(root, path)
    replaced = False
    key = (part, old_version, block)
    try:
        old_size = os.fstat(old_fd).st_size
        if version_of(os.fstat(old_fd)) != old_version:
            raise RequestFailed("delta_mismatch", "%s changed since its signatures were taken" % path)
        kept = delta.remembered(old_version, block)
        if file_offset == 0:
            delta.learning(key, delta.NewSignatures(block, *kept) if kept is not None else None)
        learn = delta.learning(key) if kept is not None else None
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if file_offset == 0 else 0)
        fd = os.open(part, flags, 0o600)
        try:
            if os.fstat(fd).st_size != file_offset:
                raise RequestFailed("invalid", "part of %s arrived out of order" % path)
            os.lseek(fd, file_offset, os.SEEK_SET)
            written, made = delta.apply_ops(ops, old_fd, block, old_size, fd, kept[1] if kept else None, learn,
                                            file_offset)
            if made != digest:
                raise RequestFailed("delta_mismatch", "%s rebuilt from a delta is not the file sent" % path)
            if version_of(os.fstat(old_fd)) != old_version:
                raise RequestFailed("delta_mismatch", "%s changed while it was rebuilt" % path)
            if final:
                size = file_offset + written
                learnt = learn.finish(fd, size) if learn is not None else None
                os.fchmod(fd, mode & 0o7777)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
                os.replace(part, os.path.join(directory, name))
                replaced = True
                landed = os.fstat(fd)
                # Nothing wrote to it since it landed: a write would have set its mtime to now.
                if learnt is not None and landed.st_mtime_ns == mtime_ns and landed.st_size == size:
                    delta.remember(version_of(landed), block, *learnt)
        finally:
            os.close(fd)
        if final:
            delta.learning(key, None)
            delta.forget(old_version, block)
    except (OSError, RequestFailed, delta.FileChanged) as exc:
        delta.learning(key, None)
        delta.forget(old_version, block)
        if not replaced:
            with contextlib.suppress(OSError):
                os.unlink(part)
        if isinstance(exc, delta.FileChanged):
            raise RequestFailed("delta_mismatch", "%s changed while it was rebuilt" % path) from None
        raise
    finally:
        if replaced:
            _close_later(old_fd)
        else:
            os.close(old_fd)


def _close_later(fd):
    """Close ``fd`` on a thread of its own: the last descriptor of a replaced large file
    frees its pages as it closes (tens of ms for hundreds of MB), which the reply need not
    wait for."""
    import threading

    threading.Thread(target=os.close, args=(fd,), daemon=True).start()


def signatures_of(root, path):
    """(block, size, version, records) of the regular file at ``path`` for a delta (see
    delta.py); block 0 when there is none worth one (missing, small, changing). Signatures
    remembered for the file's version are not taken again."""
    import time

    from . import delta

    started_ns = time.time_ns()
    try:
        fd = open_regular(root, path)
    except (OSError, RequestFailed):
        return 0, 0, "", b""
    try:
        before = os.fstat(fd)
        if before.st_size < delta.MIN_BYTES:
            return 0, 0, "", b""
        block = delta.block_size_for(before.st_size)
        version = version_of(before)
        kept = delta.remembered(version, block)
        if kept is not None:
            return block, before.st_size, version, kept[0]
        try:
            records, sha1s = delta.signed(fd, before.st_size, block)
        except delta.FileChanged:
            return 0, 0, "", b""
        if version_of(os.fstat(fd)) != version:
            return 0, 0, "", b""
        # Its rebuild copies blocks without hashing them again, on the word of these SHA-1s
        # while the file keeps this version; a file changed just now could change again
        # without a new version (SETTLE_NS): its blocks are hashed as they are copied.
        if before.st_ctime_ns <= started_ns - SETTLE_NS:
            delta.remember(version, block, records, sha1s)
        return block, before.st_size, version, records
    finally:
        os.close(fd)


def write_link(root, path, link_target, expected=None):
    check_path(path)
    parent_dir, name = os.path.split(path)
    directory = _safe_directory(root, parent_dir, create=True)
    temporary = os.path.join(directory, part_name(name))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    os.symlink(link_target, temporary)
    try:
        if expected is not None:
            check_expected(root, path, expected)
        os.replace(temporary, os.path.join(directory, name))
    except (OSError, Conflict):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def make_directory(root, path, mode):
    """Make the directory ``path`` (or set its mode). Its owner may always write in it
    while a transfer runs: a read-only directory gets its own mode at the end (see
    finish_directories), after its files landed."""
    check_path(path)
    directory = _safe_directory(root, path, create=True)
    os.chmod(directory, (mode | 0o700) & 0o7777)


def finish_directories(root, dirs):
    """Give the directories ``dirs`` ([path, mode, mtime_ns]) their own modes and
    modification times, deepest first, once everything in them landed (landing a file
    changes its directory's mtime; setting a directory's does not change its parent's).
    An mtime of 0 is left as it is. [[path, reason]] of those that could not be set."""
    skipped = []
    for path, mode, mtime_ns in sorted(dirs, key=lambda entry: entry[0].count("/"), reverse=True):
        try:
            check_path(path)
            directory = _safe_directory(root, path, create=False)
            os.chmod(directory, mode & 0o7777)
            if mtime_ns:
                os.utime(directory, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        except (OSError, RequestFailed) as exc:
            skipped.append([path, _reason(exc)])
    return skipped


def delete(root, path, expected=None):
    """Remove ``path``; a directory only if nothing is left in it (see _remove), else it
    stays, quietly: what it holds was never listed, so the other side never asked about
    it. A missing one is fine. With ``expected`` (see check_expected), only if ``path`` is
    still that, else Conflict; an expected directory that is not empty is a Conflict too."""
    check_path(path)
    parent_dir, name = os.path.split(path)
    try:
        directory = _safe_directory(root, parent_dir, create=False)
    except FileNotFoundError:
        return
    if expected is None:
        _remove(os.path.join(directory, name))
        return
    check_expected(root, path, expected)
    if expected[1] == ABSENT:
        return
    try:
        if expected[1] == "d":
            os.rmdir(os.path.join(directory, name))
        else:
            os.unlink(os.path.join(directory, name))
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise Conflict(path) from None
        raise


def open_regular(root, path, dirs=None):
    """A read-only descriptor of the regular file at ``path``, never through a symlink
    (``dirs``: the request's OpenDirs of ``root``, if it has one)."""
    fd = _open_no_link(root, check_path(path), dirs)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RequestFailed("invalid", "%s is not a regular file" % path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_no_link(root, path, dirs):
    """A read-only descriptor of what is at the checked ``path``, never through a symlink."""
    parent_dir, _, name = path.rpartition("/")
    try:
        if dirs is None:
            return os.open(os.path.join(_safe_directory(root, parent_dir, create=False), name),
                           os.O_RDONLY | os.O_NOFOLLOW)
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirs.fd(parent_dir, create=False))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RequestFailed("unsafe_path", "%s is a symlink, not a file" % path) from None
        raise


# A whole file is read first with one read of this many bytes and a stat after it (see
# _read_settled): enough for most source files, small enough to come from the heap.
_FIRST_READ = 256 * 1024


def _read_settled(root, path, dirs, started_ns):
    """(bytes, stat) of the whole regular file at the checked ``path``, as read_consistent
    gives them, for a file whose last change came before ``started_ns`` (when the caller
    began) by more than the clock's granularity: one read and one stat after it then
    vouch for the bytes (a change during the read would have moved the ctime, which
    nobody can set). A file changed since, or larger than one read, is read by
    read_consistent (FileUnsettled if it changed while it was read)."""
    fd = _open_no_link(root, path, dirs)
    try:
        try:
            data = os.pread(fd, _FIRST_READ, 0)
        except IsADirectoryError:
            raise RequestFailed("invalid", "%s is not a regular file" % path) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RequestFailed("invalid", "%s is not a regular file" % path)
        if len(data) < _FIRST_READ and len(data) == info.st_size and info.st_ctime_ns + SETTLE_NS <= started_ns:
            return data, info
        return read_consistent(fd)
    finally:
        os.close(fd)


# File timestamps come from a coarse clock (one kernel tick, up to 10 ms): a write in the
# same tick as our first stat leaves size, mtime and ctime as they were. A file is read
# only once its last change is older than this; a fresher one is read again a little later.
SETTLE_NS = 30 * 1000 * 1000
READ_ATTEMPTS = 4


class FileUnsettled(Exception):
    """A file changed while it was read, or too recently to tell (see SETTLE_NS)."""


def version_of(info):
    """What changes whenever a file's content or metadata may have: device, inode, size,
    mtime and ctime (a write, a chmod, a rename over it)."""
    return "%d:%d:%d:%d:%d" % (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_consistent(fd, offset=0, length=-1):
    """(bytes, stat) of an open file, from ``offset`` (``length`` bytes at most; -1: to its
    end), the stat being the one of exactly these bytes; FileUnsettled if it changed while
    it was read or just before."""
    import time

    before = os.fstat(fd)
    if before.st_ctime_ns > time.time_ns() - SETTLE_NS:
        raise FileUnsettled("changed just now")
    wanted = max(0, before.st_size - offset if length < 0 else length)
    # One read of the whole range (a part is at most a few MiB): no chunks to join into a copy.
    data = os.pread(fd, wanted, offset) if wanted else b""
    if 0 < len(data) < wanted:  # a short read: the rest in pieces
        chunks = [data]
        position, wanted = offset + len(data), wanted - len(data)
        while wanted > 0:
            chunk = os.pread(fd, min(wanted, 1 << 20), position)
            if not chunk:
                break
            chunks.append(chunk)
            position += len(chunk)
            wanted -= len(chunk)
        data = b"".join(chunks)
    after = os.fstat(fd)
    if version_of(after) != version_of(before):
        raise FileUnsettled("changed while it was read")
    return data, after


def _reason(exc):
    """One line saying why an entry was skipped."""
    if isinstance(exc, RequestFailed):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


# -- requests -----------------------------------------------------------------------------

MAX_PART_BYTES = 64 * 1024 * 1024  # what one part may inflate to


def _typed(entry, kinds, what):
    """``entry`` as a list of exactly these kinds, or RequestFailed("invalid")."""
    if not isinstance(entry, list) or len(entry) != len(kinds):
        raise RequestFailed("invalid", "%s entry must have %d fields" % (what, len(kinds)))
    for value, kind in zip(entry, kinds):
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise RequestFailed("invalid", "%s entry has a field of the wrong type: %r" % (what, entry))
    return entry


def _wire_parts(parts):
    """A WriteFiles request's ``parts`` checked for form (as _typed would), their paths
    decoded: one pass with exact type tests, as there is an entry per file."""
    if not isinstance(parts, list):
        raise RequestFailed("invalid", "parts must be a list")
    checked = []
    for entry in parts:
        if type(entry) is not list or len(entry) != 8:
            _typed(entry, _PART_KINDS, "parts")  # raises, saying why
        path, mode, mtime_ns, offset, length, compressed, file_offset, final = entry
        if not (type(path) is str and type(mode) is int and type(mtime_ns) is int and type(offset) is int
                and type(length) is int and type(compressed) is bool and type(file_offset) is int
                and type(final) is bool):
            _typed(entry, _PART_KINDS, "parts")  # raises for all but int and str subclasses
        checked.append([path_from_wire(path) if path[:1] == "\0" else path, mode, mtime_ns, offset, length,
                        compressed, file_offset, final])
    return checked


_PART_KINDS = (str, int, int, int, int, bool, int, bool)


def _from_wire(entry):
    return [path_from_wire(entry[0]), *entry[1:]]


def skipped_to_wire(skipped):
    return [[path_to_wire(path), reason] for path, reason in skipped]


# What is wrong with the host, not with an entry: a full disk or quota, a read-only file system.
_HOST_WIDE_ERRORS = frozenset([errno.ENOSPC, errno.EDQUOT, errno.EROFS])


def apply_write(root, dirs, links, parts, deletes, blob, guard=NO_GUARD, finish_dirs=(), expect=()):
    """Carry out a WriteFiles request, checking every entry's form before writing anything.

    ``expect`` holds manifest entries (kind ABSENT for "nothing there"): a link, a file's
    final part or a delete of such a path happens only if the path is still that entry at
    the moment of the rename or unlink; else it is skipped with CHANGED_MEANWHILE.

    An entry that cannot be carried out (mngr's own state per ``guard``, permission denied,
    a directory in the way) is skipped and the rest goes on; a full disk or a read-only file
    system fails the whole request (the host's error, not the entry's). Returns
    [[path, reason]] of the skipped ones. ``finish_dirs`` ([path, mode, mtime_ns]) get
    their own modes and mtimes last (see make_directory)."""

    dirs = [_from_wire(_typed(entry, (str, int), "dirs")) for entry in dirs]
    finish_dirs = [_from_wire(_typed(entry, (str, int, int), "finish_dirs")) for entry in finish_dirs]
    links = [[path_from_wire(path), path_from_wire(target)] for path, target in
             (_typed(entry, (str, str), "links") for entry in links)]
    parts = _wire_parts(parts)
    if not isinstance(deletes, list) or not all(isinstance(path, str) for path in deletes):
        raise RequestFailed("invalid", "deletes must be paths")
    deletes = [path_from_wire(path) for path in deletes]
    expected = {}
    for entry in expect:
        entry = _from_wire(_typed(entry, (str, str, int, int, int, str), "expect"))
        entry[5] = path_from_wire(entry[5])  # a link's target
        if entry[1] not in ("f", "l", "d", ABSENT):
            raise RequestFailed("invalid", "expect entry has an unknown kind: %r" % entry[1])
        expected[entry[0]] = entry
    for path in [entry[0] for entry in dirs + finish_dirs + links + parts] + list(deletes) + list(expected):
        check_path(path)
    blob_length = len(blob)
    for entry in parts:
        offset, length, file_offset = entry[3], entry[4], entry[6]
        if offset < 0 or length < 0 or offset + length > blob_length or file_offset < 0:
            raise RequestFailed("invalid", "part of %s lies outside the request's data" % entry[0])
    skipped = []
    failed = set()  # a file whose part failed: its later parts are not tried

    def attempt(path, action, *arguments):
        if path in failed:
            return
        try:
            reason = guard.why_not_write(path)
            if reason:
                raise RequestFailed("unsafe_path", reason)
            action(root, path, *arguments)
        except (Conflict, OSError, RequestFailed) as exc:
            _skip_entry(path, exc, failed, skipped)

    for path, mode in dirs:
        attempt(path, make_directory, mode)
    for path, link_target in links:
        attempt(path, write_link, link_target, expected.get(path))
    guarded = bool(guard.paths)
    whole_files = sum(1 for part in parts if part[7] and not part[6])
    with OpenDirs(root) as open_dirs:
        staging = Staging(open_dirs) if whole_files >= Staging.MIN_FILES else None
        try:
            _write_parts(root, parts, blob, expected, guard, guarded, open_dirs, staging, failed, skipped)
        finally:
            if staging is not None:
                staging.close()
    for path in sorted(deletes, key=lambda item: item.count("/"), reverse=True):
        reason = guard.why_not_delete(path)
        if reason:
            skipped.append([path, "not deleted: " + reason])
            continue
        try:
            delete(root, path, expected.get(path))
        except Conflict:
            skipped.append([path, CHANGED_MEANWHILE])
        except (OSError, RequestFailed) as exc:
            skipped.append([path, _reason(exc)])
    skipped.extend(finish_directories(root, [entry for entry in finish_dirs if not guard.why_not_write(entry[0])]))
    return skipped


def _write_parts(root, parts, blob, expected, guard, guarded, open_dirs, staging, failed, skipped):
    """apply_write's loop over the parts of files, which every file of a push goes through:
    the guard asked only when it guards something, the paths checked before."""
    import zlib

    whole = memoryview(blob)  # parts are written from views of the request's data, not copies
    for path, mode, mtime_ns, offset, length, compressed, file_offset, final in parts:
        data = whole[offset : offset + length]
        if compressed:
            inflater = zlib.decompressobj()
            try:
                data = inflater.decompress(data, MAX_PART_BYTES)
            except zlib.error as exc:
                raise RequestFailed("invalid", "part of %s is not valid zlib data: %s" % (path, exc)) from None
            if inflater.unconsumed_tail:
                raise RequestFailed("invalid", "part of %s inflates past %d bytes" % (path, MAX_PART_BYTES))
        if failed and path in failed:
            continue
        try:
            if guarded and guard.hides(path):
                raise RequestFailed("unsafe_path", guard.why_not_write(path))
            if staging is not None and final and not file_offset:
                staging.land(root, path, data, mode, mtime_ns, expected.get(path) if expected else None)
            else:
                _write_part(root, path, data, file_offset, final, mode, mtime_ns,
                            expected.get(path) if final and expected else None, open_dirs)
        except (Conflict, OSError, RequestFailed) as exc:
            _skip_entry(path, exc, failed, skipped)


def _skip_entry(path, exc, failed, skipped):
    """Note ``path`` as skipped for ``exc`` (its later parts are not tried), unless the error
    is the host's as a whole: every later entry would fail alike, so the transfer fails with
    one clear error."""
    if isinstance(exc, OSError) and exc.errno in _HOST_WIDE_ERRORS:
        raise exc
    failed.add(path)
    skipped.append([path, CHANGED_MEANWHILE if isinstance(exc, Conflict) else _reason(exc)])


def apply_delta(root, path, ops, fields, guard=NO_GUARD):
    """Carry out a WriteDelta request's ``fields`` with its operations ``ops``, like
    apply_write: [[path, reason]] if it could not land (a mismatch among them)."""
    try:
        reason = guard.why_not_write(path)
        if reason:
            raise RequestFailed("unsafe_path", reason)
        write_delta(root, path, ops, fields["offset"], fields["final"], fields["mode"], fields["mtime_ns"],
                    fields["old_version"], fields["block"], bytes.fromhex(fields["digest"]))
    except (OSError, RequestFailed, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno in _HOST_WIDE_ERRORS:
            raise
        return [[path, _reason(exc)]]
    return []


def read_delta(root, wire_path, records, block, old_size, literal_budget, guard=NO_GUARD, offset=0, length=0,
               signatures_tag=""):
    """(fields, operations) of a DeltaData reply: the delta of the file at ``wire_path``
    against the old file ``records`` describe (see delta.py), read consistently (the file
    did not change from the first byte read to the last), within ``literal_budget`` bytes
    of literal data (0: no limit); of its ``length`` bytes from ``offset`` only, if given
    (0: to its end). ``signatures_tag``: ``records`` are kept under it for the requests of
    the file's other parts, which send the tag alone."""
    import time

    from . import delta

    if offset < 0 or length < 0:
        raise RequestFailed("invalid", "a delta of the bytes from %r, %r of them" % (offset, length))
    if signatures_tag:
        records = delta.received_signatures(signatures_tag, records)
    path = check_path(path_from_wire(wire_path))
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            time.sleep(SETTLE_NS / 1e9)
        try:
            if guard.hides(path):
                raise RequestFailed("unsafe_path", guard.why_not_write(path))
            fd = open_regular(root, path)
        except (OSError, RequestFailed) as exc:
            return {"skipped": skipped_to_wire([[path, _reason(exc)]])}, b""
        try:
            before = os.fstat(fd)
            if before.st_ctime_ns > time.time_ns() - SETTLE_NS:
                continue
            # One chunk: the reply is one frame, its digest the chunk's.
            maker = delta.DeltaMaker(fd, before.st_size, records, block, old_size, chunk_bytes=1 << 62,
                                     literal_budget=literal_budget or None, start=offset,
                                     end=offset + length if length else None)
            try:
                chunks = list(maker)
            except delta.TooDifferent:
                return {"too_different": True}, b""
            except delta.FileChanged:
                continue
            if version_of(os.fstat(fd)) != version_of(before):
                continue
        except OSError as exc:
            return {"skipped": skipped_to_wire([[path, _reason(exc)]])}, b""
        finally:
            os.close(fd)
        ops, _, digest = chunks[0] if chunks else (b"", 0, delta.chunk_digest().digest())
        packed, compressed = pack(ops)
        return {"version": version_of(before), "size": before.st_size, "mode": stat.S_IMODE(before.st_mode),
                "mtime_ns": before.st_mtime_ns, "digest": digest.hex(), "compressed": compressed}, packed
    return {"skipped": skipped_to_wire([[path, "kept changing while it was read"]])}, b""


def written_paths(dirs, links, parts, finish_dirs):
    """The paths a WriteFiles request's entries name, as paths (see path_from_wire)."""
    return [path_from_wire(entry[0]) for entry in list(dirs) + list(links) + list(parts) + list(finish_dirs)]


_SAMPLE = 64 * 1024


def pack(data):
    """(bytes to send, compressed?): zlib at its fastest level, when that saves a tenth.

    Large data whose first 64 KiB do not compress (archives, media, random) is sent as it
    is without compressing the rest.
    """
    import zlib

    if len(data) < 512:
        return data, False
    if len(data) > 4 * _SAMPLE and len(zlib.compress(data[:_SAMPLE], 1)) >= _SAMPLE * 0.9:
        return data, False
    packed = zlib.compress(data, 1)
    if len(packed) < len(data) * 0.9:
        return packed, True
    return data, False


def read_many(root, paths, guard=NO_GUARD, offset=0, length=0, compress=True):
    """(entries, blob, skipped, versions) for a FileData reply: each file's bytes (packed
    if ``compress``), with the mode and mtime of exactly those bytes (see
    read_consistent) and its version (version_of); with a ``length``, only that many bytes
    of the one file in ``paths`` from ``offset``. A file that cannot be read (gone, unreadable, mngr's own state) or
    keeps changing while it is read is skipped, with why."""
    import time

    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise RequestFailed("invalid", "paths must be a list of paths")
    if offset < 0 or length < 0 or ((offset or length) and len(paths) != 1):
        raise RequestFailed("invalid", "a range is read from exactly one file")
    paths = [path_from_wire(path) for path in paths]
    for path in paths:
        check_path(path)
    entries = []
    chunks = []
    skipped = []
    versions = []
    blob_offset = 0
    pending = paths
    whole = not offset and not length
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            time.sleep(SETTLE_NS / 1e9)
        unsettled = []
        started_ns = time.time_ns()
        with OpenDirs(root) as open_dirs:
            for path in pending:
                try:
                    if guard.hides(path):
                        raise RequestFailed("unsafe_path", guard.why_not_write(path))
                    if whole:
                        data, info = _read_settled(root, path, open_dirs, started_ns)
                    else:
                        fd = open_regular(root, path, open_dirs)
                        try:
                            data, info = read_consistent(fd, offset, length or -1)
                        finally:
                            os.close(fd)
                except FileUnsettled:
                    unsettled.append(path)
                    continue
                except (OSError, RequestFailed) as exc:
                    skipped.append([path, VANISHED if isinstance(exc, FileNotFoundError) else _reason(exc)])
                    continue
                packed, compressed = pack(data) if compress else (data, False)
                entries.append([path_to_wire(path), blob_offset, len(packed), compressed,
                                stat.S_IMODE(info.st_mode), info.st_mtime_ns, info.st_size])
                versions.append(version_of(info))
                chunks.append(packed)
                blob_offset += len(packed)
        pending = unsettled
        if not pending:
            break
    skipped += [[path, "kept changing while it was read"] for path in pending]
    return entries, b"".join(chunks), skipped_to_wire(skipped), versions


def packed_manifest(root, include_ignored, guard=None):
    import zlib

    return zlib.compress(raw_manifest(root, include_ignored, guard), 1)


def prepare_work_dir(host_dir, name, path, bundle, branch="", new_branch="", clone_url=""):
    """Make a new work dir (``path``, or ``host_dir/work/name``); fill it from ``bundle``
    (or a clone of ``clone_url``), with ``branch`` checked out, or ``new_branch`` made at
    the bundle's (the clone's) HEAD and checked out.

    The dir must not exist yet or be empty: a work dir full of someone's files is never
    mixed with another tree. Returns the absolute path.
    """
    given = bool(path)
    path = os.path.abspath(os.path.expanduser(path or os.path.join(host_dir, "work", name)))
    if os.path.lexists(path) and (not os.path.isdir(path) or os.path.islink(path) or os.listdir(path)):
        raise RequestFailed("invalid", "work dir %s already exists and is not empty" % path)
    existed = os.path.isdir(path)  # empty: left as it was found if filling it fails
    made_dirs = os.path.join(host_dir, "work")
    if os.path.dirname(path) == os.path.abspath(os.path.expanduser(made_dirs)):
        # mngr's own dir of work dirs is private like the rest of its state; each work dir
        # in it is the user's, with the user's modes.
        os.makedirs(made_dirs, mode=0o700, exist_ok=True)
    old_umask = os.umask(0o022)
    try:
        if given:
            os.makedirs(path, exist_ok=True)
        else:
            # Made here and nowhere else: of two creates of one name at once, one gets it, and
            # the other's failure cannot take it back from under the first.
            try:
                os.mkdir(path)
            except FileExistsError:
                raise RequestFailed("invalid", "work dir %s already exists (another create of %r is under way, "
                                    "or one left it: mngr gc removes it)" % (path, name)) from None
            existed = False
    finally:
        os.umask(old_umask)
    try:
        if clone_url:
            _clone(path, clone_url, branch, new_branch)
        elif bundle:
            _unbundle(path, bundle, branch, new_branch)
    except BaseException:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        if existed:
            os.makedirs(path, exist_ok=True)
        raise
    return path


def _clone(path, url, branch, new_branch):
    """A clone of ``url`` in the empty dir ``path``: ``branch`` (a branch of the repository
    at ``url``) or ``new_branch`` (made at its HEAD) checked out."""
    commands = [["git", "clone", "--quiet", "--", url, path]]
    if new_branch:
        commands.append(["git", "-C", path, "checkout", "--quiet", "-b", new_branch])
    elif branch:
        commands.append(["git", "-C", path, "checkout", "--quiet", branch])
    for command in commands:
        _run_git(command)


def _run_git(command):
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    try:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    except OSError:
        raise RequestFailed("missing_binary", "git is not installed on this host (needed for a work dir "
                            "from a git repository)") from None
    if completed.returncode != 0:
        message = completed.stdout.decode("utf-8", "replace").strip().splitlines()
        raise RequestFailed("invalid", "git %s failed: %s" % (command[3] if command[1] == "-C" else command[1],
                                                            message[-1] if message else "?"))


def _unbundle(path, bundle, branch, new_branch=""):
    """A repository in ``path`` with every branch and tag of ``bundle``, ``branch`` checked
    out; or ``new_branch``, made at the bundle's HEAD (a detached one too)."""
    import tempfile

    handle, bundle_path = tempfile.mkstemp(prefix=".mngr-bundle-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(bundle)
        refspecs = ["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"]
        if new_branch:
            refspecs.append("HEAD:refs/heads/" + new_branch)
            branch = new_branch
        commands = [
            ["git", "init", "--quiet", path],
            ["git", "-C", path, "fetch", "--quiet", "--update-head-ok", bundle_path, *refspecs],
        ]
        if branch:
            commands.append(["git", "-C", path, "checkout", "--quiet", "--force", branch])
        for command in commands:
            _run_git(command)
    finally:
        os.unlink(bundle_path)


def remove_work_dir(path):
    """Take away a work dir made by prepare_work_dir (a create that failed afterwards)."""
    path = os.path.abspath(path)
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path)


def is_repo_top(root):
    """True if ``root`` is the top level of a git work tree (and git is installed)."""
    if "GIT_DIR" not in os.environ and not os.path.lexists(os.path.join(root, ".git")):
        return False  # a work tree's top level always holds its .git
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    try:
        top = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    found = top.stdout.decode("utf-8", "surrogateescape").strip()
    return top.returncode == 0 and os.path.realpath(found) == os.path.realpath(root)


def git_bundle(root):
    """Every ref of the repository whose top level is ``root``, as a git bundle; b"" when
    ``root`` is not the top of a git work tree, has no commits, or git is missing."""
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    if not is_repo_top(root):
        return b""
    try:
        bundle = subprocess.run(["git", "-C", root, "bundle", "create", "-", "--all"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return b""
    return bundle.stdout if bundle.returncode == 0 else b""


def work_state(root):
    """What of ``root``'s git work tree a removal would lose, as ``(uncommitted, heads)``:
    the paths with uncommitted changes (untracked, not ignored, included) and ``{ref: commit}``
    for HEAD and every branch; both empty when it is not the top of one."""
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    if not is_repo_top(root):
        return [], {}
    heads = {}
    try:
        listed = subprocess.run(["git", "-C", root, "for-each-ref", "--format=%(objectname) %(refname)",
                                 "refs/heads/"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        head = subprocess.run(["git", "-C", root, "rev-parse", "--verify", "--quiet", "HEAD"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return [], {}
    for line in listed.stdout.decode("utf-8", "surrogateescape").splitlines():
        commit, _, ref = line.partition(" ")
        if ref:
            heads[ref] = commit
    if head.returncode == 0 and head.stdout.strip():
        heads["HEAD"] = head.stdout.decode("ascii", "replace").strip()
    return uncommitted(root), heads


def changed_after(root, since):
    """The paths under ``root`` (a copy of a directory outside git) whose content changed
    after ``since`` (seconds since the epoch), sorted: what the agent made there. A copy's
    files keep their source's modification times, so everything newer is the agent's."""
    changed = []
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            entries = os.scandir(os.path.join(root, relative) if relative else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                path = os.path.join(relative, entry.name) if relative else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name != ".git":
                            pending.append(path)
                        continue
                    if entry.stat(follow_symlinks=False).st_mtime > since:
                        changed.append(path)
                except OSError:
                    continue
    return sorted(changed)


def carried_tree(root):
    """The git tree of everything in ``root``'s work tree as it is now (tracked files as they
    are on disk, untracked ones not ignored), written into its repository; "" when ``root``
    is not the top of a git work tree or nothing differs from HEAD. What a new work dir
    holds once the user's uncommitted changes were carried into it: a later removal loses
    only what differs from it."""
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    if not is_repo_top(root):
        return ""
    with _scratch_index(root) as env:
        try:
            added = subprocess.run(["git", "-C", root, "add", "-A", "--", ":/"], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            written = subprocess.run(["git", "-C", root, "write-tree"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            head = subprocess.run(["git", "-C", root, "rev-parse", "--verify", "--quiet", "HEAD^{tree}"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            return ""
    if added.returncode != 0 or written.returncode != 0:
        return ""
    tree = written.stdout.decode("ascii", "replace").strip()
    return "" if tree == head.stdout.decode("ascii", "replace").strip() else tree


def changed_since(root, tree, paths):
    """Those of ``paths`` (relative to the top of ``root``'s work tree) whose content on disk
    differs from ``tree`` (carried_tree's); all of them when the tree cannot be read (git gc
    may have pruned it: it is on no ref)."""
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    if not paths:
        return []
    try:
        known = subprocess.run(["git", "-C", root, "cat-file", "-e", tree + "^{tree}"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if known.returncode != 0:
            return list(paths)
        with _scratch_index(root) as env:
            # Untracked paths enter the scratch index as intent-to-add (no blob written), so
            # that the diff against the tree sees them as the work tree has them.
            subprocess.run(["git", "-C", root, "add", "-N", "--", ":/"], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            diff = subprocess.run(["git", "-C", root, "diff", "--name-only", "-z", "--no-renames", "--no-ext-diff",
                                   "--ignore-submodules", tree, "--"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return list(paths)
    if diff.returncode != 0:
        return list(paths)
    differing = {os.fsdecode(raw) for raw in diff.stdout.split(b"\0") if raw}
    return [path for path in paths if path in differing]


@contextlib.contextmanager
def _scratch_index(root):
    """An environment whose GIT_INDEX_FILE is a copy of ``root``'s index (its stat data
    spares git re-reading unchanged files), removed afterwards."""
    import shutil
    import subprocess
    import tempfile

    found = subprocess.run(["git", "-C", root, "rev-parse", "--git-path", "index"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    index = found.stdout.decode("utf-8", "surrogateescape").strip()
    index = os.path.join(root, index) if index else ""  # relative to root unless absolute
    handle, scratch = tempfile.mkstemp(prefix="mngr-index-")
    try:
        with os.fdopen(handle, "wb") as copy:
            if index and os.path.isfile(index):
                with open(index, "rb") as original:
                    shutil.copyfileobj(original, copy)
        if not index or not os.path.isfile(index):
            os.unlink(scratch)  # git makes an index where none is, not from an empty file
        env = dict(os.environ, GIT_INDEX_FILE=scratch)
        yield env
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def unpushed(root):
    """How many commits of ``root``'s HEAD and branches no remote-tracking ref holds (-1:
    the repository has no remote-tracking ref at all, so the count says nothing)."""
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    try:
        remotes = subprocess.run(["git", "-C", root, "for-each-ref", "--count=1", "refs/remotes/"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if remotes.returncode != 0 or not remotes.stdout.strip():
            return -1
        counted = subprocess.run(["git", "-C", root, "rev-list", "--count", "HEAD", "--branches", "--not", "--remotes"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return -1
    return int(counted.stdout.strip() or 0) if counted.returncode == 0 else -1


def current_branch(root):
    """The branch checked out at the top of a git work tree ``root`` (a commit id when
    detached); "" when ``root`` is not one."""
    import subprocess  # loaded when needed: the manifest of a plain tree never runs git

    if not is_repo_top(root):
        return ""
    try:
        for command in (["symbolic-ref", "--quiet", "--short", "HEAD"], ["rev-parse", "HEAD"]):
            found = subprocess.run(["git", "-C", root, *command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
            if found.returncode == 0:
                return found.stdout.decode("utf-8", "surrogateescape").strip()
    except OSError:
        pass
    return ""
