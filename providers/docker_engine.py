"""Talking to the Docker engine: quick questions over its unix socket, lifecycle through the SDK.

``mngr list`` (and so every command that finds an agent) asks the engine which containers
are mngr's, so that question must cost little: a raw HTTP request on the engine's unix
socket, a few milliseconds, instead of loading the docker SDK (requests, urllib3 and
more: about 150 ms here). Even http.client costs ~20 ms to import (it loads the email
package), so the few lines of HTTP/1.1 needed are written out here. Everything that
changes something (images built, containers created, stopped, committed, removed) goes
through the docker SDK, loaded only then; so do questions to an engine that is not on a
unix socket (``DOCKER_HOST=tcp://...``). The engine is the one the docker CLI would use:
``DOCKER_HOST``, else the current docker context.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from mngr.controller.errors import MngrError

DEFAULT_SOCKET = "/var/run/docker.sock"
API_PREFIX = "/v1.41"  # Docker 20.10 and later answer it


class EngineUnavailable(MngrError):
    """No Docker engine answers."""


def engine_address() -> str:
    """Where the engine is, found as the docker CLI finds it: ``DOCKER_HOST``, else the
    endpoint of the current context (``DOCKER_CONTEXT``, else ``currentContext`` in the docker
    config), else the default socket. Docker Desktop, colima and rootless engines are
    reached through a context."""
    address = os.environ.get("DOCKER_HOST")
    if address:
        return address
    context = current_context()
    if context is None:
        return f"unix://{DEFAULT_SOCKET}"
    return _context_endpoint(context)


def _config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def current_context() -> str | None:
    """The docker context in use, or None for the default one (the default socket)."""
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            with open(os.path.join(_config_dir(), "config.json"), encoding="utf-8") as handle:
                name = json.load(handle).get("currentContext")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            raise EngineUnavailable(f"cannot read the docker config {_config_dir()}/config.json: {exc}") from exc
    return None if not name or name == "default" else str(name)


def _context_dir(kind: str, context: str) -> str:
    import hashlib

    # The docker CLI keeps each context under the sha256 of its name.
    return os.path.join(_config_dir(), "contexts", kind, hashlib.sha256(context.encode()).hexdigest())


def _context_endpoint(context: str) -> str:
    source = "DOCKER_CONTEXT" if os.environ.get("DOCKER_CONTEXT") else f"{_config_dir()}/config.json"
    meta_path = os.path.join(_context_dir("meta", context), "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as handle:
            host = json.load(handle)["Endpoints"]["docker"]["Host"]
    except FileNotFoundError:
        raise EngineUnavailable(f"docker context {context!r} (from {source}) does not exist "
                        f"(`docker context ls` lists those there are)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineUnavailable(f"docker context {context!r} has no docker endpoint in {meta_path}: {exc}") from None
    if not isinstance(host, str) or not host:
        raise EngineUnavailable(f"docker context {context!r} has no docker endpoint in {meta_path}")
    return host


def _describe_address() -> str:
    """The engine's address, and the context it comes from if any: for messages."""
    address = engine_address()
    if os.environ.get("DOCKER_HOST"):
        return address
    context = current_context()
    return f"{address} (docker context {context!r})" if context else address


def _socket_path() -> str | None:
    address = engine_address()
    if address.startswith("unix://"):
        return address[len("unix://"):]
    return None


def request(method: str, path: str, query: dict[str, Any] | None = None, timeout: float = 30.0
            ) -> tuple[int, bytes]:
    """(status, body) of one engine API call on its unix socket; EngineUnavailable when
    nothing answers. Only for an engine on a unix socket (see ``quick``)."""
    from urllib.parse import quote, urlencode

    socket_path = _socket_path()
    assert socket_path is not None
    target = API_PREFIX + quote(path) + ("?" + urlencode(query) if query else "")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
                     f"Content-Length: 0\r\n\r\n".encode("ascii"))
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        raise EngineUnavailable(f"no Docker engine answers at {_describe_address()} ({exc.strerror})") from exc
    except OSError as exc:
        raise EngineUnavailable(f"the Docker engine at {_describe_address()} failed to answer: {exc}") from exc
    finally:
        sock.close()
    return _parse_response(b"".join(chunks))


def _parse_response(data: bytes) -> tuple[int, bytes]:
    head, separator, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise EngineUnavailable(f"the Docker engine at {engine_address()} sent no HTTP answer") from None
    if not separator:
        raise EngineUnavailable(f"the Docker engine at {engine_address()} cut its answer short")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = _unchunk(body)
    return status, body


def _unchunk(body: bytes) -> bytes:
    parts: list[bytes] = []
    position = 0
    while True:
        end = body.find(b"\r\n", position)
        if end < 0:
            raise EngineUnavailable("the Docker engine cut a chunked answer short")
        size = int(body[position:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(parts)
        parts.append(body[end + 2 : end + 2 + size])
        position = end + 2 + size + 2


def quick() -> bool:
    """Whether the engine is on a unix socket, where the raw API is used for questions."""
    return _socket_path() is not None


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")) or body.decode("utf-8", "replace")[:200]
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:200]


def inspect_container(container: str) -> dict[str, Any]:
    """What the engine knows of a container (its Config: User, Env, Labels, ...)."""
    if not quick():
        details: dict[str, Any] = sdk_client().api.inspect_container(container)
        return details
    status, body = request("GET", f"/containers/{container}/json")
    if status != 200:
        raise MngrError(f"the Docker engine refused to describe {container}: {_message(body)}")
    found: dict[str, Any] = json.loads(body)
    return found


def containers(label: str) -> list[dict[str, Any]]:
    """Every container (running or not) carrying ``label``: Names, State, Labels, Image, ..."""
    if not quick():
        client = sdk_client()
        return [container.attrs for container in client.containers.list(all=True, filters={"label": label})]
    status, body = request("GET", "/containers/json", {"all": "1", "filters": json.dumps({"label": [label]})})
    if status != 200:
        raise MngrError(f"the Docker engine refused to list containers: {_message(body)}")
    found: list[dict[str, Any]] = json.loads(body)
    return found


def archive(container: str, path: str) -> bytes | None:
    """A tar of ``path`` in ``container`` (running or stopped); None if it has no such path."""
    if not quick():
        import docker

        try:
            stream, _ = sdk_client().containers.get(container).get_archive(path)
        except docker.errors.NotFound:
            return None
        return b"".join(stream)
    status, body = request("GET", f"/containers/{container}/archive", {"path": path})
    if status == 404:
        return None
    if status != 200:
        raise MngrError(f"the Docker engine refused to read {path} in {container}: {_message(body)}")
    return body


def start(container: str) -> None:
    if not quick():
        sdk_client().containers.get(container).start()
        return
    status, body = request("POST", f"/containers/{container}/start")
    if status not in (204, 304):
        raise MngrError(f"the Docker engine could not start {container}: {_message(body)}")


def sdk_client() -> Any:
    """The docker SDK's client for the same engine (loaded on first use)."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a dependency of mngr
        raise MngrError("the docker provider needs the docker Python package") from exc
    try:
        if os.environ.get("DOCKER_HOST") or current_context() is None:
            return docker.from_env(timeout=120)
        return _context_client(docker)
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(f"no Docker engine answers at {_describe_address()}: {exc}") from exc


def _context_client(docker: Any) -> Any:
    """A client of the current context's engine, with the context's TLS files if it has any."""
    context = current_context()
    assert context is not None
    address = _context_endpoint(context)
    tls_dir = os.path.join(_context_dir("tls", context), "docker")
    tls = None
    if os.path.isdir(tls_dir):
        def tls_file(name: str) -> str | None:
            path = os.path.join(tls_dir, name)
            return path if os.path.exists(path) else None

        cert, key = tls_file("cert.pem"), tls_file("key.pem")
        tls = docker.tls.TLSConfig(ca_cert=tls_file("ca.pem"), verify=tls_file("ca.pem") is not None,
                                   client_cert=(cert, key) if cert and key else None)
    return docker.DockerClient(base_url=address, tls=tls, timeout=120,
                               use_ssh_client=address.startswith("ssh://"))
