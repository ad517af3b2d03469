"""What interrupted operations leave on a host, found and removed (``mngr gc``).

mngr writes in an order that leaves nothing unreachable behind most interruptions (a record
before its tmux session, files under temporary names renamed into place), but a process
killed at the wrong moment can still leave:

- an agent dir with no readable ``record.json`` (a create killed before the record);
- a temporary file of an atomic write (``.NAME.tmp-PID-HEX``) in an agent dir;
- a tmux session named ``mngr-NAME`` with no agent record (a destroy killed between
  removing the record and killing the session, or a session made by hand);
- a part file (``.mngr-part.NAME``) in an agent's work dir (a push killed mid-file, or a create
  mid-upload), or a push's staging directory of that form at its top (killed mid-request);
- an unpacked helper's temporary dir (``helper/.tmp-*``, a bootstrap killed mid-unpack);
- an agent CLI's upload (``clis/.parts/KEY-UPLOAD``, a create killed mid-copy);
- an agent CLI's bundle (``clis/KEY``) no agent's record names, no process runs from, and
  nothing ensured for UNUSED_CLI_SECONDS (a new one lands per CLI version);
- a work dir mngr made (``work/NAME``) that no agent works in any more and that no
  ``destroy --keep-work-dir`` kept (a destroy killed before it removed it), or one a
  destroy was removing (``work/.removed-*``); a worktree's repository is then told to
  forget it (``git worktree prune``).

Collecting holds the host's operation lock exclusively, so no create, destroy or write is
half-way meanwhile; files are left alone unless untouched for ``min_age`` seconds (a push's
part file lives between two of its requests).
"""

import contextlib
import os
import shutil
import time

from . import agent_records, agents, cli_bundles, files, operation_lock, processes, state, tmux

_LOCK_WAIT_SECONDS = 30.0
# A create ensures its CLI's bundle before it makes its agent: however small ``min_age``, a
# bundle ensured this recently is not taken from under it.
UNUSED_CLI_SECONDS = 24 * 3600.0


def collect(dry_run, min_age):
    """[(kind, what)] of every leftover on this host; removed unless ``dry_run``."""
    with operation_lock.exclusive_or_busy(_LOCK_WAIT_SECONDS):
        found = []
        now = time.time()
        records, _ = agent_records.read_all()
        names = {record["name"] for record in records.values()}
        agents_dir = state.agents_dir()
        for entry in sorted(_listdir(agents_dir)):
            path = os.path.join(agents_dir, entry)
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            if entry not in records and not entry.startswith("."):
                found.append(("agent dir without a record", path))
                continue
            for name in sorted(_listdir(path)):
                if (name.startswith(".") and ".tmp-" in name and _old(os.path.join(path, name), now, min_age)
                        and not _writer_alive(name)):
                    found.append(("unfinished write", os.path.join(path, name)))
        for session in sorted(tmux.list_sessions_panes()):
            if session.startswith(tmux.SESSION_PREFIX) and session[len(tmux.SESSION_PREFIX):] not in names:
                found.append(("tmux session without a record", session))
        for record in records.values():
            work_dir = record.get("work_dir")
            if isinstance(work_dir, str) and os.path.isdir(work_dir):
                found += [("part file of a write cut short", path) for path in _part_files(work_dir, now, min_age)]
        in_use = {record.get("work_dir") for record in records.values()}
        kept = agents.kept_work_dirs()
        work_root = os.path.join(state.host_dir(), "work")
        for name in sorted(_listdir(work_root)):
            path = os.path.join(work_root, name)
            if not os.path.isdir(path) or os.path.islink(path) or not _untouched_tree(path, now, min_age):
                continue
            if name.startswith(".removed-"):
                found.append(("work dir a destroy was removing", path))
            elif not name.startswith(".") and path not in in_use and path not in kept:
                found.append(("worktree of no agent" if _worktree_repository(path) else "work dir of no agent", path))
        helper_dir = os.path.join(state.host_dir(), "helper")
        for name in sorted(_listdir(helper_dir)):
            path = os.path.join(helper_dir, name)
            if name.startswith(".tmp-") and _old(path, now, min_age):
                found.append(("unfinished helper unpack", path))
        found += [("agent CLI copy cut short", path) for path in cli_bundles.abandoned_uploads(min_age)]
        found += [("agent CLI no agent uses", path)
                  for path in cli_bundles.unused_bundles(records.values(), max(min_age, UNUSED_CLI_SECONDS))]
        if not dry_run:
            for kind, what in found:
                _remove(kind, what, records)
        return [[kind, what] for kind, what in found]


def _worktree_repository(path):
    """The git dir of the repository whose worktree ``path`` is ("" for anything else): a
    worktree's top holds a file ``.git`` naming its own git dir in that repository's
    ``worktrees/``, which names the repository's in ``commondir``."""
    try:
        with open(os.path.join(path, ".git")) as link:
            line = link.readline().strip()
    except (OSError, UnicodeDecodeError):  # a directory (a copy's repository), or nothing
        return ""
    if not line.startswith("gitdir: "):
        return ""
    own = os.path.join(path, line[len("gitdir: "):])
    try:
        with open(os.path.join(own, "commondir")) as common:
            repository = os.path.normpath(os.path.join(own, common.readline().strip()))
    except (OSError, UnicodeDecodeError):
        return ""
    return repository if os.path.isdir(repository) else ""


def _prune_worktrees(repository):
    """Let the repository forget worktrees whose dirs are gone: until then it keeps their
    names, and their branches count as checked out (no new worktree may use them)."""
    import subprocess  # loaded when needed: most collections find no worktree

    with contextlib.suppress(OSError):
        subprocess.run(["git", "--git-dir", repository, "worktree", "prune"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _part_files(root, now, min_age):
    """Part files, and staging directories (files.Staging) with what is in them."""
    for directory, subdirs, names in os.walk(root):
        for name in subdirs:
            path = os.path.join(directory, name)
            if name.startswith(files.PART_PREFIX) and _old(path, now, min_age):
                yield path
        subdirs[:] = [name for name in subdirs if name not in files.SKIPPED_DIRS
                      and not name.startswith(files.PART_PREFIX)]
        for name in names:
            path = os.path.join(directory, name)
            if name.startswith(files.PART_PREFIX) and _old(path, now, min_age):
                yield path


def _untouched_tree(root, now, min_age):
    """True if nothing landed anywhere below ``root`` for ``min_age`` seconds (a file landing
    moves its directory's mtime): a work dir a create is still filling is not orphaned."""
    return all(_old(directory, now, min_age) for directory, _, _ in os.walk(root))


def _writer_alive(name):
    """Whether the process that writes temp file ``name`` (``.FILE.tmp-PID-HEX``, see
    state.write_json) still runs: its write may be under way (the host daemon's watcher
    writes an agent's state.json at any time), so it is nobody's leftover yet."""
    try:
        pid = int(name.rsplit(".tmp-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _old(path, now, min_age):
    try:
        return now - os.lstat(path).st_mtime >= min_age
    except OSError:
        return False


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _remove(kind, what, records):
    if kind == "tmux session without a record":
        # Its processes go with it, also those that left the session: they carry the id its
        # pane's process has, unless that id is a live agent's (a session made by hand).
        pane = tmux.list_sessions_panes().get(what)
        agent_id = processes.marked_processes().get(pane.pid) if pane is not None and pane.pid else None
        processes.end_agent(agent_id if agent_id not in records else None, what)
    elif kind == "agent CLI no agent uses":
        cli_bundles.remove_bundle(what)
    elif os.path.isdir(what) and not os.path.islink(what):
        repository = _worktree_repository(what)
        shutil.rmtree(what, ignore_errors=True)
        if repository:
            _prune_worktrees(repository)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(what)
