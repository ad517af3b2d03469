"""A work dir and a branch of its own for every agent: worktrees of the user's repository on
the local host, copies with the history elsewhere, and what destroy keeps and refuses.
Real git repositories throughout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mngr.controller.cli.app import App
from mngr.controller.commands import agents
from mngr.controller.commands.create import CreateRequest, CreateResult, create
from mngr.controller.errors import MngrError, UsageError
from tests.sshd import SshHost, unavailable_reason


def _git(repo: Path, *args: str) -> str:
    completed = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                                "-c", "protocol.file.allow=always", "-C", str(repo), *args],
                               capture_output=True, text=True, check=True)
    return completed.stdout


def _repo(root: Path) -> Path:
    """A repository with two commits on main, *.log ignored."""
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.log\n")
    (root / "kept.txt").write_text("kept\n")
    (root / "gone.txt").write_text("to be deleted\n")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "first")
    (root / "kept.txt").write_text("kept, second\n")
    _git(root, "commit", "-qam", "second")
    return root


def _branches(repo: Path) -> list[str]:
    return sorted(_git(repo, "branch", "--format=%(refname:short)").split())


def _worktrees(repo: Path) -> list[str]:
    return [line.split(" ", 1)[1] for line in _git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


@pytest.fixture
def repo(sandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's repository, the current directory of the in-process mngr."""
    sandbox.apply_env(monkeypatch)
    found = _repo(sandbox.root / "project")
    monkeypatch.chdir(found)
    return found


def _make(name: str, **options) -> CreateResult:  # type: ignore[no-untyped-def]
    return create(App(), CreateRequest(name, agent_type="command", agent_args=("sleep", "600"), args_given=True,
                                       **options))


def _destroy(*names: str, **options) -> agents.AgentsResult:  # type: ignore[no-untyped-def]
    return agents.destroy(App(), agents.DestroyRequest(names, grace=0.5, **options))


def test_a_local_agent_gets_a_worktree_on_its_own_branch_with_the_uncommitted_work(sandbox, repo: Path) -> None:
    (repo / "kept.txt").write_text("edited, not committed\n")
    (repo / "staged.txt").write_text("added to the index\n")
    _git(repo, "add", "staged.txt")
    (repo / "gone.txt").unlink()
    (repo / "sub").mkdir()
    (repo / "sub" / "untracked.txt").write_text("untracked\n")
    (repo / "debug.log").write_text("ignored\n")
    status_before = _git(repo, "status", "--porcelain")
    created = _make("alpha")
    work = sandbox.host_dir / "work" / "alpha"
    assert created.info.work_dir == str(work)
    assert _git(work, "branch", "--show-current").strip() == "mngr/alpha"
    assert (work / "kept.txt").read_text() == "edited, not committed\n"
    assert (work / "staged.txt").read_text() == "added to the index\n"
    assert (work / "sub" / "untracked.txt").read_text() == "untracked\n"
    assert not (work / "gone.txt").exists() and not (work / "debug.log").exists()
    # The branch is in the user's repository, made at its HEAD; the user's tree is untouched.
    assert _branches(repo) == ["main", "mngr/alpha"]
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert _git(repo, "rev-parse", "mngr/alpha").strip() == head
    assert _git(repo, "status", "--porcelain") == status_before
    assert _git(repo, "branch", "--show-current").strip() == "main"
    origin = dict(created.info.work_dir_origin)
    carried_tree = origin.pop("carried_tree")
    assert origin == {"kind": "worktree", "repo": str(repo), "source": str(repo), "branch": "mngr/alpha",
                      "branch_made": "yes", "base": head, "carried": "yes"}
    # What was carried is noted as a tree of the work dir as the agent found it.
    assert _git(repo, "show", f"{carried_tree}:kept.txt") == "edited, not committed\n"
    assert _git(repo, "show", f"{carried_tree}:sub/untracked.txt") == "untracked\n"
    assert "gone.txt" not in _git(repo, "ls-tree", "--name-only", carried_tree)


def test_two_agents_from_one_repository_never_see_each_others_edits(sandbox, repo: Path) -> None:
    first = Path(_make("one").info.work_dir)
    second = Path(_make("two").info.work_dir)
    (first / "kept.txt").write_text("one's edit\n")
    (first / "mine.txt").write_text("one's file\n")
    _git(first, "add", "mine.txt")
    _git(first, "commit", "-qm", "by one")
    (second / "kept.txt").write_text("two's edit\n")
    assert (second / "kept.txt").read_text() == "two's edit\n" and not (second / "mine.txt").exists()
    assert (repo / "kept.txt").read_text() == "kept, second\n" and not (repo / "mine.txt").exists()
    # One's commit is on its branch in the user's repository, and only there.
    assert _git(repo, "log", "--format=%s", "-1", "mngr/one").strip() == "by one"
    assert _git(repo, "log", "--format=%s", "-1", "mngr/two").strip() == "second"
    assert _git(second, "status", "--porcelain").strip() == "M kept.txt"


def test_branch_choice_reuse_clean_and_a_detached_head(sandbox, repo: Path) -> None:
    (repo / "kept.txt").write_text("uncommitted\n")
    clean = _make("tidy", branch="feature/x", clean=True)
    work = Path(clean.info.work_dir)
    assert _git(work, "branch", "--show-current").strip() == "feature/x"
    assert (work / "kept.txt").read_text() == "kept, second\n", "--clean leaves the uncommitted edit behind"
    with pytest.raises(UsageError, match=r"branch 'feature/x' already exists in .*--reuse-branch"):
        _make("again", branch="feature/x")
    with pytest.raises(UsageError, match="not a valid git branch name"):
        _make("odd", branch="bad..name")
    with pytest.raises(UsageError, match="no branch 'mngr/nothing'"):
        _make("nothing", reuse_branch=True)
    assert not (sandbox.host_dir / "work" / "again").exists()
    _git(repo, "stash")
    _git(repo, "checkout", "-q", "--detach", "HEAD~1")
    detached = _make("loose")
    assert _git(Path(detached.info.work_dir), "log", "--format=%s", "-1").strip() == "first"
    assert _git(repo, "rev-parse", "mngr/loose").strip() == _git(repo, "rev-parse", "HEAD").strip()


def test_destroy_keeps_the_branch_refuses_lost_work_and_the_name_can_come_back(sandbox, repo: Path) -> None:
    work = Path(_make("worker").info.work_dir)
    (work / "draft.txt").write_text("not committed\n")
    with pytest.raises(MngrError, match=r"agent worker has uncommitted changes \(draft.txt\).*-f"):
        _destroy("worker")
    assert work.is_dir(), "a refused destroy touches nothing"
    _git(work, "add", "draft.txt")
    _git(work, "commit", "-qm", "the agent's work")
    with pytest.raises(MngrError, match=r"agent worker has 1 commit on no other branch of"):
        _destroy("worker", delete_branch=True)
    assert [changed.verb for changed in _destroy("worker").changed] == ["destroyed"]
    assert not work.exists() and _worktrees(repo) == [str(repo)]
    assert _git(repo, "log", "--format=%s", "-1", "mngr/worker").strip() == "the agent's work"
    with pytest.raises(UsageError, match="already exists"):
        _make("worker")
    back = Path(_make("worker", reuse_branch=True).info.work_dir)
    assert (back / "draft.txt").read_text() == "not committed\n"
    assert _destroy("worker", delete_branch=True, force=True).failed == []
    assert _branches(repo) == ["main"] and _worktrees(repo) == [str(repo)]
    assert _make("worker").info.work_dir == str(work)


def test_what_was_carried_is_no_lost_work_only_the_agents_own_changes_are(sandbox, repo: Path) -> None:
    (repo / "kept.txt").write_text("the user's edit\n")
    (repo / "gone.txt").unlink()
    (repo / "notes").mkdir()
    (repo / "notes" / "todo.txt").write_text("the user's untracked file\n")
    (repo / "notes" / "odd *[1].txt").write_text("a name git would take for a pattern\n")
    untouched = Path(_make("untouched").info.work_dir)
    assert [changed.verb for changed in _destroy("untouched").changed] == ["destroyed"], \
        "the user's changes it found are still in the user's tree: nothing of its own is lost"
    assert not untouched.exists()
    work = Path(_make("busy").info.work_dir)
    assert _git(work, "status", "--porcelain", "--untracked-files=all").split("\n")[:3] == \
        [" D gone.txt", " M kept.txt", '?? "notes/odd *[1].txt"']
    (work / "notes" / "todo.txt").write_text("the agent's edit of a carried file\n")
    (work / "fresh.txt").write_text("the agent's new file\n")
    with pytest.raises(MngrError, match=r"agent busy has uncommitted changes \((fresh.txt, notes/todo.txt|"
                                        r"notes/todo.txt, fresh.txt)\) \(-f") as refused:
        _destroy("busy")
    assert "kept.txt" not in str(refused.value) and "gone.txt" not in str(refused.value)
    # Back as it was carried (and the new file gone): nothing of the agent's own is left.
    (work / "notes" / "todo.txt").write_text("the user's untracked file\n")
    (work / "fresh.txt").unlink()
    (work / "kept.txt").write_text("the agent's edit, then its own again\n")
    with pytest.raises(MngrError, match=r"agent busy has uncommitted changes \(kept.txt\) \(-f"):
        _destroy("busy")
    (work / "kept.txt").write_text("the user's edit\n")
    assert _destroy("busy").failed == [] and not work.exists()


def test_a_pull_brings_a_worktree_agents_branch_as_mngr_name_fast_forward_only(sandbox, repo: Path) -> None:
    work = Path(_make("puller").info.work_dir)
    (work / "kept.txt").write_text("the agent's\n")
    _git(work, "commit", "-qam", "agent one")
    _git(work, "branch", "side")
    # Pulled into the repository it is a worktree of, the branch is simply there.
    pulled = sandbox.mngr("pull", "puller", "--format", "json", cwd=repo)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["branches"] == ["mngr/puller"]
    assert (repo / "kept.txt").read_text() == "the agent's\n"
    assert not [ref for ref in _git(repo, "for-each-ref", "--format=%(refname)").split() if "remotes" in ref]
    # Into another clone of the project: the agent's branch as mngr/puller, nothing else of it.
    other = sandbox.root / "other"
    _git(sandbox.root, "clone", "-q", str(repo), str(other))
    _git(other, "checkout", "-q", "-b", "mine", "origin/main")
    pulled = sandbox.mngr("pull", "puller", str(other), "--format", "json", "--force")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["branches"] == ["mngr/puller"]
    assert _git(other, "log", "--format=%s", "-1", "mngr/puller").strip() == "agent one"
    (work / "kept.txt").write_text("the agent's, again\n")
    _git(work, "commit", "-qam", "agent two")
    assert sandbox.mngr("pull", "puller", str(other), "--force").returncode == 0
    assert _git(other, "log", "--format=%s", "-1", "mngr/puller").strip() == "agent two", "a fast-forward"
    # A local commit on mngr/puller: the branches diverged, and the pull is refused in one line.
    local = _git(other, "commit-tree", "-p", "mngr/puller", "-m", "local", "mngr/puller^{tree}").strip()
    _git(other, "update-ref", "refs/heads/mngr/puller", local)
    (work / "kept.txt").write_text("the agent's third\n")
    _git(work, "commit", "-qam", "agent three")
    agents_tip = _git(work, "rev-parse", "HEAD").strip()
    before = (other / "kept.txt").read_text()
    refused = sandbox.mngr("pull", "puller", str(other))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"branch mngr/puller has diverged: it is at {local[:12]} here, puller's mngr/puller at " \
           f"{agents_tip[:12]}" in refused.stderr
    assert _git(other, "rev-parse", "mngr/puller").strip() == local
    assert (other / "kept.txt").read_text() == before, "a refused branch leaves the files alone too"
    forced = sandbox.mngr("pull", "puller", str(other), "--force")
    assert forced.returncode == 0, forced.stderr
    assert _git(other, "rev-parse", "mngr/puller").strip() == agents_tip
    # Checked out here, the branch is not moved under the files.
    _git(other, "checkout", "-q", "-f", "mngr/puller")
    (work / "kept.txt").write_text("the agent's fourth\n")
    _git(work, "commit", "-qam", "agent four")
    refused = sandbox.mngr("pull", "puller", str(other), "--force")
    assert refused.returncode == 1 and f"branch mngr/puller is checked out in {other}" in refused.stderr
    assert _git(other, "rev-parse", "mngr/puller").strip() == agents_tip


def test_a_clone_of_a_worktree_agent_is_a_worktree_on_a_branch_of_its_own(sandbox, repo: Path) -> None:
    from mngr.controller.commands.copy import CloneRequest, clone

    original = Path(_make("original").info.work_dir)
    (original / "kept.txt").write_text("the original's commit\n")
    _git(original, "commit", "-qam", "by the original")
    (original / "kept.txt").write_text("the original's uncommitted edit\n")
    (original / "draft.txt").write_text("the original's untracked file\n")
    cloned = clone(App(), CloneRequest("original", "twin"))
    work = Path(cloned.info.work_dir)
    assert work == sandbox.host_dir / "work" / "twin"
    assert _git(work, "rev-parse", "--path-format=absolute", "--git-common-dir").strip() == str(repo / ".git")
    assert _git(work, "branch", "--show-current").strip() == "mngr/twin"
    assert _git(work, "log", "--format=%s", "-1").strip() == "by the original"
    assert (work / "kept.txt").read_text() == "the original's uncommitted edit\n"
    assert (work / "draft.txt").read_text() == "the original's untracked file\n"
    origin = dict(cloned.info.work_dir_origin)
    assert origin.pop("carried_tree")
    assert origin == {"kind": "worktree", "repo": str(repo), "source": str(original), "branch": "mngr/twin",
                      "branch_made": "yes", "base": _git(original, "rev-parse", "HEAD").strip(), "carried": "yes"}
    assert _branches(repo) == ["main", "mngr/original", "mngr/twin"]
    assert (original / "kept.txt").read_text() == "the original's uncommitted edit\n", "the original untouched"
    # What it was given is no work of its own: destroyed without -f, its branch kept.
    assert _destroy("twin").failed == [] and not work.exists()
    assert _worktrees(repo) == [str(repo), str(original)] and "mngr/twin" in _branches(repo)


def test_gc_removes_a_worktree_whose_agent_is_gone_and_the_repository_forgets_it(sandbox, repo: Path) -> None:
    import shutil

    work = Path(_make("lost").info.work_dir)
    _git(work, "commit", "-q", "--allow-empty", "-m", "the lost agent's")
    kept = Path(_make("alive").info.work_dir)
    # A destroy cut short after the record went: the worktree stays, the repository lists it.
    for record in (sandbox.host_dir / "agents").glob("*/record.json"):
        if json.loads(record.read_text())["name"] == "lost":
            shutil.rmtree(record.parent)
    sandbox.tmux("kill-session", "-t", "mngr-lost")
    assert sorted(_worktrees(repo)) == sorted([str(repo), str(work), str(kept)])
    listed = sandbox.mngr("gc", "--dry-run", "--older-than", "0", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(row["kind"], row["what"]) for row in json.loads(listed.stdout)["leftovers"]] == \
        [("worktree of no agent", str(work))]
    assert sandbox.mngr("gc", "--older-than", "0").returncode == 0
    assert not work.exists() and kept.is_dir()
    assert _worktrees(repo) == [str(repo), str(kept)], "the repository forgot it"
    assert _git(repo, "log", "--format=%s", "-1", "mngr/lost").strip() == "the lost agent's", "its branch stays"
    assert _git(Path(_make("lost", reuse_branch=True).info.work_dir), "log", "--format=%s", "-1").strip() == \
        "the lost agent's"


def test_a_worktree_removed_behind_gits_back_does_not_block_its_name(sandbox, repo: Path) -> None:
    import shutil

    work = Path(_make("crashed").info.work_dir)
    for record in (sandbox.host_dir / "agents").glob("*/record.json"):
        # The host daemon's watcher may write the agent's state beside it meanwhile.
        while record.parent.exists():
            shutil.rmtree(record.parent, ignore_errors=True)
    sandbox.tmux("kill-session", "-t", "mngr-crashed")
    shutil.rmtree(work)  # as a crash or a hand would: the repository still lists the worktree
    assert str(work) in _worktrees(repo)
    again = _make("crashed", reuse_branch=True)
    assert again.info.work_dir == str(work) and _git(work, "branch", "--show-current").strip() == "mngr/crashed"


def test_a_detached_agents_commits_refuse_a_destroy_until_forced(sandbox, repo: Path) -> None:
    work = Path(_make("wanderer").info.work_dir)
    _git(work, "checkout", "-q", "--detach")
    (work / "more.txt").write_text("x\n")
    _git(work, "add", "more.txt")
    _git(work, "commit", "-qm", "on no branch")
    with pytest.raises(MngrError, match="1 commit on no other branch"):
        _destroy("wanderer")
    assert _destroy("wanderer", force=True).failed == []
    assert not work.exists()


def test_a_failed_create_leaves_no_worktree_and_no_branch(sandbox, repo: Path) -> None:
    with pytest.raises(MngrError, match="not found on PATH"):
        create(App(), CreateRequest("broken", agent_type="command", agent_args=("no-such-program-here",),
                                    args_given=True))
    assert _branches(repo) == ["main"] and _worktrees(repo) == [str(repo)]
    assert not (sandbox.host_dir / "work" / "broken").exists()
    assert _make("broken").info.work_dir_origin["branch"] == "mngr/broken"


def test_a_repository_with_a_submodule(sandbox, repo: Path) -> None:
    library = _repo(sandbox.root / "library")
    _git(repo, "submodule", "--quiet", "add", str(library), "lib")
    _git(repo, "commit", "-qm", "with a submodule")
    (repo / "lib" / "kept.txt").write_text("edited inside the submodule\n")
    work = Path(_make("subby").info.work_dir)
    assert (work / ".gitmodules").exists() and (work / "lib").is_dir()
    assert _destroy("subby", force=True).failed == []


def test_a_source_agent_gives_its_current_state_and_a_git_url_is_cloned(sandbox, repo: Path) -> None:
    first = Path(_make("first").info.work_dir)
    (first / "kept.txt").write_text("first's edit\n")
    _git(first, "commit", "-qam", "by first")
    (first / "wip.txt").write_text("first's uncommitted file\n")
    second = _make("second", source="first")
    work = Path(second.info.work_dir)
    assert second.info.work_dir_origin["kind"] == "worktree" and second.info.work_dir_origin["repo"] == str(repo)
    assert _git(work, "log", "--format=%s", "-1").strip() == "by first"
    assert (work / "wip.txt").read_text() == "first's uncommitted file\n"
    assert _git(work, "branch", "--show-current").strip() == "mngr/second"
    bare = sandbox.root / "shared.git"
    _git(sandbox.root, "clone", "-q", "--bare", str(repo), str(bare))
    url = f"file://{bare}"
    cloned = _make("third", source=url)
    clone = Path(cloned.info.work_dir)
    assert cloned.info.work_dir_origin == {"kind": "copy", "source": url, "repo": url, "branch": "mngr/third",
                                           "branch_made": "yes", "base": "", "carried": "yes"}
    assert _git(clone, "branch", "--show-current").strip() == "mngr/third"
    assert _git(clone, "log", "--format=%s", "-1").strip() == "second"
    assert _branches(repo) == ["main", "mngr/first", "mngr/second"], "a clone's branch is not in the user's repo"
    (clone / "new.txt").write_text("x\n")
    _git(clone, "add", "new.txt")
    _git(clone, "commit", "-qm", "not pushed")
    with pytest.raises(MngrError, match=f"agent third has 1 commit not pushed to {url}"):
        _destroy("third")
    _git(clone, "push", "-q", "origin", "mngr/third")
    assert _destroy("third").failed == [] and not clone.exists()
    with pytest.raises(MngrError, match="git clone failed"):
        _make("nowhere", source=f"file://{sandbox.root}/missing.git")
    assert not (sandbox.host_dir / "work" / "nowhere").exists()
    with pytest.raises(UsageError, match="is not a directory, an agent's name or a git URL"):
        _make("odd", source="Not A Name")


def test_outside_git_an_agent_gets_a_copy_and_destroy_refuses_what_it_changed(sandbox, monkeypatch) -> None:
    sandbox.apply_env(monkeypatch)
    plain = sandbox.root / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("n\n")
    (plain / "sub").mkdir()
    (plain / "sub" / "deep.txt").write_text("d\n")
    monkeypatch.chdir(plain)
    copied = _make("copied")
    assert copied.info.work_dir == str(sandbox.host_dir / "work" / "copied")
    assert copied.info.work_dir_origin == {"kind": "copy", "source": str(plain)}
    assert (Path(copied.info.work_dir) / "sub" / "deep.txt").read_text() == "d\n"
    (Path(copied.info.work_dir) / "notes.txt").write_text("the agent's edit\n")
    (Path(copied.info.work_dir) / "sub" / "new.txt").write_text("the agent's file\n")
    assert (plain / "notes.txt").read_text() == "n\n"  # the user's dir is not the agent's
    with pytest.raises(MngrError, match=r"copied has files changed since it was made \(notes\.txt, sub/new\.txt; "
                                        r"mngr pull copied brings them\)"):
        _destroy("copied")
    assert Path(copied.info.work_dir).is_dir()
    assert _destroy("copied", force=True).failed == [] and not Path(copied.info.work_dir).exists()
    untouched = _make("untouched")
    assert _destroy("untouched").failed == [] and not Path(untouched.info.work_dir).exists()
    in_place = _make("here", transfer="none")
    assert in_place.info.work_dir == str(plain) and in_place.info.work_dir_origin == {"kind": "in-place"}
    with pytest.raises(UsageError, match="--transfer worktree needs a git repository"):
        _make("tree", transfer="worktree")
    with pytest.raises(UsageError, match="--branch needs a git repository"):
        _make("branchy", branch="b")
    assert plain.is_dir() and (plain / "notes.txt").read_text() == "n\n"


def test_outside_git_a_home_dir_or_a_big_dir_is_not_copied_unless_asked(sandbox, monkeypatch) -> None:
    from mngr.controller import work_dirs

    sandbox.apply_env(monkeypatch)
    home = sandbox.root / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    with pytest.raises(UsageError, match=r"is not in a git repository and is your home dir.*--work-dir DIR"):
        _make("homely")
    big = sandbox.root / "big"
    big.mkdir()
    monkeypatch.setattr(work_dirs, "PLAIN_COPY_MAX_FILES", 20)
    for index in range(21):
        (big / f"f{index}.txt").write_text("x")
    monkeypatch.chdir(big)
    with pytest.raises(UsageError, match=r"holds more than 20 files.*--transfer copy to copy it all the same"):
        _make("biggish")
    assert not (sandbox.host_dir / "work").exists() or not list((sandbox.host_dir / "work").iterdir())
    asked = _make("asked", transfer="copy")
    assert len(list(Path(asked.info.work_dir).iterdir())) == 21
    assert _make("inside", work_dir=str(big)).info.work_dir == str(big)


def test_an_explicit_work_dir_runs_in_place_and_destroy_leaves_it(sandbox, repo: Path) -> None:
    created = _make("inplace", work_dir=str(repo))
    assert created.info.work_dir == str(repo) and created.info.work_dir_origin == {"kind": "in-place"}
    assert _make("none", transfer="none").info.work_dir == str(repo)
    assert _branches(repo) == ["main"]
    (repo / "dirty.txt").write_text("the user's\n")
    assert _destroy("inplace", "none").failed == []
    assert (repo / "dirty.txt").exists()


def test_the_cli_shows_the_origin_and_destroy_refuses_in_one_line(sandbox) -> None:
    repo = _repo(sandbox.root / "project")
    created = sandbox.mngr("create", "cli", "command", "--no-connect", "--format", "json", "--", "sleep", "600",
                           cwd=repo)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["work_dir_origin"]["kind"] == "worktree"
    listed = sandbox.mngr("list", "--format", "{name} {work_dir_origin}")
    assert listed.stdout.startswith("cli base=") and "branch=mngr/cli," in listed.stdout and "kind=worktree" in listed.stdout
    work = sandbox.host_dir / "work" / "cli"
    (work / "wip.txt").write_text("wip\n")
    refused = sandbox.mngr("destroy", "cli")
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1
    assert "uncommitted changes (wip.txt)" in refused.stderr
    # A dry run says what the destroy would do: refuse, the same way.
    dry = sandbox.mngr("destroy", "cli", "--dry-run")
    assert (dry.returncode, dry.stderr) == (refused.returncode, refused.stderr)
    assert sandbox.mngr("destroy", "cli", "--dry-run", "-f").stdout.startswith("would destroy")
    assert (work / "wip.txt").exists()
    gone = sandbox.mngr("destroy", "cli", "-f", "--delete-branch")
    assert gone.returncode == 0, gone.stderr
    assert _branches(repo) == ["main"] and not work.exists()


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_remote_agent_gets_a_copy_with_the_history_on_its_branch(sandbox) -> None:
    from tests.integration.test_ssh import started_host

    repo = _repo(sandbox.root / "project")
    (repo / "kept.txt").write_text("uncommitted\n")
    (repo / "new.txt").write_text("untracked\n")
    with started_host(sandbox, "testhost") as ssh_host:
        _remote_copy(sandbox, repo, ssh_host)


def _remote_copy(sandbox, repo: Path, ssh_host: SshHost) -> None:  # type: ignore[no-untyped-def]
    created = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--format", "json", "--", "sleep", "600", cwd=repo)
    assert created.returncode == 0, created.stderr
    agent = json.loads(created.stdout)
    work = ssh_host.remote_host_dir / "work" / "far"
    assert agent["work_dir"] == str(work) and agent["work_dir_origin"]["kind"] == "copy"
    shown = sandbox.mngr("exec", "far", "git branch --show-current; git log --format=%s")
    assert shown.returncode == 0 and shown.stdout.split("\n")[:3] == ["mngr/far", "second", "first"]
    assert (work / "kept.txt").read_text() == "uncommitted\n" and (work / "new.txt").read_text() == "untracked\n"
    assert _branches(repo) == ["main"], "a copy's branch is on the host, not made in the user's repository"
    # The carried changes are the user's, still in the user's tree: only the agent's own count.
    assert sandbox.mngr("exec", "far", "echo by the agent > agent.txt").returncode == 0
    refused = sandbox.mngr("destroy", "far")
    assert refused.returncode != 0 and "uncommitted changes (agent.txt) (-f" in refused.stderr
    committed = sandbox.mngr("exec", "far", "git add -A && git -c user.name=a -c user.email=a@b commit -qm remote")
    assert committed.returncode == 0, committed.stderr
    refused = sandbox.mngr("destroy", "far")
    assert refused.returncode != 0 and f"commits on HEAD, mngr/far not in {repo}" in refused.stderr
    # A pull brings its branch back as mngr/far, a local branch beside the user's, and its
    # other branches under mngr-far/.
    assert sandbox.mngr("exec", "far", "git branch aside").returncode == 0
    _git(repo, "stash", "-u")  # the pull must not meet uncommitted local work
    pulled = sandbox.mngr("pull", "far", "--format", "json", cwd=repo)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["branches"] == ["mngr/far", "mngr-far/aside", "mngr-far/main"]
    assert _git(repo, "log", "--format=%s", "mngr/far").split("\n")[:3] == ["remote", "second", "first"]
    assert _branches(repo) == ["main", "mngr/far"] and _git(repo, "branch", "--show-current").strip() == "main"
    assert sandbox.mngr("destroy", "far", "--dry-run").returncode == 0
    # Another agent's work dir, as it is now: every file and branch, on its branch.
    twin = sandbox.mngr("create", "twin", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                        "--source", "far", "--", "sleep", "600")
    assert twin.returncode == 0, twin.stderr
    shown = sandbox.mngr("exec", "twin", "git branch --show-current; git log --format=%s -1")
    assert shown.returncode == 0 and shown.stdout.split("\n")[:2] == ["mngr/far", "remote"]
    assert (ssh_host.remote_host_dir / "work" / "twin" / "new.txt").read_text() == "untracked\n"
    assert sandbox.mngr("destroy", "far", "twin", "-f").returncode == 0
    assert not work.exists()


def test_a_push_with_delete_leaves_a_worktrees_git_file_alone(sandbox) -> None:
    repo = _repo(sandbox.root / "project")
    assert sandbox.mngr("create", "pushed", "command", "--no-connect", "--", "sleep", "600", cwd=repo).returncode == 0
    work = sandbox.host_dir / "work" / "pushed"
    plain = sandbox.root / "plain"
    plain.mkdir()
    (plain / "kept.txt").write_text("from a plain dir\n")
    pushed = sandbox.mngr("push", "pushed", str(plain), "--delete", "--force")
    assert pushed.returncode == 0, pushed.stderr
    assert (work / ".git").is_file(), "the worktree's link to its repository is not the tree's content"
    assert _git(work, "status", "--porcelain").split("\n")[0] == " D .gitignore"


def test_a_copy_of_a_repository_with_thousands_of_commits(sandbox, repo: Path) -> None:
    commits = 3000
    stream = ["reset refs/heads/long\n"]
    for index in range(commits):
        message = f"commit {index}"
        content = f"{index}\n"
        stream.append(f"commit refs/heads/long\ncommitter t <t@example.com> {1700000000 + index} +0000\n"
                      f"data {len(message)}\n{message}\n" + ("from refs/heads/main\n" if index == 0 else "")
                      + f"M 644 inline counter.txt\ndata {len(content)}\n{content}\n")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(stream), text=True, check=True)
    _git(repo, "checkout", "-q", "long")
    copied = _make("historian", transfer="copy")
    work = Path(copied.info.work_dir)
    assert copied.info.work_dir_origin["kind"] == "copy"
    assert _git(work, "branch", "--show-current").strip() == "mngr/historian"
    assert int(_git(work, "rev-list", "--count", "HEAD")) == commits + 2
    assert (work / "counter.txt").read_text() == f"{commits - 1}\n"
    # Every commit of the copy is in the user's repository: nothing to lose.
    assert _destroy("historian").failed == [] and not work.exists()


def test_a_worktree_git_refuses_leaves_the_users_branch_alone(sandbox, repo: Path) -> None:
    # main is checked out in the user's own tree: git refuses a second worktree on it.
    with pytest.raises(MngrError, match=r"git worktree failed in .*already checked out"):
        _make("twice", branch="main", reuse_branch=True)
    assert _branches(repo) == ["main"] and _worktrees(repo) == [str(repo)]
    assert not (sandbox.host_dir / "work" / "twice").exists()


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_a_worktree_agent_migrates_to_another_host_with_its_history_and_work(sandbox) -> None:
    from tests.integration.test_ssh import started_host

    repo = _repo(sandbox.root / "project")
    with started_host(sandbox, "testhost") as ssh_host:
        sandbox.config_dir.mkdir(parents=True, exist_ok=True)
        (sandbox.config_dir / "config.toml").write_text("[hosts.testhost]\n")
        created = sandbox.mngr("create", "mover", "command", "--no-connect", "--", "sleep", "600", cwd=repo)
        assert created.returncode == 0, created.stderr
        work = sandbox.host_dir / "work" / "mover"
        assert (work / ".git").is_file()  # a worktree: .git names the user's repository
        (work / "kept.txt").write_text("the agent's edit\n")
        moved = sandbox.mngr("migrate", "mover", "--to-host", "testhost", "--in", "ssh")
        assert moved.returncode == 0, moved.stderr
        there = ssh_host.remote_host_dir / "work" / "mover"
        assert (there / ".git").is_dir()  # its own repository, not a link to a path of this machine
        shown = sandbox.mngr("exec", "mover", "git branch --show-current; git status --short; git log --format=%s")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.split("\n")[:4] == ["mngr/mover", " M kept.txt", "second", "first"]
        assert (there / "kept.txt").read_text() == "the agent's edit\n"
        assert not work.exists()
        assert _worktrees(repo) == [str(repo)]  # the user's repository forgot the moved worktree
        assert "mngr/mover" in _branches(repo)  # and keeps the branch the agent started on


def test_a_git_file_is_no_content_to_copy(tmp_path: Path) -> None:
    # A worktree's or submodule's .git file names a repository on this machine: a push or pull
    # leaves it out on both ends, as it does a .git directory.
    from mngr.remote_helper import files

    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").write_text("gitdir: /somewhere/.git/worktrees/x\n")
    (tmp_path / "sub" / ".git").write_text("gitdir: ../.git/modules/sub\n")
    (tmp_path / "sub" / "code.py").write_text("x = 1\n")
    assert sorted(files.manifest_entries(str(tmp_path))) == ["sub", "sub/code.py"]


def test_a_snapshot_of_a_worktree_agent_starts_an_agent_with_a_repository_of_its_own(sandbox) -> None:
    repo = _repo(sandbox.root / "project")
    created = sandbox.mngr("create", "orig", "command", "--no-connect", "--", "sleep", "600", cwd=repo)
    assert created.returncode == 0, created.stderr
    (sandbox.host_dir / "work" / "orig" / "kept.txt").write_text("the agent's edit\n")
    snapshot = sandbox.mngr("snapshot", "orig", "--format", "{id}")
    assert snapshot.returncode == 0, snapshot.stderr
    restored = sandbox.mngr("create", "again", "--no-connect", "--snapshot", snapshot.stdout.strip())
    assert restored.returncode == 0, restored.stderr
    # The original and its branch gone, the restored agent's repository still holds its work.
    assert sandbox.mngr("destroy", "-f", "orig", "--delete-branch").returncode == 0
    assert _branches(repo) == ["main"]
    again = sandbox.host_dir / "work" / "again"
    assert (again / ".git").is_dir()
    shown = sandbox.mngr("exec", "again", "git branch --show-current; git status --short; git log --format=%s")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split("\n")[:4] == ["mngr/orig", " M kept.txt", "second", "first"]


def test_a_work_dir_already_at_the_agents_place_is_never_taken_over_or_removed(sandbox, monkeypatch) -> None:
    # What a second create of the same name at the same moment finds: the first one's dir.
    sandbox.apply_env(monkeypatch)
    plain = sandbox.root / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("n\n")
    monkeypatch.chdir(plain)
    taken = sandbox.host_dir / "work" / "twin"
    taken.mkdir(parents=True)
    with pytest.raises(MngrError, match=r"work dir .*/work/twin already exists \(another create of 'twin' is under way"):
        _make("twin")
    assert taken.is_dir() and list(taken.iterdir()) == []  # the other create's dir, left as it was
    assert sandbox.sessions() == []
