"""Files a create lands on the host before the agent starts (``mngr create --upload-file``).

All of them land or none does: every destination is checked before the first byte is
written, each file goes to a temp file beside its destination and is renamed into place,
and ``Landed.undo`` takes back what a create that fails afterwards had written (files
replaced come back, directories made go).

Where a destination may be: anywhere the host's user may write, except mngr's own state
(its host dir, but for the agent's own work dir in it, and the controller's state dir) and
another agent's work dir. A file that exists there is refused unless the request allows
overwriting, except when it already holds the same bytes (a worktree that carried the
same file): then only its mode is set.
"""

import contextlib
import os

from . import files, guarded, state
from .wire import RequestFailed


def destination(dest, work_dir):
    """The absolute path ``dest`` names: relative to ``work_dir``, ``~/`` the home dir."""
    if dest == "~" or dest.startswith("~/"):
        path = os.path.expanduser("~") + dest[1:]
    elif dest.startswith("~"):
        raise RequestFailed("invalid", "upload destination %r: only ~/ (this user's home) is understood" % dest)
    else:
        path = os.path.join(work_dir, dest)
    return os.path.normpath(path)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _why_refused(path, work_dir, other_work_dirs):
    real = os.path.realpath(path)
    own = os.path.realpath(work_dir)
    for root in [state.host_dir(), guarded.controller_state_dir(), *other_work_dirs]:
        if not root:
            continue
        guarded_root = os.path.realpath(root)
        # The agent's own work dir may lie in one (a work dir mngr made in its host dir, one
        # shared with another agent), and is its own there; a work dir around one (the
        # home dir around ~/.mngr) opens nothing of it.
        if _inside(real, guarded_root) and not (_inside(own, guarded_root) and _inside(real, own)):
            return guarded.GUARDED
    return ""


class Landed(object):
    """What landing the uploads changed, to take it back."""

    def __init__(self):
        self.written = []  # files written where nothing was
        self.replaced = []  # (path, where its old file waits)
        self.made_dirs = []  # in the order made

    def undo(self):
        for path in self.made_dirs:  # an uploaded read-only directory, to empty it again
            with contextlib.suppress(OSError):
                os.chmod(path, 0o700)
        for path in reversed(self.written):
            _remove_quietly(path)
        for path, aside in reversed(self.replaced):
            with contextlib.suppress(OSError):
                os.replace(aside, path)
        for path in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def commit(self):
        for _, aside in self.replaced:
            _remove_quietly(aside)


def _remove_quietly(path):
    with contextlib.suppress(OSError):
        os.unlink(path)


def _check(entries, blob, work_dir, overwrite, other_work_dirs):
    """[(path, kind, mode, mtime_ns, data or None)]: every entry checked, nothing written."""
    checked = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 6:
            raise RequestFailed("invalid", "CreateAgent: an upload is [dest, kind, mode, mtime_ns, offset, length]")
        dest, kind, mode, mtime_ns, offset, length = entry
        if not isinstance(dest, str) or not dest or kind not in ("f", "d") \
                or not all(isinstance(number, int) for number in (mode, mtime_ns, offset, length)) \
                or offset < 0 or length < 0 or offset + length > len(blob):
            raise RequestFailed("invalid", "CreateAgent: bad upload entry %r" % (entry,))
        path = destination(dest, work_dir)
        why = _why_refused(path, work_dir, other_work_dirs)
        if why:
            raise RequestFailed("invalid", "upload to %s refused: it is %s" % (path, why))
        data = blob[offset:offset + length] if kind == "f" else None
        if os.path.lexists(path):
            if kind == "d":
                if not os.path.isdir(path) or os.path.islink(path):
                    raise RequestFailed("exists", "upload to %s: something other than a directory is there" % path)
            elif os.path.isdir(path) or os.path.islink(path):
                raise RequestFailed("exists", "upload to %s: a %s is there" % (
                    path, "symlink" if os.path.islink(path) else "directory"))
            elif not overwrite and not _holds(path, data):
                raise RequestFailed("exists", "upload to %s: a file is there already "
                                              "(--upload-overwrite replaces it)" % path)
        checked.append((path, kind, mode & 0o7777, mtime_ns, data))
    return checked


def _holds(path, data):
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def land(entries, blob, work_dir, overwrite=False, other_work_dirs=()):
    """Land the uploads (CreateAgent.uploads); returns the Landed to undo or commit.
    Nothing is written unless every entry may land."""
    checked = _check(entries, blob, work_dir, overwrite, other_work_dirs)
    landed = Landed()
    dir_modes = []  # set once their files landed: a read-only directory stays writable till then
    try:
        for path, kind, mode, mtime_ns, data in checked:
            _make_parents(os.path.dirname(path), landed)
            if kind == "d":
                if not os.path.isdir(path):
                    os.mkdir(path, 0o700)
                    landed.made_dirs.append(path)
                dir_modes.append((path, mode))
                continue
            # A part file's name (short, whatever the target's length): if the helper is killed
            # before the rename, listings and pushes skip it and ``mngr gc`` removes it.
            temp = os.path.join(os.path.dirname(path), "%s-%s" % (
                files.part_name(os.path.basename(path)), os.urandom(4).hex()))
            with open(temp, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.chmod(temp, mode)
                if mtime_ns:
                    os.utime(temp, ns=(mtime_ns, mtime_ns))
                if os.path.lexists(path):
                    aside = "%s.mngr-replaced-%s" % (path, os.urandom(4).hex())
                    os.link(path, aside)
                    landed.replaced.append((path, aside))
                else:
                    landed.written.append(path)
                os.replace(temp, path)
            except BaseException:
                _remove_quietly(temp)
                raise
        for path, mode in reversed(dir_modes):
            os.chmod(path, mode)
    except OSError as exc:
        landed.undo()
        raise RequestFailed("invalid", "upload to %s failed: %s" % (exc.filename or "the host",
                                                                   exc.strerror or exc)) from None
    except BaseException:
        landed.undo()
        raise
    return landed


def _make_parents(directory, landed):
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for path in reversed(missing):
        os.mkdir(path, 0o755)
        landed.made_dirs.append(path)
