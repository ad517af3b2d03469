"""Controls for tests: what Modal does on its own, and cleaning up. Not part of the SDK.

In a test process import it as ``tests.modal_standin.modal._standin`` (so the real ``modal``
stays importable there); from a shell, ``PYTHONPATH=tests/modal_standin python -m
modal._standin timeout SANDBOX_ID`` (or ``terminate``, ``secret NAME KEY=VALUE...``, ``cleanup``).
Every function works on the state of ``$MNGR_MODAL_STANDIN_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from typing import Any

from . import _core
from .sandbox import _end


def simulate_timeout(sandbox_id: str) -> None:
    """Modal ends the sandbox for its ``timeout``: as if it ran out of time now."""
    with _core.state() as state:
        _end(state["sandboxes"][sandbox_id], "timeout")


def simulate_termination(sandbox_id: str) -> None:
    """Modal ends the sandbox for a reason of its own (SandboxTerminatedError for waiters)."""
    with _core.state() as state:
        _end(state["sandboxes"][sandbox_id], "terminated")


def create_secret(name: str, env: dict[str, str], environment_name: str | None = None) -> None:
    """A Secret stored in Modal, for ``Secret.from_name`` (``modal secret create``)."""
    with _core.state() as state:
        state["secrets"][f"{_core.environment(environment_name)}/{name}"] = {"id": _core.new_id("st"),
                                                                            "env": dict(env)}


def sandbox_record(sandbox_id: str) -> dict[str, Any]:
    """What the stand-in knows of a sandbox: its container, tags, result and the options it was
    created with (``options``), settled first."""
    from .sandbox import _settle

    with _core.state() as state:
        record = state["sandboxes"][sandbox_id]
        _settle(record)
        copied: dict[str, Any] = json.loads(json.dumps(record))
        return copied


def sandbox_records() -> list[dict[str, Any]]:
    """``sandbox_record`` of every sandbox, newest first."""
    with _core.state() as state:
        ids = list(state["sandboxes"])
    records = [sandbox_record(sandbox_id) for sandbox_id in ids]
    return sorted(records, key=lambda record: record["created_at"], reverse=True)


def docker_objects() -> dict[str, list[str]]:
    """The ids of the Docker containers, images and volumes made for this state directory."""
    client = _core.docker_client()
    label = f"{_core.LABEL}={_core.key()}"
    return {
        "containers": [container.id for container in client.containers.list(all=True, filters={"label": label})],
        "images": [image.id for image in client.images.list(filters={"label": label})],
        "volumes": [volume.name for volume in client.volumes.list(filters={"label": label})],
    }


def cleanup() -> None:
    """Remove every Docker object of this state directory, and the state itself."""
    import docker

    client = _core.docker_client()
    label = f"{_core.LABEL}={_core.key()}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for image in client.images.list(filters={"label": label}):
        for reference in image.tags or [image.id]:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(reference, force=True)
    for volume in client.volumes.list(filters={"label": label}):
        for attempt in range(10):  # a container just removed may hold it for a moment
            try:
                volume.remove(force=True)
                break
            except docker.errors.APIError:
                if attempt == 9:
                    raise
                time.sleep(0.2)
    shutil.rmtree(_core.standin_dir(), ignore_errors=True)


def main(argv: list[str]) -> int:
    commands = {"timeout": simulate_timeout, "terminate": simulate_termination}
    if len(argv) == 2 and argv[0] in commands:
        commands[argv[0]](argv[1])
    elif len(argv) >= 2 and argv[0] == "secret":
        create_secret(argv[1], dict(item.split("=", 1) for item in argv[2:]))
    elif argv == ["cleanup"]:
        cleanup()
    else:
        print("usage: python -m modal._standin timeout|terminate SANDBOX_ID | secret NAME K=V... | cleanup",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
