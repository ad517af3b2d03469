"""The docker provider finds its engine as the docker CLI does: DOCKER_HOST, else the current
docker context (DOCKER_CONTEXT, else the docker config's currentContext).

The engine here listens on a socket of the test's own, named only by a context: a relay that
passes every byte between it and the tests' dockerd, counting the connections it carries, so
that the test knows the engine was reached there and not on the default socket."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


class EngineRelay:
    """A unix socket at ``path`` whose every connection is passed on to the engine's."""

    def __init__(self, path: Path, engine_socket: str) -> None:
        self.path = path
        self.engine_socket = engine_socket
        self.connections = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.engine_socket)
            for source, target in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        # Half-closes are passed on: `docker exec -i` ends its input that way.
        try:
            while data := source.recv(1 << 16):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()


def _write_context(config_dir: Path, name: str, host: str) -> None:
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {},
                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))


@pytest.fixture
def in_context(sandbox, docker_client, docker_base_image: str) -> Iterator:
    """The sandbox, with a docker config whose current context is ``relay``: the engine,
    reached through a relay socket of its own. Also a context ``nowhere`` (nothing listens)."""
    engine_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not engine_host.startswith("unix://"):
        pytest.skip(f"the relay passes on to a unix socket; the engine is at {engine_host}")
    short = Path(tempfile.mkdtemp(prefix="mngr-ctx-", dir="/tmp"))  # sun_path holds 108 bytes
    relay = EngineRelay(short / "engine.sock", engine_host[len("unix://"):])
    config_dir = sandbox.root / "docker-config"
    _write_context(config_dir, "relay", f"unix://{relay.path}")
    _write_context(config_dir, "nowhere", f"unix://{short}/nothing.sock")
    (config_dir / "config.json").write_text(json.dumps({"auths": {}, "currentContext": "relay"}))
    namespace = "t" + uuid.uuid4().hex[:10]
    sandbox.env.pop("DOCKER_HOST", None)
    sandbox.env.pop("DOCKER_CONTEXT", None)
    sandbox.env.update(DOCKER_CONFIG=str(config_dir), MNGR_PROVIDERS__DOCKER__NAMESPACE=namespace,
                       MNGR_PROVIDERS__DOCKER__BASE_IMAGE=docker_base_image)
    sandbox.relay = relay
    sandbox.nowhere = f"unix://{short}/nothing.sock"
    try:
        yield sandbox
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            container.remove(force=True)
        relay.close()
        for path in short.iterdir():
            path.unlink()
        short.rmdir()


def test_the_current_context_is_the_engine_every_command_uses(in_context) -> None:
    created = in_context.mngr("create", "boxed", "command", "--in", "docker", "--no-connect", "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    assert in_context.relay.connections > 0
    before = in_context.relay.connections
    listed = in_context.mngr("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    agents = json.loads(listed.stdout)["agents"]
    assert [(agent["name"], agent["provider"], agent["state"]) for agent in agents] == [
        ("boxed", "docker", "RUNNING")]
    assert in_context.relay.connections > before
    ran = in_context.mngr("exec", "boxed", "hostname")
    assert (ran.returncode, ran.stdout) == (0, "boxed\n"), ran.stderr
    destroyed = in_context.mngr("destroy", "-f", "boxed")
    assert destroyed.returncode == 0, destroyed.stderr


def test_docker_context_overrides_the_config_and_docker_host_overrides_both(in_context) -> None:
    created = in_context.mngr("create", "kept", "command", "--in", "docker", "--no-connect", "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    elsewhere = in_context.mngr("list", "--format", "json", env={"DOCKER_CONTEXT": "nowhere"})
    assert elsewhere.returncode == 1
    (error,) = json.loads(elsewhere.stdout)["errors"]
    assert f"no Docker engine answers at {in_context.nowhere} (docker context 'nowhere')" in error["error"]
    engine_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    direct = in_context.mngr("list", "--format", "{name}", env={"DOCKER_CONTEXT": "nowhere",
                                                                "DOCKER_HOST": engine_host})
    assert (direct.returncode, direct.stdout) == (0, "kept\n"), direct.stderr


def test_a_context_that_does_not_exist_is_named(in_context) -> None:
    created = in_context.mngr("create", "lost", "command", "--in", "docker", "--no-connect", "--", "true",
                              env={"DOCKER_CONTEXT": "no-such-context"})
    assert created.returncode != 0
    assert created.stderr == ("mngr: error: docker context 'no-such-context' (from DOCKER_CONTEXT) does not "
                              "exist (`docker context ls` lists those there are)\n")
    assert in_context.relay.connections == 0
