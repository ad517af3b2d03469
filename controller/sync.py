"""Push and pull: make the contents of one tree arrive in another, sending only what changed.

Both ends list their tree as a manifest (remote_helper/files.py, the same code on both
sides). A file travels when it is missing on the receiving side or differs in size,
modification time or mode, like rsync's quick check; a symlink when its target differs;
a directory is created (or its mode fixed) when it is missing. With ``delete``, what the
receiving side has and the source does not is removed. File contents go in batches of
about ``BATCH_BYTES``, zlib-compressed on a slow link (link_rate.py), each file in parts
of at most ``PART_BYTES`` so that no file needs to fit in one frame; a file lands (is
renamed into place) with its last part, so an interrupted transfer never leaves a truncated file.

"Never lose work": in a git work tree, the receiving side's uncommitted changes (modified
or untracked files) are never overwritten or deleted unless ``force`` is given. Without
``delete`` nothing only the receiving side has is removed: an entry of another kind there
is refused (plan.py). mngr's own state is never listed, written or deleted, nor a home
dir's top-level dot entries deleted (remote_helper/guarded.py, checked by the side that
owns the tree). An entry that cannot be carried out (gone meanwhile, unreadable,
permission denied) is skipped and the rest goes on: ``Plan.refused`` and ``Plan.skipped``
say what did not land, and why.
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

from mngr.remote_helper import files, guarded
from mngr.remote_helper.wire import RequestFailed

from .channel import protocol
from .errors import MngrError, ProtocolViolation
from .hosts import HostHandle
from .link_rate import FIRST_BATCH_BYTES, LinkRate
from .local_walk import LocalWalk, StaleKept, reuse
from .plan import Entry, Plan, decode_manifest, directories_to_finish, make_plan
from .sync_meter import TransferMeter

if TYPE_CHECKING:
    from .progress import Progress

__all__ = ["Entry", "PartialCopy", "Plan", "both_manifests", "make_plan", "pull", "push", "refuse_partial"]

BATCH_BYTES = 8 * 1024 * 1024
PART_BYTES = 4 * 1024 * 1024
BATCHES_IN_FLIGHT = 2  # one being written on the host while the next one crosses the link

class PartialCopy(MngrError):
    """A new work dir or a snapshot could not be made whole (clone, migrate, create
    --source, snapshot)."""


def _why_skipped(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return files.VANISHED
    return exc.strerror or str(exc)


def _skipped_from_wire(host: str, skipped: list[list[str]]) -> list[list[str]]:
    try:
        return [[files.path_from_wire(path), str(reason)] for path, reason in skipped]
    except (RequestFailed, ValueError, TypeError) as exc:
        raise ProtocolViolation(host, f"malformed skipped entries from the host: {skipped!r}"[:200]) from exc


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


class _KeptChanging(OSError):
    """A local file changed each time it was read (files.READ_ATTEMPTS times)."""


class _ChangedSincePlanned(OSError):
    """A local file is no longer the version the plan was made from (send_plan's ``exact``)."""


def _local_parts(root: str, entry: Entry, exact: bool = False, open_dirs: files.OpenDirs | None = None
                 ) -> Iterator[tuple[bytes, int, bool, int, int]]:
    """(data, offset in the file, final, mode, mtime_ns) for the local file ``entry``, never
    through a link (``open_dirs``: descriptors of ``root``'s directories, if the caller keeps
    them). The final part carries the mode and mtime of exactly the bytes sent: a file that
    changed while it was read is sent again from its start (the host's part file starts
    over), a few times, then given up with _KeptChanging."""
    started_ns = time.time_ns()
    if open_dirs is None:
        fd = os.open(os.path.join(root, entry[0]), os.O_RDONLY | os.O_NOFOLLOW)
    else:
        parent, _, name = entry[0].rpartition("/")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=open_dirs.fd(parent, create=False))
    try:
        if entry[3] < PART_BYTES:
            # The usual small file, read with one stat: asked for one byte more than the plan
            # says it has, so a short read shows its end was reached; the stat after the read
            # vouches for the bytes when the file's last change (ctime, which nobody can set)
            # came before the read began, by more than the clock's granularity.
            data = os.pread(fd, entry[3] + 1, 0)
            after = os.fstat(fd)
            if (len(data) <= entry[3] and len(data) == after.st_size
                    and after.st_ctime_ns + files.SETTLE_NS <= started_ns and stat.S_ISREG(after.st_mode)):
                mode = stat.S_IMODE(after.st_mode)
                if exact and [mode, after.st_size, after.st_mtime_ns] != list(entry[2:5]):
                    raise _ChangedSincePlanned(0, files.CHANGED_MEANWHILE)
                yield data, 0, True, mode, after.st_mtime_ns
                return
        for _ in range(files.READ_ATTEMPTS):
            before = os.fstat(fd)
            too_fresh = before.st_ctime_ns + files.SETTLE_NS - time.time_ns()
            if too_fresh > 0:  # changed just now: a change during the read could hide behind the same stat
                time.sleep(too_fresh / 1e9)
                before = os.fstat(fd)
                if before.st_ctime_ns + files.SETTLE_NS > time.time_ns():
                    continue
            mode = stat.S_IMODE(before.st_mode)
            if exact and [mode, before.st_size, before.st_mtime_ns] != list(entry[2:5]):
                raise _ChangedSincePlanned(0, files.CHANGED_MEANWHILE)
            offset = 0
            while True:
                data = os.pread(fd, PART_BYTES, offset)
                last = offset + len(data) >= before.st_size or len(data) < PART_BYTES
                if last and not _same_version(os.fstat(fd), before):
                    break  # changed while it was read: from the start again
                yield data, offset, last, mode, before.st_mtime_ns
                if last:
                    return
                offset += len(data)
        raise _KeptChanging(0, "kept changing while it was read")
    finally:
        os.close(fd)


def _same_version(now: os.stat_result, before: os.stat_result) -> bool:
    """files.version_of(now) == files.version_of(before), without making the two strings."""
    return (now.st_mtime_ns == before.st_mtime_ns and now.st_ctime_ns == before.st_ctime_ns
            and now.st_size == before.st_size and now.st_ino == before.st_ino and now.st_dev == before.st_dev)


def _part_path(path: str) -> str:
    parent, name = os.path.split(path)
    return os.path.join(parent, files.part_name(name))


def push(handle: HostHandle, name: str, local_root: str, *, delete: bool, dry_run: bool,
         include_ignored: bool, force: bool, work_dir: str = "", local_walk: LocalWalk | None = None,
         progress: Progress | None = None) -> Plan:
    """Push ``local_root`` into agent ``name``'s work dir (or, with no name, ``work_dir``);
    how far it got shown on ``progress``."""
    with reuse(local_walk, local_root, include_ignored, name, (True, delete)) as walk:
        reply, plan = _plan(handle, name, include_ignored, True, delete, walk,
                            work_dir=work_dir, with_uncommitted=not force)
        refused_before = len(plan.refused)
        plan.keep(guarded.Guard.from_wire([files.path_from_wire(path) for path in reply.guarded],
                                          reply.home).why_not_delete)
        if not force:
            uncommitted = [files.path_from_wire(path) for path in reply.uncommitted]
            _refuse_if_uncommitted(plan, uncommitted, f"{name}'s work dir ({reply.root})")
        if dry_run or plan.empty:
            walk.finish(None)
            return plan
        tag = send_plan(handle, name, local_root, plan, work_dir, known=reply.tag,
                        meter=TransferMeter(progress, handle, plan, sending=True))
        # Deletions the host keeps differ from the plan the kept manifest is updated with.
        walk.finish(tag if len(plan.refused) == refused_before else "")
    return plan


def _plan(handle: HostHandle, name: str, include_ignored: bool, local_is_source: bool, delete: bool,
          walk: LocalWalk, work_dir: str = "", with_uncommitted: bool = False) -> tuple[protocol.Manifest, Plan]:
    """The host's reply and the plan, made by the local walk (a child process) from the
    host's manifest, or from the one it kept when the host says that is still current."""
    known = walk.known_tag() if not work_dir else ""
    while True:
        reply, blob = handle.get_manifest(name, include_ignored, work_dir, with_uncommitted, known=known)
        if (reply.unchanged or reply.changes_only) and (not known or (reply.unchanged and reply.tag != known)):
            raise ProtocolViolation(handle.host, "the host sent changes to a manifest it was not asked about")
        try:
            since = (known, [files.path_from_wire(path) for path in reply.gone]) if reply.changes_only else None
            return reply, walk.plan(blob, reply.tag, reply.unchanged, local_is_source, delete, since)
        except StaleKept:
            known = ""  # the copy kept here went away meanwhile: ask for the whole manifest
        except (ValueError, RequestFailed) as exc:
            raise ProtocolViolation(handle.host, f"unreadable manifest from the host: {exc}"[:300]) from exc


def _wire_dirs(entries: list[Entry]) -> list[list[Any]]:
    return [[files.path_to_wire(entry[0]), entry[2]] for entry in entries]


def _note_skipped(plan: Plan, skipped: list[list[str]]) -> None:
    seen = {entry[0] for entry in plan.skipped}
    plan.skipped.extend(entry for entry in skipped if entry[0] not in seen)


def _wire_expect(expect: dict[str, Entry] | None, paths: Iterable[str]) -> list[list[Any]]:
    """The request's compare-and-swap entries (protocol.WriteFiles.expect) for ``paths``."""
    if not expect:
        return []
    wired = []
    for path in paths:
        if path in expect:
            entry = expect[path]
            wired.append([files.path_to_wire(path), entry[1], entry[2], entry[3], entry[4],
                          files.path_to_wire(entry[5]) if entry[5] else ""])
    return wired


def _request_expect(expect: dict[str, Entry] | None, request: protocol.WriteFiles) -> list[list[Any]]:
    paths = [entry[0] for entry in request.links] + [part[0] for part in request.parts if part[7]]
    return _wire_expect(expect, (files.path_from_wire(path) for path in paths + list(request.deletes)))


def send_plan(handle: HostHandle, name: str, local_root: str, plan: Plan, work_dir: str = "",
              known: str = "", expect: dict[str, Entry] | None = None, exact: bool = False,
              meter: TransferMeter | None = None) -> str:
    """Carry out ``plan`` from ``local_root`` into the agent's work dir (or ``work_dir``);
    the host's manifest tag afterwards (see protocol.Written), chained from ``known``.
    What could not be carried out is added to ``plan.skipped``. ``expect``: what the host's
    paths must still be for a write or delete of them to land (files.CHANGED_MEANWHILE).
    ``exact``: a file goes only in the version its plan entry names, else it is skipped."""
    tag = known
    if plan.replace:  # what was listed below a replaced directory goes first (see files.delete)
        gone = plan.gone_below + plan.replace
        written = handle.write_files(protocol.WriteFiles(
            name=name, deletes=[files.path_to_wire(path) for path in gone], work_dir=work_dir, known=tag,
            expect=_wire_expect(expect, iter(gone))), b"")
        tag = written.tag
        _note_skipped(plan, _skipped_from_wire(handle.host, written.skipped))
    by_delta: set[str] = set()
    if plan.send:  # (hashlib and the delta code: only for a push that sends something)
        from .sync_delta import push_delta, worth_a_delta
    for entry in plan.send:
        # A delta is not compare-and-swap, nor of a named version: not for pair's writes; nor
        # of a file the host does not have.
        if (entry[1] == "f" and worth_a_delta(entry[3]) and entry[0] not in plan.new and not exact
                and not (expect and entry[0] in expect)):
            landed, tag = push_delta(handle, name, local_root, entry[0], work_dir, tag)
            if landed:
                by_delta.add(entry[0])
                if meter is not None:
                    meter.landed(entry[3], 1)
    rate = LinkRate()
    with _Sender(handle, tag, rate, meter) as sender, files.OpenDirs(local_root) as open_dirs:
        request = protocol.WriteFiles(name=name, dirs=_wire_dirs(plan.dirs), work_dir=work_dir)
        pending: list[tuple[str, int, int, bytes, int, bool]] = []
        abandoned: list[str] = []
        size = 0
        for entry in plan.send:
            if by_delta and entry[0] in by_delta:
                continue
            wire_path = files.path_to_wire(entry[0])
            if entry[1] == "l":
                request.links.append([wire_path, files.path_to_wire(entry[5])])
                continue
            try:
                for data, offset, final, mode, mtime_ns in _local_parts(local_root, entry, exact, open_dirs):
                    pending.append((wire_path, mode, mtime_ns, data, offset, final))
                    size += len(data)
                    if size >= (BATCH_BYTES if sender.sent else FIRST_BATCH_BYTES):
                        landing = (size, _files_in(request, pending))
                        blob = _pack_parts(request, pending, sender.compress())
                        request.expect = _request_expect(expect, request)
                        sender.send(request, blob, landing=landing)
                        request, pending, size = protocol.WriteFiles(name=name, work_dir=work_dir), [], 0
            except (OSError, RequestFailed) as exc:  # gone, unreadable or never still here: the others still go
                # (RequestFailed: a symlink or a file where a directory on its way was)
                plan.skipped.append([entry[0], exc.message if isinstance(exc, RequestFailed) else _why_skipped(exc)])
                sender.tag_is_stale = True
                if isinstance(exc, _KeptChanging):  # its first parts may have gone: not left on the host
                    abandoned.append(files.path_to_wire(_part_path(entry[0])))
        request.deletes = abandoned + [files.path_to_wire(path) for path in plan.delete]
        # A directory's own mode and mtime go last: a read-only one stays writable until its
        # files landed, and landing them changes its mtime.
        request.finish_dirs = [[files.path_to_wire(path), mode, mtime_ns]
                               for path, mode, mtime_ns in directories_to_finish(plan)]
        landing = (size, _files_in(request, pending))
        blob = _pack_parts(request, pending, sender.compress())
        request.expect = _request_expect(expect, request)
        sender.send(request, blob, last=True, landing=landing)
    _note_skipped(plan, sender.skipped)
    return "" if sender.tag_is_stale or plan.skipped else sender.tag


def _files_in(request: protocol.WriteFiles, pending: list[tuple[str, int, int, bytes, int, bool]]) -> int:
    """The files a batch finishes: its links, and the files whose last part it holds."""
    return len(request.links) + sum(1 for part in pending if part[5])


def _pack_parts(request: protocol.WriteFiles, pending: list[tuple[str, int, int, bytes, int, bool]],
                compress: bool) -> bytes:
    """Add the ``pending`` parts (wire path, mode, mtime_ns, data, offset in the file, final)
    to ``request``; the request's data, each part compressed where that pays (link_rate.py)."""
    chunks = []
    size = 0
    for wire_path, mode, mtime_ns, data, offset, final in pending:
        packed, compressed = files.pack(data) if compress else (data, False)
        request.parts.append([wire_path, mode, mtime_ns, size, len(packed), compressed, offset, final])
        chunks.append(packed)
        size += len(packed)
    return b"".join(chunks)


class _Sender:
    """Sends a push's batches with up to BATCHES_IN_FLIGHT of them on the way at once.

    While the host writes one batch the next one crosses the link, and the one after is
    read and packed here. A file's parts must land in order and each batch starts from the
    manifest tag the one before left, so the batches name their push and their place in it
    (protocol.WriteFiles.session and sequence) and the host applies them in that order,
    whatever order they arrive in (remote_helper/write_order.py). The first batch goes
    alone: its round trip, less the host's own time, measures the link (``rate``); a
    batch sent behind another also waits for that one's bytes and would measure less.
    """

    def __init__(self, handle: HostHandle, tag: str, rate: LinkRate, meter: TransferMeter | None = None) -> None:
        self._handle = handle
        self._rate = rate
        self._meter = meter
        self.sent = False  # a batch has been handed over
        self.tag = tag
        self.tag_is_stale = False  # the host's manifest no longer follows the plan
        self.skipped: list[list[str]] = []
        self._session = os.urandom(8).hex()
        self._sequence = 0
        # Made for the first batch that has another after it: a push of one batch (most
        # pushes of a few changes) sends it from this thread, sparing the 5-10 ms that
        # concurrent.futures (logging with it) takes to load.
        self._pool: ThreadPoolExecutor | None = None
        # (the batch's outcome, whether it measures the link, the file bytes and files it lands)
        self._in_flight: collections.deque[tuple[Future[tuple[protocol.Written, float, int]] | _Sent, bool,
                                                 tuple[int, int]]] = collections.deque()
        self._failure: BaseException | None = None

    def _write(self, request: protocol.WriteFiles, blob: bytes) -> tuple[protocol.Written, float, int]:
        started = time.perf_counter()
        written = self._handle.write_files(request, blob)
        return written, time.perf_counter() - started, len(blob)

    def _collect_oldest(self) -> None:
        future, measures_link, landing = self._in_flight.popleft()
        try:
            written, seconds, wire_bytes = future.result()
        except BaseException as exc:  # the first failure is the one that counts
            if self._failure is None:
                self._failure = exc
            self.tag = ""
            return
        if self._failure is None:
            if measures_link:
                self._rate.observe(wire_bytes, seconds - written.seconds)
            self.tag = written.tag
            self.skipped += _skipped_from_wire(self._handle.host, written.skipped)
            if self._meter is not None:
                self._meter.landed(*landing)

    def compress(self) -> bool:
        """Whether the next batch's parts are compressed: not the first batch's (it measures
        the link), and the others' as that measurement says, waited for if need be."""
        if not self.sent:
            return False
        if self._in_flight and self._sequence == 1:
            self._collect_oldest()
        return self._rate.compress

    def send(self, request: protocol.WriteFiles, blob: bytes, last: bool = False,
             landing: tuple[int, int] = (0, 0)) -> None:
        while (len(self._in_flight) >= BATCHES_IN_FLIGHT or (self._in_flight and self._in_flight[0][0].done())
               or (self._in_flight and self._sequence == 1)):
            self._collect_oldest()
        if self._failure is not None:
            raise self._failure
        request.known = self.tag  # counts for the first batch only: the host chains the rest
        request.session, request.sequence, request.last = self._session, self._sequence, last
        self._sequence += 1
        self.sent = True
        if last and not self._in_flight:  # nothing left to read and pack meanwhile
            self._in_flight.append((_Sent(self._write, request, blob), True, landing))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(BATCHES_IN_FLIGHT)
        self._in_flight.append((self._pool.submit(self._write, request, blob), not self._in_flight, landing))

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self._in_flight:
            self._collect_oldest()
        if self._pool is not None:
            self._pool.shutdown()
        if self._failure is not None and exc_info[0] is None:
            raise self._failure


class _Sent:
    """A batch sent from the calling thread: its outcome, read as a Future's."""

    def __init__(self, write: Callable[[protocol.WriteFiles, bytes], tuple[protocol.Written, float, int]],
                 request: protocol.WriteFiles, blob: bytes) -> None:
        self._outcome: tuple[protocol.Written, float, int] | None = None
        self._failure: BaseException | None = None
        try:
            self._outcome = write(request, blob)
        except Exception as exc:  # raised by result(), as a Future would
            self._failure = exc

    def done(self) -> bool:
        return True

    def result(self) -> tuple[protocol.Written, float, int]:
        if self._failure is not None:
            raise self._failure
        assert self._outcome is not None
        return self._outcome


# -- a new agent's work dir ------------------------------------------------------------------


def seed_work_dir(handle: HostHandle, name: str, source: str, path: str, branch: str = "",
                  make_branch: bool = False, carry: bool = True, progress: Progress | None = None) -> str:
    """Make agent ``name``'s new work dir on the host from ``source``: a git repository
    arrives with its history (a bundle, cloned) on ``branch`` (made at the source's HEAD
    when ``make_branch``; by default the branch checked out there), then, with ``carry``,
    the files as they are here (uncommitted changes included; .gitignore honoured). Returns
    the work dir's path; on failure nothing is left on the host."""
    bundle = files.git_bundle(source)
    if not bundle:
        return fill_work_dir(handle, name, source, path, b"", "", include_ignored=False, progress=progress)
    return fill_work_dir(handle, name, source, path, bundle, branch or files.current_branch(source),
                         include_ignored=False, make_branch=make_branch, carry=carry, progress=progress)


def fill_work_dir(handle: HostHandle, name: str, source: str, path: str, bundle: bytes, branch: str,
                  include_ignored: bool, make_branch: bool = False, carry: bool = True,
                  progress: Progress | None = None) -> str:
    if make_branch:
        made = handle.prepare_work_dir(name, path, bundle, new_branch=branch)
    else:
        made = handle.prepare_work_dir(name, path, bundle, branch=branch)
    if not carry:
        return made
    try:
        plan = push(handle, "", source, delete=False, dry_run=False, include_ignored=include_ignored, force=True,
                    work_dir=made, progress=progress)
        refuse_partial(plan, f"{name}'s new work dir on {handle.host}")
    except BaseException:
        handle.prepare_work_dir(name, made, remove=True)
        raise
    return made


def copy_work_dir(source: HostHandle, name: str, target: HostHandle, new_name: str, path: str,
                  scratch: str, progress: Progress | None = None) -> tuple[protocol.AgentSpec, str]:
    """Copy agent ``name``'s work dir into a new work dir for ``new_name`` on ``target``:
    its git repository (every branch, the same one checked out) and every file, ignored
    ones included, through ``scratch`` (an empty local directory). Returns the source
    agent's spec and the new work dir's path. Each stage is shown on ``progress``."""
    spec = source.agent_spec(name)
    if progress is not None:
        progress.update(what=f"copying {name}'s work dir from {source.host}")
    refuse_partial(pull(source, name, scratch, delete=False, dry_run=False, include_ignored=True, force=True,
                        progress=progress), f"the copy of {name}'s work dir")
    bundle = source.git_bundle(name)
    if progress is not None:
        progress.update(what=f"copying {name}'s work dir to {target.host}", note="")
    made = fill_work_dir(target, new_name, scratch, path, bundle, spec.branch if bundle else "",
                          include_ignored=True, progress=progress)
    return spec, made


def refuse_partial(plan: Plan, what: str) -> None:
    """A new work dir is whole or not made: a copy missing files is no copy."""
    missing = plan.refused + plan.skipped
    if missing:
        shown = "; ".join(f"{path}: {why}" for path, why in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise PartialCopy(f"{what} would miss {len(missing)} entr{'y' if len(missing) == 1 else 'ies'}: "
                          f"{shown}{more}")


def same_tree(first: HostHandle, first_name: str, second: HostHandle, second_name: str) -> bool:
    """True if both agents' work dirs list the same files, links and directories with the
    same sizes, modes and modification times (everything a copy sets), .git aside."""
    _, one = first.get_manifest(first_name, True)
    _, other = second.get_manifest(second_name, True)
    return sorted(_decode_manifest(first.host, one)) == sorted(_decode_manifest(second.host, other))


# -- pull -----------------------------------------------------------------------------------


def _batches(entries: list[Entry]) -> Iterator[list[Entry]]:
    """Batches of about BATCH_BYTES, the first of FIRST_BATCH_BYTES (it measures the link)."""
    batch: list[Entry] = []
    size = 0
    limit = FIRST_BATCH_BYTES
    for entry in entries:
        if batch and size + entry[3] > limit:
            limit = BATCH_BYTES
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry[3]
    if batch:
        yield batch


def pull(handle: HostHandle, name: str, local_root: str, *, delete: bool, dry_run: bool,
         include_ignored: bool, force: bool, local_walk: LocalWalk | None = None,
         progress: Progress | None = None) -> Plan:
    with reuse(local_walk, local_root, include_ignored, name, (False, delete)) as walk:
        _, plan = _plan(handle, name, include_ignored, False, delete, walk)
        walk.finish(None)  # a pull leaves the host's manifest as it was
    if plan.delete or plan.replace:  # (the guard reads this machine's agents: only when it decides something)
        plan.keep(guarded.guard_for(local_root).why_not_delete)
    if not force and not plan.empty:  # nothing written or deleted: no uncommitted change at risk
        _refuse_if_uncommitted(plan, files.uncommitted(local_root), local_root)
    if dry_run or plan.empty:
        return plan
    land_plan(handle, name, local_root, plan, meter=TransferMeter(progress, handle, plan, sending=False))
    return plan


def land_plan(handle: HostHandle, name: str, local_root: str, plan: Plan,
              expect: dict[str, Entry] | None = None, exact: bool = False,
              meter: TransferMeter | None = None) -> None:
    """Carry out ``plan`` from the agent's work dir into ``local_root``; what could not be
    carried out is added to ``plan.skipped``. ``expect``: what the local paths must still
    be for a write or delete of them to land; ``exact``: a file lands only in the version
    its plan entry names (see send_plan)."""
    try:
        _land_plan(handle, name, local_root, plan, expect or {}, exact, meter)
    except RequestFailed as exc:  # a path from the host's manifest that must not be written
        raise ProtocolViolation(handle.host, exc.message) from exc


def fetch_branches(handle: HostHandle, name: str, local_root: str, origin: dict[str, str] | None = None,
                   force: bool = False) -> list[str]:
    """Bring the branches of agent ``name``'s repository into the one at ``local_root``: its
    own branch (``branch`` in ``origin``, its work_dir_origin) as the local branch
    ``mngr/NAME``, fast-forward only unless ``force``; every other branch BRANCH as the
    remote-tracking ref ``mngr-NAME/BRANCH`` (``refs/remotes/mngr-NAME/*``: a ref
    ``mngr/NAME/BRANCH`` could not sit beside the branch ``mngr/NAME``, git keeps refs as
    paths). Nothing else of the local branches, HEAD or files changes. Returns the short
    names brought ([] when either side is not a git repository). A worktree agent's
    branches are its repository's: pulled into that repository, nothing is fetched."""
    from . import worktrees

    origin = origin or {}
    own = origin.get("branch", "")
    if not files.is_repo_top(local_root):
        return []
    if origin.get("kind") == "worktree" and _same_repository(local_root, origin.get("repo", "")):
        return [own] if own and worktrees.branch_exists(local_root, own) else []
    bundle = handle.git_bundle(name)
    if not bundle:
        return []
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="mngr-bundle-", suffix=".bundle") as bundle_file:
        bundle_file.write(bundle)
        bundle_file.flush()
        tips = _bundle_heads(local_root, bundle_file.name)
        prefix = f"refs/remotes/{OTHER_BRANCHES_PREFIX}{name}/"
        if origin.get("kind") == "worktree":
            others: list[str] = []  # the user's repository's branches, not the agent's work
        else:
            others = [f"+refs/heads/*:{prefix}*"] + ([f"^refs/heads/{own}"] if own in tips else [])
        wanted = [f"refs/heads/{own}"] if own in tips else []
        if others or wanted:
            _fetch(local_root, bundle_file.name, name, *others, *wanted)
    brought = []
    if own in tips:
        brought.append(_update_own_branch(local_root, name, own, tips[own], force))
    listed = worktrees.git(local_root, "for-each-ref", "--format=%(refname:short)", prefix, check=False)
    return brought + listed.split()


OTHER_BRANCHES_PREFIX = "mngr-"  # refs/remotes/mngr-NAME/BRANCH: see fetch_branches


def _same_repository(first: str, second: str) -> bool:
    from . import worktrees

    if not second or not os.path.isdir(second):
        return False
    common = [worktrees.git(top, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False).strip()
              for top in (first, second)]
    return bool(common[0]) and os.path.realpath(common[0]) == os.path.realpath(common[1])


def _bundle_heads(local_root: str, bundle: str) -> dict[str, str]:
    """``{branch: commit}`` of a bundle's refs/heads."""
    from . import worktrees

    heads = {}
    for line in worktrees.git(local_root, "bundle", "list-heads", bundle).splitlines():
        commit, _, ref = line.partition(" ")
        if ref.startswith("refs/heads/"):
            heads[ref[len("refs/heads/"):]] = commit
    return heads


def _fetch(local_root: str, bundle: str, name: str, *refspecs: str) -> None:
    import subprocess  # loaded only here: a pull into a plain directory runs no git

    fetched = subprocess.run(["git", "-C", local_root, "fetch", "--quiet", "--no-tags", bundle, *refspecs],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if fetched.returncode != 0:
        lines = fetched.stderr.strip().splitlines()
        raise MngrError(f"fetching {name}'s branches failed: {lines[-1] if lines else 'git fetch failed'}")


def _update_own_branch(local_root: str, name: str, own: str, commit: str, force: bool) -> str:
    """Set the local branch mngr/NAME to the agent's ``commit`` (its objects fetched):
    fast-forward only unless ``force``, and never a branch checked out here (its files
    would no longer match it). Returns the branch's name."""
    from . import worktrees

    branch = f"mngr/{name}"
    ref = f"refs/heads/{branch}"
    local = worktrees.git(local_root, "rev-parse", "--verify", "--quiet", ref, check=False).strip()
    if local == commit:
        return branch
    where = _checked_out_at(local_root, ref)
    if where:
        raise MngrError(f"branch {branch} is checked out in {where}: not moved to {name}'s {own} at {commit[:12]} "
                        f"(check out another branch there first)")
    if local and not force and not _git_ok(local_root, "merge-base", "--is-ancestor", local, commit):
        raise MngrError(f"branch {branch} has diverged: it is at {local[:12]} here, {name}'s {own} at "
                        f"{commit[:12]} (merge them yourself, or --force takes {name}'s)")
    worktrees.git(local_root, "update-ref", "-m", f"mngr pull {name}", ref, commit, local or "")
    return branch


def _checked_out_at(local_root: str, ref: str) -> str:
    """The work tree of ``local_root``'s repository where ``ref`` is checked out ("": none)."""
    from . import worktrees

    tree = ""
    for line in worktrees.git(local_root, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            tree = line[len("worktree "):]
        elif line == f"branch {ref}":
            return tree
    return ""


def _git_ok(local_root: str, *args: str) -> bool:
    import subprocess

    return subprocess.run(["git", "-C", local_root, *args], capture_output=True,
                          stdin=subprocess.DEVNULL).returncode == 0


def _land_plan(handle: HostHandle, name: str, local_root: str, plan: Plan, expect: dict[str, Entry],
               exact: bool, meter: TransferMeter | None) -> None:
    guard = guarded.guard_for(local_root)
    failed: set[str] = set()

    def landed(file_bytes: int, count: int) -> None:
        if meter is not None:
            meter.landed(file_bytes, count)

    def attempt(path: str, action: Callable[..., None], *arguments: Any) -> None:
        files.check_path(path)  # RequestFailed: the host sent a path never to write (see land_plan)
        reason = guard.why_not_delete(path) if action is files.delete else guard.why_not_write(path)
        try:
            if reason:
                raise RequestFailed("unsafe_path", reason)
            if path in expect and action is not files.make_directory:
                action(local_root, path, *arguments, expected=expect[path])
            else:
                action(local_root, path, *arguments)
        except files.Conflict:
            failed.add(path)
            plan.skipped.append([path, files.CHANGED_MEANWHILE])
        except OSError as exc:
            failed.add(path)
            plan.skipped.append([path, _why_skipped(exc)])
        except RequestFailed as exc:  # a symlink or a file in the way, here
            failed.add(path)
            plan.skipped.append([path, exc.message])

    for path in sorted(plan.gone_below + plan.replace, key=lambda item: item.count("/"), reverse=True):
        attempt(path, files.delete)
    for entry in plan.dirs:
        attempt(entry[0], files.make_directory, entry[2])
    for entry in plan.send:
        if entry[1] == "l" and entry[0] not in failed:
            attempt(entry[0], files.write_link, entry[5])
            landed(0, 1)
    # A delta lands whatever version the host has now: not where a version was asked for (pair).
    if plan.send:
        from .sync_delta import pull_delta, worth_a_delta
    by_delta = {entry[0] for entry in plan.send if entry[1] == "f" and worth_a_delta(entry[3]) and not exact
                and entry[0] not in expect and entry[0] not in failed
                and pull_delta(handle, name, local_root, entry[0], entry[3], guard)}
    landed(sum(entry[3] for entry in plan.send if entry[0] in by_delta), len(by_delta))
    small = [entry for entry in plan.send if entry[1] == "f" and entry[3] <= PART_BYTES and entry[0] not in by_delta]
    planned = {entry[0]: entry for entry in small} if exact else {}
    sizes = {entry[0]: entry[3] for entry in small}
    for entry in plan.send:
        if entry[1] == "f" and entry[3] > PART_BYTES and entry[0] not in failed | by_delta:
            missed = pull_in_parts(handle, name, local_root, entry[0], guard, expect.get(entry[0]),
                                   entry if exact else None)
            if missed:
                plan.skipped.append(missed)
            landed(entry[3], 1)
    batches = [sorted(entry[0] for entry in batch if entry[0] not in failed) for batch in _batches(small)]
    for paths, (reply, data) in zip(batches, _fetched(handle, name, batches), strict=True):
        wanted = set(paths)
        plan.skipped += _skipped_from_wire(handle.host, reply.skipped)
        with files.OpenDirs(local_root) as open_dirs:
            for item in reply.files:
                meant = planned.get(files.path_from_wire(item[0])) if planned and isinstance(item, list) and item \
                    else None
                if meant is not None and [item[4], item[6], item[5]] != list(meant[2:5]):
                    plan.skipped.append([meant[0], files.CHANGED_MEANWHILE])
                    continue
                missed = land_pulled(handle.host, local_root, item, data, wanted, guard, expect, open_dirs)
                if missed:
                    plan.skipped.append(missed)
        landed(sum(sizes[path] for path in paths), len(paths))
    for path in sorted(plan.delete, key=lambda item: item.count("/"), reverse=True):
        attempt(path, files.delete)
    plan.skipped += files.finish_directories(local_root, directories_to_finish(plan))


def _fetched(handle: HostHandle, name: str,
             batches: list[list[str]]) -> Iterator[tuple[protocol.FileData, bytes]]:
    """Each batch's files, in order, the next batch already asked for while one is written;
    compressed by the host only where the link is slow (link_rate.py)."""
    import threading

    rate = LinkRate()

    results: list[tuple[protocol.FileData, bytes] | BaseException | None] = [None] * len(batches)
    ready = [threading.Event() for _ in batches]
    landed = [threading.Semaphore(0) for _ in batches]

    def fetch() -> None:
        for index, paths in enumerate(batches):
            if index >= 2:
                landed[index - 2].acquire()  # at most two batches held in memory
            try:
                started = time.perf_counter()
                result = handle.read_files(name, [files.path_to_wire(path) for path in paths],
                                           compress=rate.compress if index else False)
                rate.observe(len(result[1]), time.perf_counter() - started - result[0].seconds)
                results[index] = result
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


def _pulled_content(host: str, item: list[Any], data: bytes, wanted: set[str], file_offset: int = 0,
                    part_bytes: int | None = None) -> tuple[str, bytes | memoryview, int, int, int]:
    """(path, bytes, mode, mtime_ns, size of the whole file) of one file of a FileData reply,
    trusting nothing in it: the bytes from ``file_offset``, ``part_bytes`` of them at most."""
    # Exact type tests (a decoded reply holds plain ints and bools): one entry per file pulled.
    if type(item) is not list or len(item) != 7:
        raise ProtocolViolation(host, f"malformed file entry from the host: {item!r}"[:200])
    wire_path, offset, length, compressed, mode, mtime_ns, size = item
    if not (type(wire_path) is str and type(offset) is int and type(length) is int and type(compressed) is bool
            and type(mode) is int and type(mtime_ns) is int and type(size) is int):
        raise ProtocolViolation(host, f"malformed file entry from the host: {item!r}"[:200])
    try:
        path = files.path_from_wire(wire_path) if wire_path[:1] == "\0" else wire_path
        files.check_path(path)
    except RequestFailed as exc:
        raise ProtocolViolation(host, f"the host sent an unsafe path: {exc.message}") from exc
    if path not in wanted:
        raise ProtocolViolation(host, f"the host sent a file that was not asked for: {path!r}"[:200])
    if offset < 0 or length < 0 or offset + length > len(data):
        raise ProtocolViolation(host, f"the host's data for {path!r} lies outside its reply"[:200])
    most = max(0, size - file_offset) if part_bytes is None else max(0, min(part_bytes, size - file_offset))
    content: bytes | memoryview = memoryview(data)[offset : offset + length]  # a view: no copy of the data
    if compressed:
        inflater = zlib.decompressobj()
        try:
            content = inflater.decompress(content, most + 1)
        except zlib.error as exc:
            raise ProtocolViolation(host, f"the host sent bad data for {path!r}: {exc}"[:200]) from exc
    if len(content) != most:
        raise ProtocolViolation(host, f"the host's data for {path!r} is not {most} bytes"[:200])
    return path, content, mode, mtime_ns, size


def land_pulled(host: str, local_root: str, item: list[Any], data: bytes, wanted: set[str],
                guard: guarded.Guard = guarded.NO_GUARD, expect: dict[str, Entry] | None = None,
                open_dirs: files.OpenDirs | None = None) -> list[str] | None:
    """Write one file of a FileData reply, trusting nothing in it; [path, why] if it could
    not be written here (the host's data was fine)."""
    path, content, mode, mtime_ns, _ = _pulled_content(host, item, data, wanted)
    return _land_part(local_root, path, content, 0, True, mode, mtime_ns, guard, (expect or {}).get(path), open_dirs)


def _land_part(local_root: str, path: str, content: bytes | memoryview, offset: int, final: bool, mode: int, mtime_ns: int,
               guard: guarded.Guard, expected: Entry | None = None,
               open_dirs: files.OpenDirs | None = None) -> list[str] | None:
    reason = guard.why_not_write(path)
    if reason:
        return [path, reason]
    try:
        files.write_part(local_root, path, content, offset, final, mode, mtime_ns, expected, open_dirs)
    except files.Conflict:
        return [path, files.CHANGED_MEANWHILE]
    except OSError as exc:
        return [path, _why_skipped(exc)]
    except RequestFailed as exc:  # a directory or a symlink in the way, here
        return [path, exc.message]
    return None


PARTS_IN_FLIGHT = 3  # the host reads the next parts while this side writes one


def pull_in_parts(handle: HostHandle, name: str, local_root: str, path: str,
                  guard: guarded.Guard = guarded.NO_GUARD, expected: Entry | None = None,
                  planned: Entry | None = None) -> list[str] | None:
    """Bring one large file in parts of PART_BYTES, appended to its part file here and
    renamed over ``path`` once whole, with the mode and mtime of the bytes received: every
    part must come from the same version of the file (files.version_of), else it starts
    again, a few times. Up to PARTS_IN_FLIGHT parts are asked for at once. [path, why] if
    it did not land."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = {path}
    wire_path = files.path_to_wire(path)
    # The first part goes alone and as it is: its round trip measures the link, and the
    # others are compressed only where that pays (link_rate.py).
    rate = LinkRate()

    def read_part(offset: int, measure: bool) -> tuple[protocol.FileData, bytes]:
        started = time.perf_counter()
        reply, data = handle.read_files(name, [wire_path], offset=offset, length=PART_BYTES,
                                        compress=not measure and rate.compress)
        if measure:
            rate.observe(len(data), time.perf_counter() - started - reply.seconds)
        return reply, data

    with ThreadPoolExecutor(PARTS_IN_FLIGHT) as pool:
        for attempt in range(files.READ_ATTEMPTS):
            asked: collections.deque[tuple[int, Future[tuple[protocol.FileData, bytes]]]] = collections.deque()
            next_offset, size, version = 0, None, None
            try:
                while True:
                    # The size is known from the first reply on; until then one part is asked for.
                    while len(asked) < PARTS_IN_FLIGHT and (not asked if size is None else next_offset < size):
                        measure = not attempt and not next_offset
                        asked.append((next_offset, pool.submit(read_part, next_offset, measure)))
                        next_offset += PART_BYTES
                    offset, future = asked.popleft()
                    reply, data = future.result()
                    if reply.skipped:
                        files.discard_part(local_root, path)
                        return _skipped_from_wire(handle.host, reply.skipped)[0]
                    if len(reply.files) != 1 or len(reply.versions) != 1:
                        raise ProtocolViolation(handle.host, f"the host sent no part of {path!r} nor said why"[:200])
                    if version is not None and reply.versions[0] != version:
                        break  # changed between two parts: start again
                    version = reply.versions[0]
                    _, content, mode, mtime_ns, size = _pulled_content(handle.host, reply.files[0], data, wanted,
                                                                       offset, PART_BYTES)
                    if planned is not None and [mode, size, mtime_ns] != list(planned[2:5]):
                        files.discard_part(local_root, path)
                        return [path, files.CHANGED_MEANWHILE]  # not the version the plan was made from
                    final = offset + len(content) >= size
                    missed = _land_part(local_root, path, content, offset, final, mode, mtime_ns, guard,
                                        expected if final else None)
                    if missed or final:
                        return missed
            finally:
                for _, future in asked:
                    future.cancel()
                for _, future in asked:  # the replies of parts no longer wanted are not waited for by anyone else
                    if not future.cancelled():
                        with contextlib.suppress(BaseException):
                            future.result()
    files.discard_part(local_root, path)
    return [path, "kept changing while it was read"]
