"""mngr push and mngr pull against real work dirs: every byte and mode compared."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from mngr.controller.channel import protocol
from mngr.controller.errors import RemoteError
from mngr.controller.hosts import HostHandle
from mngr.controller.local_walk import _read_tag
from mngr.providers.local import LocalProvider
from mngr.remote_helper import files
from tests.conftest import MNGR_BIN, wait_for


def _tree(root: Path) -> dict[str, tuple]:
    """Everything below ``root`` (but .git): kind, mode, content or link target."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0] == ".git":
            continue
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            found[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            found[relative] = ("dir", stat.S_IMODE(info.st_mode))
        elif stat.S_ISSOCK(info.st_mode):  # a state dir's (the resident mngr's): nothing to read
            found[relative] = ("socket", stat.S_IMODE(info.st_mode))
        else:
            found[relative] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return found


def _make_source(root: Path) -> None:
    (root / "src" / "deep" / "er").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "README.md").write_text("hello\n")
    (root / "empty").write_bytes(b"")
    (root / "src" / "deep" / "er" / "data.bin").write_bytes(os.urandom(9 * 1024 * 1024 + 17))  # several parts
    (root / "src" / "text.txt").write_text("compressible line\n" * 5000)
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret").write_text("s")
    (root / "secret").chmod(0o600)
    (root / "src" / "deep").chmod(0o750)
    (root / "link-in").symlink_to("src/text.txt")
    (root / "link-out").symlink_to("../../outside")  # travels as a link, never followed
    (root / "name with spaces & ünïcode").write_text("odd\n")


def test_push_then_pull_round_trip_every_byte_and_mode(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "source"
    source.mkdir()
    _make_source(source)
    dry = sandbox.mngr("push", "box", str(source), "--dry-run")
    assert dry.returncode == 0 and "+ src/deep/er/data.bin" in dry.stdout and _tree(agent_dir) == {}
    pushed = sandbox.mngr("push", "box", str(source))
    assert pushed.returncode == 0, pushed.stderr
    assert _tree(agent_dir) == _tree(source)
    again = sandbox.mngr("push", "box", str(source))
    assert again.returncode == 0 and "nothing to push" in again.stdout
    # One file changes: only it travels.
    (source / "src" / "text.txt").write_text("changed\n")
    dry = sandbox.mngr("push", "box", str(source), "--dry-run", "--format", "json")
    assert [c["path"] for c in json.loads(dry.stdout)["changes"]] == ["src/text.txt"]
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    assert _tree(agent_dir) == _tree(source)
    # And back, into a new directory.
    back = sandbox.root / "back"
    pulled = sandbox.mngr("pull", "box", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert _tree(back) == _tree(source)
    assert not list(agent_dir.rglob(".mngr-part.*")) and not list(back.rglob(".mngr-part.*"))


def _dir_times(root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix(): path.lstat().st_mtime_ns for path in sorted(root.rglob("*"))
            if path.is_dir() and not path.is_symlink() and ".git" not in path.relative_to(root).parts}


def test_directories_keep_their_mtimes_both_ways_even_where_a_file_landed_in_them(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "source"
    source.mkdir()
    _make_source(source)
    (source / "locked").mkdir()
    (source / "locked" / "inside.txt").write_text("in a read-only dir\n")
    (source / "locked").chmod(0o555)
    for number, directory in enumerate(sorted(_dir_times(source), key=len, reverse=True)):
        os.utime(source / directory, ns=(1, 1_500_000_000_000_000_000 + number * 1_000_001))
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    assert _dir_times(agent_dir) == _dir_times(source) and _tree(agent_dir) == _tree(source)
    # A changed file lands by a rename in its directory, which moves that directory's mtime
    # on the host: it is set back, and the next push has nothing to do.
    (source / "src" / "text.txt").write_text("changed in place\n")
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    assert _dir_times(agent_dir) == _dir_times(source) and _tree(agent_dir) == _tree(source)
    again = sandbox.mngr("push", "box", str(source))
    assert again.returncode == 0 and "nothing to push" in again.stdout
    # The agent adds a file: its directory's new mtime comes back with it.
    (agent_dir / "src" / "deep" / "new.txt").write_text("agent's\n")
    back = sandbox.root / "back"
    assert sandbox.mngr("pull", "box", str(back)).returncode == 0
    assert _dir_times(back) == _dir_times(agent_dir) and _tree(back) == _tree(agent_dir)
    (source / "locked").chmod(0o755)  # so the test's clean-up can remove it
    (agent_dir / "locked").chmod(0o755)
    (back / "locked").chmod(0o755)


def test_the_manifest_kept_between_pushes_follows_every_change_on_the_host(sandbox, agent_dir: Path) -> None:
    """Pushes reuse the host's manifest kept from last time (the host daemon says it is
    unchanged); whatever changes on the host meanwhile is still seen."""
    source = sandbox.root / "source"
    source.mkdir()
    _make_source(source)
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    kept = sandbox.state_dir / "manifests" / "box"
    # The host took the push in: the copy here is brought up to date (by the push's child,
    # after the push returned; reading under its lock waits for it).
    tag = _read_tag(str(kept))
    assert tag
    again = sandbox.mngr("push", "box", str(source))
    assert again.returncode == 0 and "nothing to push" in again.stdout
    assert _read_tag(str(kept)) == tag  # "unchanged", said the host
    # The agent changes a file (same size), removes one and makes a directory.
    changed = agent_dir / "src" / "text.txt"
    changed.write_bytes(changed.read_bytes()[::-1])
    os.utime(changed, ns=(1, 1))
    (agent_dir / "src" / "deep" / "er" / "data.bin").unlink()
    (agent_dir / "made-by-agent").mkdir()
    (agent_dir / "made-by-agent" / "notes.md").write_text("agent's work")
    dry = sandbox.mngr("push", "box", str(source), "--dry-run", "--format", "json")
    assert sorted(c["path"] for c in json.loads(dry.stdout)["changes"]) == [
        "src/deep/er/data.bin", "src/text.txt"]
    pulled = sandbox.mngr("pull", "box", str(sandbox.root / "back"))
    assert pulled.returncode == 0 and (sandbox.root / "back" / "made-by-agent" / "notes.md").exists()
    assert sandbox.mngr("push", "box", str(source), "--delete").returncode == 0
    assert _tree(agent_dir) == _tree(source)
    # A kept copy that lies (another tag) is never believed: the host sends its manifest.
    _read_tag(str(kept))  # the last push's child has kept its copy: now overwrite it
    kept.write_bytes(b"someone.1.1\n" + kept.read_bytes().split(b"\n", 1)[1])
    (agent_dir / "src" / "text.txt").write_text("changed behind the copy's back\n")
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    assert _tree(agent_dir) == _tree(source)


def test_pulls_after_changes_on_the_host_bring_every_one_of_them(sandbox, agent_dir: Path) -> None:
    """After the first pull, the host sends only what changed since the manifest kept here:
    moves, removals and a directory turned into a file all arrive, and the copy kept here
    stays the host's manifest."""
    import marshal

    source = sandbox.root / "source"
    source.mkdir()
    _make_source(source)
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    back = sandbox.root / "back"
    assert sandbox.mngr("pull", "box", str(back)).returncode == 0
    kept = sandbox.state_dir / "manifests" / "box"
    rounds = [
        lambda: (agent_dir / "src" / "text.txt").write_text("the agent's edit\n"),
        lambda: (agent_dir / "src" / "deep").rename(agent_dir / "moved"),
        lambda: (agent_dir / "moved" / "er" / "data.bin").unlink(),
        lambda: ((agent_dir / "empty-dir").rmdir(), (agent_dir / "empty-dir").write_text("now a file")),
        lambda: ((agent_dir / "new" / "dir").mkdir(parents=True), (agent_dir / "new" / "dir" / "f").write_text("f")),
    ]
    for change in rounds:
        tag = _read_tag(str(kept))
        change()
        pulled = sandbox.mngr("pull", "box", str(back), "--delete")
        assert pulled.returncode == 0, pulled.stderr
        assert _tree(back) == _tree(agent_dir)
        new_tag = _read_tag(str(kept))
        assert new_tag and new_tag != tag
        entries = marshal.loads(kept.read_bytes().split(b"\n", 1)[1])
        assert sorted(entries) == sorted(files.manifest_entries(str(agent_dir), True).values())


def test_delete_removes_only_with_the_flag(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "source"
    (source / "keep").mkdir(parents=True)
    (source / "keep" / "a").write_text("a")
    (agent_dir / "extra").mkdir()
    (agent_dir / "extra" / "file").write_text("x")
    (agent_dir / "stray.txt").write_text("y")
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    assert (agent_dir / "stray.txt").exists() and (agent_dir / "extra" / "file").exists()
    dry = sandbox.mngr("push", "box", str(source), "--delete", "--dry-run")
    assert "- stray.txt" in dry.stdout and "- extra" in dry.stdout and (agent_dir / "stray.txt").exists()
    assert sandbox.mngr("push", "box", str(source), "--delete").returncode == 0
    assert _tree(agent_dir) == _tree(source)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True)


def _repo_on_a_branch(root: Path, ignored: str, name: str, content: str, message: str, branch: str) -> Path:
    """A repository at ``root``: one commit on main (``name`` and a .gitignore of
    ``ignored``), then ``branch`` checked out."""
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(ignored + "\n")
    (root / name).write_text(content)
    _git(root, "add", ".")
    _git(root, "commit", "-qm", message)
    _git(root, "checkout", "-qb", branch)
    return root


def test_gitignore_is_honoured_unless_told_and_git_never_travels(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "project"
    source.mkdir()
    _git(source, "init", "-q")
    (source / ".gitignore").write_text("build/\n*.log\n")
    (source / "main.py").write_text("print(1)\n")
    (source / "build").mkdir()
    (source / "build" / "out.o").write_text("binary")
    (source / "debug.log").write_text("noise")
    _git(source, "add", ".")
    _git(source, "commit", "-qm", "init")
    (source / "new_untracked.py").write_text("x = 2\n")
    assert sandbox.mngr("push", "box", str(source)).returncode == 0
    assert sorted(_tree(agent_dir)) == [".gitignore", "main.py", "new_untracked.py"]
    assert not (agent_dir / ".git").exists()
    assert sandbox.mngr("push", "box", str(source), "--include-gitignored").returncode == 0
    assert sorted(_tree(agent_dir)) == [".gitignore", "build", "build/out.o", "debug.log", "main.py",
                                        "new_untracked.py"]
    assert not (agent_dir / ".git").exists()


def test_delete_removes_only_what_was_listed_and_keeps_ignored_files_and_nested_repositories(
        sandbox, agent_dir: Path) -> None:
    """A directory the source no longer has loses what was listed in it; files .gitignore
    excludes, and a nested repository's .git (never listed), stay, with their directory."""
    _git(agent_dir, "init", "-q")
    (agent_dir / ".gitignore").write_text("*.log\n")
    (agent_dir / "old" / "deeper").mkdir(parents=True)
    (agent_dir / "old" / "keep.txt").write_text("listed\n")
    (agent_dir / "old" / "deeper" / "debug.log").write_text("ignored, never listed\n")
    (agent_dir / "gone" / "sub").mkdir(parents=True)
    (agent_dir / "gone" / "sub" / "a.txt").write_text("listed\n")
    (agent_dir / "vendor" / "lib").mkdir(parents=True)
    _git(agent_dir / "vendor" / "lib", "init", "-q")
    (agent_dir / "vendor" / "lib" / "code.py").write_text("x = 1\n")
    source = sandbox.root / "project"
    source.mkdir()
    (source / ".gitignore").write_text("*.log\n")
    (source / "vendor").write_text("now a file\n")  # replaces the directory, with --delete
    pushed = sandbox.mngr("push", "box", str(source), "--delete", "--force")
    assert (agent_dir / "old" / "deeper" / "debug.log").read_text() == "ignored, never listed\n"
    assert not (agent_dir / "old" / "keep.txt").exists() and not (agent_dir / "gone").exists()
    # A nested repository is its own, never listed: all of it stays, and the file cannot land.
    assert (agent_dir / "vendor" / "lib" / ".git").is_dir() and (agent_dir / "vendor" / "lib" / "code.py").exists()
    assert pushed.returncode == 3 and "skipped vendor" in pushed.stderr, pushed.stderr
    # Everything listed: the nested repository's files go, its .git (never listed) stays.
    everything = sandbox.mngr("push", "box", str(source), "--delete", "--force", "--include-gitignored")
    assert everything.returncode == 3 and "skipped vendor" in everything.stderr, everything.stderr
    assert (agent_dir / "vendor" / "lib" / ".git" / "HEAD").exists()
    assert not (agent_dir / "vendor" / "lib" / "code.py").exists() and not (agent_dir / "old").exists()
    # And the other way: a pull with --delete keeps this side's ignored files.
    local = sandbox.root / "local"
    (local / "old").mkdir(parents=True)
    _git(local, "init", "-q")
    (local / ".gitignore").write_text("*.log\n")
    (local / "old" / "mine.log").write_text("my ignored notes\n")
    (local / "old" / "tracked.txt").write_text("listed\n")
    pulled = sandbox.mngr("pull", "box", str(local), "--delete", "--force")
    assert pulled.returncode == 0, pulled.stderr
    assert (local / "old" / "mine.log").read_text() == "my ignored notes\n"
    assert not (local / "old" / "tracked.txt").exists()


def test_uncommitted_changes_on_the_receiving_side_are_not_overwritten_without_force(sandbox,
                                                                                     agent_dir: Path) -> None:
    _git(agent_dir, "init", "-q")
    (agent_dir / "notes.md").write_text("committed\n")
    _git(agent_dir, "add", ".")
    _git(agent_dir, "commit", "-qm", "init")
    (agent_dir / "notes.md").write_text("the agent's unsaved work\n")
    source = sandbox.root / "source"
    source.mkdir()
    (source / "notes.md").write_text("from the user\n")
    refused = sandbox.mngr("push", "box", str(source))
    assert refused.returncode == 1 and "refusing to overwrite uncommitted changes" in refused.stderr
    assert "notes.md" in refused.stderr and refused.stderr.count("\n") == 1
    assert (agent_dir / "notes.md").read_text() == "the agent's unsaved work\n"
    assert sandbox.mngr("push", "box", str(source), "--force").returncode == 0
    assert (agent_dir / "notes.md").read_text() == "from the user\n"
    # The same on the way back: local uncommitted work is safe from a pull.
    _git(source, "init", "-q")
    _git(source, "add", ".")
    _git(source, "commit", "-qm", "init")
    (source / "notes.md").write_text("local unsaved\n")
    (agent_dir / "notes.md").write_text("newer on the host\n")
    refused = sandbox.mngr("pull", "box", str(source))
    assert refused.returncode == 1 and "refusing to overwrite uncommitted changes" in refused.stderr
    assert (source / "notes.md").read_text() == "local unsaved\n"


@pytest.fixture
def handle(sandbox, agent_dir: Path, monkeypatch: pytest.MonkeyPatch):
    sandbox.apply_env(monkeypatch)
    with HostHandle(LocalProvider(), "local", timeout=30) as opened:
        yield opened


@pytest.mark.parametrize("path", ["../escape", "/tmp/escape", "a/../../escape", "a//b", "./a", "", "a\0b"])
def test_hostile_paths_in_a_write_are_refused_and_nothing_is_written(sandbox, agent_dir: Path, handle,
                                                                    path: str) -> None:
    request = protocol.WriteFiles(name="box", parts=[["fine.txt", 0o644, 0, 0, 2, False, 0, True],
                                                     [path, 0o644, 0, 0, 2, False, 0, True]])
    with pytest.raises(RemoteError, match="unsafe path"):
        handle.write_files(request, b"hi")
    assert _tree(agent_dir) == {}, "a refused request writes nothing, not even its safe entries"
    assert not (sandbox.root / "escape").exists()


def test_nothing_is_written_through_a_symlink(sandbox, agent_dir: Path, handle) -> None:
    # Refused entry by entry: each is reported as skipped (the rest of a request would land).
    outside = sandbox.root / "outside"
    outside.mkdir()
    (agent_dir / "escape").symlink_to(outside)
    for request in (protocol.WriteFiles(name="box", parts=[["escape/file", 0o644, 0, 0, 2, False, 0, True]]),
                    protocol.WriteFiles(name="box", dirs=[["escape/sub", 0o755]]),
                    protocol.WriteFiles(name="box", links=[["escape/l", "/etc/passwd"]]),
                    protocol.WriteFiles(name="box", deletes=["escape/anything"])):
        (path, reason), = handle.write_files(request, b"hi").skipped
        assert path.startswith("escape/") and "symlink" in reason
    assert list(outside.iterdir()) == []
    reply, _ = handle.read_files("box", ["escape"])
    assert reply.files == [] and reply.skipped == [["escape", "escape is a symlink, not a file"]]


def test_a_push_cut_short_leaves_no_truncated_file_and_the_next_one_finishes(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "source"
    source.mkdir()
    content = os.urandom(96 * 1024 * 1024)
    (source / "big.bin").write_bytes(content)
    (agent_dir / "big.bin").write_bytes(b"the old version")
    pushing = subprocess.Popen([str(MNGR_BIN), "push", "box", str(source)], env=sandbox.env,
                               cwd=sandbox.work_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = agent_dir / files.part_name("big.bin")
    wait_for(lambda: part.exists() or pushing.poll() is not None, "a part on disk")
    pushing.send_signal(signal.SIGKILL)
    assert pushing.wait() == -signal.SIGKILL, "the push ended before it could be cut"
    time.sleep(0.5)  # let the host finish whatever request it had whole
    landed = (agent_dir / "big.bin").read_bytes()
    assert landed in (b"the old version", content), "the target is either untouched or complete"
    finished = sandbox.mngr("push", "box", str(source))
    assert finished.returncode == 0, finished.stderr
    assert (agent_dir / "big.bin").read_bytes() == content
    assert not list(agent_dir.glob(".mngr-part.*"))


def test_a_hostile_helper_reply_is_rejected_on_pull(tmp_path: Path) -> None:
    from mngr.controller import sync
    from mngr.controller.errors import ProtocolViolation

    target = tmp_path / "target"
    target.mkdir()
    bad_items = [
        (["../escape", 0, 1, False, 0o644, 0, 1], {"../escape"}),  # asked for, yet unsafe
        (["other.txt", 0, 1, False, 0o644, 0, 1], {"asked.txt"}),  # never asked for
        (["asked.txt", 5, 10, False, 0o644, 0, 10], {"asked.txt"}),  # outside the reply's data
        (["asked.txt", 0, 1, False, 0o644, 0, 99], {"asked.txt"}),  # wrong size
        (["asked.txt", "0", 1, False, 0o644, 0, 1], {"asked.txt"}),  # wrong type
    ]
    for item, wanted in bad_items:
        with pytest.raises(ProtocolViolation):
            sync.land_pulled("h", str(target), item, b"x", wanted)
    assert list(target.iterdir()) == []
    import zlib

    for raw in (b"a\0q\0644\0 1\0 1\0\0", b"a\0f\0x\01\01\0\0", b"a\0f\0"):
        with pytest.raises(ProtocolViolation):
            sync._decode_manifest("h", zlib.compress(raw))
    with pytest.raises(ProtocolViolation):
        sync._decode_manifest("h", b"not zlib")


def test_a_local_path_that_cannot_be_made_is_one_line(sandbox, agent_dir: Path) -> None:
    blocker = sandbox.root / "a-file"
    blocker.write_text("not a directory")
    result = sandbox.mngr("pull", "box", str(blocker / "inside"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("mngr: error: ")


def test_create_from_a_source_brings_history_branches_and_uncommitted_work(sandbox) -> None:
    project = _repo_on_a_branch(sandbox.root / "project", "*.log", "a.txt", "one\n", "first", "feature")
    (project / "b.txt").write_text("two\n")
    _git(project, "add", "b.txt")
    _git(project, "commit", "-qm", "second")
    (project / "a.txt").write_text("one, edited\n")  # uncommitted
    (project / "notes.txt").write_text("untracked\n")
    (project / "debug.log").write_text("ignored\n")
    # A copy (not the local host's default worktree) on the branch the source is on.
    created = sandbox.mngr("create", "copy", "command", "--no-connect", "--source", str(project),
                           "--transfer", "copy", "--branch", "feature", "--reuse-branch", "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    work = sandbox.host_dir / "work" / "copy"
    (agent,) = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
    assert agent["work_dir"] == str(work)
    log = subprocess.run(["git", "-C", str(work), "log", "--format=%s", "--all"], capture_output=True, text=True)
    assert sorted(log.stdout.split()) == ["first", "second"]
    branch = subprocess.run(["git", "-C", str(work), "branch", "--show-current"], capture_output=True, text=True)
    assert branch.stdout.strip() == "feature"
    assert (work / "a.txt").read_text() == "one, edited\n" and (work / "notes.txt").exists()
    assert not (work / "debug.log").exists()
    # The agent commits there; a pull brings its files and its branches back.
    (work / "c.txt").write_text("by the agent\n")
    _git(work, "add", "c.txt")
    _git(work, "commit", "-qm", "third")
    _git(work, "branch", "agent-idea")
    _git(project, "stash", "-u")  # the pull must not meet uncommitted local work
    pulled = sandbox.mngr("pull", "copy", str(project), "--format", "json")
    assert pulled.returncode == 0, pulled.stderr
    # Its own branch (feature) as the branch mngr/copy; the others where they cannot collide with it.
    assert json.loads(pulled.stdout)["branches"] == ["mngr/copy", "mngr-copy/agent-idea", "mngr-copy/main"]
    assert (project / "c.txt").read_text() == "by the agent\n"
    log = subprocess.run(["git", "-C", str(project), "log", "--format=%s", "mngr/copy"],
                         capture_output=True, text=True)
    assert log.stdout.split("\n")[:3] == ["third", "second", "first"]
    current = subprocess.run(["git", "-C", str(project), "branch", "--show-current"], capture_output=True, text=True)
    assert current.stdout.strip() == "feature", "the local branch is left where it was"


def test_a_create_from_a_source_that_fails_leaves_no_work_dir(sandbox) -> None:
    source = sandbox.root / "plain"
    source.mkdir()
    (source / "f").write_text("x")
    assert sandbox.mngr("create", "taken", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    elsewhere = sandbox.root / "fresh-work"
    result = sandbox.mngr("create", "taken", "command", "--no-connect", "--source", str(source),
                          "--work-dir", str(elsewhere), "--", "sleep", "600")
    assert result.returncode == 1 and "already exists" in result.stderr
    assert not elsewhere.exists(), "the copy made for the refused agent is gone"
    busy = sandbox.root / "busy"
    busy.mkdir()
    (busy / "mine").write_text("keep")
    refused = sandbox.mngr("create", "other", "command", "--no-connect", "--source", str(source),
                           "--work-dir", str(busy), "--", "sleep", "600")
    assert refused.returncode == 1 and "already exists and is not empty" in refused.stderr
    assert [p.name for p in busy.iterdir()] == ["mine"]
    missing = sandbox.mngr("create", "x", "command", "--no-connect", "--source", str(sandbox.root / "nope"),
                           "--", "sleep", "600")
    assert missing.returncode == 2 and "is not a directory" in missing.stderr


def test_clone_copies_the_agent_its_files_and_its_branches(sandbox) -> None:
    work = _repo_on_a_branch(sandbox.root / "original", "cache/", "code.py", "x = 1\n", "base", "topic")
    (work / "cache").mkdir()
    (work / "cache" / "big.bin").write_bytes(os.urandom(1000))
    (work / "scratch.txt").write_text("uncommitted\n")
    created = sandbox.mngr("create", "orig", "command", "--no-connect", "--work-dir", str(work), "--env", "TOKEN=s3 cret",
                           "--label", "team=red", "--", "sh", "-c", 'echo "token=$TOKEN"; sleep 600')
    assert created.returncode == 0, created.stderr
    cloned = sandbox.mngr("clone", "orig", "copy", "--format", "json")
    assert cloned.returncode == 0, cloned.stderr
    agent = json.loads(cloned.stdout)
    assert agent["labels"] == {"team": "red"} and agent["type"] == "command"
    copy = Path(agent["work_dir"])
    assert copy == sandbox.host_dir / "work" / "copy"
    assert _tree(copy) == _tree(work), "every file, ignored ones included"
    branch = subprocess.run(["git", "-C", str(copy), "branch", "--show-current"], capture_output=True, text=True)
    assert branch.stdout.strip() == "topic"
    wait_for(lambda: "token=s3 cret" in sandbox.mngr("capture", "copy").stdout, "the copy's environment")
    assert sandbox.mngr("clone", "orig", "copy").returncode == 2, "a name in use is refused"


def test_snapshot_then_create_from_it_after_the_original_is_gone(sandbox) -> None:
    work = sandbox.root / "snapped"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "a.txt").write_text("committed\n")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "base")
    _make_source(work)  # files of every kind, several parts, links in and out
    created = sandbox.mngr("create", "snapped", "command", "--no-connect", "--work-dir", str(work),
                           "--env", "MODE=snap", "--", "sh", "-c", 'echo "mode=$MODE"; sleep 600')
    assert created.returncode == 0, created.stderr
    taken = sandbox.mngr("snapshot", "snapped", "--format", "{id}")
    assert taken.returncode == 0, taken.stderr
    snapshot_id = taken.stdout.strip()
    listed = json.loads(sandbox.mngr("snapshot", "list", "--format", "json").stdout)
    assert [(row["id"], row["agent"]) for row in listed] == [(snapshot_id, "snapped")]
    before, times = _tree(work), _dir_times(work)
    assert sandbox.mngr("destroy", "-f", "snapped").returncode == 0
    restored = sandbox.mngr("create", "back", "--no-connect", "--snapshot", snapshot_id, "--format", "json")
    assert restored.returncode == 0, restored.stderr
    agent = json.loads(restored.stdout)
    assert agent["type"] == "command" and agent["work_dir"] == str(sandbox.host_dir / "work" / "back")
    assert _tree(Path(agent["work_dir"])) == before and _dir_times(Path(agent["work_dir"])) == times
    # Modification times to the nanosecond too: nothing would travel between the two.
    same = sandbox.mngr("push", "back", str(work), "--dry-run", "--include-gitignored", "--force")
    assert same.returncode == 0 and same.stdout.startswith("would push 0 change(s)"), same.stdout
    log = subprocess.run(["git", "-C", agent["work_dir"], "log", "--format=%s"], capture_output=True, text=True)
    assert log.stdout == "base\n"
    wait_for(lambda: "mode=snap" in sandbox.mngr("capture", "back").stdout, "the restored environment")
    assert sandbox.mngr("snapshot", "destroy", snapshot_id).returncode == 0
    assert sandbox.mngr("snapshot", "list").stdout.strip() == "no snapshots"
    missing = sandbox.mngr("create", "again", "--no-connect", "--snapshot", snapshot_id)
    assert missing.returncode == 1 and "no snapshot" in missing.stderr
    assert sandbox.mngr("create", "x", "--snapshot", "../etc").returncode == 2


def test_a_snapshot_that_would_miss_a_file_is_not_taken(sandbox, agent_dir: Path) -> None:
    """A file that never holds still long enough to be read whole: the snapshot fails and
    names it, instead of keeping a copy without it."""
    import threading

    (agent_dir / "steady.txt").write_text("steady\n")
    busy = agent_dir / "busy.log"
    stop = threading.Event()

    def keep_writing() -> None:
        count = 0
        while not stop.is_set():
            busy.write_text(f"line {count}\n")
            count += 1
            time.sleep(0.002)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        taken = sandbox.mngr("snapshot", "box")
    finally:
        stop.set()
        writer.join()
    assert taken.returncode != 0 and "busy.log: kept changing while it was read" in taken.stderr, taken.stderr
    assert sandbox.mngr("snapshot", "list").stdout.strip() == "no snapshots"
    assert not list((sandbox.state_dir / "snapshots").glob("*.tmp"))


def _pairing(handle, local: Path, policy: str, seen: list):
    from mngr.controller.pair import Pairing

    return Pairing(handle, "box", str(local), policy, lambda mark, text: seen.append((mark, text)))


def test_pair_rounds_carry_changes_both_ways_and_keep_conflict_losers(sandbox, agent_dir: Path, handle) -> None:
    local = sandbox.root / "mine"
    local.mkdir()
    (agent_dir / "a.txt").write_text("from the agent\n")
    (local / "b.txt").write_text("from me\n")
    seen: list = []
    pairing = _pairing(handle, local, "newer", seen)
    pairing.round()
    assert (local / "a.txt").read_text() == "from the agent\n" and (agent_dir / "b.txt").read_text() == "from me\n"
    assert pairing.round() == 0, "in step: nothing moves"
    (local / "a.txt").write_text("edited here\n")
    (agent_dir / "b.txt").unlink()
    (agent_dir / "new").mkdir()
    (agent_dir / "new" / "c.txt").write_text("made there\n")
    pairing.round()
    assert (agent_dir / "a.txt").read_text() == "edited here\n"
    assert not (local / "b.txt").exists() and (local / "new" / "c.txt").read_text() == "made there\n"
    # Both sides change a.txt: the newer (the agent's) wins, mine is kept as a copy on both sides.
    (local / "a.txt").write_text("mine\n")
    os.utime(local / "a.txt", ns=(1, 1_000_000_000_000_000_000))
    (agent_dir / "a.txt").write_text("theirs\n")
    os.utime(agent_dir / "a.txt", ns=(1, 1_100_000_000_000_000_000))
    pairing.round()
    pairing.round()
    assert (local / "a.txt").read_text() == (agent_dir / "a.txt").read_text() == "theirs\n"
    (copy,) = local.glob("a.txt.conflict-local-*")
    assert copy.read_text() == "mine\n" and (agent_dir / copy.name).read_text() == "mine\n"
    assert any(mark == "!" for mark, _ in seen)
    # With --conflict local, mine wins and the agent's version is kept.
    pairing.policy = "local"
    (local / "a.txt").write_text("mine again\n")
    (agent_dir / "a.txt").write_text("theirs again\n")
    pairing.round()
    pairing.round()
    assert (agent_dir / "a.txt").read_text() == "mine again\n"
    kept = [p for p in local.glob("a.txt.conflict-remote-*") if p.read_text() == "theirs again\n"]
    assert len(kept) == 1 and (agent_dir / kept[0].name).exists()


def test_mngr_pair_runs_until_stopped(sandbox, agent_dir: Path) -> None:
    local = sandbox.root / "paired"
    local.mkdir()
    pairing = subprocess.Popen([str(MNGR_BIN), "pair", "box", str(local), "--interval", "0.3"], env=sandbox.env,
                               cwd=sandbox.work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (local / "note.txt").write_text("hello\n")
        wait_for(lambda: (agent_dir / "note.txt").exists(), "the local change on the agent's side")
        (agent_dir / "reply.txt").write_text("hi\n")
        wait_for(lambda: (local / "reply.txt").exists(), "the agent's change here")
    finally:
        pairing.send_signal(signal.SIGTERM)
        out, err = pairing.communicate(timeout=30)
    assert pairing.returncode == 0, err
    assert "-> note.txt" in out and "<- reply.txt" in out and out.rstrip().endswith("pairing stopped")
