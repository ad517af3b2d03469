"""Git work on this machine for a new agent's work dir: a worktree of the user's repository
on a branch of the agent's own, the user's uncommitted changes carried into it, and what a
removal would lose.

Everything runs the user's git in the user's repository; nothing here touches the user's
own work tree, index or checked-out branch.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .errors import MngrError, UsageError


class GitFailed(MngrError):
    """A git command mngr ran failed: its last line of output says why."""


def git(repo: str, *args: str, check: bool = True, input_bytes: bytes | None = None) -> str:
    """Run git in ``repo``; its output (stdout), or GitFailed with git's own last words."""
    try:
        completed = subprocess.run(["git", "-C", repo, *args], input=input_bytes, capture_output=True,
                                   stdin=None if input_bytes is not None else subprocess.DEVNULL)
    except OSError:
        raise MngrError("git is not installed (a work dir from a git repository needs it)") from None
    if check and completed.returncode != 0:
        lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitFailed(f"git {args[0]} failed in {repo}: {lines[-1] if lines else 'exit status ' + str(completed.returncode)}")
    return completed.stdout.decode("utf-8", "surrogateescape") if completed.returncode == 0 else ""


def repository_top(directory: str) -> str:
    """The top level of the git work tree ``directory`` is in; "" outside one (or without git)."""
    try:
        completed = subprocess.run(["git", "-C", directory, "rev-parse", "--show-toplevel"], capture_output=True,
                                   stdin=subprocess.DEVNULL)
    except OSError:
        return ""
    return completed.stdout.decode("utf-8", "surrogateescape").strip() if completed.returncode == 0 else ""


def main_top(top: str) -> str:
    """The top of the repository's main work tree, for ``top`` in any of its worktrees (the
    repository's git dir for a bare one)."""
    common = git(top, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False).strip()
    if not common:
        return top
    return os.path.dirname(common) if os.path.basename(common) == ".git" else common


def locate(directory: str) -> tuple[str, str, str]:
    """``(top, main top, HEAD's commit)`` for ``directory`` in one git call: the top of its
    work tree, that of its repository's main work tree (main_top), and "" for a repository
    without a commit; ``("", "", "")`` outside git."""
    try:
        completed = subprocess.run(["git", "-C", directory, "rev-parse", "--path-format=absolute", "--show-toplevel",
                                    "--git-common-dir", "HEAD^{commit}"], capture_output=True, stdin=subprocess.DEVNULL)
    except OSError:
        return "", "", ""
    lines = completed.stdout.decode("utf-8", "surrogateescape").splitlines()
    if completed.returncode == 0 and len(lines) == 3:
        top, common, head = lines
        return top, os.path.dirname(common) if os.path.basename(common) == ".git" else common, head
    # No commit yet, no work tree, or a git older than --path-format: one question at a time.
    top = repository_top(directory)
    if not top:
        return "", "", ""
    head = git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).strip()
    return top, main_top(top), head


def branch_exists(top: str, branch: str) -> bool:
    return bool(git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip())


def check_branch_name(top: str, branch: str) -> None:
    if not git(top, "check-ref-format", "--branch", branch, check=False).strip() or branch.startswith("-"):
        raise UsageError(f"--branch {branch!r} is not a valid git branch name")


def add_worktree(top: str, path: str, branch: str, make_branch: bool, head: str = "") -> str:
    """A worktree of ``top``'s repository in the empty dir ``path``, on ``branch`` (made at
    HEAD, or at the commit ``head`` when given, when ``make_branch``). Returns the commit it
    starts from."""
    # A worktree whose dir was removed without git (gc, a crash) still holds its branch and
    # name in the repository until pruned: a new agent of the same name must not trip on it.
    if _stale_worktrees(top):
        git(top, "worktree", "prune")
    base = head if make_branch and head else \
        git(top, "rev-parse", "--verify", "HEAD^{commit}" if make_branch else f"refs/heads/{branch}").strip()
    if make_branch:
        git(top, "worktree", "add", "--quiet", "--no-track", "-b", branch, path, base)
    else:
        git(top, "worktree", "add", "--quiet", path, branch)
    return base


def _stale_worktrees(top: str) -> bool:
    """True if ``top``'s repository lists a worktree whose dir is gone (or cannot tell): a
    look at its files spares the ``git worktree prune`` most creates do not need."""
    git_dir = os.path.join(top, ".git")
    if os.path.isfile(git_dir):  # top is itself a worktree: ask git where the repository is
        return True
    listed = os.path.join(git_dir, "worktrees")
    try:
        entries = os.listdir(listed)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    for entry in entries:
        try:
            with open(os.path.join(listed, entry, "gitdir"), encoding="utf-8", errors="surrogateescape") as pointer:
                link = pointer.readline().strip()
        except OSError:
            return True
        if not os.path.exists(link):
            return True
    return False


class UserChanges:
    """The user's uncommitted changes in ``top``, read (``git diff HEAD``, ``git ls-files
    --others``) on threads of their own from the moment it is made: they cost a look at
    every file of the user's tree, which is then done while git checks out the worktree."""

    def __init__(self, top: str) -> None:
        import threading

        self.top = top
        self._diff: subprocess.CompletedProcess[bytes] | None = None
        self._untracked: subprocess.CompletedProcess[bytes] | None = None
        self._failure: BaseException | None = None
        self._threads = [threading.Thread(target=self._read, args=(which,), daemon=True)
                         for which in ("diff", "untracked")]
        for thread in self._threads:
            thread.start()

    def _read(self, which: str) -> None:
        # No renames (diff.renames may be set): each path is one that changed, for the record.
        command = ["diff", "--binary", "--no-color", "--no-renames", "--no-ext-diff", "--ignore-submodules", "HEAD"] \
            if which == "diff" else ["ls-files", "--others", "--exclude-standard", "-z"]
        try:
            completed = subprocess.run(["git", "-C", self.top, *command], capture_output=True,
                                       stdin=subprocess.DEVNULL)
        except BaseException as exc:  # re-raised by carry_into, on the caller's thread
            self._failure = exc
            return
        if which == "diff":
            self._diff = completed
        else:
            self._untracked = completed

    def carry_into(self, path: str) -> list[str]:
        """Bring the changes to tracked files and the untracked (not ignored) files into the
        new worktree ``path``; submodules stay as checked out. Returns the paths carried."""
        for thread in self._threads:
            thread.join()
        if self._failure is not None:
            if isinstance(self._failure, OSError):
                raise MngrError("git is not installed (a work dir from a git repository needs it)") from None
            raise self._failure
        assert self._diff is not None and self._untracked is not None
        for what, completed in (("diff", self._diff), ("ls-files", self._untracked)):
            if completed.returncode != 0:
                raise GitFailed(f"git {what} failed in {self.top}: {completed.stderr.decode('utf-8', 'replace').strip()}")
        carried = []
        if self._diff.stdout:
            git(path, "apply", "--binary", "--whitespace=nowarn", input_bytes=self._diff.stdout)
            listed = git(path, "apply", "--numstat", "-z", input_bytes=self._diff.stdout)
            carried += [record.split("\t", 2)[2] for record in listed.split("\0") if record.count("\t") >= 2]
        for raw in self._untracked.stdout.split(b"\0"):
            if not raw:
                continue
            relative = os.fsdecode(raw)
            source = os.path.join(self.top, relative)
            target = os.path.join(path, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
            elif os.path.isfile(source):
                shutil.copy2(source, target)
            else:
                continue
            carried.append(relative)
        return carried


def carried_tree(path: str, carried: list[str]) -> str:
    """The git tree of the worktree ``path`` once ``carried`` (the paths changed from its
    commit) were carried into it, written into its repository: what the agent found there,
    against which a destroy counts its own changes. Only those paths are looked at."""
    if not carried:
        return ""
    index = git(path, "rev-parse", "--git-path", "index").strip()
    index = os.path.join(path, index)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mngr-index-") as scratch:
        scratch_index = os.path.join(scratch, "index")
        shutil.copyfile(index, scratch_index)
        env = dict(os.environ, GIT_INDEX_FILE=scratch_index, GIT_LITERAL_PATHSPECS="1")
        listed = b"".join(os.fsencode(relative) + b"\0" for relative in carried)
        for command in (["add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"], ["write-tree"]):
            completed = subprocess.run(["git", "-C", path, *command], input=listed, capture_output=True, env=env)
            if completed.returncode != 0:
                lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
                raise GitFailed(f"git {command[0]} failed in {path}: {lines[-1] if lines else 'failed'}")
    return completed.stdout.decode("ascii", "replace").strip()


def remove_worktree(top: str, path: str) -> None:
    """Take the worktree ``path`` away, from disk and from the repository's list."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    prune(top)


def prune(top: str) -> None:
    if os.path.isdir(top):
        git(top, "worktree", "prune", check=False)


def delete_branch(top: str, branch: str) -> None:
    git(top, "branch", "--quiet", "-D", branch)


def commits_elsewhere_missing(top: str, heads: list[str], dropped_branch: str = "") -> int:
    """How many commits reachable from ``heads`` are on no branch, tag or remote-tracking
    ref of ``top``'s repository (``dropped_branch`` not counted as one: it is to be deleted)."""
    if not heads:
        return 0
    exclude = [f"--exclude={dropped_branch}"] if dropped_branch else []
    listed = git(top, "rev-list", *heads, "--not", *exclude, "--branches", "--tags", "--remotes", check=False)
    return len(listed.split())


def missing_commits(top: str, heads: dict[str, str]) -> list[str]:
    """The refs of another repository (``{ref: commit}``) whose commits ``top``'s repository
    lacks or holds on no branch, tag or remote-tracking ref."""
    if not top or not os.path.isdir(top):
        return sorted(heads)
    missing = []
    for ref, commit in sorted(heads.items()):
        if not _object_exists(top, commit) or commits_elsewhere_missing(top, [commit]):
            missing.append(ref)
    return missing


def _object_exists(top: str, commit: str) -> bool:
    completed = subprocess.run(["git", "-C", top, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True,
                               stdin=subprocess.DEVNULL)
    return completed.returncode == 0
