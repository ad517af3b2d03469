"""A push of one batch is sent from the calling thread, one of many keeps two batches in
flight (controller/sync.py _Sender): both land whole. The helper's Server in-process on a
socket pair, the controller's push against it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mngr.controller import sync
from mngr.controller.channel.stream import SocketStream, Stream
from mngr.controller.errors import InvalidRequest
from mngr.controller.hosts import HostHandle
from mngr.controller.link_rate import FIRST_BATCH_BYTES
from mngr.providers.base import Provider
from mngr.remote_helper import server


class _InProcess(Provider):
    name = "inprocess"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def known_hosts(self) -> Sequence[str]:
        return ["h"]

    def default_host(self) -> str:
        return "h"

    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        return SocketStream(host, self.sock)

    def attach_argv(self, host: str, session: str) -> list[str]:
        return []


@pytest.fixture
def handle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostHandle]:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=server.Server(theirs.fileno(), theirs.fileno(), "test").serve, daemon=True)
    thread.start()
    with HostHandle(_InProcess(ours), "h", 30) as opened:
        yield opened
    ours.close()
    thread.join(timeout=10)
    theirs.close()


def _push(handle: HostHandle, source: Path, target: Path) -> sync.Plan:
    return sync.push(handle, "", str(source), delete=False, dry_run=False, include_ignored=False, force=True,
                     work_dir=str(target))


def _tree(root: Path) -> dict[str, tuple[bytes, int, int]]:
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.stat()
        content = b"" if path.is_dir() else path.read_bytes()
        found[str(path.relative_to(root))] = (content, info.st_mode, info.st_mtime_ns)
    return found


@pytest.mark.parametrize("files", [1, 40])
def test_a_push_of_one_batch_or_of_many_lands_whole(handle: HostHandle, tmp_path: Path, files: int) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "sub").mkdir(parents=True)
    target.mkdir()
    size = FIRST_BATCH_BYTES // 4 if files > 1 else 100  # 40 of them: ten times the first batch
    for index in range(files):
        (source / "sub" / f"f{index}").write_bytes(os.urandom(size))
    os.chmod(source / "sub" / "f0", 0o640)
    plan = _push(handle, source, target)
    assert not plan.skipped and len(plan.send) == files
    assert _tree(target) == _tree(source)


def test_a_single_batch_that_fails_fails_the_push(handle: HostHandle, tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "a.txt").write_text("a")
    real = sync.make_plan

    def plan_then_remove_target(*arguments, **options):  # type: ignore[no-untyped-def]
        made = real(*arguments, **options)
        target.rmdir()  # the host's work dir goes between the plan and the write
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mngr.controller.local_walk.make_plan", plan_then_remove_target)
        with pytest.raises(InvalidRequest, match="no work dir to write to"):
            _push(handle, source, target)
    assert not target.exists()
