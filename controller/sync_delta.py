"""Delta transfer of large files for push and pull (see remote_helper/delta.py and
docs/sync-delta.md): a file the receiving side already has in some version travels as the
blocks it can copy from that version plus the bytes it cannot.

Either function says whether the file landed that way; when it did not (no old file worth
it, too different, a mismatch, an old file that changed meanwhile), nothing of it landed and
the caller sends the file whole, as it would have without a delta.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
import time
import zlib
from collections.abc import Callable

from mngr.remote_helper import delta, files, guarded
from mngr.remote_helper.wire import RequestFailed

from .channel import protocol
from .errors import ProtocolViolation, RemoteError
from .hosts import HostHandle

CHUNK_BYTES = 4 * 1024 * 1024
CHUNK_COVERS = 32 * 1024 * 1024  # a push's chunk spans at most about this much of the file
# A pull's delta: beyond this many literal bytes the file comes whole, in parts.
PULL_LITERAL_BUDGET = 16 * 1024 * 1024
PULL_PART_BYTES = 32 * 1024 * 1024  # of the file, per request of a pull's delta
PULL_PARTS_IN_FLIGHT = 2  # the host walks the next part while this side rebuilds one


def worth_a_delta(size: int) -> bool:
    return size >= delta.MIN_BYTES


def push_delta(handle: HostHandle, name: str, local_root: str, path: str, work_dir: str,
               tag: str) -> tuple[bool, str]:
    """Push the local file at ``path`` as a delta against the host's version of it: (landed,
    the host's manifest tag after it, chained from ``tag``)."""
    wire_path = files.path_to_wire(path)
    reply, records = handle.signatures(name, wire_path, work_dir)
    if not reply.block:
        return False, tag
    try:
        fd = os.open(os.path.join(local_root, path), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False, tag
    try:
        for _ in range(files.READ_ATTEMPTS):
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return False, tag
            fresh = before.st_ctime_ns + files.SETTLE_NS - time.time_ns()
            if fresh > 0:  # a change just now could hide behind the same stat
                time.sleep(fresh / 1e9)
                continue
            try:
                landed, tag = _send_delta(handle, name, wire_path, work_dir, tag, fd, before, reply, records)
            except delta.FileChanged:
                continue
            if landed is not None:
                return landed, tag
        handle.write_files(protocol.WriteFiles(  # what a given-up attempt left on the host
            name=name, work_dir=work_dir, deletes=[files.path_to_wire(_part_path(path))]), b"")
        return False, ""
    finally:
        os.close(fd)


def _part_path(path: str) -> str:
    parent, base = os.path.split(path)
    return os.path.join(parent, files.part_name(base))


def _send_delta(handle: HostHandle, name: str, wire_path: str, work_dir: str, tag: str, fd: int,
                before: os.stat_result, signatures: protocol.Signatures, records: bytes) -> tuple[bool | None, str]:
    """(landed, tag); landed None when the local file changed while it was read. The host
    rebuilds each chunk while the next is made."""
    maker = delta.DeltaMaker(fd, before.st_size, records, signatures.block, signatures.size, CHUNK_BYTES,
                             chunk_covers=CHUNK_COVERS)
    offset = 0

    def send(ops: bytes, covered: int, digest: bytes, final: bool) -> bool:
        nonlocal offset, tag
        packed, compressed = files.pack(ops)
        request = protocol.WriteDelta(
            name=name, path=wire_path, old_version=signatures.version, block=signatures.block, offset=offset,
            final=final, mode=stat.S_IMODE(before.st_mode), mtime_ns=before.st_mtime_ns,
            digest=digest.hex(), compressed=compressed, work_dir=work_dir, known=tag)
        written = handle.write_delta(request, packed)
        tag = written.tag
        offset += covered
        return not written.skipped

    sender = _ChunkSender(send)
    changed = False
    try:
        held: tuple[bytes, int, bytes] | None = None
        for ops, covered, digest in maker:
            if held is not None and not sender.put(held, final=False):
                break
            held = (ops, covered, digest)
        else:
            changed = files.version_of(os.fstat(fd)) != files.version_of(before)
            if not changed:
                sender.put(held if held is not None else (b"", 0, delta.chunk_digest().digest()), final=True)
    finally:
        landed = sender.finish()
    return (None if changed else landed), tag


def pull_delta(handle: HostHandle, name: str, local_root: str, path: str, size: int,
               guard: guarded.Guard = guarded.NO_GUARD) -> bool:
    """Pull the host's file at ``path`` (``size`` bytes in the plan) as a delta against the
    local one; True if it landed.

    The delta comes in parts of PULL_PART_BYTES of the file, each walked by the host while
    the one before is rebuilt here; every part must come from the same version of the
    host's file, else nothing lands (and the file comes whole, as it would have anyway)."""
    if guard.why_not_write(path):
        return False
    kept_at = _kept_signatures_path(local_root, path)
    _recall_signatures(kept_at)
    block, old_size, version, records = files.signatures_of(local_root, path)
    if not block:
        return False
    if _pull_parts(handle, name, local_root, path, size, block, old_size, version, records):
        _keep_signatures(kept_at, os.path.join(local_root, path))
        return True
    files.discard_part(local_root, path)
    return False


def _pull_parts(handle: HostHandle, name: str, local_root: str, path: str, size: int, block: int, old_size: int,
                version: str, records: bytes) -> bool:
    import collections
    import hashlib
    from concurrent.futures import Future, ThreadPoolExecutor

    budget = min(PULL_LITERAL_BUDGET, max(size // 2, delta.MIN_BYTES))
    span = max(1, PULL_PART_BYTES // block) * block  # whole blocks: where a file changed in place has one
    tag = hashlib.sha1(records).hexdigest()
    wire_path = files.path_to_wire(path)

    def ask(offset: int, first: bool) -> tuple[protocol.DeltaData, bytes]:
        request = protocol.ReadDelta(name=name, path=wire_path, block=block, old_size=old_size,
                                     literal_budget=budget, offset=offset, length=span, signatures_tag=tag)
        return handle.read_delta(request, records if first else b"")

    asked: collections.deque[tuple[int, Future[tuple[protocol.DeltaData, bytes]]]] = collections.deque()
    with ThreadPoolExecutor(PULL_PARTS_IN_FLIGHT) as pool:
        try:
            first: protocol.DeltaData | None = None
            end, next_offset, literal = size, 0, 0
            while True:
                # The first part alone: it leaves the signatures with the host for the others.
                while (len(asked) < (PULL_PARTS_IN_FLIGHT if first is not None else 1)
                       and (next_offset < end or not next_offset)):
                    asked.append((next_offset, pool.submit(ask, next_offset, not next_offset)))
                    next_offset += span
                offset, future = asked.popleft()
                try:
                    reply, blob = future.result()
                except RemoteError:
                    return False  # the host kept no signatures for this part (see ReadDelta)
                if reply.skipped or reply.too_different:
                    return False
                if first is None:
                    first, end = reply, reply.size
                elif (reply.version, reply.size, reply.mode, reply.mtime_ns) != \
                        (first.version, first.size, first.mode, first.mtime_ns):
                    return False  # changed between two parts
                ops = _inflated(handle, path, reply, blob)
                literal += len(ops)
                if literal > budget:
                    return False
                final = offset + span >= end
                try:
                    files.write_delta(local_root, path, ops, offset, final, reply.mode, reply.mtime_ns, version,
                                      block, _digest(handle, reply))
                except (OSError, RequestFailed):
                    return False
                if final:
                    return True
        finally:
            for _, future in asked:
                future.cancel()
            for _, future in asked:  # replies no longer wanted: not left for anyone to wait for
                if not future.cancelled():
                    with contextlib.suppress(BaseException):
                        future.result()


def _digest(handle: HostHandle, reply: protocol.DeltaData) -> bytes:
    try:
        return bytes.fromhex(reply.digest)
    except ValueError as exc:
        raise ProtocolViolation(handle.host, f"a malformed digest from the host: {reply.digest!r}"[:200]) from exc


def _inflated(handle: HostHandle, path: str, reply: protocol.DeltaData, blob: bytes) -> bytes:
    if not reply.compressed:
        return blob
    inflater = zlib.decompressobj()
    try:
        return inflater.decompress(blob, files.MAX_PART_BYTES)
    except zlib.error as exc:
        raise ProtocolViolation(handle.host, f"the host sent a bad delta for {path!r}: {exc}"[:200]) from exc


# The signatures of a file a pull rebuilt, learnt on the way (files.write_delta), are kept on
# disk for the next pull of it, which then need not read the whole file to sign it. They count
# only for the version (device, inode, size, mtime, ctime) the file had when they were learnt.
_KEPT_FORMAT = 1


def _kept_signatures_path(local_root: str, path: str) -> str:
    import hashlib

    from .paths import state_dir

    where = os.fsencode(os.path.abspath(os.path.join(local_root, path)))
    return os.path.join(state_dir(), "signatures", hashlib.sha1(where).hexdigest())


def _recall_signatures(kept_at: str) -> None:
    import marshal

    try:
        with open(kept_at, "rb") as kept:
            form, version, block, records, sha1s = marshal.load(kept)
    except (OSError, EOFError, ValueError, TypeError):
        return
    if form == _KEPT_FORMAT and isinstance(version, str) and isinstance(block, int) \
            and isinstance(records, bytes) and isinstance(sha1s, bytes) \
            and len(records) * delta.SHA1_BYTES == len(sha1s) * delta.RECORD_BYTES:
        delta.remember(version, block, records, sha1s)


def _keep_signatures(kept_at: str, file_path: str) -> None:
    import contextlib
    import marshal
    import tempfile

    try:
        info = os.lstat(file_path)
    except OSError:
        return
    version = files.version_of(info)
    block = delta.block_size_for(info.st_size)
    learnt = delta.remembered(version, block)
    if learnt is None:
        with contextlib.suppress(OSError):
            os.unlink(kept_at)  # those kept are of a version that is gone
        return
    temporary = None
    try:
        os.makedirs(os.path.dirname(kept_at), mode=0o700, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(kept_at))
        with os.fdopen(handle, "wb") as output:
            marshal.dump((_KEPT_FORMAT, version, block, *learnt), output)
        os.replace(temporary, kept_at)
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


class _ChunkSender:
    """Sends a delta's chunks, in order, one request at a time, on a thread of its own."""

    def __init__(self, send: Callable[[bytes, int, bytes, bool], bool]) -> None:
        self._send = send
        self._queue: queue.Queue[tuple[tuple[bytes, int, bytes], bool] | None] = queue.Queue(maxsize=2)
        self._refused = False  # the host could not take a chunk (a mismatch, its old file changed)
        self._failure: BaseException | None = None
        self._landed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._refused or self._failure is not None:
                continue
            chunk, final = item
            try:
                if not self._send(*chunk, final):
                    self._refused = True
                elif final:
                    self._landed = True
            except BaseException as exc:  # handed to the walking thread
                self._failure = exc

    def put(self, chunk: tuple[bytes, int, bytes], final: bool) -> bool:
        """False once the host refused a chunk: the rest need not be made."""
        if self._refused or self._failure is not None:
            return False
        self._queue.put((chunk, final))
        return True

    def finish(self) -> bool:
        """Whether the file landed, once every chunk put went; the failure of a request raised."""
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._landed
