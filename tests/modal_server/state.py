"""What the local Modal server holds: apps, images, volumes, secrets, sandboxes and their execs.

Everything lives in the memory of the server's process (the test's); sandboxes are containers
on the tests' Docker engine, images are Docker images, Volumes are directories on this machine
bind-mounted into the containers. Docker calls block, so the servicers run them in threads.
"""

from __future__ import annotations

import asyncio
import secrets as random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modal_proto import api_pb2

LABEL = "mngr.modal-test-server"  # on every container and image the server makes: the value is its key


_BACKGROUND: set[asyncio.Future[Any]] = set()


def spawn(coroutine: Any) -> asyncio.Future[Any]:
    """Run ``coroutine`` on the loop in the background, held until it ends (the loop keeps only
    weak references to its tasks)."""
    task = asyncio.ensure_future(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


def new_id(prefix: str, suffix: str = "") -> str:
    # 24 characters after "sb-": the SDK reads a 22-character id as a V1 sandbox's.
    return f"{prefix}-{random.token_hex(12)}{suffix}"


def v1_id(prefix: str) -> str:
    """An id of a V1 sandbox's shape: 22 letters and digits after the prefix."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return f"{prefix}-" + "".join(random.choice(alphabet) for _ in range(22))


@dataclass
class Image:
    id: str
    docker_tag: str
    made_by_server: bool  # a build or a snapshot: removed with the server, and by ImageDelete


@dataclass
class Volume:
    id: str
    name: str
    path: Path  # its files
    created_at: float = field(default_factory=time.time)


@dataclass
class Exec:
    """One exec in a sandbox: its output kept whole, so a reader can resume at any offset."""

    id: str
    process: asyncio.subprocess.Process | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_done: bool = False
    stderr_done: bool = False
    stdin_offset: int = 0  # bytes of stdin taken so far (writes carry their offset: retries are not doubled)
    stdin_closed: bool = False
    exit_code: int | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    pty_master: int | None = None


@dataclass
class Sandbox:
    id: str
    task_id: str
    app_id: str
    name: str
    tags: dict[str, str]
    image_id: str
    container: str  # the Docker container's id
    definition: api_pb2.Sandbox  # as created: tests read options from it
    env: dict[str, str]
    created_at: float = field(default_factory=time.time)
    result: api_pb2.GenericResult | None = None
    execs: dict[str, Exec] = field(default_factory=dict)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    tunnels: dict[int, asyncio.Server] = field(default_factory=dict)  # container port -> its TLS listener

    @property
    def running(self) -> bool:
        return self.result is None


@dataclass
class World:
    """All the server's objects, by id (names are looked up by scanning: the counts are small)."""

    root: Path  # Volumes' files live under it
    key: str  # the label value of this server's Docker objects
    base_image: str  # what Image.debian_slim() stands for: the tests' Debian image
    # Sandboxes on the engine's host network: they reach this machine's loopback, where the
    # tests' model server stands for the model APIs a sandbox on Modal reaches over the internet.
    host_network: bool = False
    apps: dict[str, str] = field(default_factory=dict)  # name -> id
    images: dict[str, Image] = field(default_factory=dict)
    built: dict[str, str] = field(default_factory=dict)  # an image definition's digest -> the image built for it
    volumes: dict[str, Volume] = field(default_factory=dict)
    secrets: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # id -> (name, values)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    blocks: dict[bytes, bytes] = field(default_factory=dict)  # Volume uploads, by sha256
    files: dict[str, bytes] = field(default_factory=dict)  # mount (build context) files, by sha256 hex
    mounts: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # id -> (name, sha256, mode)

    def volume_named(self, name: str) -> Volume | None:
        return next((volume for volume in self.volumes.values() if volume.name == name), None)

    def new_volume(self, name: str) -> Volume:
        volume_id = new_id("vo")
        path = self.root / "volumes" / volume_id
        path.mkdir(parents=True)
        volume = Volume(volume_id, name, path)
        self.volumes[volume_id] = volume
        return volume

    def delete_volume(self, volume_id: str) -> None:
        volume = self.volumes.pop(volume_id)
        shutil.rmtree(volume.path, ignore_errors=True)

    def sandbox_by_task(self, task_id: str) -> Sandbox | None:
        return next((sandbox for sandbox in self.sandboxes.values() if sandbox.task_id == task_id), None)

    def labels(self, **extra: str) -> dict[str, Any]:
        return {LABEL: self.key, **extra}
