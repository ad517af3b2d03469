"""Sandboxes as Docker containers: made from a sandbox definition, watched until they end,
ended (terminated, timed out, or their entrypoint exiting), snapshotted with ``docker commit``.

A container runs with Docker's init as PID 1, which forwards signals to the entrypoint as
Modal's does; a sandbox's container is removed when it ends, so its files are gone unless they
were on a Volume (a directory of this machine, bind-mounted) or snapshotted.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from modal_proto import api_pb2

from .state import Image, Sandbox, new_id, spawn, v1_id
from .tunnels import close_tunnels

if TYPE_CHECKING:
    from .server import ModalServer

SNAPSHOT_REPOSITORY = "mngr-modal-test-snapshot"
GenericResult = api_pb2.GenericResult


def container_options(server: ModalServer, sandbox_id: str, definition: api_pb2.Sandbox,
                      env: dict[str, str]) -> dict[str, Any]:
    world = server.world
    options: dict[str, Any] = {
        "name": f"mngr-modal-test-{world.key}-{sandbox_id}", "labels": world.labels(sandbox=sandbox_id),
        "environment": env, "detach": True, "init": True,
        "volumes": {str(world.volumes[mount.volume_id].path): {"bind": mount.mount_path,
                                                                "mode": "ro" if mount.read_only else "rw"}
                    for mount in definition.volume_mounts},
    }
    if definition.workdir:
        options["working_dir"] = definition.workdir
    access = definition.network_access.network_access_type
    if definition.block_network or access == api_pb2.NetworkAccess.BLOCKED:
        options["network_mode"] = "none"
    elif world.host_network:
        options["network_mode"] = "host"
    resources = definition.resources
    if resources.milli_cpu:
        options["cpu_shares"] = max(2, resources.milli_cpu * 1024 // 1000)  # a request weighs, a limit caps
    if resources.milli_cpu_max:
        options["nano_cpus"] = resources.milli_cpu_max * 1_000_000
    if resources.memory_mb:
        options["mem_reservation"] = f"{resources.memory_mb}m"
    if resources.memory_mb_max:
        options["mem_limit"] = f"{resources.memory_mb_max}m"
    return options


async def start_sandbox(server: ModalServer, app_id: str, definition: api_pb2.Sandbox, tags: dict[str, str],
                        env: dict[str, str], *, v1: bool) -> Sandbox:
    """A running sandbox; ``v1`` gives it ids of V1's shape (the SDK picks its calls by them)."""
    world = server.world
    sandbox_id = v1_id("sb") if v1 else new_id("sb")
    image = world.images[definition.image_id].docker_tag if definition.image_id else world.base_image
    options = container_options(server, sandbox_id, definition, env)
    command = list(definition.entrypoint_args) or None
    container = await asyncio.to_thread(server.docker.containers.run, image, command, **options)
    sandbox = Sandbox(id=sandbox_id, task_id=v1_id("ta") if v1 else new_id("ta", "V"), app_id=app_id, name=definition.name, tags=tags,
                      image_id=definition.image_id, container=container.id, definition=definition, env=env)
    world.sandboxes[sandbox_id] = sandbox
    _watch(server, sandbox)
    if definition.timeout_secs:
        asyncio.get_running_loop().call_later(
            definition.timeout_secs, lambda: spawn(end_sandbox(server, sandbox, GenericResult.GENERIC_STATUS_TIMEOUT)))
    return sandbox


def _watch(server: ModalServer, sandbox: Sandbox) -> None:
    """A thread per sandbox waits for its container to exit (the executor's few threads would
    all be taken by long waits), then settles the sandbox on the server's loop."""
    loop = asyncio.get_running_loop()

    def wait() -> None:
        try:
            code = int(server.docker.containers.get(sandbox.container).wait().get("StatusCode", 1))
        except Exception:
            code = 1  # removed under us: the server ended it
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            loop.call_soon_threadsafe(lambda: spawn(_exited(server, sandbox, code)))

    threading.Thread(target=wait, name=f"modal-test-watch-{sandbox.id}", daemon=True).start()


async def _exited(server: ModalServer, sandbox: Sandbox, code: int) -> None:
    if sandbox.running:
        status = GenericResult.GENERIC_STATUS_SUCCESS if code == 0 else GenericResult.GENERIC_STATUS_FAILURE
        sandbox.result = GenericResult(status=status, exitcode=code)
    await _remove_container(server, sandbox)


async def end_sandbox(server: ModalServer, sandbox: Sandbox, status: int | None) -> None:
    """End a running sandbox with ``status`` (TERMINATED, TIMEOUT; None: as the server stops)."""
    if sandbox.running:
        sandbox.result = GenericResult(status=status or GenericResult.GENERIC_STATUS_TERMINATED,  # type: ignore[arg-type]
                                       exception="Sandbox terminated" if status != GenericResult.GENERIC_STATUS_TIMEOUT
                                       else "Sandbox timed out")
    await _remove_container(server, sandbox)


async def _remove_container(server: ModalServer, sandbox: Sandbox) -> None:
    def remove() -> None:
        with contextlib.suppress(Exception):
            server.docker.containers.get(sandbox.container).remove(force=True)

    await asyncio.to_thread(remove)
    close_tunnels(sandbox)
    for running in sandbox.execs.values():
        if running.process is not None and running.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                running.process.kill()
    sandbox.ended.set()


async def snapshot(server: ModalServer, sandbox: Sandbox) -> Image:
    """The sandbox's file system as an image (what is mounted, Volumes, is not in it)."""
    image_id = new_id("im")

    def commit() -> None:
        container = server.docker.containers.get(sandbox.container)
        container.commit(repository=SNAPSHOT_REPOSITORY, tag=image_id, conf={"Labels": server.world.labels()})

    await asyncio.to_thread(commit)
    image = Image(image_id, f"{SNAPSHOT_REPOSITORY}:{image_id}", made_by_server=True)
    server.world.images[image_id] = image
    return image
