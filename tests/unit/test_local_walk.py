"""The child process that lists the local tree and makes a push's or pull's plan."""

from __future__ import annotations

import os
import signal
import threading
import zlib
from pathlib import Path

import pytest

from mngr.controller import local_walk
from mngr.controller.plan import make_plan
from mngr.remote_helper import files


def _tree(root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "same.txt").write_text("same")
    (root / "d" / "changed.txt").write_text("local version")
    (root / "only-here.txt").write_text("x")


def _host_blob(local: Path, tmp_path: Path) -> bytes:
    """A host tree that differs from ``local``: one file changed, one missing, one extra."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "d").mkdir()
    (host / "d" / "same.txt").write_text("same")
    os.utime(host / "d" / "same.txt", ns=(os.stat(local / "d" / "same.txt").st_mtime_ns,) * 2)
    (host / "d" / "changed.txt").write_text("host")
    (host / "only-there.txt").write_text("y")
    return zlib.compress(files.raw_manifest(str(host), True), 1)


def _as_sets(plan: object) -> tuple:
    return (sorted(e[0] for e in plan.send), sorted(e[0] for e in plan.dirs), sorted(plan.delete),  # type: ignore[attr-defined]
            sorted(plan.new), plan.bytes_to_send)  # type: ignore[attr-defined]


@pytest.mark.parametrize("local_is_source", [True, False])
def test_the_child_makes_the_same_plan_as_the_parent_would(tmp_path: Path, local_is_source: bool) -> None:
    local = tmp_path / "local"
    local.mkdir()
    _tree(local)
    blob = _host_blob(local, tmp_path)
    walk = local_walk.LocalWalk(str(local), True)
    if threading.active_count() == 1:
        assert walk._pid  # a child process, not a thread
    plan = walk.plan(blob, "", False, local_is_source, delete=True)
    local_entries = list(files.manifest_entries(str(local), True).values())
    remote_entries = files.parse_manifest(zlib.decompress(blob))
    expected = (make_plan(local_entries, remote_entries, True) if local_is_source
                else make_plan(remote_entries, local_entries, True))
    assert _as_sets(plan) == _as_sets(expected)
    assert "d/changed.txt" in [entry[0] for entry in plan.send]
    walk.finish(None)
    assert walk._pid == 0  # the child is gone


def test_a_hostile_manifest_is_a_value_error_and_leaves_no_child(tmp_path: Path) -> None:
    _tree(tmp_path)
    walk = local_walk.LocalWalk(str(tmp_path), True)
    with pytest.raises(ValueError):
        walk.plan(zlib.compress(b"a\0q\0644\0 1\0 1\0\0"), "", False, True, False)
    with pytest.raises(ValueError):
        walk.plan(b"not zlib at all", "", False, True, False)
    assert walk._pid == 0


def test_a_listing_that_fails_hands_its_os_error_to_the_parent(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object, **kwargs: object) -> dict:
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(files, "manifest_entries", failing)
    walk = local_walk.LocalWalk(str(tmp_path), True)  # the child, forked now, fails as well
    with pytest.raises(PermissionError, match="Permission denied"):
        walk.plan(zlib.compress(b""), "", False, True, False)
    with pytest.raises(PermissionError):
        local_walk.LocalWalk(str(tmp_path), True).entries()


def test_a_child_that_dies_is_replaced_by_the_work_done_here(tmp_path: Path) -> None:
    _tree(tmp_path)
    walk = local_walk.LocalWalk(str(tmp_path), True)
    if not walk._pid:
        pytest.skip("threads here: no child to kill")
    os.kill(walk._pid, signal.SIGKILL)
    paths = sorted(entry[0] for entry in walk.entries())
    assert paths == ["d", "d/changed.txt", "d/same.txt", "only-here.txt"]


def test_close_kills_an_unclaimed_child(tmp_path: Path) -> None:
    _tree(tmp_path)
    walk = local_walk.LocalWalk(str(tmp_path), True)
    pid = walk._pid
    walk.close()
    if pid:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize(("argv", "expected"), [
    (["push", "agent", "{dir}"], ("{dir}", False)),
    (["pull", "agent", "{dir}", "--include-gitignored", "--delete"], ("{dir}", True)),
    (["push", "--format", "json", "agent", "{dir}", "--dry-run", "--force"], ("{dir}", False)),
    (["push", "--format=json", "agent"], ("{cwd}", False)),
    (["push", "agent", "{dir}", "--help"], None),
    (["push", "agent", "{dir}", "extra"], None),
    (["push"], None),
    (["list", "agent"], None),
    (["push", "agent", "{dir}/not-there"], None),
    (["push", "-x", "agent"], None),
])
def test_start_early_reads_push_and_pull_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   argv: list[str], expected: tuple | None) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [arg.replace("{dir}", str(tmp_path)) for arg in argv]
    local_walk.start_early(argv)
    early = local_walk._early
    try:
        if expected is None:
            assert early is None
        else:
            root = expected[0].replace("{dir}", str(tmp_path)).replace("{cwd}", str(tmp_path))
            assert early is not None and (early.root, early.include_ignored) == (root, expected[1])
            assert local_walk.claim(root, expected[1], agent="agent") is early
            assert local_walk._early is None
    finally:
        local_walk.discard_early()


def test_claim_replaces_an_early_walk_of_another_tree(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    local_walk.start_early(["push", "agent", str(tmp_path)])
    early = local_walk._early
    assert early is not None
    walk = local_walk.claim(str(tmp_path / "a"), False)
    try:
        assert walk is not early and walk.root == str(tmp_path / "a") and early._pid == 0
    finally:
        walk.close()


def _wait_for_finishing() -> None:
    """Wait for children that update the kept manifest after their parent moved on."""
    for pid in list(local_walk._finishing):
        os.waitpid(pid, 0)
        local_walk._finishing.remove(pid)


def _manifest_of(root: Path) -> list:
    return sorted(files.manifest_entries(str(root), True).values())


@pytest.mark.parametrize("in_a_child", [True, False])
def test_the_host_manifest_is_kept_and_brought_up_to_date_after_a_push(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_a_child: bool) -> None:
    import shutil

    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    if not in_a_child:  # as where fork is missing: a thread lists, in this process
        monkeypatch.delattr(os, "fork")
    local, host = tmp_path / "local", tmp_path / "host"
    local.mkdir()
    _tree(local)
    host.mkdir()
    (host / "stale").mkdir()
    (host / "stale" / "old.txt").write_text("only on the host")
    blob = zlib.compress(files.raw_manifest(str(host), True), 1)

    walk = local_walk.LocalWalk(str(local), True, agent="demo")
    assert walk.known_tag() == ""
    plan = walk.plan(blob, "host.1.1", False, True, delete=True)
    assert sorted(plan.delete) == ["stale", "stale/old.txt"]
    # the push: the host ends up with exactly the local tree
    shutil.rmtree(host)
    shutil.copytree(local, host, symlinks=True)
    walk.finish("host.1.2")
    _wait_for_finishing()

    again = local_walk.LocalWalk(str(local), True, agent="demo", intent=(True, True))
    assert again.known_tag() == "host.1.2"
    assert local_walk._load_cache(again.cache_path)[1] and sorted(
        local_walk._load_cache(again.cache_path)[1]) == _manifest_of(host)
    plan = again.plan(b"", "host.1.2", True, True, delete=True)  # "unchanged", says the host
    assert plan.empty
    again.finish(None)
    # A copy that is not the host's is never used: the parent asks again in full.
    third = local_walk.LocalWalk(str(local), True, agent="demo")
    with pytest.raises(local_walk.StaleKept):
        third.plan(b"", "host.9.9", True, True, delete=True)
    assert third.plan(blob, "host.1.3", False, True, delete=True).delete  # the old host manifest
    third.close()  # never carried out: nothing is kept any more
    _wait_for_finishing()
    assert third.known_tag() == ""


def test_a_failed_push_keeps_no_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    local = tmp_path / "local"
    local.mkdir()
    _tree(local)
    walk = local_walk.LocalWalk(str(local), True, agent="demo")
    walk.plan(zlib.compress(b""), "host.1.1", False, True, delete=False)
    walk.finish("")
    _wait_for_finishing()
    assert local_walk.LocalWalk(str(local), True, agent="demo").known_tag() == ""


def test_the_early_start_knows_every_option_of_push_and_pull() -> None:
    """start_early reads the raw arguments before click is loaded: its idea of push's and
    pull's options must be click's, or a new option would silently disable it."""
    from mngr.controller.cli.global_options import OPTION_NAMES
    from mngr.controller.cli.sync_cmd import pull, push

    for command in (push, pull):
        flags = {opt for param in command.params if getattr(param, "is_flag", False) for opt in param.opts}
        valued = {opt for param in command.params
                  if not getattr(param, "is_flag", True) and param.param_type_name == "option" for opt in param.opts}
        assert flags - {"--help"} == set(local_walk._PUSH_PULL_FLAGS | OPTION_NAMES)
        assert valued == {"--format"}
