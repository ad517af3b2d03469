"""Agent CLIs that mngr provides on this host, kept by content under ``$MNGR_HOST_DIR/clis``.

A bundle is the set of files one CLI needs (claude: its native binary; codex: its binary
and what it looks for next to it). ``clis/<key>/`` holds one whole, verified bundle, where
the key is the sha256 of the bundle's manifest: it is never written in place. An upload
lands in ``clis/.parts/<key>-<upload>/`` (pwrite at each part's offset, so parts may arrive
in any order). Each part comes with the sha256 of its bytes (inflated first if it came
zlib-compressed) and is refused unless they match; a part that matched is noted in
``clis/.parts/<key>-<upload>.checked/``. The upload's end then needs no second read of the
files: each file's noted parts must cover it exactly, in the order and with the hashes its
manifest entry lists, the bundle's entry point must run, and only then is the directory
renamed whole to ``clis/<key>``. An upload cut off
(the controller killed) leaves its part directory, which a later ensure removes once it has
not changed for STALE_PART_SECONDS; nothing partial is ever under a key.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import zlib

from . import state
from .wire import RequestFailed

CLIS = "clis"
# A read-only dir of bundles the controller's machine keeps (a container on a local engine
# has its user's mounted): one found there needs no copy.
SHARED_ENV = "MNGR_SHARED_CLIS_DIR"
PARTS = ".parts"
NOTES_SUFFIX = ".checked"  # beside an upload's dir: the parts that landed checked
STALE_PART_SECONDS = 120.0
VERSION_TIMEOUT_SECONDS = 30.0
# Room kept free beyond the bundle itself: a host filled to the last byte breaks everything else.
SPARE_BYTES = 64 * 1024 * 1024

_MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
_KEY = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD = re.compile(r"^[0-9a-f]{8,32}$")
_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


def clis_dir():
    return os.path.join(state.host_dir(), CLIS)


def machine():
    """This host's CPU architecture, spelled as ``uname -m`` on Linux spells it."""
    name = os.uname().machine
    return _MACHINE_ALIASES.get(name, name)


def manifest_key(files):
    """The key of a bundle of ``files`` ([relative path, sha256, size, mode] each)."""
    canonical = json.dumps(sorted([str(f[0]), str(f[1]), int(f[2]), int(f[3])] for f in files),
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def version_numbers(text):
    """The first dotted version number in ``text`` as a tuple of ints (() if none)."""
    found = _VERSION.search(text or "")
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def ensure(fields):
    """Where the agent's CLI is on this host, or what must be sent for it.

    ``bundles`` maps a machine to [key, total size, path dirs relative to the bundle]. Under
    mode ``auto`` a CLI of the host's own on PATH is used when its version is at least
    ``version``. The reply's ``source`` is "host", "cache" (a bundle landed earlier, or in
    the shared dir) or "" (send it under ``upload``; or, with a ``shared_dir``, have the
    controller put it in its side of that dir and ask again).
    """
    program = fields["program"]
    _check_program(program)
    here = machine()
    reply = {"machine": here, "source": "", "dirs": [], "host_version": "", "key": "", "upload": "",
             "shared_dir": ""}
    _drop_stale_parts()
    if fields["mode"] == "auto":
        own = _on_path(program, os.environ.get("PATH", os.defpath))
        if own is not None:
            reply["host_version"] = _version_of(own)
            wanted = version_numbers(fields["version"])
            if wanted and version_numbers(reply["host_version"]) >= wanted:
                reply["source"] = "host"
                return reply
    bundle = fields["bundles"].get(here)
    if bundle is None:
        raise RequestFailed("unsupported_machine", "this host is %s and the local %s install has a binary for %s only"
                            % (here, program, ", ".join(sorted(fields["bundles"])) or "no machine"))
    if not isinstance(bundle, list) or len(bundle) != 3 or not isinstance(bundle[2], list):
        raise RequestFailed("invalid", "a bundle is [key, size, dirs], not %r" % (bundle,))
    key, size, dirs = str(bundle[0]), int(bundle[1]), [str(d) for d in bundle[2]]
    _check_key(key)
    for directory in dirs:
        _check_relative(directory)
    reply["key"] = key
    shared = os.environ.get(SHARED_ENV, "")
    reply["shared_dir"] = shared if shared and os.path.isdir(shared) else ""
    for keeper in ([reply["shared_dir"]] if reply["shared_dir"] else []) + [clis_dir()]:
        root = os.path.join(keeper, key)
        if os.path.isdir(root):
            if keeper != reply["shared_dir"]:
                _mark_used(root)
            reply["source"] = "cache"
            reply["dirs"] = [os.path.normpath(os.path.join(root, d)) for d in dirs]
            return reply
    # Where it will be once sent.
    reply["dirs"] = [os.path.normpath(os.path.join(clis_dir(), key, d)) for d in dirs]
    parts = state.ensure_dir(os.path.join(clis_dir(), PARTS))
    stats = os.statvfs(parts)
    free = stats.f_bavail * stats.f_frsize
    if free < size + SPARE_BYTES:
        raise RequestFailed("no_space", "%s needs %d MB under %s and only %d MB are free"
                            % (program, (size + SPARE_BYTES) >> 20, clis_dir(), free >> 20))
    reply["upload"] = os.urandom(8).hex()
    return reply


def put_part(fields, blob):
    """Write one part of one file of an upload at its offset, once its bytes are the ones
    its sha256 names; note that part as landed."""
    part_root = _part_root(fields["key"], fields["upload"])
    relative = _check_relative(fields["path"])
    offset, length = int(fields["offset"]), int(fields["length"])
    if offset < 0 or length < 0:
        raise RequestFailed("invalid", "invalid part of %s at %d (%d bytes)" % (relative, offset, length))
    data = _inflated(blob, length, relative) if fields["compressed"] else blob
    if len(data) != length:
        raise RequestFailed("corrupt", "a part of %s at %d arrived with %d of %d bytes"
                            % (relative, offset, len(data), length))
    digest = hashlib.sha256(data).hexdigest()
    if digest != fields["sha256"]:
        raise RequestFailed("corrupt", "a part of %s at %d arrived with sha256 %s, not %s"
                            % (relative, offset, digest, fields["sha256"]))
    path = os.path.join(part_root, relative)
    state.ensure_dir(os.path.dirname(path))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        at = offset
        while view:
            written = os.pwrite(fd, view, at)
            view = view[written:]
            at += written
    finally:
        os.close(fd)
    # Noted only once written: a part cut off halfway is not counted as landed.
    notes = state.ensure_dir(part_root + NOTES_SUFFIX)
    with open(os.path.join(notes, "%s-%d" % (_note_prefix(relative), offset)), "w") as note:
        note.write("%d %s" % (length, digest))


def _inflated(blob, length, relative):
    """``blob`` inflated, refused if it holds more than ``length`` bytes (memory stays bounded)."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(blob, length + 1)
    except zlib.error as exc:
        raise RequestFailed("corrupt", "a part of %s does not inflate: %s" % (relative, exc)) from None
    if len(data) > length or inflater.unconsumed_tail or not inflater.eof:
        raise RequestFailed("corrupt", "a part of %s inflates to other than its %d bytes" % (relative, length))
    return data


def _note_prefix(relative):
    return hashlib.sha256(relative.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _landed_parts(notes):
    """What ``put_part`` noted: file prefix -> sorted [(offset, length, sha256)]."""
    landed = {}
    try:
        names = os.listdir(notes)
    except FileNotFoundError:
        return landed
    for name in names:
        prefix, _, offset = name.rpartition("-")
        try:
            with open(os.path.join(notes, name)) as note:
                length, digest = note.read().split()
            landed.setdefault(prefix, []).append((int(offset), int(length), digest))
        except (OSError, ValueError):
            continue  # unreadable: the file it belongs to is then found incomplete
    for parts in landed.values():
        parts.sort()
    return landed


def finish(fields):
    """Check an upload against its manifest, see its entry point run, and put it in place."""
    key, files, program = fields["key"], fields["files"], fields["program"]
    _check_program(program)
    part_root = _part_root(key, fields["upload"])
    try:
        if manifest_key(files) != key:
            raise RequestFailed("invalid", "the manifest of %s does not match its key %s" % (program, key))
        landed = _landed_parts(part_root + NOTES_SUFFIX)
        for entry in files:
            if len(entry) != 5 or not isinstance(entry[4], list):
                raise RequestFailed("invalid", "a file of a bundle is [path, sha256, size, mode, part sha256s]")
            relative, _, size, mode, part_digests = entry
            relative = _check_relative(relative)
            path = os.path.join(part_root, relative)
            _check_file(path, program, relative, int(size), [str(d) for d in part_digests],
                        landed.get(_note_prefix(relative), []))
            os.chmod(path, int(mode) & 0o755)
        entry = os.path.join(part_root, _check_relative(fields["entry"]))
        version = _version_of(entry, fail_as=program)
        if version_numbers(version) != version_numbers(fields["version"]):
            raise RequestFailed("unrunnable", "the copied %s reports version %r on this host, not %s"
                                % (program, version, fields["version"]))
        root = os.path.join(clis_dir(), key)
        try:
            os.rename(part_root, root)
        except OSError:
            if not os.path.isdir(root):  # another upload of the same bundle got there first: fine
                raise
        _mark_used(root)
        _fsync_dir(clis_dir())
    finally:
        shutil.rmtree(part_root, ignore_errors=True)
        shutil.rmtree(part_root + NOTES_SUFFIX, ignore_errors=True)


def _mark_used(root):
    """The bundle's dir gets the time it was last ensured as its mtime: gc spares a bundle
    ensured lately whose agent is not made yet (unused_bundles)."""
    with contextlib.suppress(OSError):
        os.utime(root)


def unused_bundles(records, grace):
    """Bundle dirs that no agent record names in its path_dirs, no process runs from, and
    nothing ensured for ``grace`` seconds (a new one lands per CLI version; old ones pile
    up). (A process: an agent whose record was given a newer bundle may still run the old.)"""
    named = set(_running_executables())
    for record in records:
        for directory in record.get("path_dirs") or ():
            named.add(os.path.normpath(str(directory)))
    unused = []
    now = time.time()
    for key in cached_keys():
        root = os.path.join(clis_dir(), key)
        if any(path == root or path.startswith(root + os.sep) for path in named):
            continue
        try:
            ensured = os.stat(root).st_mtime
        except OSError:
            continue
        if now - ensured >= grace:
            unused.append(root)
    return unused


def _running_executables():
    """The executables of this user's processes that run from a bundle (Linux's /proc; none
    where there is no /proc)."""
    own = os.path.join(clis_dir(), "")
    try:
        pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []
    running = []
    for pid in pids:
        try:
            executable = os.readlink("/proc/%s/exe" % pid)
        except OSError:  # gone, or another user's
            continue
        if executable.startswith(own):
            running.append(os.path.normpath(executable.rsplit(" (deleted)", 1)[0]))
    return running


def remove_bundle(root):
    """Take the bundle away from under its key in one rename (an ensure never finds half of
    it), then remove it."""
    aside = os.path.join(clis_dir(), PARTS, ".removed-%s" % os.urandom(8).hex())
    state.ensure_dir(os.path.dirname(aside))
    try:
        os.rename(root, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def cached_keys():
    """Keys of the bundles kept on this host."""
    try:
        return sorted(entry for entry in os.listdir(clis_dir()) if _KEY.match(entry))
    except FileNotFoundError:
        return []


def prefixed_path(dirs, path):
    """``path`` (a PATH value) with ``dirs`` first, each once."""
    dirs = [d for d in dirs or () if d]
    if not dirs:
        return path
    rest = [d for d in (path or os.defpath).split(os.pathsep) if d and d not in dirs]
    return os.pathsep.join(dirs + rest)


def _check_file(path, program, relative, size, part_digests, landed):
    """The file is whole: its checked parts (``landed``) cover it end to end, one after the
    other, with the hashes its manifest entry lists, and nothing else was written to it."""
    try:
        actual_size = os.path.getsize(path)
    except FileNotFoundError:
        raise RequestFailed("incomplete", "%s arrived without %s" % (program, relative)) from None
    if actual_size != size:
        raise RequestFailed("incomplete", "%s of %s arrived with %d of %d bytes" % (relative, program, actual_size, size))
    end = 0
    for offset, length, _ in landed:
        if offset != end:
            break
        end += length
    if end != size or [digest for _, _, digest in landed] != part_digests:
        raise RequestFailed("incomplete", "%s of %s arrived without all of its %d parts (%d of them checked)"
                            % (relative, program, len(part_digests), len(landed)))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version_of(executable, fail_as=None):
    """What ``executable --version`` prints; "" if it does not run (or, with ``fail_as``, an error)."""
    try:
        done = subprocess.run([executable, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=VERSION_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if fail_as is None:
            return ""
        raise RequestFailed("unrunnable", "the copied %s does not run on this host: %s"
                            % (fail_as, _one_line(str(exc)))) from None
    output = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not output:
        if fail_as is None:
            return ""
        raise RequestFailed("unrunnable", "the copied %s does not run on this host (exit %d): %s"
                            % (fail_as, done.returncode, _one_line(done.stderr.decode("utf-8", "replace"))))
    return output.splitlines()[0]


def _one_line(text):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _on_path(program, path):
    own = os.path.join(clis_dir(), "")
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory, program)
        if directory and not candidate.startswith(own) and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def abandoned_uploads(min_age):
    """Part dirs of uploads nothing has written to for ``min_age`` seconds (cut off)."""
    parts = os.path.join(clis_dir(), PARTS)
    try:
        entries = sorted(os.listdir(parts))
    except FileNotFoundError:
        return []
    now = time.time()
    return [os.path.join(parts, entry) for entry in entries
            if now - _newest_mtime(os.path.join(parts, entry)) >= min_age]


def _drop_stale_parts():
    for path in abandoned_uploads(STALE_PART_SECONDS):
        shutil.rmtree(path, ignore_errors=True)


def _newest_mtime(path):
    newest = 0.0
    for directory, _, names in os.walk(path):
        for name in [directory] + [os.path.join(directory, n) for n in names]:
            try:
                newest = max(newest, os.lstat(name).st_mtime)
            except OSError:
                continue
    return newest


def _part_root(key, upload):
    _check_key(key)
    if not _UPLOAD.match(upload or ""):
        raise RequestFailed("invalid", "invalid upload id %r" % upload)
    return os.path.join(clis_dir(), PARTS, "%s-%s" % (key, upload))


def _check_key(key):
    if not _KEY.match(key or ""):
        raise RequestFailed("invalid", "invalid bundle key %r" % key)


def _check_program(program):
    if not program or "/" in program or program.startswith("."):
        raise RequestFailed("invalid", "invalid program name %r" % program)


def _check_relative(relative):
    """``relative`` normalised, if it stays inside the bundle ("." is the bundle itself)."""
    normal = os.path.normpath(relative or "")
    if not relative or os.path.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise RequestFailed("invalid", "invalid path in a bundle: %r" % relative)
    return normal


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
