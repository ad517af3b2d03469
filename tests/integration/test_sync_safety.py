"""Push and pull never lose data: mngr's own state stays out of every transfer, nothing
only the receiving side has goes without --delete, and an entry that cannot move is
skipped and reported (exit status 3) while the rest lands. Real mngr processes on the
local host here; the same on a real SSH host in test_ssh.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mngr.controller import sync
from mngr.controller.hosts import HostHandle
from mngr.providers.local import LocalProvider
from mngr.remote_helper import files
from tests.integration.test_sync import _tree

PARTIAL = 3
ODD_NAMES = [
    os.fsdecode(b"latin-1 caf\xe9"),  # not UTF-8
    "back\\slash",
    "n" * 255,  # NAME_MAX: no room for a prefix
]


def _agents(sandbox) -> dict[str, str]:
    listed = sandbox.mngr("list", "--format", "json")
    return {agent["name"]: agent["state"] for agent in json.loads(listed.stdout)["agents"]}


def test_an_agent_in_the_home_dir_never_syncs_mngrs_state_or_loses_dotfiles(sandbox) -> None:
    home = sandbox.tmux_dir / "home"  # short: the host daemon's socket lives in the host dir
    home.mkdir()
    sandbox.env.update(HOME=str(home), MNGR_HOST_DIR=str(home / ".mngr"))
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("private key\n")
    (home / ".bashrc").write_text("alias ll='ls -l'\n")
    (home / "stray.txt").write_text("only here\n")
    other = home / "other-project"
    other.mkdir()
    (other / "theirs.txt").write_text("another agent's work\n")
    for name, work in (("homed", home), ("other", other)):
        created = sandbox.mngr("create", name, "command", "--no-connect", "--work-dir", str(work), "--",
                               "sleep", "600")
        assert created.returncode == 0, created.stderr
    project = sandbox.root / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hi')\n")
    records_before = _tree(home / ".mngr" / "agents")

    dry_pull = sandbox.mngr("pull", "homed", str(sandbox.root / "back"), "--dry-run")
    assert dry_pull.returncode == 0, dry_pull.stderr
    assert ".mngr" not in dry_pull.stdout and "other-project" not in dry_pull.stdout
    assert "+ .ssh/id_ed25519" in dry_pull.stdout  # the user's own files: theirs to pull

    dry = sandbox.mngr("push", "homed", str(project), "--delete", "--dry-run")
    assert "- stray.txt" in dry.stdout and "- .bashrc" not in dry.stdout and ".mngr" not in dry.stdout
    assert "! .bashrc: not deleted: a dot entry at the top of the home dir" in dry.stdout
    pushed = sandbox.mngr("push", "homed", str(project), "--delete")
    assert pushed.returncode == PARTIAL, pushed.stderr
    assert "refused .ssh: not deleted" in pushed.stderr and "refused .bashrc" in pushed.stderr
    assert (home / "main.py").read_text() == "print('hi')\n" and not (home / "stray.txt").exists()
    assert (home / ".ssh" / "id_ed25519").read_text() == "private key\n" and (home / ".bashrc").exists()
    assert (other / "theirs.txt").exists(), "another agent's work dir is not touched"
    assert _tree(home / ".mngr" / "agents") == records_before
    assert _agents(sandbox) == {"homed": "RUNNING", "other": "RUNNING"}


def test_the_mngr_commands_own_state_dir_is_never_pushed_nor_deleted_by_a_pull(sandbox, agent_dir) -> None:
    """A local directory holding mngr's state dir (a home dir pulled into, say): its kept
    manifests and hosts' records are mngr's, not the project's."""
    local = sandbox.tmux_dir / "mine"  # short: ssh's ControlPath sockets live in the state dir
    state = local / "st"
    sandbox.env["MNGR_STATE_DIR"] = str(state)
    (local / "notes.txt").parent.mkdir()
    (local / "notes.txt").write_text("mine\n")
    (agent_dir / "work.txt").write_text("the agent's\n")
    assert sandbox.mngr("push", "box", str(local)).returncode == 0  # the state dir fills now
    assert (agent_dir / "notes.txt").exists() and not (agent_dir / "st").exists()
    assert list(state.iterdir()), "the push kept its manifest in the state dir"
    state_before = _tree(state)
    dry = sandbox.mngr("pull", "box", str(local), "--delete", "--dry-run")
    assert dry.returncode == 0 and "st" not in dry.stdout.split(), dry.stdout
    pulled = sandbox.mngr("pull", "box", str(local), "--delete")
    assert pulled.returncode == 0, pulled.stderr
    # mngr keeps updating its own files there (the kept manifest); none went with --delete.
    kept = {path for path in state_before if ".tmp" not in path}
    assert kept <= set(_tree(state)) and (local / "work.txt").exists()
    assert sandbox.mngr("push", "box", str(local), "--delete").returncode == 0
    assert not (agent_dir / "st").exists() and (agent_dir / "work.txt").exists()


def test_a_type_change_without_delete_is_refused_and_reported_while_the_rest_lands(sandbox, agent_dir) -> None:
    source = sandbox.root / "source"
    source.mkdir()
    (source / "was-a-dir").write_text("now a file\n")
    (source / "new.txt").write_text("lands\n")
    (agent_dir / "was-a-dir" / "sub").mkdir(parents=True)
    (agent_dir / "was-a-dir" / "sub" / "only-here.txt").write_text("precious\n")
    dry = sandbox.mngr("push", "box", str(source), "--dry-run")
    assert dry.returncode == PARTIAL and "+ new.txt" in dry.stdout
    assert "! was-a-dir: is a directory here and a file in the source: not replaced without --delete" in dry.stdout
    pushed = sandbox.mngr("push", "box", str(source))
    assert pushed.returncode == PARTIAL
    assert "refused was-a-dir: is a directory here" in pushed.stderr
    assert (agent_dir / "was-a-dir" / "sub" / "only-here.txt").read_text() == "precious\n"
    assert (agent_dir / "new.txt").read_text() == "lands\n"
    # The same the other way: a local directory is not replaced by the agent's file.
    back = sandbox.root / "back"
    (back / "new.txt" / "mine").mkdir(parents=True)
    pulled = sandbox.mngr("pull", "box", str(back))
    assert pulled.returncode == PARTIAL and "refused new.txt: is a directory here" in pulled.stderr
    assert (back / "new.txt" / "mine").is_dir() and (back / "was-a-dir" / "sub" / "only-here.txt").exists()
    # With --delete the dry run lists everything that goes with the directory.
    dry = sandbox.mngr("push", "box", str(source), "--delete", "--dry-run")
    assert dry.returncode == 0
    assert {"- was-a-dir/sub", "- was-a-dir/sub/only-here.txt", "+ was-a-dir"} <= set(dry.stdout.splitlines())
    assert sandbox.mngr("push", "box", str(source), "--delete").returncode == 0
    assert _tree(agent_dir) == _tree(source)


@pytest.mark.parametrize("name", ODD_NAMES, ids=["not-utf-8", "backslash", "255-bytes"])
def test_odd_names_round_trip(sandbox, agent_dir: Path, name: str) -> None:
    source = sandbox.root / "source"
    (source / name).mkdir(parents=True)
    (source / name / name).write_bytes(os.urandom(5 * 1024 * 1024))  # several parts
    (source / "link").symlink_to(name)
    pushed = sandbox.mngr("push", "box", str(source))
    assert pushed.returncode == 0, pushed.stderr
    assert _tree(agent_dir) == _tree(source)
    assert not [path for path in agent_dir.rglob("*") if path.name.startswith(".mngr-part.")]
    back = sandbox.root / "back"
    pulled = sandbox.mngr("pull", "box", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert _tree(back) == _tree(source)
    assert "nothing to push" in sandbox.mngr("push", "box", str(source)).stdout


def test_a_file_vanishing_mid_push_is_reported_and_the_rest_lands(sandbox, agent_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    source = sandbox.root / "source"
    source.mkdir()
    for name in ("a.txt", "gone.txt", "z.txt"):
        (source / name).write_text(name)
    sandbox.apply_env(monkeypatch)
    with HostHandle(LocalProvider(), "local", timeout=30) as handle:
        _, remote, local = sync.both_manifests(handle, "box", str(source), False)
        plan = sync.make_plan(local, remote, delete=False)
        (source / "gone.txt").unlink()  # after the plan was made, before it is read
        sync.send_plan(handle, "box", str(source), plan)
    assert plan.skipped == [["gone.txt", "vanished before it could be sent"]]
    assert sorted(path.name for path in agent_dir.iterdir()) == ["a.txt", "z.txt"]


def test_a_file_that_keeps_changing_leaves_no_part_on_the_host_whatever_its_name(
        sandbox, agent_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its first parts reached the host before the change showed: the push gives the file
    up, says so, and removes what landed of it, also under a name that is not UTF-8."""
    source = sandbox.root / "source"
    source.mkdir()
    (source / "steady.txt").write_text("lands\n")
    changing = source / ODD_NAMES[0]
    changing.write_bytes(os.urandom(3 * sync.PART_BYTES))  # several parts, sent before the last is read
    last_part_offset = 2 * sync.PART_BYTES
    real_pread = os.pread
    rewrites = []

    def pread_then_rewrite(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        if offset == last_part_offset and os.fstat(fd).st_ino == changing.stat().st_ino:
            with open(changing, "r+b") as writer:  # an agent writing while the last part is read
                writer.write(os.urandom(16))
            rewrites.append(offset)
        return data

    sandbox.apply_env(monkeypatch)
    monkeypatch.setattr(os, "pread", pread_then_rewrite)
    with HostHandle(LocalProvider(), "local", timeout=30) as handle:
        _, remote, local = sync.both_manifests(handle, "box", str(source), False)
        plan = sync.make_plan(local, remote, delete=False)
        sync.send_plan(handle, "box", str(source), plan)

    assert len(rewrites) == files.READ_ATTEMPTS, "every attempt saw the file change"
    assert plan.skipped == [[ODD_NAMES[0], "kept changing while it was read"]]
    assert sorted(os.listdir(os.fsencode(agent_dir))) == [b"steady.txt"], "no part file, no torn copy"


def test_a_read_only_directory_lands_whole_and_its_mode_last(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "source"
    (source / "ro").mkdir(parents=True)
    (source / "ro" / "inside.txt").write_text("in a read-only dir\n")
    (source / "ro").chmod(0o555)
    pushed = sandbox.mngr("push", "box", str(source))
    assert pushed.returncode == 0, pushed.stderr
    assert _tree(agent_dir) == _tree(source)
    back = sandbox.root / "back"
    assert sandbox.mngr("pull", "box", str(back)).returncode == 0
    assert _tree(back) == _tree(source)
    for root in (source, agent_dir, back):
        (root / "ro").chmod(0o755)  # so the sandbox can be removed
