"""mngr pair against an agent on a real SSH host: both sides edited at once, directories
deleted under an edit, bursts of short-lived files, the host's event feed overflowing,
and a clean stop. Every wait has a deadline and looks for a state, never for a time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MNGR_BIN, wait_for
from tests.integration.test_ssh import create_remote, ssh_host  # noqa: F401 (a fixture)
from tests.integration.test_sync import handle  # noqa: F401 (a fixture)
from tests.sshd import SshHost, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


class Side:
    """One side of a pairing: files written whole (a temporary file renamed over the
    target, as editors save), owned by the side's user."""

    def __init__(self, root: Path, uid: int, gid: int) -> None:
        self.root = root
        self.uid, self.gid = uid, gid

    def write(self, relative: str, text: str, in_place: bool = False) -> None:
        target = self.root / relative
        self.makedirs(target.parent)
        if in_place:  # truncated, then written: a reader may see it empty for a moment
            with open(target, "w") as opened:
                os.fchown(opened.fileno(), self.uid, self.gid)
                opened.write(text)
            return
        temporary = target.parent / f".save-{uuid.uuid4().hex}"
        temporary.write_text(text)
        os.chown(temporary, self.uid, self.gid)
        os.replace(temporary, target)

    def makedirs(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for made in reversed(missing):
            made.mkdir()
            os.chown(made, self.uid, self.gid)

    def contents(self) -> dict[str, str]:
        """Every file below the root (but .git) and its text."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if relative.split("/")[0] != ".git" and path.is_file() and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    found[relative] = path.read_text()
        return found


class Paired:
    """``mngr pair`` running as the user runs it, its output collected."""

    def __init__(self, sandbox, name: str, local: Path) -> None:
        self.process = subprocess.Popen([str(MNGR_BIN), "pair", name, str(local)], env=sandbox.env,
                                        cwd=sandbox.work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.lines: list[str] = []
        self._stopped: tuple[int, str] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> tuple[int, str]:
        if self._stopped is not None:
            return self._stopped
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        self.process.stderr.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stopped = (self.process.returncode, err)
        return self._stopped


@pytest.fixture
def far(sandbox, ssh_host: SshHost) -> Iterator[tuple[Side, Side, Paired]]:  # noqa: F811
    """(the local side, the agent's side on the SSH host, mngr pair running between them)."""
    work = ssh_host.remote_root / "work"
    work.mkdir()
    os.chown(work, ssh_host.user.pw_uid, ssh_host.user.pw_gid)
    created = create_remote(sandbox, "far", "--work-dir", str(work))
    assert created.returncode == 0, created.stderr
    local_root = sandbox.root / "paired"
    local_root.mkdir()
    local = Side(local_root, os.getuid(), os.getgid())
    remote = Side(work, ssh_host.user.pw_uid, ssh_host.user.pw_gid)
    paired = Paired(sandbox, "far", local_root)
    try:
        local.write("hello.txt", "hello\n")
        wait_for(lambda: remote.contents().get("hello.txt") == "hello\n", "the first file on the host")
        yield local, remote, paired
    finally:
        paired.stop()


def _waited(paired: Paired, predicate, what: str, timeout: float = 20.0):
    """wait_for, with what the pair said so far when it times out (to tell a stalled pair
    from a slow one)."""
    try:
        return wait_for(predicate, what, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; pair running: {paired.running}; it said: {paired.lines[-20:]}") from None


def _in_step(local: Side, remote: Side) -> dict[str, str] | None:
    mine = {path: text for path, text in local.contents().items() if ".save-" not in path}
    theirs = {path: text for path, text in remote.contents().items() if ".save-" not in path}
    return mine if mine == theirs else None


@pytest.mark.parametrize("in_place", [False, True], ids=["saved-whole", "written-in-place"])
def test_both_sides_editing_one_file_at_once_never_lose_an_edit(far, in_place: bool) -> None:
    local, remote, paired = far
    for trial in range(30):
        mine, theirs = f"local edit {trial}\n", f"agent edit {trial}\n"
        local.write("shared.txt", mine, in_place)
        remote.write("shared.txt", theirs, in_place)

        def both_kept(mine: str = mine, theirs: str = theirs) -> bool:
            tree = _in_step(local, remote)
            if tree is None:
                return False
            versions = {text for path, text in tree.items() if path.startswith("shared.txt")}
            return mine in versions and theirs in versions

        wait_for(both_kept, f"both edits of trial {trial} kept on both sides", timeout=120)
        assert paired.running
    conflicts = [line for line in paired.lines if line.startswith("! shared.txt: both sides changed")]
    assert conflicts, "the simultaneous edits were reported as conflicts"


def test_a_directory_deleted_here_while_the_agent_edits_in_it_keeps_the_edit(far) -> None:
    local, remote, paired = far
    local.write("dir/sub/keep.txt", "before\n")
    local.write("dir/other.txt", "other\n")
    _waited(paired, lambda: remote.contents().get("dir/sub/keep.txt") == "before\n", "the directory on the host")
    remote.write("dir/sub/keep.txt", "edited by the agent\n")
    import shutil

    shutil.rmtree(local.root / "dir")

    def settled() -> bool:
        tree = _in_step(local, remote)
        return tree is not None and tree.get("dir/sub/keep.txt") == "edited by the agent\n"

    _waited(paired, settled, "the agent's edit back on both sides")
    assert paired.running
    tree = _in_step(local, remote)
    assert tree is not None and "dir/other.txt" not in tree, "what was not edited is deleted on both sides"


def test_a_directory_deleted_by_the_agent_while_i_edit_in_it_keeps_my_edit(far) -> None:
    local, remote, paired = far
    local.write("pkg/mod.py", "x = 1\n")
    local.write("pkg/util.py", "y = 1\n")
    _waited(paired, lambda: remote.contents().get("pkg/util.py") == "y = 1\n", "the directory on the host")
    local.write("pkg/mod.py", "x = 2  # mine\n")
    import shutil

    shutil.rmtree(remote.root / "pkg")

    def settled() -> bool:
        tree = _in_step(local, remote)
        return tree is not None and tree.get("pkg/mod.py") == "x = 2  # mine\n" and "pkg/util.py" not in tree

    _waited(paired, settled, "my edit on both sides, the rest deleted")
    assert paired.running


def test_bursts_of_short_lived_swap_files_never_stop_pair_nor_hold_up_real_edits(far) -> None:
    local, remote, paired = far
    stop = threading.Event()
    failures: list[BaseException] = []

    def swap_files(side: Side) -> None:
        try:
            count = 0
            while not stop.is_set():
                swap = side.root / f".{side.root.name}.txt.swp{count % 7}"
                swap.write_bytes(b"swap" * 100)
                with contextlib.suppress(FileNotFoundError):
                    swap.unlink()
                count += 1
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    churners = [threading.Thread(target=swap_files, args=(side,)) for side in (local, remote)]
    for churner in churners:
        churner.start()
    try:
        for number in range(40):
            local.write(f"edits/mine-{number}.txt", f"mine {number}\n")
            remote.write(f"theirs-{number}.txt", f"theirs {number}\n")
            _waited(paired, lambda number=number: remote.contents().get(f"edits/mine-{number}.txt") == f"mine {number}\n"
                    and local.contents().get(f"theirs-{number}.txt") == f"theirs {number}\n",
                    f"real edit {number} on the other side")
            assert paired.running
    finally:
        stop.set()
        for churner in churners:
            churner.join()
    assert not failures
    swaps_gone = lambda: not [p for p in (*local.contents(), *remote.contents()) if ".swp" in p]  # noqa: E731
    wait_for(swaps_gone, "no swap file left on either side")
    assert paired.running
    local.write("after.txt", "still pairing\n")
    wait_for(lambda: remote.contents().get("after.txt") == "still pairing\n", "an edit after the burst")


def test_a_host_feed_overflow_falls_back_to_comparing_both_trees(far) -> None:
    from mngr.remote_helper import change_feed

    local, remote, paired = far
    os.kill(paired.process.pid, signal.SIGSTOP)  # a reader far behind: the host cannot keep all it saw
    try:
        churn = remote.root / "churn.tmp"
        churn.write_bytes(b"x")
        churn.unlink()
        remote.write("missed.txt", "its event was dropped\n")
        for _ in range(change_feed.MAX_CHANGES // 2 + 1):  # two events (create, delete) each at least
            churn.write_bytes(b"x")
            churn.unlink()
    finally:
        os.kill(paired.process.pid, signal.SIGCONT)
    wait_for(lambda: local.contents().get("missed.txt") == "its event was dropped\n",
             "the file whose event was dropped, here", timeout=60)
    assert any(line.startswith("~ ") and "overflowed" in line for line in paired.lines), paired.lines[-5:]
    assert paired.running
    local.write("later.txt", "events again\n")
    wait_for(lambda: remote.contents().get("later.txt") == "events again\n", "a change after the overflow")


def test_pair_stopped_with_sigterm_stops_cleanly(far) -> None:
    local, remote, paired = far
    remote.write("reply.txt", "hi\n")
    wait_for(lambda: local.contents().get("reply.txt") == "hi\n", "the agent's file here")
    code, err = paired.stop()
    assert code == 0, err
    assert "-> hello.txt" in paired.lines and "<- reply.txt" in paired.lines
    assert paired.lines[-1] == "pairing stopped"


def test_changes_named_by_events_leave_gitignored_files_and_git_out(sandbox, agent_dir: Path,
                                                                   handle) -> None:  # noqa: F811
    from mngr.controller.pair import Pairing

    local = sandbox.root / "repo"
    local.mkdir()
    subprocess.run(["git", "init", "-q", str(local)], check=True)
    (local / ".gitignore").write_text("build/\n")
    seen: list = []
    pairing = Pairing(handle, "box", str(local), "newer", lambda mark, text: seen.append((mark, text)))
    pairing.round()
    assert (agent_dir / ".gitignore").read_text() == "build/\n"
    (local / "build").mkdir()
    (local / "build" / "out.o").write_bytes(b"\0object")
    (local / "src.txt").write_text("source\n")
    moved = pairing.changed({"build", "build/out.o", "src.txt", ".git/index"}, {})
    assert moved == 1 and (agent_dir / "src.txt").read_text() == "source\n"
    assert not (agent_dir / "build").exists() and not (agent_dir / ".git").exists()
    assert seen[-1] == ("->", "src.txt")


def test_a_file_larger_than_a_part_pairs_both_ways_in_the_version_compared(sandbox, agent_dir: Path,
                                                                         handle) -> None:  # noqa: F811
    from mngr.controller import sync
    from mngr.controller.pair import Pairing

    local = sandbox.root / "mine"
    local.mkdir()
    pairing = Pairing(handle, "box", str(local), "newer", lambda mark, text: None)
    pairing.round()
    big = os.urandom(sync.PART_BYTES + 12345)
    (agent_dir / "big.bin").write_bytes(big)
    assert pairing.changed(set(), {"big.bin": None}) == 1
    assert (local / "big.bin").read_bytes() == big
    bigger = os.urandom(sync.PART_BYTES * 2 + 1)
    (local / "big.bin").write_bytes(bigger)
    assert pairing.changed({"big.bin"}, {}) == 1
    assert (agent_dir / "big.bin").read_bytes() == bigger
    assert pairing.changed({"big.bin"}, {"big.bin": None}) == 0, "in step: nothing moves"
