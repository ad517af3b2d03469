"""``modal.Volume``: a named file system that outlives sandboxes; here a Docker named volume.

One difference matters: a Modal Volume mounted in a sandbox publishes its changes when the
sandbox terminates (or, on a v2 Volume, when ``sync`` runs on the mount point inside it); a
Docker volume shows every write at once. So a reader outside sees here what it might not yet
see on Modal: read a running host through its helper, and its Volume only once it stopped.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from . import _core
from .exception import InvalidError, NotFoundError
from .types import FileEntry, FileEntryType


class _ClassProperty:
    """``Volume.objects``: a property of the class (the SDK uses synchronicity's classproperty)."""

    def __get__(self, instance: object, owner: type | None = None) -> VolumeManager:
        return VolumeManager()


class Volume:
    def __init__(self, name: str | None, environment_name: str | None = None, create_if_missing: bool = False,
                 version: int | None = None, object_id: str | None = None) -> None:
        self._name = name
        self._environment_name = environment_name
        self._create_if_missing = create_if_missing
        self._version = version
        self._object_id = object_id

    def __repr__(self) -> str:
        return f"Volume.from_name({self._name!r})"

    objects = _ClassProperty()

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        version: int | None = None,
        create_options: Any | None = None,
        client: Any | None = None,
    ) -> Volume:
        """A lazy reference: found (or made) the first time it is used."""
        _core.check_object_name(name, "Volume")
        if version not in (None, 1, 2):
            raise InvalidError("VolumeFS version must be either 1 or 2")
        if create_options is not None:
            raise NotImplementedError("modal stand-in: Volume.from_name takes no create_options")
        return Volume(name, environment_name, create_if_missing, version)

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def object_id(self) -> str:
        if self._object_id is None:
            raise AttributeError(f"Attempting to get object_id of unhydrated {self}")
        return self._object_id

    def hydrate(self, client: Any | None = None) -> Volume:
        _core.check_credentials()
        with _core.state() as state:
            self._record(state)
        return self

    def listdir(self, path: str, *, recursive: bool = False) -> list[FileEntry]:
        """The entries under ``path`` (its own entry for a file), paths relative to the root."""
        if path.endswith("*"):
            raise InvalidError("Glob patterns in `volume get` and `Volume.listdir()` are deprecated. "
                               "Please pass recursive=True instead.")
        found = self._members(path)
        if found is None:
            raise NotFoundError(f"No such file or directory: {path}")
        members = [member for member, _ in found]
        base = PurePosixPath(path.strip("/"))
        top = members[0].name.split("/")[0] if members else ""
        entries = []
        for member in members:
            relative = PurePosixPath(member.name).relative_to(top) if top else PurePosixPath(member.name)
            depth = len(relative.parts)
            is_root = depth == 0 or str(relative) == "."
            if is_root and member.isdir():
                continue
            if not recursive and depth > 1:
                continue
            entry_path = str(base / relative) if not is_root else str(base)
            kind = (FileEntryType.DIRECTORY if member.isdir() else FileEntryType.SYMLINK if member.issym()
                    else FileEntryType.FIFO if member.isfifo() else FileEntryType.FILE)
            entries.append(FileEntry(path=entry_path, type=kind, mtime=int(member.mtime), size=member.size))
        return entries

    def read_file(self, path: str) -> Iterator[bytes]:
        """The content of a file, in chunks; FileNotFoundError if there is none, as the SDK raises."""
        found = self._members(path, contents=True)
        if found is None or len(found) != 1 or not found[0][0].isfile():
            raise FileNotFoundError(f"No such file: {path}")
        data = found[0][1] or b""
        for start in range(0, max(len(data), 1), 1 << 20):
            chunk = data[start:start + (1 << 20)]
            if chunk:
                yield chunk

    def batch_upload(self, force: bool = False) -> AbstractVolumeUploadContextManager:
        """Files from here into the Volume, written together when the ``with`` block ends;
        FileExistsError for a file that exists already, unless ``force``."""
        return AbstractVolumeUploadContextManager(self, force)

    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Remove a file (or, ``recursive``, a directory); FileNotFoundError if there is none."""
        found = self._members(path)
        if found is None:
            raise FileNotFoundError(f"No such file or directory: {path}")
        if len(found) > 1 and not recursive:
            raise InvalidError(f"{path} is a directory: pass recursive=True")
        self._run_in_volume(["rm", "-rf", "--", "/volume/" + path.strip("/")])

    # -- internals ----------------------------------------------------------------------------

    def _record(self, state: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Its entry in the state (made, with its Docker volume, if missing and asked to)."""
        env = _core.environment(self._environment_name)
        record: dict[str, Any] | None = state["volumes"].get(f"{env}/{self._name}")
        if record is None:
            if not self._create_if_missing:
                raise NotFoundError(f"Volume {self._name!r} not found in environment {env!r}")
            volume_id = _core.new_id("vo")
            docker_volume = f"modal-standin-{_core.key()}-{volume_id}"
            _core.docker_client().volumes.create(docker_volume, labels=_core.labels())
            record = {"id": volume_id, "name": self._name, "docker_volume": docker_volume,
                      "version": self._version, "created_at": time.time()}
            state["volumes"][f"{env}/{self._name}"] = record
        self._object_id = record["id"]
        return record

    def _upload(self, files: dict[str, tuple[bytes, int]], force: bool) -> None:
        if not force:
            for path in files:
                if self._members(path) is not None:
                    raise FileExistsError(f"{path} exists already in Volume {self._name!r}")
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path, (data, mode) in sorted(files.items()):
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        self._with_writer(lambda container: container.put_archive("/volume", archive.getvalue()))

    def _run_in_volume(self, command: list[str]) -> None:
        def run(container: Any) -> None:
            container.start()
            container.wait()

        self._with_writer(run, command)

    def _with_writer(self, use: Callable[[Any], object], command: list[str] | None = None) -> None:
        """Call ``use`` with a container that has the Volume at /volume (for writes from outside)."""
        _core.check_credentials()
        with _core.state() as state:
            docker_volume = self._record(state)["docker_volume"]
        writer = _core.docker_client().containers.create(
            _core.base_image(), command or ["true"], labels=_core.labels(),
            volumes={docker_volume: {"bind": "/volume", "mode": "rw"}})
        try:
            use(writer)
        finally:
            writer.remove(force=True)

    def _members(self, path: str, contents: bool = False) -> list[tuple[tarfile.TarInfo, bytes | None]] | None:
        """The tar members of ``path`` in the volume, read through a container that is never
        started (Docker copies out of a stopped container's volumes); None if it is missing."""
        import docker

        _core.check_credentials()
        with _core.state() as state:
            docker_volume = self._record(state)["docker_volume"]
        client = _core.docker_client()
        reader = client.containers.create(_core.base_image(), ["true"], labels=_core.labels(),
                                          volumes={docker_volume: {"bind": "/volume", "mode": "ro"}})
        try:
            stream, _ = reader.get_archive("/volume/" + path.strip("/"))
            data = b"".join(stream)
        except docker.errors.NotFound:
            return None
        finally:
            reader.remove(force=True)
        found: list[tuple[tarfile.TarInfo, bytes | None]] = []
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if contents and member.isfile() else None
                found.append((member, handle.read() if handle else None))
        return found


class AbstractVolumeUploadContextManager:
    """What ``Volume.batch_upload()`` gives: queue files with ``put_file``/``put_directory``."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self._volume = volume
        self._force = force
        self._files: dict[str, tuple[bytes, int]] = {}  # path in the volume -> content, mode

    def __enter__(self) -> AbstractVolumeUploadContextManager:
        return self

    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None:
        if exc_type is None and self._files:
            self._volume._upload(self._files, self._force)

    def put_file(
        self,
        local_file: Path | str | BinaryIO | BytesIO,
        remote_path: PurePosixPath | str,
        mode: int | None = None,
    ) -> None:
        if str(remote_path).endswith("/"):
            raise ValueError(f"remote_path ({remote_path}) must refer to a file - cannot end with /")
        if isinstance(local_file, (str, Path)):
            data = Path(local_file).read_bytes()
            file_mode = mode if mode is not None else Path(local_file).stat().st_mode & 0o7777
        else:
            data = local_file.read()
            file_mode = mode if mode is not None else 0o644
        self._files[str(PurePosixPath("/", remote_path)).lstrip("/")] = (data, file_mode)

    def put_directory(
        self,
        local_path: Path | str,
        remote_path: PurePosixPath | str,
        recursive: bool = True,
    ) -> None:
        root = Path(local_path)
        for path in sorted(root.rglob("*") if recursive else root.iterdir()):
            if path.is_file():
                self.put_file(path, PurePosixPath(remote_path) / path.relative_to(root).as_posix())


class VolumeManager:
    """``Volume.objects``: list and delete Volumes by name."""

    def list(
        self,
        *,
        max_objects: int | None = None,
        created_before: datetime | str | None = None,
        environment_name: str = "",
        client: Any | None = None,
    ) -> list[Volume]:
        """The Volumes of the environment, newest first (hydrated)."""
        _core.check_credentials()
        env = _core.environment(environment_name or None)
        cutoff = None
        if created_before is not None:
            moment = datetime.fromisoformat(created_before) if isinstance(created_before, str) else created_before
            cutoff = moment.timestamp()
        with _core.state() as state:
            records = [record for key, record in state["volumes"].items() if key.startswith(env + "/")]
        records.sort(key=lambda record: record["created_at"], reverse=True)
        found = [Volume(record["name"], env, version=record["version"], object_id=record["id"])
                 for record in records if cutoff is None or record["created_at"] < cutoff]
        return found[:max_objects] if max_objects is not None else found

    def delete(
        self,
        name: str,
        *,
        allow_missing: bool = False,
        environment_name: str | None = None,
        client: Any | None = None,
    ) -> None:
        """Delete a Volume and its files; a sandbox still running with it mounted refuses."""
        from .exception import ConflictError
        from .sandbox import _settle_all

        _core.check_credentials()
        env = _core.environment(environment_name)
        with _core.state() as state:
            record = state["volumes"].get(f"{env}/{name}")
            if record is None:
                if allow_missing:
                    return
                raise NotFoundError(f"Volume {name!r} not found in environment {env!r}")
            _settle_all(state)  # the containers of finished sandboxes are gone after this
            for sandbox in state["sandboxes"].values():
                if sandbox["result"] is None and record["docker_volume"] in sandbox.get("docker_volumes", []):
                    raise ConflictError(f"Volume {name!r} is mounted in the running Sandbox {sandbox['id']}")
            _core.docker_client().volumes.get(record["docker_volume"]).remove(force=True)
            del state["volumes"][f"{env}/{name}"]
