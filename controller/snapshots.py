"""Snapshots of agents on local and SSH hosts: zstandard-compressed archives kept by mngr.

A snapshot is one file, ``<state dir>/snapshots/<id>.tar.zst``, holding:

- ``snapshot.json``: its id, when it was taken, the agent's name, host and provider, and
  its spec (type, command, program, --env values, labels, the branch checked out);
- ``repo.bundle``: every branch and tag of the work dir's git repository, if it has one;
- ``files/``: every file, link and directory of the work dir (ignored ones included,
  ``.git`` aside), with modes and modification times;
- ``manifest``: the manifest of ``files/`` (remote_helper/files.py), whose nanosecond
  modification times are put back after extraction (tar keeps them less exactly).

It is written to a temporary name and renamed when complete. ``create --snapshot ID``
makes a new agent from it on any host, the way ``mngr clone`` does.

A provider with snapshots of its own kind records the whole host instead (docker: a
committed image, see ``HostSnapshots.snapshot_host``); the same commands list, destroy and
create from those, on that provider.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mngr.providers.base import HostSnapshots
from mngr.remote_helper import files

from . import sync
from .errors import MngrError, UsageError
from .hosts import HostHandle

if TYPE_CHECKING:
    from mngr.providers.base import Provider

    from .progress import Progress

_SUFFIX = ".tar.zst"


def snapshots_dir() -> str:
    from .paths import state_dir

    return os.path.join(state_dir(), "snapshots")


@dataclass
class Snapshot:
    id: str
    path: str  # "" for a provider's own snapshot
    meta: dict[str, Any]
    bytes: int


def take(handle: HostHandle, name: str, provider: str) -> Snapshot:
    """A snapshot of agent ``name`` (the host's own kind where its provider has one); how
    far it got shown on the terminal (progress.py)."""
    from .progress import Progress

    if isinstance(handle.provider, HostSnapshots):
        with Progress(f"taking a snapshot of {name} (host {handle.host})"):
            return _take(handle, name, provider, None)
    with Progress(f"taking a snapshot of {name}: its work dir", unit="bytes") as line:
        return _take(handle, name, provider, line)


def _take(handle: HostHandle, name: str, provider: str, progress: Progress | None) -> Snapshot:
    import zstandard

    snapshot_id = "snap-" + datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(4)
    spec = handle.agent_spec(name)
    native_meta = {
        "id": snapshot_id,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "agent": name, "host": handle.host, "provider": provider, "work_dir": spec.work_dir,
        "spec": {"agent_type": spec.agent_type, "command": spec.command, "binary": spec.binary,
                 "env": spec.env, "labels": spec.labels, "extra_windows": spec.extra_windows,
                 "urls": spec.urls},
    }
    size = None
    if isinstance(handle.provider, HostSnapshots):
        size = handle.provider.snapshot_host(handle.host, native_meta)
    if size is not None:
        return Snapshot(snapshot_id, "", native_meta, size)
    os.makedirs(snapshots_dir(), mode=0o700, exist_ok=True)
    path = os.path.join(snapshots_dir(), snapshot_id + _SUFFIX)
    temporary = path + ".tmp"
    with tempfile.TemporaryDirectory(prefix="mngr-snapshot-") as scratch:
        files_dir = os.path.join(scratch, "files")
        os.mkdir(files_dir)
        sync.refuse_partial(sync.pull(handle, name, files_dir, delete=False, dry_run=False, include_ignored=True,
                                      force=True, progress=progress), f"the snapshot of {name}'s work dir")
        if progress is not None:
            progress.update(what=f"taking a snapshot of {name}: its repository and the archive", note="")
        bundle = handle.git_bundle(name)
        meta = {
            "id": snapshot_id,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "agent": name,
            "host": handle.host,
            "provider": provider,
            "spec": {"agent_type": spec.agent_type, "command": spec.command, "binary": spec.binary,
                     "env": spec.env, "labels": spec.labels, "branch": spec.branch if bundle else "",
                     "extra_windows": spec.extra_windows, "urls": spec.urls},
        }
        with open(os.path.join(scratch, "snapshot.json"), "w", encoding="utf-8") as output:
            json.dump(meta, output)
        if bundle:
            with open(os.path.join(scratch, "repo.bundle"), "wb") as output:
                output.write(bundle)
        with open(os.path.join(scratch, "manifest"), "wb") as output:
            output.write(files.raw_manifest(files_dir, include_ignored=True))
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as packed, \
                    tarfile.open(fileobj=packed, mode="w|") as archive:
                for entry in ("snapshot.json", "manifest", "repo.bundle", "files"):
                    if os.path.lexists(os.path.join(scratch, entry)):
                        archive.add(os.path.join(scratch, entry), arcname=entry)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    return Snapshot(snapshot_id, path, meta, os.path.getsize(path))


def _path_of(snapshot_id: str) -> str:
    if not snapshot_id.startswith("snap-") or "/" in snapshot_id or not snapshot_id.replace("-", "").isalnum():
        raise UsageError(f"invalid snapshot id {snapshot_id!r}")
    path = os.path.join(snapshots_dir(), snapshot_id + _SUFFIX)
    if not os.path.exists(path):
        raise MngrError(f"no snapshot {snapshot_id!r} (see: mngr snapshot list)")
    return path


def _members(path: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    import zstandard

    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as unpacked, \
            tarfile.open(fileobj=unpacked, mode="r|") as archive:
        for member in archive:
            yield archive, member


def read_meta(path: str) -> dict[str, Any]:
    for archive, member in _members(path):
        if member.name == "snapshot.json":
            extracted = archive.extractfile(member)
            if extracted is None:
                break
            meta: dict[str, Any] = json.loads(extracted.read())
            return meta
    raise MngrError(f"{path} is not a snapshot mngr can read (no snapshot.json)")


def native(snapshot_id: str, providers: Iterable[Provider]) -> tuple[Provider, dict[str, Any]] | None:
    """(the provider, its metadata) of a provider's own snapshot; None for one of mngr's
    archives, or an id nobody knows."""
    if os.path.exists(os.path.join(snapshots_dir(), snapshot_id + _SUFFIX)):
        return None
    for provider in providers:
        if not isinstance(provider, HostSnapshots):
            continue
        for meta in provider.snapshots():
            if meta["id"] == snapshot_id:
                return provider, meta
    return None


def listing(providers: Iterable[Provider] = ()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"id": meta["id"], "agent": meta.get("agent", ""), "host": meta.get("host", ""),
         "provider": meta.get("provider", provider.name), "created_at": meta.get("created_at", ""),
         "bytes": meta.get("bytes", 0)}
        for provider in providers if isinstance(provider, HostSnapshots) for meta in provider.snapshots()
    ]
    rows.sort(key=lambda row: row["id"])
    try:
        names = sorted(os.listdir(snapshots_dir()))
    except FileNotFoundError:
        return rows
    for entry in names:
        if not entry.endswith(_SUFFIX):
            continue
        path = os.path.join(snapshots_dir(), entry)
        try:
            meta = read_meta(path)
        except (MngrError, OSError, ValueError, tarfile.TarError):
            continue
        rows.append({"id": meta["id"], "agent": meta["agent"], "host": meta["host"], "provider": meta["provider"],
                     "created_at": meta["created_at"], "bytes": os.path.getsize(path)})
    return rows


def destroy(snapshot_id: str, providers: Iterable[Provider] = ()) -> None:
    if not os.path.exists(os.path.join(snapshots_dir(), snapshot_id + _SUFFIX)):
        for provider in providers:
            if isinstance(provider, HostSnapshots) and provider.destroy_snapshot(snapshot_id):
                return
    os.unlink(_path_of(snapshot_id))


def restore(snapshot_id: str, target: HostHandle, new_name: str, path: str,
            progress: Progress | None = None) -> tuple[dict[str, Any], str]:
    """Make ``new_name``'s work dir on ``target`` from a snapshot; (its spec, the work dir).
    The copy to the host is shown on ``progress``."""
    archive_path = _path_of(snapshot_id)
    with tempfile.TemporaryDirectory(prefix="mngr-restore-") as scratch:
        for archive, member in _members(archive_path):
            archive.extract(member, scratch, filter="tar")  # nothing lands outside scratch
        with open(os.path.join(scratch, "snapshot.json"), encoding="utf-8") as handle:
            meta = json.load(handle)
        bundle = b""
        if os.path.exists(os.path.join(scratch, "repo.bundle")):
            with open(os.path.join(scratch, "repo.bundle"), "rb") as handle:
                bundle = handle.read()
        _exact_mtimes(scratch)
        spec = meta["spec"]
        made = sync.fill_work_dir(target, new_name, os.path.join(scratch, "files"), path, bundle,
                                   spec.get("branch", ""), include_ignored=True, progress=progress)
    return spec, made


def _exact_mtimes(scratch: str) -> None:
    """Put back the recorded nanosecond modification times of the extracted files and
    directories (directories last, deepest first: setting a file's time leaves its
    directory's alone, but tar's extraction order does not)."""
    try:
        with open(os.path.join(scratch, "manifest"), "rb") as handle:
            entries = files.parse_manifest(handle.read())
    except (OSError, ValueError):
        return  # an older snapshot: tar's times it is
    root = os.path.join(scratch, "files")
    directories = []
    for path, kind, mode, _, mtime_ns, _ in entries:
        files.check_path(path)
        if kind == "f":
            os.utime(os.path.join(root, path), ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        elif kind == "d":
            directories.append([path, mode, mtime_ns])
    skipped = files.finish_directories(root, directories)
    if skipped:
        raise MngrError(f"restoring directory times failed: {skipped[0][0]}: {skipped[0][1]}")
