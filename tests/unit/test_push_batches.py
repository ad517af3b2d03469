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


def _spy_on_parts(handle: HostHandle, monkeypatch: pytest.MonkeyPatch) -> list[list[bool]]:
    """The compressed flags of each WriteFiles request's parts, in the order sent."""
    sent: list[list[bool]] = []
    real = handle.write_files

    def write_files(request, blob):  # type: ignore[no-untyped-def]
        sent.append([part[5] for part in request.parts])
        return real(request, blob)

    monkeypatch.setattr(handle, "write_files", write_files)
    return sent


@pytest.mark.alone  # "a socket pair is fast": measured so only on a machine not busy with other tests
@pytest.mark.parametrize("slow", [False, True])
def test_the_first_batch_goes_as_it_is_and_the_others_as_the_link_asks(
        handle: HostHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: bool) -> None:
    # The first batch measures the link; every later one is packed only once that
    # measurement is in (a socket pair is fast: nothing is compressed unless the threshold
    # says any link is slow).
    if slow:
        monkeypatch.setattr("mngr.controller.link_rate.COMPRESS_BELOW", float("inf"))
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    line = b"    return self.value.compresses(well, enough)\n"
    for index in range(40):  # ten times the first batch, in text that compresses
        (source / f"f{index}.py").write_bytes(line * (FIRST_BATCH_BYTES // 4 // len(line)))
    sent = _spy_on_parts(handle, monkeypatch)
    plan = _push(handle, source, target)
    assert not plan.skipped and len(sent) >= 3
    assert not any(sent[0])
    assert all(all(flags) if slow else not any(flags) for flags in sent[1:])
    assert _tree(target) == _tree(source)


def test_a_file_is_read_with_the_stat_of_the_bytes_read_not_the_plan_s(tmp_path: Path) -> None:
    import time

    from mngr.remote_helper import files

    root = tmp_path / "root"
    root.mkdir()
    (root / "grew").write_bytes(b"0123456789" * 3)
    (root / "shrank").write_bytes(b"01")
    (root / "same").write_bytes(b"same bytes")
    time.sleep(2 * files.SETTLE_NS / 1e9)  # settled: each is read with one stat after the read

    def parts(path: str, size: int, exact: bool = False) -> list[tuple[bytes, int, bool, int, int]]:
        info = (root / path).stat()
        entry = [path, "f", info.st_mode & 0o777, size, info.st_mtime_ns, ""]
        with files.OpenDirs(str(root)) as dirs:
            return list(sync._local_parts(str(root), entry, exact, dirs))

    for path, planned_size in (("grew", 10), ("shrank", 5), ("same", 10)):
        info = (root / path).stat()
        assert parts(path, planned_size) == [((root / path).read_bytes(), 0, True, info.st_mode & 0o777,
                                              info.st_mtime_ns)], path
    assert parts("same", 10, exact=True)[0][0] == b"same bytes"
    with pytest.raises(OSError, match=files.CHANGED_MEANWHILE):  # not the version the plan named
        parts("grew", 10, exact=True)
