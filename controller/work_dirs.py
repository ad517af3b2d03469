"""Which work dir a new agent gets, what its record says about it, and what removing it
would lose.

The transfer kinds:

- ``worktree``: a git worktree of the user's repository on a branch of the agent's own
  (``mngr/NAME``), on the local host only: the branch is in the user's repository at once.
- ``copy``: a new directory on the host with the repository's history (every branch and
  tag) on that branch, or a plain copy of a directory outside git.
- ``none``: the agent runs where it is told (``--work-dir``), or in the current directory.

The default: from inside a git repository, ``worktree`` locally and ``copy`` elsewhere; the
user's uncommitted and untracked (not ignored) changes go along unless ``--clean``.
Outside a git repository, a ``copy`` of the directory on any host: every agent works in a
directory of its own, and ``mngr pull`` brings its work back. A directory that is no
project (the home dir, ``/``) or too big to copy without being asked (see ``PLAIN_COPY_*``)
is refused with the ways on: ``--work-dir`` in place, ``--transfer none`` (in place here, the
host's own default elsewhere: an empty ``$MNGR_HOST_DIR/work/NAME`` on SSH, ``~`` on docker
and modal), or ``--transfer copy`` to copy it all the same.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .channel.protocol import AgentInfo
from .errors import UsageError

TRANSFERS = ("worktree", "copy", "none")
# A directory outside git bigger than this is not copied unless asked (--transfer copy):
# a copy of a download folder or a build tree is no one's idea of a default.
PLAIN_COPY_MAX_FILES = 10_000
PLAIN_COPY_MAX_BYTES = 512 * 1024 * 1024
BRANCH_PREFIX = "mngr/"
# A URL git understands (https://, ssh://, git://, file://) or scp-like user@host:path.
_GIT_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)")


@dataclass(frozen=True)
class WorkDirChoice:
    """How a create makes its agent's work dir (see the module's docstring).

    ``transfer``: "worktree", "copy", "none", or "host" (the host's own default)."""

    transfer: str
    source: str = ""  # the local directory a worktree or copy is made from (a repository's top)
    repo: str = ""  # the top of the user's repository it came from ("" outside git)
    branch: str = ""  # the agent's branch ("" outside git)
    reuse_branch: bool = False  # the branch exists and is worked on as it is
    clean: bool = False  # the user's uncommitted changes stay behind
    url: str = ""  # a git URL the host clones (instead of ``source``)
    agent: str = ""  # another agent whose work dir is copied (instead of ``source``)
    head: str = ""  # the commit HEAD was at in ``source`` when it was looked at

    @property
    def made(self) -> bool:
        return self.transfer in ("worktree", "copy")


def source_kind(source: str) -> str:
    """What ``--source`` names: "dir" (a local directory), "url" (a git URL) or "agent"."""
    from .names import validate_name

    if os.path.isdir(os.path.expanduser(source)):
        return "dir"
    if _GIT_URL.match(source):
        return "url"
    try:
        validate_name(source)
    except UsageError:
        raise UsageError(f"--source {source!r} is not a directory, an agent's name or a git URL") from None
    return "agent"


def choose(name: str, *, transfer: str | None, source: str | None, work_dir: str | None, local_host: bool,
           branch: str | None, reuse_branch: bool, clean: bool, cwd: str) -> WorkDirChoice:
    """The work dir a create asked for; UsageError for a request that cannot be done, before
    anything is made."""
    from . import worktrees

    if transfer is not None and transfer not in TRANSFERS:
        raise UsageError(f"--transfer {transfer!r}: use one of {', '.join(TRANSFERS)}")
    if transfer == "none":
        if source:
            raise UsageError("--transfer none runs the agent in place: give --work-dir, not --source")
        if branch or reuse_branch or clean:
            raise UsageError("--branch, --reuse-branch and --clean need a worktree or copy, not --transfer none")
        return WorkDirChoice("none")
    kind = source_kind(source) if source else ""
    if source and kind in ("url", "agent"):
        if transfer == "worktree":
            raise UsageError(f"--transfer worktree is made from a local repository: --source {source} is "
                             f"{'a git URL' if kind == 'url' else 'an agent'} (use --transfer copy)")
        if kind == "agent":
            if branch or reuse_branch or clean:
                raise UsageError("--branch, --reuse-branch and --clean do not apply to a copy of an agent's work dir")
            return WorkDirChoice("copy", agent=source)
        if clean:
            raise UsageError("--clean does not apply to a clone: it has no uncommitted changes")
        return WorkDirChoice("copy", url=source, repo=source, branch=branch or BRANCH_PREFIX + name,
                             reuse_branch=reuse_branch)
    if source:
        directory = os.path.abspath(os.path.expanduser(source))
    elif work_dir and transfer is None:
        if branch or reuse_branch or clean:
            raise UsageError("--work-dir alone runs the agent in place: --branch, --reuse-branch and --clean "
                             "need --transfer worktree or copy")
        return WorkDirChoice("none")
    else:
        directory = cwd
    top, main, head = worktrees.locate(directory)
    if transfer is None:
        if top:
            transfer = "worktree" if local_host else "copy"
        elif source:
            transfer = "copy"
        else:
            if branch or reuse_branch:
                raise UsageError(f"--branch needs a git repository: {directory} is not in one")
            _check_plain_copy(directory)
            transfer = "copy"
    if transfer == "worktree":
        if not local_host:
            raise UsageError("--transfer worktree is for the local host: on another host use --transfer copy")
        if not top:
            raise UsageError(f"--transfer worktree needs a git repository: {directory} is not in one "
                             f"(--transfer copy copies it)")
    if not top:
        if branch or reuse_branch:
            raise UsageError(f"--branch needs a git repository: {directory} is not in one")
        return WorkDirChoice("copy", source=directory, clean=clean)
    if not head:
        raise UsageError(f"the git repository {top} has no commit yet: commit first, or give --work-dir")
    chosen = branch or BRANCH_PREFIX + name
    worktrees.check_branch_name(top, chosen)
    exists = worktrees.branch_exists(top, chosen)
    if exists and not reuse_branch:
        raise UsageError(f"branch {chosen!r} already exists in {top}: name another with --branch, "
                         f"or work on it with --reuse-branch")
    if reuse_branch and not exists:
        raise UsageError(f"--reuse-branch: there is no branch {chosen!r} in {top}")
    return WorkDirChoice(transfer, source=top, repo=main, branch=chosen, reuse_branch=reuse_branch, clean=clean,
                         head=head)


def _check_plain_copy(directory: str) -> None:
    """UsageError for a directory outside git that a create should not copy by default."""
    ways = "give --work-dir DIR (or --transfer none) to run in place, or --transfer copy to copy it all the same"
    real = os.path.realpath(directory)
    if real in (os.path.realpath(os.path.expanduser("~")), os.path.realpath(os.sep)):
        raise UsageError(f"{directory} is not in a git repository and is {'your home dir' if real != os.sep else '/'}: "
                         f"an agent gets a copy of the current directory; cd to a project, or {ways}")
    files, size = _count_up_to(real, PLAIN_COPY_MAX_FILES, PLAIN_COPY_MAX_BYTES)
    if files > PLAIN_COPY_MAX_FILES or size > PLAIN_COPY_MAX_BYTES:
        what = f"more than {PLAIN_COPY_MAX_FILES:,} files" if files > PLAIN_COPY_MAX_FILES \
            else f"more than {PLAIN_COPY_MAX_BYTES // (1024 * 1024)} MiB"
        raise UsageError(f"{directory} is not in a git repository and holds {what}: an agent gets a copy of "
                         f"the current directory; {ways}")


def _count_up_to(top: str, max_files: int, max_bytes: int) -> tuple[int, int]:
    """(files, bytes) under ``top``, the walk cut short once either passes its limit."""
    files = size = 0
    pending = [top]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:  # unreadable: the copy says which, if it is made
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                        continue
                    files += 1
                    if entry.is_file(follow_symlinks=False):
                        size += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
                if files > max_files or size > max_bytes:
                    return files, size
    return files, size


def origin(choice: WorkDirChoice, base: str = "", carried_tree: str = "") -> dict[str, str]:
    """What the agent's record keeps of its work dir (AgentInfo.work_dir_origin):

    - ``kind``: "worktree", "copy" or "in-place" (nothing at all for the host's own default);
    - ``repo``: the top of the user's repository it came from, on the machine mngr ran on;
    - ``source``: the directory it was made from (a git URL; ``agent:NAME`` for another
      agent's work dir, whose branch is kept as it was);
    - ``branch``: the agent's branch; ``branch_made``: "yes" when mngr made it;
    - ``base``: the commit it started from ("" for a clone of a URL);
    - ``carried``: "yes" when the user's uncommitted changes went along (not ``--clean``);
    - ``carried_tree``: when there were some, the git tree of the work dir as the agent
      found it (a worktree's comes from here; a copy's host notes it: GetWorkState counts
      only changes beyond it).
    """
    if choice.transfer == "host":
        return {}  # the host's own default (an SSH host's new, empty dir; ~ on docker)
    if not choice.made:
        return {"kind": "in-place"}
    if choice.agent:
        return {"kind": choice.transfer, "source": f"agent:{choice.agent}", "branch": base}
    record = {"kind": choice.transfer, "source": choice.url or choice.source}
    if choice.repo:
        record.update(repo=choice.repo, branch=choice.branch, branch_made="" if choice.reuse_branch else "yes",
                      base=base, carried="" if choice.clean else "yes")
        if carried_tree:
            record["carried_tree"] = carried_tree
    return record


def lost_by_removal(info: AgentInfo, uncommitted: list[str], heads: dict[str, str], delete_branch: bool,
                    keep_work_dir: bool, unpushed: int = -1) -> str:
    """What destroying the agent would lose, in words ("" for nothing): its uncommitted
    changes (when its work dir goes), and commits that exist nowhere else. ``uncommitted``
    and ``heads`` (and ``unpushed``) are its work dir's (protocol.WorkState)."""
    from . import worktrees

    origin_record = info.work_dir_origin
    lost = []
    branch = origin_record.get("branch", "")
    repo = origin_record.get("repo", "")
    if uncommitted and not keep_work_dir:
        shown = ", ".join(uncommitted[:3]) + (f" and {len(uncommitted) - 3} more" if len(uncommitted) > 3 else "")
        plain_copy = origin_record.get("kind") == "copy" and not repo and not heads
        lost.append(f"files changed since it was made ({shown}; mngr pull {info.name} brings them)" if plain_copy
                    else f"uncommitted changes ({shown})")
    if origin_record.get("kind") == "worktree":
        # Its branches are the user's repository's: only a detached HEAD's commits, and the
        # agent's branch when it is to be deleted, can be lost.
        dropped = branch if delete_branch else ""
        tips = [heads["HEAD"]] if "HEAD" in heads else []
        if dropped and worktrees.branch_exists(repo, dropped):
            tips.append(f"refs/heads/{dropped}")
        count = worktrees.commits_elsewhere_missing(repo, tips, dropped) if os.path.isdir(repo) else 0
        if count:
            lost.append(f"{count} commit{'s' if count != 1 else ''} on no other branch of {repo}")
    elif keep_work_dir:
        pass
    elif _GIT_URL.match(repo) and unpushed >= 0:
        # A clone: what its remote-tracking refs hold was pushed (or came from there).
        if unpushed:
            lost.append(f"{unpushed} commit{'s' if unpushed != 1 else ''} not pushed to {repo}")
    else:
        missing = worktrees.missing_commits(repo, heads)
        if missing:
            where = f"not in {repo}" if repo else "in no other repository"
            lost.append(f"commits on {', '.join(_short(ref) for ref in missing)} {where}")
    return " and ".join(lost)


def _short(ref: str) -> str:
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref


def after_destroy(info: AgentInfo, delete_branch: bool, keep_work_dir: bool) -> None:
    """The user's repository once a worktree agent is gone: its worktree forgotten (the host
    removed the dir) and, with ``delete_branch``, its branch deleted."""
    from . import worktrees

    origin_record = info.work_dir_origin
    if origin_record.get("kind") != "worktree":
        return
    repo = origin_record.get("repo", "")
    if not repo or not os.path.isdir(repo):
        return
    if not keep_work_dir:
        worktrees.prune(repo)
    branch = origin_record.get("branch", "")
    if delete_branch and branch and worktrees.branch_exists(repo, branch):
        worktrees.delete_branch(repo, branch)
