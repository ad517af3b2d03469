"""The local side of a push or pull, worked out by a child process while mngr does the rest.

A push or pull needs both ends' manifests. Listing a tree lstats every entry (about 40 ms
for 10,000 files); so is most of what mngr does before the host's manifest arrives: loading
its modules, config and plugins, finding the agent. In a thread the two would take turns
on the interpreter lock; a forked child lists the tree on another CPU instead. When the
host's manifest arrives, the parent hands it to the child, which compares the two and
answers with the plan (make_plan): for the usual push of a few changes, a few entries
cross the pipe back instead of ten thousand.

The child also keeps the host's manifest from the last push or pull of the agent, with
the tag the host daemon gave it (remote_helper/manifest_cache.py), in the state dir. The
parent asks the host with that tag; "unchanged" means the child's copy is the host's
manifest, and the child has the plan ready before it is asked. After a push, the host's
new tag and what was written bring the copy up to date (``finish``), so the next push
finds it current too. A copy that does not match is never used: tags are the host's.

``start_early`` starts the child for ``mngr push``/``mngr pull`` from the raw arguments,
before click and the rest of mngr are even imported; the command then ``claim``s it. That
start is a guess: a child whose tree or options turn out not to be what the command asks
for is killed and another is started.

The child is forked before the parent started any thread (so no lock can be held in it)
and leaves with ``os._exit``, running none of the parent's exit handlers. Where fork is
missing, the same work runs on a thread. Keep this module's imports to the stdlib and
plan.py: it is loaded before the rest of mngr on purpose.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
import sys

from mngr.remote_helper import files

from .plan import (
    Entry,
    Plan,
    decode_manifest,
    make_plan,
    plan_from_wire,
    plan_to_wire,
    with_changes,
)

# As typing.TYPE_CHECKING: loading typing, threading and signal would cost this module's
# early start about 15 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterator, Sequence
    from typing import Any

_LENGTH = struct.Struct("<Q")
_SIGKILL = 9  # signal.SIGKILL on every system with fork
_PUSH_PULL_FLAGS = frozenset(["--delete", "--dry-run", "--include-gitignored", "--force"])
_early: LocalWalk | None = None


class StaleKept(Exception):
    """The host said "unchanged", but the manifest kept here is gone or has another tag
    (another mngr replaced it meanwhile): ask the host for the whole manifest."""


class LocalWalk:
    """Starts listing ``root`` at once; ``entries()`` or ``plan()`` wait for the result.

    ``agent``: the agent whose host manifest to keep between runs ("": none); ``intent``:
    (local_is_source, delete) of the plan that will be asked for, to make it in advance.
    """

    def __init__(self, root: str, include_ignored: bool, agent: str = "",
                 intent: tuple[bool, bool] | None = None) -> None:
        _reap_finished()
        self.root = root
        self.include_ignored = include_ignored
        self.agent = agent
        self.cache_path = _cache_path(agent, include_ignored) if agent else ""
        self._pid = 0
        self._to_child = self._from_child = -1
        self._asked = False
        self._finished = False
        self._thread: threading.Thread | None = None
        self._listed: tuple[Any, ...] | None = None  # ("ok", entries) or a failure, see _walk
        self._local_plan: tuple[Any, ...] | None = None  # what the child would keep, when done here
        self._lock_fd: int | None = None  # the kept manifest's lock, while this process rewrites it
        threads = sys.modules.get("threading")  # not loaded yet: no thread runs
        if hasattr(os, "fork") and (threads is None or threads.active_count() == 1):
            self._fork(intent)
        else:
            import threading

            self._thread = threading.Thread(target=self._walk_here, daemon=True)
            self._thread.start()

    # -- the parent's side ----------------------------------------------------------------

    def known_tag(self) -> str:
        """The tag of the host manifest kept from last time ("" if none)."""
        return _read_tag(self.cache_path) if self.cache_path else ""

    def entries(self) -> list[Entry]:
        """The local tree's entries (in no particular order); raises what the walk raised."""
        if self._pid and not self._asked:
            self._listed = self._ask(("entries",))
            self._end_child(wait=True)
        return _unwrap(self._here(), self.root)

    def plan(self, blob: bytes, tag: str, unchanged: bool, local_is_source: bool, delete: bool,
             changes_since: tuple[str, list[str]] | None = None) -> Plan:
        """The plan from the host's manifest: ``blob`` (packed, tagged ``tag``), or, when
        ``unchanged``, the one kept under ``tag``, or, with ``changes_since`` (a tag and
        the paths gone), the one kept under that tag with the changes in ``blob`` made to
        it (plan.with_changes). The local tree goes to the host (``local_is_source``) or
        the other way. ValueError if the blob is not a manifest."""
        request = ("plan", blob, tag, unchanged, local_is_source, delete, changes_since)
        if self._pid and not self._asked:
            answer = self._ask(request)
            if answer is not None:
                if answer[0] == "stale":
                    raise StaleKept(tag)
                self._asked = True
                if answer[0] == "plan":
                    return plan_from_wire(answer[1])  # the child stays for finish()
                self._end_child(wait=True)
                if answer[0] == "bad_manifest":
                    raise ValueError(answer[1])
                _unwrap(answer, self.root)  # the listing failed: raise what it raised
            else:
                self._asked = True
                self._end_child(wait=True)
        local = _unwrap(self._here(), self.root)
        kept = _load_cache(self.cache_path)
        remote, wire = _plan_for(local, request[1:], kept)
        if self.cache_path:
            self._lock_fd = _lock(self.cache_path, exclusive=True)  # until finish(): see _LOCK_WAIT
        if self.cache_path and tag and not unchanged:
            _save_cache(self.cache_path, tag, remote)
        self._local_plan = (remote, wire)
        self._asked = True
        return plan_from_wire(wire)

    def finish(self, new_tag: str | None) -> None:
        """After the plan was carried out: None, the host's manifest did not change (a pull,
        nothing to push); a tag, the host took in exactly the plan's writes and has this tag
        now; "", the host changed in a way not known here: keep nothing."""
        self._finished = True
        if self._pid and self._asked:
            # The child brings its copy up to date and leaves; nobody waits for it.
            if new_tag is not None:
                self._ask_only(("finish", new_tag))
            self._end_child(wait=False)
            return
        if self._local_plan is not None and new_tag is not None and self.cache_path:
            remote, wire = self._local_plan
            _finish_cache(self.cache_path, remote, wire, new_tag)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Stop the child: one nobody asked is killed; one that made a plan nobody carried
        out to the end forgets the kept manifest (the host may have changed half-way)."""
        if self._pid and not self._asked:
            os.kill(self._pid, _SIGKILL)
            self._end_child(wait=True)
        elif self._asked and not self._finished:
            self.finish("")

    def __enter__(self) -> LocalWalk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _here(self) -> tuple[Any, ...]:
        if self._thread is not None:
            self._thread.join()
        if self._listed is None:  # the child died: list here
            self._listed = _walk(self.root, self.include_ignored)
        return self._listed

    def _walk_here(self) -> None:
        self._listed = _walk(self.root, self.include_ignored)

    def _ask(self, request: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The child's answer; None if it died (the work is then done here)."""
        try:
            _send(self._to_child, request)
            return _receive(self._from_child)
        except (OSError, EOFError, ValueError, TypeError):
            return None

    def _ask_only(self, request: tuple[Any, ...]) -> None:
        # A child that died leaves the kept manifest as it was, tagged with an older tag.
        with contextlib.suppress(OSError):
            _send(self._to_child, request)

    def _end_child(self, wait: bool) -> None:
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        if wait:
            os.waitpid(self._pid, 0)
        else:
            _finishing.append(self._pid)
        self._pid, self._to_child, self._from_child = 0, -1, -1

    # -- the child ------------------------------------------------------------------------

    def _fork(self, intent: tuple[bool, bool] | None) -> None:
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(requests_write)
                os.close(answers_read)
                # It may outlive the parent by a moment (finishing the kept manifest): it must
                # not hold the parent's output open, or `$(mngr push)` would wait for it.
                quiet = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(quiet, fd)
                _serve(self.root, self.include_ignored, self.cache_path, intent, requests_read, answers_write)
            except BaseException:  # the parent reads a short answer as a failure
                code = 1
            os._exit(code)
        os.close(requests_read)
        os.close(answers_write)
        self._pid, self._to_child, self._from_child = pid, requests_write, answers_read


_finishing: list[int] = []  # children updating the kept manifest after their parent moved on


def _reap_finished() -> None:
    for pid in list(_finishing):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _finishing.remove(pid)


def _serve(root: str, include_ignored: bool, cache_path: str, intent: tuple[bool, bool] | None,
           requests: int, answers: int) -> None:
    listed = _walk(root, include_ignored)
    kept = _load_cache(cache_path) if listed[0] == "ok" else None
    ready = None  # (intent, remote, plan, tag): the plan against the kept manifest, made in advance
    if kept is not None and intent is not None:
        ready = (intent, *_plan_for(listed[1], (b"", kept[0], True, *intent, None), kept), kept[0])
    while True:
        request = _receive(requests)
        if request[0] != "plan" or listed[0] != "ok":
            _send(answers, listed)
            return
        tag, unchanged, local_is_source, delete = request[2:6]
        try:
            if ready is not None and unchanged and ready[3] == tag and ready[0] == (local_is_source, delete):
                _, remote, wire, _ = ready
            else:
                remote, wire = _plan_for(listed[1], request[1:], kept)
        except StaleKept:
            _send(answers, ("stale",))
            continue  # the parent asks again, with the host's manifest this time
        except ValueError as exc:
            _send(answers, ("bad_manifest", str(exc)))
            return
        break
    _send(answers, ("plan", wire))
    if cache_path:
        _lock(cache_path, exclusive=True)  # held until this process ends: see _LOCK_WAIT
    if cache_path and tag and not unchanged:
        _save_cache(cache_path, tag, remote)
    try:
        request = _receive(requests)
    except EOFError:
        return
    if request[0] == "finish":
        _finish_cache(cache_path, remote, wire, request[1])


def _plan_for(local: list[Entry], request: tuple[Any, ...], kept: tuple[str, list[Entry]] | None
              ) -> tuple[list[Entry], tuple[Any, ...]]:
    """(the host's entries, the plan in wire form) for a plan request's fields."""
    blob, tag, unchanged, local_is_source, delete, changes_since = request
    if unchanged:
        if kept is None or kept[0] != tag:
            raise StaleKept(tag)
        remote = kept[1]
    elif changes_since is not None:
        if kept is None or kept[0] != changes_since[0]:
            raise StaleKept(tag)
        remote = with_changes(kept[1], decode_manifest(blob), changes_since[1])
    else:
        remote = decode_manifest(blob)
    plan = make_plan(local, remote, delete) if local_is_source else make_plan(remote, local, delete)
    return remote, plan_to_wire(plan)


# -- the host's manifest, kept between runs -----------------------------------------------------


def _cache_path(agent: str, include_ignored: bool) -> str:
    from .paths import state_dir

    return os.path.join(state_dir(), "manifests", agent + (".all" if include_ignored else ""))


# The kept manifest is rewritten by the child of a push after its parent has returned. That
# child holds an exclusive flock on PATH.lock from the moment it sent its plan until it has
# kept the new copy (the lock goes with the process); a reader takes it shared, so a push
# right after another reads the new copy, not the one being replaced. A reader waits at most
# _LOCK_WAIT seconds (a stuck writer: read what is there; a stale tag costs a full manifest).
_LOCK_WAIT = 3.0


def _lock(path: str, exclusive: bool) -> int | None:
    """An fd holding the kept manifest's lock (close it to let go); None if not had in time."""
    import fcntl
    import time

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.005)


@contextlib.contextmanager
def _shared(path: str) -> Iterator[None]:
    fd = _lock(path, exclusive=False)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _read_tag(path: str) -> str:
    try:
        with _shared(path), open(path, "rb") as handle:
            return handle.readline(200).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _load_cache(path: str) -> tuple[str, list[Entry]] | None:
    """(tag, entries) kept in ``path`` (a tag line, then the entries marshalled)."""
    if not path:
        return None
    try:
        with _shared(path), open(path, "rb") as handle:
            tag = handle.readline(200).decode("ascii", "replace").strip()
            entries = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return (tag, entries) if tag and isinstance(entries, list) else None


def _save_cache(path: str, tag: str, entries: list[Entry]) -> None:
    directory = os.path.dirname(path)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(tag.encode("ascii", "replace") + b"\n" + marshal.dumps(entries))
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _finish_cache(path: str, remote: list[Entry], wire: tuple[Any, ...], new_tag: str) -> None:
    """Keep ``remote`` with the writes of plan ``wire`` applied, tagged ``new_tag`` (the
    host's tag after exactly those writes); with no tag, keep nothing."""
    if not new_tag:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    plan = plan_from_wire(wire)
    gone = plan.delete + plan.replace
    entries = {entry[0]: entry for entry in remote}
    if gone:
        prefixes = tuple(path + "/" for path in gone)
        removed = set(gone)
        entries = {key: entry for key, entry in entries.items() if key not in removed and not key.startswith(prefixes)}
    for entry in plan.dirs + plan.dir_times + plan.send:
        entries[entry[0]] = entry
    _save_cache(path, new_tag, list(entries.values()))


def _walk(root: str, include_ignored: bool) -> tuple[Any, ...]:
    """("ok", entries), ("os", errno, strerror, filename) or ("error", text): marshal-able."""
    try:
        from mngr.remote_helper import guarded

        return ("ok", list(files.manifest_entries(root, include_ignored, guard=guarded.guard_for(root)).values()))
    except OSError as exc:
        return ("os", exc.errno, exc.strerror, exc.filename)
    except Exception as exc:  # reported by the parent as one line
        return ("error", f"{type(exc).__name__}: {exc}")


def _unwrap(listed: tuple[Any, ...], root: str) -> list[Entry]:
    if listed[0] == "ok":
        entries: list[Entry] = listed[1]
        return entries
    if listed[0] == "os":
        raise OSError(*listed[1:])
    raise RuntimeError(f"listing {root} failed: {listed[1]}")


def _send(fd: int, value: tuple[Any, ...]) -> None:
    data = marshal.dumps(value)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int) -> tuple[Any, ...]:
    (length,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size))
    value: tuple[Any, ...] = marshal.loads(_read_exact(fd, length))
    return value


def _read_exact(fd: int, count: int) -> bytes:
    chunks = []
    while count:
        chunk = os.read(fd, min(count, 1 << 20))
        if not chunk:
            raise EOFError("the pipe closed early")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


# -- starting before the command is parsed ----------------------------------------------------


def start_early(argv: Sequence[str]) -> None:
    """Start the child for ``push NAME [PATH] [flags]`` or ``pull ...``; anything else, or
    anything unusual in them (help, an unknown option), starts nothing."""
    global _early
    if len(argv) < 2 or argv[0] not in ("push", "pull"):
        return
    from . import verbosity
    positional: list[str] = []
    include_ignored = False
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument == "--format":
            next(arguments, None)
        elif argument.startswith("--format="):
            continue
        elif argument == "--include-gitignored":
            include_ignored = True
        elif argument in _PUSH_PULL_FLAGS or argument in verbosity.OPTION_NAMES:  # -v: nothing to the walk
            continue
        elif argument.startswith("-"):
            return
        else:
            positional.append(argument)
    if not 1 <= len(positional) <= 2:
        return
    root = os.path.abspath(positional[1] if len(positional) == 2 else os.getcwd())
    if os.path.isdir(root):
        intent = (argv[0] == "push", "--delete" in argv)
        try:
            _early = LocalWalk(root, include_ignored, agent=positional[0], intent=intent)
        except OSError:
            _early = None  # no fork or pipe to be had: the command lists the tree itself


def early_known_tag(agent: str, include_ignored: bool) -> str | None:
    """The tag the early walk's command will send as the host manifest it kept (its
    ``known_tag``), if a walk for ``agent`` was started early; else None."""
    if _early is None or (_early.agent, _early.include_ignored) != (agent, include_ignored):
        return None
    return _early.known_tag()


def discard_early() -> None:
    """Stop an early child no command claimed (the command failed before it could)."""
    global _early
    if _early is not None:
        _early.close()
        _early = None


def claim(root: str, include_ignored: bool, agent: str = "", intent: tuple[bool, bool] | None = None
          ) -> LocalWalk:
    """The walk ``start_early`` started, if it is the one asked for; else a new one."""
    global _early
    early, _early = _early, None
    return reuse(early, root, include_ignored, agent, intent)


def reuse(walk: LocalWalk | None, root: str, include_ignored: bool, agent: str = "",
          intent: tuple[bool, bool] | None = None) -> LocalWalk:
    """``walk`` if it lists ``root`` as asked, for ``agent``; else a new one (``walk`` is
    stopped)."""
    if walk is not None:
        if (walk.root, walk.include_ignored, walk.agent) == (root, include_ignored, agent):
            return walk
        walk.close()
    return LocalWalk(root, include_ignored, agent, intent)
