"""``mngr pair``: keep a local directory and an agent's work dir in step, both ways.

Each path is compared with the state both sides agreed on last (the base):

- changed on one side only (created, modified, deleted): the change goes to the other;
- changed on both sides the same way: nothing to do;
- changed on both sides differently: a conflict. The policy picks the winner (``newer``:
  the later modification time, ties to the local side; ``local``; ``remote``), whose
  version goes to both sides; the loser's version is first kept next to it as
  ``PATH.conflict-local-TIME`` or ``PATH.conflict-remote-TIME`` (a deletion that loses
  simply comes back). Nothing is ever dropped without a copy.

Every write and delete is a compare-and-swap: it lands only if the path on the receiving
side is still what this comparison saw there (checked right before the rename or unlink,
by the host for its side: protocol.WriteFiles.expect). A path that changed meanwhile is
left alone and compared again: it is then a conflict like any other. A directory deleted
on one side while a file in it changed on the other keeps that file (and its
directories); a directory is removed only once empty.

Which paths to compare comes from file-system events: watchfiles here, the host daemon's
inotify feed there (remote_helper/change_feed.py, long-polled). Both trees are compared
whole at the start, whenever the host's feed cannot say what changed (its queue
overflowed, no host daemon), when the local watcher names the root itself (a rescan),
and every ``SAFETY_NET_SECONDS`` in case an event was missed. Without a feed on the host, whole comparisons run every ``interval`` seconds.
``.gitignore``d files and ``.git`` stay out of it, as for push and pull.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from mngr.remote_helper import files, guarded

from . import sync
from .errors import ProtocolViolation
from .hosts import HostHandle

POLICIES = ("newer", "local", "remote")
SAFETY_NET_SECONDS = 300.0
FEED_WAIT_SECONDS = 5.0
LOCAL_SETTLE_MS = 20  # events of one save (write, rename, chmod) travel together
LOCAL_MAX_DELAY_MS = 150  # ... but a stream of events never holds a change back longer
Entry = list[Any]

# Reasons a path did not land that need no word: it is compared again at the next change.
_QUIET_REASONS = (files.CHANGED_MEANWHILE, "vanished before it could be sent", "No such file or directory")


def _same(first: Entry | None, second: Entry | None) -> bool:
    return bool(files.same_entry(first, second))


def _expected(entry: Entry | None, path: str) -> Entry:
    return list(entry) if entry is not None else [path, files.ABSENT, 0, 0, 0, ""]


def _plan_for(entries: list[Entry], deletes: list[str], receiver: dict[str, Entry | None]) -> sync.Plan:
    """A plan that writes ``entries`` and removes ``deletes`` on the receiving side."""
    plan = sync.Plan()
    for entry in entries:
        there = receiver.get(entry[0])
        if there is not None and there[1] != entry[1]:
            plan.replace.append(entry[0])
        (plan.dirs if entry[1] == "d" else plan.send).append(entry)
    plan.delete = list(deletes)
    return plan


class Pairing:
    def __init__(self, handle: HostHandle, name: str, local_root: str, policy: str,
                 report: Callable[[str, str], None]) -> None:
        self.handle = handle
        self.name = name
        self.local_root = local_root
        self.policy = policy
        self.report = report
        self.base: dict[str, Entry] | None = None
        self.remote: dict[str, Entry] = {}  # the host's tree as last listed, kept current by its events
        self.again: set[str] = set()  # paths to compare at the next round (a write found them changed)
        self._guard = guarded.guard_for(local_root)
        self._in_git: bool | None = None

    # -- rounds ---------------------------------------------------------------------------

    def round(self) -> int:
        """Compare both trees whole and make the changes that calls for; how many paths moved."""
        _, remote_entries, local_entries = sync.both_manifests(self.handle, self.name, self.local_root, False)
        local: dict[str, Entry | None] = {entry[0]: entry for entry in local_entries}
        self.remote = {entry[0]: entry for entry in remote_entries}
        remote: dict[str, Entry | None] = dict(self.remote)
        paths = set(local) | set(remote) | set(self.base or ()) | self.again
        self.again = set()
        for path in paths:
            local.setdefault(path, None)
            remote.setdefault(path, None)
        return self._settle(paths, local, remote)

    def changed(self, local_paths: Iterable[str], remote_entries: dict[str, Entry | None]) -> int:
        """Compare the paths named by events: ``local_paths`` changed here, ``remote_entries``
        changed on the host (None: gone there); how many paths moved."""
        for path, entry in remote_entries.items():
            if entry is None:
                self.remote.pop(path, None)
            else:
                self.remote[path] = entry
        named = {path for path in set(local_paths) | set(remote_entries) | self.again if self._wanted(path)}
        self.again = set()
        if not named:
            return 0
        local: dict[str, Entry | None] = {}
        for path in named:
            entry = files.current_entry(self.local_root, path)
            local[path] = entry
            if entry is not None and entry[1] == "d":  # made or moved here whole: what is in it
                found: dict[str, Entry] = {}
                files.walk(self.local_root, path + "/", found, hidden=frozenset(self._guard.paths))
                local.update(found)
        paths = set(local)
        dirs = [path for path in paths if self._was_dir(path, local)]
        if dirs:
            prefixes = tuple(path + "/" for path in dirs)
            for known in (self.base or {}, self.remote):
                paths.update(path for path in known if path.startswith(prefixes))
        paths = set(self._not_ignored(paths))
        for path in paths:
            if path not in local:
                local[path] = files.current_entry(self.local_root, path)
        # The host's side as it is now: an event's entry may predate a write made since.
        reply, blob = self.handle.stat_paths(self.name, [files.path_to_wire(path) for path in sorted(paths)])
        remote = _changed_entries(self.handle.host, reply.paths, blob)
        if set(remote) != paths:
            raise ProtocolViolation(self.handle.host, "the host did not answer for the paths asked about")
        for path, entry in remote.items():
            if entry is None:
                self.remote.pop(path, None)
            else:
                self.remote[path] = entry
        return self._settle(paths, local, remote)

    def _was_dir(self, path: str, local: dict[str, Entry | None]) -> bool:
        return any(entry is not None and entry[1] == "d"
                   for entry in (local.get(path), self.remote.get(path), (self.base or {}).get(path)))

    def _wanted(self, path: str) -> bool:
        parts = path.split("/")
        if not path or files.SKIPPED_DIRS.intersection(parts) or parts[-1].startswith(files.PART_PREFIX):
            return False
        return not self._guard.hides(path)

    def _not_ignored(self, paths: Iterable[str]) -> list[str]:
        """``paths`` but those .gitignore leaves out (as the whole listing does, git ls-files)."""
        paths = [path for path in paths if self._wanted(path)]
        if self._in_git is None:
            inside = subprocess.run(["git", "-C", self.local_root, "rev-parse", "--is-inside-work-tree"],
                                    capture_output=True, text=True)
            self._in_git = inside.returncode == 0 and inside.stdout.strip() == "true"
        if not self._in_git or not paths:
            return paths
        checked = subprocess.run(["git", "-C", self.local_root, "check-ignore", "--stdin", "-z"],
                                 input="\0".join(paths).encode("utf-8", "surrogateescape"), capture_output=True)
        if checked.returncode not in (0, 1):
            return paths
        ignored = {raw.decode("utf-8", "surrogateescape") for raw in checked.stdout.split(b"\0") if raw}
        return [path for path in paths if path not in ignored]

    def _settle(self, paths: set[str], local: dict[str, Entry | None], remote: dict[str, Entry | None]) -> int:
        base = self.base
        new_base = dict(base or {})
        to_remote: list[Entry] = []
        to_local: list[Entry] = []
        delete_remote: list[str] = []
        delete_local: list[str] = []
        stamp = time.strftime("%Y%m%d%H%M%S")
        for path in sorted(paths):
            mine, theirs = local.get(path), remote.get(path)
            if _same(mine, theirs):
                if mine is None:
                    new_base.pop(path, None)
                else:
                    new_base[path] = mine
                continue
            was = base.get(path) if base is not None else None
            mine_changed = base is None or not _same(mine, was)
            theirs_changed = base is None or not _same(theirs, was)
            if base is None and (mine is None or theirs is None):
                winner = "local" if theirs is None else "remote"  # first round: what one side has
            elif mine_changed and not theirs_changed:
                winner = "local"
            elif theirs_changed and not mine_changed:
                winner = "remote"
            else:
                winner = self._winner(mine, theirs)
                if not self._keep_loser(path, winner, mine, theirs, stamp):
                    continue  # the loser could not be kept: compared again next time
            if winner == "local":
                if mine is None:
                    delete_remote.append(path)
                else:
                    to_remote.append(mine)
            elif theirs is None:
                delete_local.append(path)
            else:
                to_local.append(theirs)
        moved = 0
        if to_remote or delete_remote:
            plan = _plan_for(to_remote, delete_remote, remote)
            expect = {path: _expected(remote.get(path), path) for path in
                      [entry[0] for entry in to_remote] + delete_remote}
            sync.send_plan(self.handle, self.name, self.local_root, plan, expect=expect, exact=True)
            moved += self._landed("->", to_remote, delete_remote, plan.skipped, new_base, self.remote)
        if to_local or delete_local:
            plan = _plan_for(to_local, delete_local, local)
            expect = {path: _expected(local.get(path), path) for path in
                      [entry[0] for entry in to_local] + delete_local}
            sync.land_plan(self.handle, self.name, self.local_root, plan, expect=expect, exact=True)
            moved += self._landed("<-", to_local, delete_local, plan.skipped, new_base, None)
        self.base = new_base
        return moved

    def _landed(self, mark: str, written: list[Entry], deleted: list[str], skipped: list[list[str]],
                base: dict[str, Entry], remote: dict[str, Entry] | None) -> int:
        """Report what moved and take it into the base (and the host's tree, when it went
        there); what did not land is compared again next round."""
        missed = {path for path, _ in skipped}
        moved = 0
        for entry in written:
            if entry[0] not in missed:
                base[entry[0]] = entry
                if remote is not None:
                    remote[entry[0]] = entry
                self.report(mark, entry[0])
                moved += 1
        for path in deleted:
            if path not in missed:
                base.pop(path, None)
                if remote is not None:
                    remote.pop(path, None)
                self.report(mark, f"{path} (deleted)")
                moved += 1
        for path, why in skipped:
            self.again.add(path)
            if not why.startswith(_QUIET_REASONS):
                self.report("!", f"{path}: skipped, {why}")
        return moved

    def _winner(self, mine: Entry | None, theirs: Entry | None) -> str:
        if self.policy in ("local", "remote"):
            return self.policy
        mine_time = mine[4] if mine is not None else 0
        theirs_time = theirs[4] if theirs is not None else 0
        return "remote" if theirs_time > mine_time else "local"

    # -- conflicts -------------------------------------------------------------------------

    def _keep_loser(self, path: str, winner: str, mine: Entry | None, theirs: Entry | None, stamp: str) -> bool:
        """Keep the losing side's file beside it (it reaches both sides next round); False
        if it could not be kept."""
        if mine is not None and theirs is not None and mine[1] == "d" and theirs[1] == "d":
            return True  # two directory modes: no content to lose
        if winner == "local" and theirs is not None and theirs[1] == "f":
            copy = self._keep_remote_copy(path, stamp)
            if copy is None:
                return False
            self.report("!", f"{path}: both sides changed; kept the agent's version as {copy}")
        elif winner == "remote" and mine is not None and mine[1] == "f":
            copy = self._copy_name(path, "local", stamp)
            try:
                shutil.copy2(os.path.join(self.local_root, path), os.path.join(self.local_root, copy),
                             follow_symlinks=False)
            except FileNotFoundError:
                return False  # gone meanwhile: its deletion is compared next round
            self.again.add(copy)
            self.report("!", f"{path}: both sides changed; kept your version as {copy}")
        return True

    def _copy_name(self, path: str, side: str, stamp: str) -> str:
        """A name for a conflict copy that neither side has: a copy never replaces another."""
        copy = f"{path}.conflict-{side}-{stamp}"
        number = 1
        while os.path.lexists(os.path.join(self.local_root, copy)) or copy in self.remote:
            number += 1
            copy = f"{path}.conflict-{side}-{stamp}-{number}"
        return copy

    def _keep_remote_copy(self, path: str, stamp: str) -> str | None:
        """Bring the agent's version of ``path`` here under a conflict name (it then syncs)."""
        copy = self._copy_name(path, "remote", stamp)
        reply, data = self.handle.read_files(self.name, [files.path_to_wire(path)])
        kept = None
        for item in reply.files:
            item = list(item)
            if item[0] == files.path_to_wire(path):
                item[0] = files.path_to_wire(copy)
                missed = sync.land_pulled(self.handle.host, self.local_root, item, data, {copy},
                                          expect={copy: _expected(None, copy)})
                if missed is None:
                    kept = copy
                    self.again.add(copy)
        return kept


class _Events:
    """What the watchers saw since the last round, handed to the pairing thread."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self.local: set[str] = set()
        self.remote: dict[str, Entry | None] = {}
        self.whole = False  # compare whole trees
        self.overflowed = False  # ... because the host's feed could not say what changed
        self.failure: BaseException | None = None

    def add_local(self, paths: Iterable[str]) -> None:
        with self._ready:
            self.local.update(paths)
            self._ready.notify_all()

    def add_remote(self, entries: dict[str, Entry | None]) -> None:
        with self._ready:
            self.remote.update(entries)
            self._ready.notify_all()

    def compare_whole(self, overflowed: bool = False) -> None:
        with self._ready:
            self.whole = True
            self.overflowed = self.overflowed or overflowed
            self._ready.notify_all()

    def fail(self, failure: BaseException) -> None:
        with self._ready:
            self.failure = failure
            self._ready.notify_all()

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def take(self, timeout: float, stop: threading.Event) -> tuple[set[str], dict[str, Entry | None], bool, bool]:
        """Wait up to ``timeout`` for something to do; (local paths, host entries, whole,
        overflowed)."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while not (self.local or self.remote or self.whole or self.failure or stop.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            if self.failure is not None:
                raise self.failure
            taken = (self.local, self.remote, self.whole, self.overflowed)
            self.local, self.remote, self.whole, self.overflowed = set(), {}, False, False
            return taken


def _watch_local(root: str, events: _Events, stop: threading.Event, interval: float,
                 report: Callable[[str, str], None], watching: threading.Event) -> None:
    """Hand local changes to the pairing thread, setting ``watching`` once the kernel watches
    the tree; if it cannot be watched (too many directories for the system's limit, say), ask
    for a whole comparison every ``interval``."""
    try:
        _follow_local(root, events, stop, watching)
    except Exception as exc:  # the watcher's own errors, whatever their type
        watching.set()
        if stop.is_set():
            return
        report("!", f"cannot watch {root} ({exc}); comparing both trees every {interval:g} s instead")
        while not stop.wait(interval):
            events.compare_whole()


def _follow_local(root: str, events: _Events, stop: threading.Event, watching: threading.Event) -> None:
    # RustNotify rather than watchfiles.watch: its constructor returns once every directory is
    # watched, which the first comparison must wait for (a change made between that comparison
    # and the watch would otherwise wait for the safety net); watch() gives no such moment.
    from watchfiles._rust_notify import RustNotify

    real = os.path.realpath(root)
    with RustNotify([real], False, False, 300, True, False) as notify:
        watching.set()
        while not stop.is_set():
            changes = notify.watch(LOCAL_MAX_DELAY_MS, LOCAL_SETTLE_MS, 0, stop)
            if isinstance(changes, str):  # "stop" (or "timeout"/"signal", which only a main thread meets)
                continue
            paths = set()
            for _, changed in changes:
                relative = os.path.relpath(changed, real)
                if relative == ".":  # the root itself, as when the watcher had to rescan: compare all
                    events.compare_whole()
                elif not relative.startswith(".."):
                    paths.add(relative.replace(os.sep, "/"))
            if paths:
                events.add_local(paths)


def _follow_host(handle: HostHandle, name: str, events: _Events, stop: threading.Event, interval: float,
                 started: threading.Event) -> None:
    """Long-poll the host's change feed; without one, ask for a whole comparison every ``interval``."""
    cursor = ""
    try:
        while not stop.is_set():
            reply, blob = handle.watch_changes(name, cursor, FEED_WAIT_SECONDS if cursor else 0.0)
            if not reply.cursor:  # the host keeps no feed: compare whole trees now and then
                started.set()
                if stop.wait(interval):
                    return
                events.compare_whole()
                continue
            if cursor and reply.overflow:
                events.compare_whole(overflowed=True)
            elif reply.paths:
                events.add_remote(_changed_entries(handle.host, reply.paths, blob))
            cursor = reply.cursor
            started.set()
    except BaseException as exc:  # handed to the pairing thread
        if not stop.is_set():
            events.fail(exc)
        started.set()


def _changed_entries(host: str, wire_paths: list[str], blob: bytes) -> dict[str, Entry | None]:
    try:
        changed: dict[str, Entry | None] = {files.path_from_wire(path): None for path in wire_paths}
        for entry in files.parse_manifest(zlib.decompress(blob)) if blob else []:
            if entry[0] not in changed:
                raise ValueError(f"an entry for a path not named: {entry[0]!r}")
            changed[entry[0]] = entry
    except (ValueError, zlib.error, files.RequestFailed) as exc:
        raise ProtocolViolation(host, f"unreadable changes from the host: {exc}"[:300]) from exc
    return changed


def run(handle: HostHandle, name: str, local_root: str, policy: str, interval: float, stop: threading.Event,
        report: Callable[[str, str], None]) -> None:
    pairing = Pairing(handle, name, local_root, policy, report)
    events = _Events()
    quit_watching = threading.Event()
    started = threading.Event()
    watching = threading.Event()
    local_watcher = threading.Thread(target=_watch_local,
                                     args=(local_root, events, quit_watching, interval, report, watching), daemon=True)
    host_follower = threading.Thread(target=_follow_host, args=(handle, name, events, quit_watching, interval,
                                                               started), daemon=True)
    def wake_when_stopped() -> None:
        stop.wait()
        events.wake()

    stop_waker = threading.Thread(target=wake_when_stopped, daemon=True)
    local_watcher.start()
    host_follower.start()
    stop_waker.start()
    try:
        # Both sides followed before the first comparison: nothing changed after it is missed.
        for followed in (started, watching):
            while not followed.wait(0.5):
                if stop.is_set():
                    return
        events.take(0.0, stop)  # raises what the followers met while starting
        pairing.round()
        last_whole = time.monotonic()
        while not stop.is_set():
            waited = max(0.0, last_whole + SAFETY_NET_SECONDS - time.monotonic())
            local, remote, whole, overflowed = events.take(waited, stop)
            if stop.is_set():
                break
            if overflowed:
                report("~", "the host could not say what changed (its event queue overflowed): comparing both trees")
            try:
                if whole or time.monotonic() - last_whole >= SAFETY_NET_SECONDS:
                    pairing.round()
                    last_whole = time.monotonic()
                else:
                    pairing.changed(local, remote)
            except OSError as exc:  # a local file error no round foresaw: pairing goes on
                report("!", f"{exc}; comparing both trees again")
                if stop.wait(interval):
                    break
                events.compare_whole()
    finally:
        quit_watching.set()
        stop.set()
        local_watcher.join(timeout=5)
