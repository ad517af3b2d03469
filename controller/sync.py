"""Push and pull: make the contents of one tree arrive in another, sending only what changed.

Both ends list their tree as a manifest (remote_helper/files.py, the same code on both
sides). A file travels when it is missing on the receiving side or differs in size,
modification time or mode, like rsync's quick check; a symlink when its target differs;
a directory is created (or its mode fixed) when it is missing. With ``delete``, what the
receiving side has and the source does not is removed. File contents go in batches of
about ``BATCH_BYTES``, zlib-compressed where that helps, each file in parts of at most
``PART_BYTES`` so that no file needs to fit in one frame; a file lands (is renamed into
place) with its last part, so an interrupted transfer never leaves a truncated file.

"Never lose work": in a git work tree, the receiving side's uncommitted changes (modified
or untracked files) are never overwritten or deleted unless ``force`` is given.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import Any

from mngr.remote_helper import files
from mngr.remote_helper.wire import RequestFailed

from .channel import protocol
from .errors import MngrError, ProtocolViolation
from .hosts import HostHandle
from .local_walk import LocalWalk, StaleKept, reuse
from .plan import Entry, Plan, decode_manifest, make_plan

__all__ = ["Entry", "Plan", "both_manifests", "make_plan", "pull", "push"]

BATCH_BYTES = 8 * 1024 * 1024
PART_BYTES = 4 * 1024 * 1024

def _touches_uncommitted(plan: Plan, uncommitted: list[str]) -> list[str]:
    written = {entry[0] for entry in plan.send} | set(plan.replace)
    removed = list(plan.delete) + list(plan.replace)
    at_risk = []
    for path in uncommitted:
        if path in written or any(path == gone or path.startswith(gone + "/") for gone in removed):
            at_risk.append(path)
    return sorted(at_risk)


def _refuse_if_uncommitted(plan: Plan, uncommitted: list[str], where: str) -> None:
    at_risk = _touches_uncommitted(plan, uncommitted)
    if at_risk:
        shown = ", ".join(at_risk[:5]) + (f" and {len(at_risk) - 5} more" if len(at_risk) > 5 else "")
        raise MngrError(f"refusing to overwrite uncommitted changes in {where}: {shown} (use --force to overwrite)")


def _decode_manifest(host: str, blob: bytes) -> list[Entry]:
    """The host's manifest, its form checked. Paths are checked where they are used: every
    function that writes or deletes (remote_helper/files.py) refuses an unsafe one."""
    try:
        return decode_manifest(blob)
    except ValueError as exc:
        raise ProtocolViolation(host, f"unreadable manifest from the host: {exc}"[:300]) from exc


def both_manifests(handle: HostHandle, name: str, local_root: str, include_ignored: bool,
                   work_dir: str = "", with_uncommitted: bool = False
                   ) -> tuple[protocol.Manifest, list[Entry], list[Entry]]:
    """(the host's reply, its entries, the local entries), the local walk done while the
    host walks its side."""
    local_walk = LocalWalk(local_root, include_ignored)
    try:
        reply, blob = handle.get_manifest(name, include_ignored, work_dir, with_uncommitted)
    finally:
        local = local_walk.entries()
    return reply, _decode_manifest(handle.host, blob), local


# -- push -----------------------------------------------------------------------------------


def _local_parts(root: str, entry: Entry) -> Iterator[tuple[bytes, int, bool]]:
    """(data, offset in the file, final) for the local file ``entry``, never through a link."""
    fd = os.open(os.path.join(root, entry[0]), os.O_RDONLY | os.O_NOFOLLOW)
    try:
        offset = 0
        while True:
            data = os.read(fd, PART_BYTES)
            following = os.read(fd, 1) if len(data) == PART_BYTES else b""
            if following:
                os.lseek(fd, -1, os.SEEK_CUR)
            yield data, offset, not following
            if not following:
                return
            offset += len(data)
    finally:
        os.close(fd)


def push(handle: HostHandle, name: str, local_root: str, *, delete: bool, dry_run: bool,
         include_ignored: bool, force: bool, work_dir: str = "", local_walk: LocalWalk | None = None) -> Plan:
    """Push ``local_root`` into agent ``name``'s work dir (or, with no name, ``work_dir``)."""
    with reuse(local_walk, local_root, include_ignored, name, (True, delete)) as walk:
        reply, plan = _plan(handle, name, include_ignored, True, delete, walk,
                            work_dir=work_dir, with_uncommitted=not force)
        if not force:
            _refuse_if_uncommitted(plan, reply.uncommitted, f"{name}'s work dir ({reply.root})")
        if dry_run or plan.empty:
            walk.finish(None)
            return plan
        walk.finish(send_plan(handle, name, local_root, plan, work_dir, known=reply.tag))
    return plan


def _plan(handle: HostHandle, name: str, include_ignored: bool, local_is_source: bool, delete: bool,
          walk: LocalWalk, work_dir: str = "", with_uncommitted: bool = False) -> tuple[protocol.Manifest, Plan]:
    """The host's reply and the plan, made by the local walk (a child process) from the
    host's manifest, or from the one it kept when the host says that is still current."""
    known = walk.known_tag() if not work_dir else ""
    while True:
        reply, blob = handle.get_manifest(name, include_ignored, work_dir, with_uncommitted, known=known)
        if reply.unchanged and (not known or reply.tag != known):
            raise ProtocolViolation(handle.host, "the host says unchanged for a manifest it was not asked about")
        try:
            return reply, walk.plan(blob, reply.tag, reply.unchanged, local_is_source, delete)
        except StaleKept:
            known = ""  # the copy kept here went away meanwhile: ask for the whole manifest
        except ValueError as exc:
            raise ProtocolViolation(handle.host, f"unreadable manifest from the host: {exc}"[:300]) from exc


def send_plan(handle: HostHandle, name: str, local_root: str, plan: Plan, work_dir: str = "",
              known: str = "") -> str:
    """Carry out ``plan`` from ``local_root`` into the agent's work dir (or ``work_dir``);
    the host's manifest tag afterwards (see protocol.Written), chained from ``known``."""
    tag = known
    if plan.replace:
        tag = handle.write_files(protocol.WriteFiles(name=name, deletes=list(plan.replace), work_dir=work_dir,
                                                     known=tag), b"")
    with _Sender(handle, tag) as sender:
        request = protocol.WriteFiles(name=name, dirs=[[entry[0], entry[2]] for entry in plan.dirs],
                                      work_dir=work_dir)
        chunks: list[bytes] = []
        size = 0
        for entry in plan.send:
            if entry[1] == "l":
                request.links.append([entry[0], entry[5]])
                continue
            for data, offset, final in _local_parts(local_root, entry):
                packed, compressed = files.pack(data)
                request.parts.append([entry[0], entry[2], entry[4], size, len(packed), compressed, offset, final])
                chunks.append(packed)
                size += len(packed)
                if size >= BATCH_BYTES:
                    sender.send(request, b"".join(chunks))
                    request, chunks, size = protocol.WriteFiles(name=name, work_dir=work_dir), [], 0
        request.deletes = list(plan.delete)
        sender.send(request, b"".join(chunks))
    return sender.tag


class _Sender:
    """Sends batches on a thread of its own, one at a time, while the next one is packed.

    A batch's parts must land in order (a file's parts are appended), so batches go one
    after another; reading and compressing the next overlaps with sending this one. Each
    batch carries the manifest tag the last one was answered with.
    """

    def __init__(self, handle: HostHandle, tag: str) -> None:
        import queue
        import threading

        self._handle = handle
        self.tag = tag
        self._queue: queue.Queue[tuple[protocol.WriteFiles, bytes] | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is None:
                request, blob = item
                request.known = self.tag
                try:
                    self.tag = self._handle.write_files(request, blob)
                except BaseException as exc:  # handed to the pushing thread
                    self._failure = exc
                    self.tag = ""

    def send(self, request: protocol.WriteFiles, blob: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put((request, blob))

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None and exc_info[0] is None:
            raise self._failure


# -- a new agent's work dir ------------------------------------------------------------------


def seed_work_dir(handle: HostHandle, name: str, source: str, path: str) -> str:
    """Make agent ``name``'s new work dir on the host from ``source``: a git repository
    arrives with its history (a bundle, cloned), then the files as they are here
    (uncommitted changes included; .gitignore honoured). Returns the work dir's path; on
    failure nothing is left on the host."""
    bundle = files.git_bundle(source)
    return fill_work_dir(handle, name, source, path, bundle, files.current_branch(source) if bundle else "",
                          include_ignored=False)


def fill_work_dir(handle: HostHandle, name: str, source: str, path: str, bundle: bytes, branch: str,
                   include_ignored: bool) -> str:
    made = handle.prepare_work_dir(name, path, bundle, branch=branch)
    try:
        push(handle, "", source, delete=False, dry_run=False, include_ignored=include_ignored, force=True,
             work_dir=made)
    except BaseException:
        handle.prepare_work_dir(name, made, remove=True)
        raise
    return made


def copy_work_dir(source: HostHandle, name: str, target: HostHandle, new_name: str, path: str,
                  scratch: str) -> tuple[protocol.AgentSpec, str]:
    """Copy agent ``name``'s work dir into a new work dir for ``new_name`` on ``target``:
    its git repository (every branch, the same one checked out) and every file, ignored
    ones included, through ``scratch`` (an empty local directory). Returns the source
    agent's spec and the new work dir's path."""
    spec = source.agent_spec(name)
    pull(source, name, scratch, delete=False, dry_run=False, include_ignored=True, force=True)
    bundle = source.git_bundle(name)
    made = fill_work_dir(target, new_name, scratch, path, bundle, spec.branch if bundle else "",
                          include_ignored=True)
    return spec, made


def same_tree(first: HostHandle, first_name: str, second: HostHandle, second_name: str) -> bool:
    """True if both agents' work dirs list the same files, links and directories with the
    same sizes, modes and modification times (everything a copy sets), .git aside."""
    _, one = first.get_manifest(first_name, True)
    _, other = second.get_manifest(second_name, True)
    return sorted(_decode_manifest(first.host, one)) == sorted(_decode_manifest(second.host, other))


# -- pull -----------------------------------------------------------------------------------


def _batches(entries: list[Entry]) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    size = 0
    for entry in entries:
        if batch and size + entry[3] > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry[3]
    if batch:
        yield batch


def pull(handle: HostHandle, name: str, local_root: str, *, delete: bool, dry_run: bool,
         include_ignored: bool, force: bool, local_walk: LocalWalk | None = None) -> Plan:
    with reuse(local_walk, local_root, include_ignored, name, (False, delete)) as walk:
        _, plan = _plan(handle, name, include_ignored, False, delete, walk)
        walk.finish(None)  # a pull leaves the host's manifest as it was
    if not force:
        _refuse_if_uncommitted(plan, files.uncommitted(local_root), local_root)
    if dry_run or plan.empty:
        return plan
    land_plan(handle, name, local_root, plan)
    return plan


def land_plan(handle: HostHandle, name: str, local_root: str, plan: Plan) -> None:
    """Carry out ``plan`` from the agent's work dir into ``local_root``."""
    try:
        _land_plan(handle, name, local_root, plan)
    except RequestFailed as exc:  # a path from the host's manifest that must not be written
        raise ProtocolViolation(handle.host, exc.message) from exc


def fetch_branches(handle: HostHandle, name: str, local_root: str) -> list[str]:
    """Bring the branches of the agent's repository into the one at ``local_root`` as
    ``refs/remotes/mngr/NAME/*``: nothing of the local branches or files changes. Returns
    the refs fetched ([] when either side is not a git repository)."""
    import subprocess
    import tempfile

    if not files.is_repo_top(local_root):
        return []
    bundle = handle.git_bundle(name)
    if not bundle:
        return []
    with tempfile.NamedTemporaryFile(prefix="mngr-bundle-", suffix=".bundle") as handle_file:
        handle_file.write(bundle)
        handle_file.flush()
        prefix = f"refs/remotes/mngr/{name}/"
        fetched = subprocess.run(
            ["git", "-C", local_root, "fetch", "--quiet", "--no-tags", "--force", handle_file.name,
             f"refs/heads/*:{prefix}*"],
            capture_output=True, text=True,
        )
        if fetched.returncode != 0:
            lines = fetched.stderr.strip().splitlines()
            raise MngrError(f"fetching {name}'s branches failed: {lines[-1] if lines else 'git fetch failed'}")
    listed = subprocess.run(["git", "-C", local_root, "for-each-ref", "--format=%(refname:short)", prefix],
                            capture_output=True, text=True)
    return listed.stdout.split()


def _land_plan(handle: HostHandle, name: str, local_root: str, plan: Plan) -> None:
    for path in plan.replace:
        files.delete(local_root, path)
    for entry in plan.dirs:
        files.make_directory(local_root, entry[0], entry[2])
    for entry in plan.send:
        if entry[1] == "l":
            files.write_link(local_root, entry[0], entry[5])
    batches = [sorted(entry[0] for entry in batch)
               for batch in _batches([entry for entry in plan.send if entry[1] == "f"])]
    for paths, (reply, data) in zip(batches, _fetched(handle, name, batches), strict=True):
        wanted = set(paths)
        for item in reply.files:
            land_pulled(handle.host, local_root, item, data, wanted)
    for path in sorted(plan.delete, key=lambda item: item.count("/"), reverse=True):
        files.delete(local_root, path)


def _fetched(handle: HostHandle, name: str,
             batches: list[list[str]]) -> Iterator[tuple[protocol.FileData, bytes]]:
    """Each batch's files, in order, the next batch already asked for while one is written."""
    import threading

    results: list[tuple[protocol.FileData, bytes] | BaseException | None] = [None] * len(batches)
    ready = [threading.Event() for _ in batches]
    landed = [threading.Semaphore(0) for _ in batches]

    def fetch() -> None:
        for index, paths in enumerate(batches):
            if index >= 2:
                landed[index - 2].acquire()  # at most two batches held in memory
            try:
                results[index] = handle.read_files(name, paths)
            except BaseException as exc:  # handed to the landing thread
                results[index] = exc
                ready[index].set()
                return
            ready[index].set()

    fetcher = threading.Thread(target=fetch, daemon=True)
    fetcher.start()
    for index in range(len(batches)):
        ready[index].wait()
        result = results[index]
        results[index] = None
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        yield result
        landed[index].release()


def land_pulled(host: str, local_root: str, item: list[Any], data: bytes, wanted: set[str]) -> None:
    """Write one file of a FileData reply, trusting nothing in it."""
    if (not isinstance(item, list) or len(item) != 7 or not isinstance(item[0], str)
            or not all(isinstance(value, int) and not isinstance(value, bool) for value in (*item[1:3], *item[4:7]))
            or not isinstance(item[3], bool)):
        raise ProtocolViolation(host, f"malformed file entry from the host: {item!r}"[:200])
    path, offset, length, compressed, mode, mtime_ns, size = item
    try:
        files.check_path(path)
    except RequestFailed as exc:
        raise ProtocolViolation(host, f"the host sent an unsafe path: {exc.message}") from exc
    if path not in wanted:
        raise ProtocolViolation(host, f"the host sent a file that was not asked for: {path!r}"[:200])
    if offset < 0 or length < 0 or offset + length > len(data):
        raise ProtocolViolation(host, f"the host's data for {path!r} lies outside its reply"[:200])
    content = data[offset : offset + length]
    if compressed:
        inflater = zlib.decompressobj()
        try:
            content = inflater.decompress(content, size + 1)
        except zlib.error as exc:
            raise ProtocolViolation(host, f"the host sent bad data for {path!r}: {exc}"[:200]) from exc
    if len(content) != size:
        raise ProtocolViolation(host, f"the host's data for {path!r} is not {size} bytes"[:200])
    files.write_part(local_root, path, content, 0, True, mode, mtime_ns)
