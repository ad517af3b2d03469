"""``mngr create --upload-file PATH[:DEST]``: local files read into one create request.

Everything is read here, before anything is made anywhere, so a file that is missing or
cannot be read stops the create with nothing done. The files travel in the blob of the
CreateAgent request and the helper lands them before the agent starts
(remote_helper/uploads.py), on every provider alike.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

# All uploads of one create together; more belongs in a `mngr push` after it.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


@dataclass
class Uploads:
    entries: list[list[Any]] = field(default_factory=list)  # CreateAgent.uploads
    blob: bytearray = field(default_factory=bytearray)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def add(self, dest: str, kind: str, status: os.stat_result, data: bytes = b"") -> None:
        self.entries.append([dest, kind, stat.S_IMODE(status.st_mode), status.st_mtime_ns, len(self.blob), len(data)])
        self.blob += data


def parse_spec(spec: str) -> tuple[str, str]:
    """(local path, destination on the host) of ``PATH[:DEST]``; the destination is
    relative to the work dir, absolute, or ``~/...``, and defaults to the file's name."""
    path, colon, dest = spec.partition(":")
    if not path:
        raise UsageError(f"--upload-file {spec!r}: no local path (use PATH or PATH:DEST)")
    if colon and not dest:
        raise UsageError(f"--upload-file {spec!r}: empty DEST after ':'")
    local = os.path.expanduser(path)
    name = os.path.basename(os.path.normpath(local))
    if not colon:
        dest = name
    elif dest.startswith("~") and dest != "~" and not dest.startswith("~/"):
        raise UsageError(f"--upload-file {spec!r}: only ~/ (the host user's home) is understood in DEST")
    elif dest.endswith("/") or posixpath.normpath(dest) in (".", "~"):
        dest = posixpath.join(dest, name)
    dest = posixpath.normpath(dest)
    if dest == ".." or dest.startswith("../"):
        raise UsageError(f"--upload-file {spec!r}: DEST leads out of the agent's work dir; "
                         f"give an absolute path (or ~/...) for a place outside it")
    return local, dest


def collect(specs: list[str] | tuple[str, ...]) -> Uploads:
    """The files ``specs`` name, read: a usage error for one missing, unreadable, of a kind
    that cannot travel (a socket, a symlink inside a directory), or named twice."""
    uploads = Uploads()
    seen: dict[str, str] = {}
    for spec in specs:
        local, dest = parse_spec(spec)
        try:
            status = os.stat(local)
        except OSError as exc:
            raise UsageError(f"--upload-file {local}: {exc.strerror}") from None
        if stat.S_ISDIR(status.st_mode):
            _add_dir(uploads, spec, local, dest, status, seen)
        elif stat.S_ISREG(status.st_mode):
            _claim(seen, dest, spec)
            uploads.add(dest, "f", status, _read(local))
        else:
            raise UsageError(f"--upload-file {local}: not a regular file or directory")
        if len(uploads.blob) > MAX_UPLOAD_BYTES:
            raise UsageError(f"--upload-file: more than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB in all; "
                             f"create the agent, then copy the rest with mngr push")
    return uploads


def _add_dir(uploads: Uploads, spec: str, local: str, dest: str, status: os.stat_result,
             seen: dict[str, str]) -> None:
    _claim(seen, dest, spec)
    uploads.add(dest, "d", status)
    for root, dirs, files in os.walk(local, onerror=_walk_error):
        dirs.sort()
        relative_root = os.path.relpath(root, local)
        for entry in [*sorted(dirs), *sorted(files)]:
            path = os.path.join(root, entry)
            target = posixpath.normpath(posixpath.join(dest, relative_root.replace(os.sep, "/"), entry))
            try:
                entry_status = os.lstat(path)
            except OSError as exc:
                raise UsageError(f"--upload-file {path}: {exc.strerror}") from None
            if stat.S_ISDIR(entry_status.st_mode):
                uploads.add(target, "d", entry_status)
            elif stat.S_ISREG(entry_status.st_mode):
                uploads.add(target, "f", entry_status, _read(path))
            else:
                what = "a symlink" if stat.S_ISLNK(entry_status.st_mode) else "not a regular file"
                raise UsageError(f"--upload-file {local}: {path} is {what}: only files and directories are uploaded")


def _walk_error(exc: OSError) -> None:
    raise UsageError(f"--upload-file {exc.filename}: {exc.strerror}")


def _claim(seen: dict[str, str], dest: str, spec: str) -> None:
    if dest in seen:
        raise UsageError(f"--upload-file {spec!r} and {seen[dest]!r} both go to {dest}")
    seen[dest] = spec


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"--upload-file {path}: {exc.strerror}") from None
