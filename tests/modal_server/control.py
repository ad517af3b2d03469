"""Modal's control plane (``modal.client.ModalClient``): the calls mngr's use of the SDK makes.

Each method is named as the RPC; the SDK's call that makes it is in its docstring. What the
server refuses, it refuses with the status the SDK maps to the exception Modal's would raise
(NOT_FOUND -> NotFoundError, ALREADY_EXISTS -> AlreadyExistsError, INVALID_ARGUMENT ->
InvalidError, FAILED_PRECONDITION -> ConflictError).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Any

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2
from modal_proto.api_grpc import ModalClientBase

from .sandboxes import end_sandbox, start_sandbox
from .server import served
from .state import Image, Sandbox, Volume, new_id

BLOCK_SIZE = 8 * 1024 * 1024  # the SDK's Volume block
MAX_TIMEOUT = 24 * 3600  # Modal's limit on a sandbox's life
IMAGE_BUILDER_VERSION = "2025.06"
CREATE_IF_MISSING = api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING
# Modal's GPU types (its GPU guide) and region names (broad, or a cloud's): what else is asked
# for is refused, with messages of this server's own (Modal's own are not known here).
GPU_TYPES = frozenset(["T4", "L4", "A10", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "RTX-PRO-6000",
                       "H100", "H100!", "H200", "B200", "B200+"])
REGION = re.compile(r"^(us|eu|europe|uk|ap|asia|jp|ca|sa|me|mx|af|au|australia|northamerica|southamerica)"
                    r"(-[a-z]+)?(-?[0-9]+)?$")
# Image layers that need a package index (no registry or mirror is reachable from the tests):
# the tests' base image has what mngr's default image installs (tmux, git, procps).
OFFLINE_LAYERS = re.compile(r"^RUN (apt-get (update|install)|python -m pip install|pip install|uv pip install)\b")


class ControlPlane(served(ModalClientBase)):  # type: ignore[misc]
    # -- the client ----------------------------------------------------------------------------------

    async def ClientHello(self, stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(api_pb2.ClientHelloResponse(image_builder_version=IMAGE_BUILDER_VERSION))

    async def AuthTokenGet(self, stream: Any) -> None:
        """Every V2 sandbox call carries this token (``x-modal-auth-token``)."""
        await stream.recv_message()
        await stream.send_message(api_pb2.AuthTokenGetResponse(token=self.server.new_jwt()))

    async def EnvironmentGetOrCreate(self, stream: Any) -> None:
        """The environment (one, ``main``): image builds read its image builder version."""
        await stream.recv_message()
        await stream.send_message(api_pb2.EnvironmentGetOrCreateResponse(
            environment_id="en-main", metadata=api_pb2.EnvironmentMetadata(
                name="main", settings=api_pb2.EnvironmentSettings(image_builder_version=IMAGE_BUILDER_VERSION))))

    # -- apps ----------------------------------------------------------------------------------------

    async def AppGetOrCreate(self, stream: Any) -> None:
        """``App.lookup(name, create_if_missing=...)``."""
        request = await stream.recv_message()
        app_id = self.world.apps.get(request.app_name)
        if app_id is None:
            if request.object_creation_type != CREATE_IF_MISSING:
                raise GRPCError(Status.NOT_FOUND, f"App '{request.app_name}' not found")
            app_id = self.world.apps[request.app_name] = new_id("ap")
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app_id))

    # -- mounts: a Dockerfile's build context --------------------------------------------------------

    async def MountBatchedCheckExistence(self, stream: Any) -> None:
        request = await stream.recv_message()
        await stream.send_message(api_pb2.MountBatchedCheckExistenceResponse(missing_sha256_hex_hashes=[
            digest for digest in request.sha256_hex_hashes if digest not in self.world.files]))

    async def MountPutFile(self, stream: Any) -> None:
        """A file's contents, inline (a large file would come as a blob: not implemented)."""
        request = await stream.recv_message()
        if request.data_blob_id:
            raise GRPCError(Status.UNIMPLEMENTED, "the local Modal test server does not implement blobs "
                                                  "(MountPutFile with data_blob_id)")
        self.world.files[request.sha256_hex] = request.data
        await stream.send_message(api_pb2.MountPutFileResponse(exists=True))

    async def MountGetOrCreate(self, stream: Any) -> None:
        request = await stream.recv_message()
        mount_id = new_id("mo")
        self.world.mounts[mount_id] = [(file.filename, file.sha256_hex, file.mode) for file in request.files]
        await stream.send_message(api_pb2.MountGetOrCreateResponse(mount_id=mount_id))

    # -- images --------------------------------------------------------------------------------------

    async def ImageGetOrCreate(self, stream: Any) -> None:
        """An image layer (``Image.debian_slim()``, ``.apt_install``, ``from_registry``; ``.build``),
        built at once as a Docker image: the answer carries the result, so the SDK does not join
        a build stream."""
        request = await stream.recv_message()
        definition = request.image
        # Modal builds a definition once: the same layer on the same base (and context) is the same image.
        digest = self._digest(definition)
        if not request.force_build and self.world.built.get(digest) in self.world.images:
            await stream.send_message(api_pb2.ImageGetOrCreateResponse(
                image_id=self.world.built[digest],
                result=api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS),
                metadata=api_pb2.ImageMetadata(image_builder_version=IMAGE_BUILDER_VERSION)))
            return
        commands = list(definition.dockerfile_commands)
        image_id = new_id("im")
        failure = ""
        if not commands or not commands[0].startswith("FROM "):
            failure = "an image definition must start with FROM"
        else:
            source = commands[0][len("FROM "):].strip()
            if source == "base" and definition.base_images:
                parent = self.world.images.get(definition.base_images[0].image_id)
                tag = parent.docker_tag if parent else ""
                failure = "" if parent else f"unknown base image {definition.base_images[0].image_id}"
            elif re.fullmatch(r"python:[0-9.]+-slim-[a-z]+", source):
                tag = self.world.base_image  # debian_slim: the tests' Debian image stands for it
            else:
                tag = source
            rest = [command for command in commands[1:] if not OFFLINE_LAYERS.match(command)]
            if not failure:
                context = {file.filename: file.data for file in definition.context_files}
                for name, digest, _ in self.world.mounts.get(definition.context_mount_id, []):
                    context[name] = self.world.files[digest]
                try:
                    tag = await asyncio.to_thread(self._build, image_id, tag, rest, context)
                except Exception as exc:
                    failure = f"Image build for {image_id} failed: {exc}"
        if failure:
            result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_FAILURE, exception=failure)
        else:
            self.world.images[image_id] = Image(image_id, tag, made_by_server=bool(rest))
            self.world.built[digest] = image_id
            result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)
        await stream.send_message(api_pb2.ImageGetOrCreateResponse(
            image_id=image_id, result=result, metadata=api_pb2.ImageMetadata(image_builder_version=IMAGE_BUILDER_VERSION)))

    def _digest(self, definition: api_pb2.Image) -> str:
        import hashlib

        keyed = api_pb2.Image()
        keyed.CopyFrom(definition)
        keyed.context_mount_id = ""  # a new mount id for the same files each time: its files count
        files = sorted((name, digest) for name, digest, _ in self.world.mounts.get(definition.context_mount_id, []))
        return hashlib.sha256(keyed.SerializeToString(deterministic=True) + repr(files).encode()).hexdigest()

    def _build(self, image_id: str, tag: str, commands: list[str], context: dict[str, bytes]) -> str:
        """The Docker image of ``tag`` with ``commands`` on top (itself when there are none),
        built with ``context`` (file name -> contents) as its context."""
        import tempfile

        self.server.docker.images.get(tag)  # ImageNotFound: no such local image
        if not commands:
            return tag
        built = f"mngr-modal-test-image:{image_id}"
        with tempfile.TemporaryDirectory(prefix="modal-build-") as directory:
            for name, data in context.items():
                target = Path(directory, name.lstrip("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            Path(directory, "Dockerfile.modal-test").write_text("\n".join([f"FROM {tag}", *commands]) + "\n")
            self.server.docker.images.build(path=directory, dockerfile="Dockerfile.modal-test", tag=built, rm=True,
                                            forcerm=True, labels=self.world.labels())
        return built

    async def ImageFromId(self, stream: Any) -> None:
        """``Image.from_id(id)`` (a built image or a snapshot), hydrated when used."""
        request = await stream.recv_message()
        if request.image_id not in self.world.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {request.image_id} not found")
        await stream.send_message(api_pb2.ImageFromIdResponse(
            image_id=request.image_id, metadata=api_pb2.ImageMetadata(image_builder_version=IMAGE_BUILDER_VERSION)))

    async def ImageDelete(self, stream: Any) -> None:
        """``modal.experimental.image_delete(id)``."""
        request = await stream.recv_message()
        image = self.world.images.pop(request.image_id, None)
        if image is None:
            raise GRPCError(Status.NOT_FOUND, f"Image {request.image_id} not found")
        if image.made_by_server:
            await asyncio.to_thread(self._remove_image, image.docker_tag)
        await stream.send_message(empty_pb2.Empty())

    def _remove_image(self, tag: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.APIError):  # a container still uses it: it goes with the server
            self.server.docker.images.remove(tag, force=True)

    # -- secrets -------------------------------------------------------------------------------------

    async def SecretGetOrCreate(self, stream: Any) -> None:
        """``Secret.from_name(name)`` (made by a test: ``ModalServer.create_secret``), or
        ``Secret.from_dict`` (an anonymous one)."""
        request = await stream.recv_message()
        if request.deployment_name:
            found = [(secret_id, values) for secret_id, (name, values) in self.world.secrets.items()
                     if name == request.deployment_name]
            if not found:
                raise GRPCError(Status.NOT_FOUND, f"Secret '{request.deployment_name}' not found")
            secret_id, values = found[0]
            missing = [key for key in request.required_keys if key not in values]
            if missing:
                raise GRPCError(Status.NOT_FOUND, f"Secret is missing key(s): {', '.join(missing)}")
        else:
            secret_id = new_id("st")
            self.world.secrets[secret_id] = ("", dict(request.env_dict))
        await stream.send_message(api_pb2.SecretGetOrCreateResponse(secret_id=secret_id))

    # -- volumes -------------------------------------------------------------------------------------

    def _volume(self, volume_id: str) -> Volume:
        volume = self.world.volumes.get(volume_id)
        if volume is None:
            raise GRPCError(Status.NOT_FOUND, f"Volume {volume_id} not found")
        return volume

    def _volume_metadata(self, volume: Volume) -> api_pb2.VolumeMetadata:
        return api_pb2.VolumeMetadata(version=api_pb2.VOLUME_FS_VERSION_V2, name=volume.name,
                                      creation_info=api_pb2.CreationInfo(created_at=volume.created_at))

    async def VolumeGetOrCreate(self, stream: Any) -> None:
        """``Volume.from_name(name, create_if_missing=..., version=2)``."""
        request = await stream.recv_message()
        volume = self.world.volume_named(request.deployment_name)
        if volume is None:
            if request.object_creation_type != CREATE_IF_MISSING:
                raise GRPCError(Status.NOT_FOUND, f"Volume '{request.deployment_name}' not found")
            volume = self.world.new_volume(request.deployment_name)
        await stream.send_message(api_pb2.VolumeGetOrCreateResponse(
            volume_id=volume.id, version=api_pb2.VOLUME_FS_VERSION_V2, metadata=self._volume_metadata(volume)))

    async def VolumeList(self, stream: Any) -> None:
        """``Volume.objects.list()``: newest first, a page at a time."""
        request = await stream.recv_message()
        before = request.pagination.created_before or float("inf")
        volumes = sorted((volume for volume in self.world.volumes.values() if volume.created_at < before),
                         key=lambda volume: -volume.created_at)[:request.pagination.max_objects or 100]
        await stream.send_message(api_pb2.VolumeListResponse(items=[
            api_pb2.VolumeListItem(label=volume.name, volume_id=volume.id, created_at=volume.created_at,
                                   metadata=self._volume_metadata(volume)) for volume in volumes]))

    async def VolumeDelete(self, stream: Any) -> None:
        """``Volume.objects.delete(name)``."""
        request = await stream.recv_message()
        self._volume(request.volume_id)
        self.world.delete_volume(request.volume_id)
        await stream.send_message(empty_pb2.Empty())

    def _path(self, volume: Volume, path: str) -> Path:
        resolved = (volume.path / path.lstrip("/")).resolve()
        if resolved != volume.path.resolve() and volume.path.resolve() not in resolved.parents:
            raise GRPCError(Status.INVALID_ARGUMENT, f"path {path!r} is outside the Volume")
        return resolved

    async def VolumeListFiles2(self, stream: Any) -> None:
        """``Volume.listdir(path, recursive=...)``: a missing path is NOT_FOUND (FileNotFoundError)."""
        request = await stream.recv_message()
        volume = self._volume(request.volume_id)
        target = self._path(volume, request.path)
        if not target.exists():
            raise GRPCError(Status.NOT_FOUND, f"No such file or directory: {request.path}")
        if target.is_dir():
            found = sorted(target.rglob("*") if request.recursive else target.iterdir())
        else:
            found = [target]
        entries = []
        for item in found:
            info = item.lstat()
            kind = (api_pb2.FileEntry.DIRECTORY if item.is_dir() and not item.is_symlink()
                    else api_pb2.FileEntry.SYMLINK if item.is_symlink() else api_pb2.FileEntry.FILE)
            entries.append(api_pb2.FileEntry(path=str(item.relative_to(volume.path.resolve())), type=kind,
                                             mtime=int(info.st_mtime), size=info.st_size))
        await stream.send_message(api_pb2.VolumeListFiles2Response(entries=entries))

    async def VolumeGetFile2(self, stream: Any) -> None:
        """``Volume.read_file(path)``: the file's blocks, each fetched from the block server."""
        from .blocks import offer_download

        request = await stream.recv_message()
        volume = self._volume(request.volume_id)
        target = self._path(volume, request.path)
        if not target.is_file():
            raise GRPCError(Status.NOT_FOUND, f"No such file: {request.path}")
        size = target.stat().st_size
        start = request.start
        length = request.len or max(0, size - start)
        urls = [offer_download(self.server, target, offset, min(BLOCK_SIZE, start + length - offset))
                for offset in range(start, start + length, BLOCK_SIZE)]
        await stream.send_message(api_pb2.VolumeGetFile2Response(get_urls=urls, size=size, start=start, len=length))

    async def VolumePutFiles2(self, stream: Any) -> None:
        """``Volume.batch_upload()``: first asked for the blocks it lacks (uploaded to the block
        server), then again with all of them."""
        from .blocks import upload_url

        request = await stream.recv_message()
        volume = self._volume(request.volume_id)
        missing = [api_pb2.VolumePutFiles2Response.MissingBlock(file_index=file_index, block_index=block_index,
                                                               put_url=upload_url(self.server))
                   for file_index, file in enumerate(request.files)
                   for block_index, block in enumerate(file.blocks) if block.contents_sha256 not in self.world.blocks]
        if missing:
            await stream.send_message(api_pb2.VolumePutFiles2Response(missing_blocks=missing))
            return
        for file in request.files:
            target = self._path(volume, file.path)
            if request.disallow_overwrite_existing_files and target.exists():
                raise GRPCError(Status.ALREADY_EXISTS, f"{file.path}: already exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            data = b"".join(self.world.blocks[block.contents_sha256] for block in file.blocks)[:file.size]
            partial = target.with_name(target.name + ".upload")
            partial.write_bytes(data)
            if file.mode:
                os.chmod(partial, file.mode & 0o7777)
            partial.replace(target)
        await stream.send_message(api_pb2.VolumePutFiles2Response())

    async def VolumeRemoveFile2(self, stream: Any) -> None:
        """``Volume.remove_file(path, recursive=...)``."""
        import shutil

        request = await stream.recv_message()
        volume = self._volume(request.volume_id)
        target = self._path(volume, request.path)
        if not target.exists():
            raise GRPCError(Status.NOT_FOUND, f"No such file or directory: {request.path}")
        if target.is_dir():
            if not request.recursive and any(target.iterdir()):
                raise GRPCError(Status.INVALID_ARGUMENT, f"{request.path} is a directory: pass recursive=True")
            shutil.rmtree(target)
        else:
            target.unlink()
        await stream.send_message(empty_pb2.Empty())

    # -- sandboxes (V2) ------------------------------------------------------------------------------

    def _sandbox(self, sandbox_id: str) -> Sandbox:
        sandbox = self.world.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {sandbox_id} not found")
        return sandbox

    def _metadata(self, sandbox: Sandbox) -> api_pb2.SandboxHandleMetadata:
        return api_pb2.SandboxHandleMetadata(result=sandbox.result, app_id=sandbox.app_id)

    async def SandboxCreateV2(self, stream: Any) -> None:
        """``Sandbox.create(...)`` (without a GPU: that is V1's); its variables come as secret sources."""
        request = await stream.recv_message()
        env: dict[str, str] = {}
        for source in request.secret_sources:
            env.update(self._secret(source.secret_id) if source.secret_id else source.env.contents)
        sandbox = await self._create(request.app_id, request.definition, request.tags, env, v1=False)
        await stream.send_message(api_pb2.SandboxCreateV2Response(
            sandbox_id=sandbox.id, task_id=sandbox.task_id, metadata=self._metadata(sandbox)))

    async def SandboxCreate(self, stream: Any) -> None:
        """``Sandbox.create(..., gpu=...)``: V1, whose variables come as Secrets (by id)."""
        request = await stream.recv_message()
        env: dict[str, str] = {}
        for secret_id in request.definition.secret_ids:
            env.update(self._secret(secret_id))
        sandbox = await self._create(request.app_id, request.definition, request.tags, env, v1=True)
        await stream.send_message(api_pb2.SandboxCreateResponse(sandbox_id=sandbox.id,
                                                                metadata=self._metadata(sandbox)))

    def _secret(self, secret_id: str) -> dict[str, str]:
        if secret_id not in self.world.secrets:
            raise GRPCError(Status.NOT_FOUND, f"Secret {secret_id} not found")
        return self.world.secrets[secret_id][1]

    async def _create(self, app_id: str, definition: api_pb2.Sandbox, tags: Any, env: dict[str, str], *,
                      v1: bool) -> Sandbox:
        if app_id not in self.world.apps.values():
            raise GRPCError(Status.NOT_FOUND, f"App {app_id} not found")
        self._refuse(definition)
        if definition.name and any(sandbox.name == definition.name and sandbox.app_id == app_id
                                   and sandbox.running for sandbox in self.world.sandboxes.values()):
            raise GRPCError(Status.ALREADY_EXISTS, f"Sandbox with name '{definition.name}' already exists")
        env = {**env, **definition.environment_variables.contents}
        return await start_sandbox(self.server, app_id, definition, {tag.tag_name: tag.tag_value for tag in tags},
                                   env, v1=v1)

    def _refuse(self, definition: api_pb2.Sandbox) -> None:
        """What Modal's server refuses of a definition (messages of this server's own)."""
        if not 0 < definition.timeout_secs <= MAX_TIMEOUT:
            raise GRPCError(Status.INVALID_ARGUMENT,
                            f"Sandbox timeout must be between 1 and {MAX_TIMEOUT} seconds, got {definition.timeout_secs}")
        for region in definition.scheduler_placement.regions:
            if not REGION.match(region):
                raise GRPCError(Status.INVALID_ARGUMENT, f"Unknown region: {region!r}")
        gpu = definition.resources.gpu_config.gpu_type
        if gpu and gpu.upper() not in GPU_TYPES:
            raise GRPCError(Status.INVALID_ARGUMENT, f"Unknown GPU type: {gpu!r}")
        if definition.image_id and definition.image_id not in self.world.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {definition.image_id} not found")
        for mount in definition.volume_mounts:
            if mount.volume_id not in self.world.volumes:
                raise GRPCError(Status.NOT_FOUND, f"Volume {mount.volume_id} not found")

    async def SandboxGetTunnelsV2(self, stream: Any) -> None:
        """``tunnels()``: a running sandbox's tunnels (tunnels.py), one per port it declared."""
        from .tunnels import tunnels_of

        request = await stream.recv_message()
        sandbox = self._sandbox(request.sandbox_id)
        tunnels = await tunnels_of(self.server, sandbox)
        await stream.send_message(api_pb2.SandboxGetTunnelsResponse(
            result=api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS), tunnels=tunnels))

    SandboxGetTunnels = SandboxGetTunnelsV2  # V1's

    async def SandboxGetTaskIdV2(self, stream: Any) -> None:
        """Before the first exec: its task (a finished sandbox has none: ConflictError)."""
        request = await stream.recv_message()
        sandbox = self._sandbox(request.sandbox_id)
        if sandbox.running:
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse(task_id=sandbox.task_id))
        else:
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse(task_result=sandbox.result))

    SandboxGetTaskId = SandboxGetTaskIdV2  # V1's

    async def TaskGetCommandRouterAccess(self, stream: Any) -> None:
        """V1's way to the command router: by task."""
        request = await stream.recv_message()
        if self.world.sandbox_by_task(request.task_id) is None:
            raise GRPCError(Status.NOT_FOUND, f"Task {request.task_id} not found")
        await stream.send_message(api_pb2.TaskGetCommandRouterAccessResponse(
            url=self.server.url, jwt=self.server.new_jwt()))

    async def SandboxGetCommandRouterAccess(self, stream: Any) -> None:
        """Where the sandbox's command router is (this server, plain HTTP/2 on localhost)."""
        request = await stream.recv_message()
        if request.sandbox_id:
            self._sandbox(request.sandbox_id)
        await stream.send_message(api_pb2.SandboxGetCommandRouterAccessResponse(
            url=self.server.url, jwt=self.server.new_jwt()))

    async def SandboxWaitV2(self, stream: Any) -> None:
        """``poll()`` (timeout 0) and ``wait()`` (long polls): the result, or none yet."""
        request = await stream.recv_message()
        sandbox = self._sandbox(request.sandbox_id)
        if sandbox.running and request.timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sandbox.ended.wait(), request.timeout)
        await stream.send_message(api_pb2.SandboxWaitResponse(
            result=sandbox.result, metadata=self._metadata(sandbox)))

    async def SandboxListV2(self, stream: Any) -> None:
        """``Sandbox.list(app_id=, tags=)``: running ones (unless asked for all), newest first,
        having at least the tags, a page before ``before_timestamp``."""
        request = await stream.recv_message()
        wanted = {tag.tag_name: tag.tag_value for tag in request.tags}
        before = request.before_timestamp or float("inf")
        found = sorted((sandbox for sandbox in self.world.sandboxes.values()
                        if (not request.app_id or sandbox.app_id == request.app_id)
                        and (sandbox.running or request.include_finished) and sandbox.created_at < before
                        and all(sandbox.tags.get(key) == value for key, value in wanted.items())),
                       key=lambda sandbox: -sandbox.created_at)[:100]
        await stream.send_message(api_pb2.SandboxListResponse(sandboxes=[
            api_pb2.SandboxInfo(id=sandbox.id, created_at=sandbox.created_at, app_id=sandbox.app_id,
                                name=sandbox.name, image_id=sandbox.image_id,
                                tags=[api_pb2.SandboxTag(tag_name=key, tag_value=value)
                                      for key, value in sandbox.tags.items()],
                                task_info=api_pb2.TaskInfo(id=sandbox.task_id, result=sandbox.result),
                                metadata=self._metadata(sandbox)) for sandbox in found]))

    SandboxWait = SandboxWaitV2  # V1's
    SandboxList = SandboxListV2

    async def SandboxGetFromNameV2(self, stream: Any) -> None:
        """``Sandbox.from_name(app_name, name, include_terminated=...)``."""
        await self._from_name(stream)

    async def SandboxGetFromName(self, stream: Any) -> None:
        """``Sandbox.from_name`` asks V1's lookup when V2's found nothing (so does this one)."""
        await self._from_name(stream)

    async def _from_name(self, stream: Any) -> None:
        request = await stream.recv_message()
        app_id = self.world.apps.get(request.app_name)
        named = sorted((sandbox for sandbox in self.world.sandboxes.values()
                        if sandbox.app_id == app_id and app_id and sandbox.name == request.sandbox_name),
                       key=lambda sandbox: -sandbox.created_at)
        running = [sandbox for sandbox in named if sandbox.running]
        chosen = running[0] if running else named[0] if named and request.include_terminated else None
        if chosen is None:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox with name '{request.sandbox_name}' not found "
                                              f"in App '{request.app_name}'")
        await stream.send_message(api_pb2.SandboxGetFromNameResponse(sandbox_id=chosen.id,
                                                                     metadata=self._metadata(chosen)))

    async def SandboxTagsGetV2(self, stream: Any) -> None:
        request = await stream.recv_message()
        sandbox = self._sandbox(request.sandbox_id)
        await stream.send_message(api_pb2.SandboxTagsGetResponse(tags=[
            api_pb2.SandboxTag(tag_name=key, tag_value=value) for key, value in sandbox.tags.items()]))

    SandboxTagsGet = SandboxTagsGetV2  # V1's

    async def SandboxTagsSetV2(self, stream: Any) -> None:
        request = await stream.recv_message()
        sandbox = self._sandbox(request.sandbox_id)
        sandbox.tags = {tag.tag_name: tag.tag_value for tag in request.tags}
        await stream.send_message(empty_pb2.Empty())

    async def SandboxTerminateV2(self, stream: Any) -> None:
        """``terminate()``: nothing on a finished sandbox."""
        request = await stream.recv_message()
        sandbox = self._sandbox(request.sandbox_id)
        await end_sandbox(self.server, sandbox, api_pb2.GenericResult.GENERIC_STATUS_TERMINATED)
        await stream.send_message(api_pb2.SandboxTerminateResponse())

    SandboxTerminate = SandboxTerminateV2  # V1's
