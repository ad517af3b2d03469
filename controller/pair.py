"""``mngr pair``: keep a local directory and an agent's work dir in step, both ways.

Each round lists both trees (the same manifests push and pull use) and compares each
path with the state both sides had after the previous round (the base):

- changed on one side only (created, modified, deleted): the change goes to the other;
- changed on both sides the same way: nothing to do;
- changed on both sides differently: a conflict. The policy picks the winner (``newer``:
  the later modification time, ties to the local side; ``local``; ``remote``), whose
  version goes to both sides; the loser's version is first kept next to it as
  ``PATH.conflict-local-TIME`` or ``PATH.conflict-remote-TIME`` (a deletion that loses
  simply comes back). Nothing is ever dropped without a copy.

The first round has no base: what only one side has goes to the other, and a path both
have with different contents is a conflict. Rounds run every ``interval`` seconds until
``stop`` is set. ``.gitignore``d files and ``.git`` stay out of it, as for push and pull.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

from . import sync
from .hosts import HostHandle

POLICIES = ("newer", "local", "remote")
Entry = list[Any]


def _same(first: Entry | None, second: Entry | None) -> bool:
    if first is None or second is None:
        return first is second
    if first[1] != second[1]:
        return False
    if first[1] == "f":
        return first[2:5] == second[2:5]
    if first[1] == "l":
        return bool(first[5] == second[5])
    return bool(first[2] == second[2])


def _plan_for(entries: list[Entry], deletes: list[str], receiver: dict[str, Entry]) -> sync.Plan:
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

    def _manifests(self) -> tuple[dict[str, Entry], dict[str, Entry]]:
        _, remote, local = sync.both_manifests(self.handle, self.name, self.local_root, False)
        return {e[0]: e for e in local}, {e[0]: e for e in remote}

    def round(self) -> int:
        """One comparison and the changes it calls for; returns how many paths moved."""
        local, remote = self._manifests()
        base = self.base
        to_remote: list[Entry] = []
        to_local: list[Entry] = []
        delete_remote: list[str] = []
        delete_local: list[str] = []
        stamp = time.strftime("%Y%m%d%H%M%S")
        for path in sorted(set(local) | set(remote)):
            mine, theirs = local.get(path), remote.get(path)
            if _same(mine, theirs):
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
                if mine is not None and theirs is not None and mine[1] == "d" and theirs[1] == "d":
                    pass  # two directory modes: no content to lose
                elif winner == "local" and theirs is not None and theirs[1] == "f":
                    copy = self._keep_remote_copy(path, theirs, stamp)
                    self.report("!", f"{path}: both sides changed; kept the agent's version as {copy}")
                elif winner == "remote" and mine is not None and mine[1] == "f":
                    copy = f"{path}.conflict-local-{stamp}"
                    shutil.copy2(os.path.join(self.local_root, path), os.path.join(self.local_root, copy),
                                 follow_symlinks=False)
                    self.report("!", f"{path}: both sides changed; kept your version as {copy}")
            if winner == "local":
                if mine is None:
                    delete_remote.append(path)
                else:
                    to_remote.append(mine)
            elif theirs is None:
                delete_local.append(path)
            else:
                to_local.append(theirs)
        if to_remote or delete_remote:
            plan = _plan_for(to_remote, delete_remote, remote)
            sync.send_plan(self.handle, self.name, self.local_root, plan)
            self._report_moved("->", to_remote, delete_remote, plan.skipped)
        if to_local or delete_local:
            plan = _plan_for(to_local, delete_local, local)
            sync.land_plan(self.handle, self.name, self.local_root, plan)
            self._report_moved("<-", to_local, delete_local, plan.skipped)
        moved = len(to_remote) + len(to_local) + len(delete_remote) + len(delete_local)
        if moved or base is None:
            local, remote = self._manifests()
        # What both sides agree on is the base of the next round.
        self.base = {path: entry for path, entry in local.items() if _same(entry, remote.get(path))}
        return moved

    def _report_moved(self, mark: str, written: list[Entry], deleted: list[str], skipped: list[list[str]]) -> None:
        missed = {path for path, _ in skipped}
        for entry in written:
            if entry[0] not in missed:
                self.report(mark, entry[0])
        for path in deleted:
            if path not in missed:
                self.report(mark, f"{path} (deleted)")
        for path, why in skipped:  # left as it is; the next round tries again
            self.report("!", f"{path}: skipped, {why}")

    def _winner(self, mine: Entry | None, theirs: Entry | None) -> str:
        if self.policy in ("local", "remote"):
            return self.policy
        mine_time = mine[4] if mine is not None else 0
        theirs_time = theirs[4] if theirs is not None else 0
        return "remote" if theirs_time > mine_time else "local"

    def _keep_remote_copy(self, path: str, theirs: Entry, stamp: str) -> str:
        """Bring the agent's version of ``path`` here under a conflict name (it then syncs)."""
        copy = f"{path}.conflict-remote-{stamp}"
        reply, data = self.handle.read_files(self.name, [path])
        for item in reply.files:
            item = list(item)
            if item[0] == path:
                item[0] = copy
                sync.land_pulled(self.handle.host, self.local_root, item, data, {copy})
        return copy


def run(handle: HostHandle, name: str, local_root: str, policy: str, interval: float, stop: threading.Event,
        report: Callable[[str, str], None]) -> None:
    pairing = Pairing(handle, name, local_root, policy, report)
    while not stop.is_set():
        pairing.round()
        stop.wait(interval)

