"""What a push, pull, pair or copy never lists, writes or deletes: mngr's own state.

mngr's state on a host is its host dir (``$MNGR_HOST_DIR``: agents' records and env
files, locks, logs, the work dirs mngr made), the work dirs of the agents on it, and, on a
machine that runs mngr itself, the controller's state dir (``$MNGR_STATE_DIR``: kept
manifests, hosts made, snapshots' index). A
tree that contains any of them (a work dir that is the home dir, say) must not carry them
to the other side, nor let the other side overwrite or delete them: every agent on the
host would become UNKNOWN. The check lives here, on the side that owns the tree (the
helper for a work dir, the controller for a local directory), so no mistake in the
planning side can get past it.

The home dir needs one more rule: its top-level dot entries (``.ssh``, ``.bashrc``, ...)
are never deleted by a ``--delete`` (they are the user's setup, never part of a project).
They may still be written when the source has them.
"""

import os

HOME_KEPT = "a dot entry at the top of the home dir (never deleted by --delete)"
GUARDED = "mngr's own state (its host dir, its state dir or another agent's work dir)"


def _below(path, root):
    """``path`` relative to ``root`` if it lies strictly below it, else None."""
    relative = os.path.relpath(path, root)
    if relative == "." or relative == ".." or relative.startswith("../"):
        return None
    return relative


def _is_mngr_state(root, host_dir):
    """True if ``root`` is the host dir, or inside it but not in a work dir mngr made
    there (``work/NAME``)."""
    if root == host_dir:
        return True
    relative = _below(root, host_dir)
    if relative is None:
        return False
    parts = relative.split("/")
    return not (parts[0] == "work" and len(parts) >= 2)


def controller_state_dir():
    """``$MNGR_STATE_DIR``, else ``$XDG_STATE_HOME/mngr`` (``~/.local/state/mngr``): where
    the mngr command keeps its own files on this machine."""
    explicit = os.environ.get("MNGR_STATE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mngr")


class Guard(object):
    """The guarded paths of the tree at ``root``, relative to it."""

    def __init__(self, root, host_dir, work_dirs, home, state_dir=""):
        root = os.path.realpath(root)
        self.root = root
        found = set()
        for path in [host_dir, state_dir, *work_dirs]:
            if not path:
                continue
            relative = _below(os.path.realpath(path), root)
            if relative is not None:
                found.add(relative)
        state_root = os.path.realpath(state_dir) if state_dir else ""
        if (host_dir and _is_mngr_state(root, os.path.realpath(host_dir))) or (
                state_root and (root == state_root or _below(root, state_root) is not None)):
            found = {""}  # the tree is mngr's own state: nothing of it travels
        # A guarded dir inside another is covered by the outer one.
        self.paths = tuple(sorted(path for path in found
                                  if not any(path.startswith(other + "/") for other in found)))
        self.is_home = bool(home) and os.path.realpath(home) == root

    @classmethod
    def from_wire(cls, paths, is_home):
        """The guard the other side described (Manifest's ``guarded`` and ``home``)."""
        guard = cls("/", "", (), "")
        guard.paths = tuple(paths)
        guard.is_home = bool(is_home)
        return guard

    def key(self):
        return (self.paths, self.is_home)

    def hides(self, path):
        """True if ``path`` is a guarded path or lies below one: never listed nor written."""
        if not self.paths:  # the usual tree, asked about each of its files
            return False
        return any(path == guarded or path.startswith(guarded + "/") or not guarded for guarded in self.paths)

    def holds(self, path):
        """True if removing ``path`` would take a guarded path with it."""
        return any(guarded.startswith(path + "/") for guarded in self.paths)

    def why_not_write(self, path):
        """Why ``path`` may not be written ("" if it may): written over, a guarded dir
        above or below it would go."""
        if self.hides(path):
            return GUARDED
        return ""

    def why_not_delete(self, path):
        """Why ``path`` may not be deleted ("" if it may)."""
        if self.hides(path) or self.holds(path):
            return GUARDED
        if self.is_home and path.startswith("."):
            return HOME_KEPT  # the entry, or something in it
        return ""

NO_GUARD = Guard("/", "", (), "")


def agent_work_dirs():
    """The work dirs in this machine's agent records."""
    from . import agent_records

    found, _ = agent_records.read_all()
    return [record["work_dir"] for record in found.values() if isinstance(record.get("work_dir"), str)]


def guard_for(root):
    """The guard of ``root`` on this machine: its host dir, its agents' work dirs and the
    mngr command's state dir."""
    from . import state

    return Guard(root, state.host_dir(), agent_work_dirs(), os.path.expanduser("~"), controller_state_dir())
