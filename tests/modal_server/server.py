"""The server's life: a grpclib server for Modal's control plane and a sandbox's task command
router (one port), an HTTP server for Volume file blocks, both on 127.0.0.1 with ports the
system picks, on an event loop in a thread of the test's process; faults to inject; calls
counted, and those it does not implement recorded.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import secrets as random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from grpclib import GRPCError, Status
from grpclib.const import Cardinality
from grpclib.server import Server

from .state import LABEL, World, spawn
from .tunnels import TunnelAuthority

T = TypeVar("T")
TOKEN_ID = "ak-mngr-test"
TOKEN_SECRET = "as-mngr-test"
SLOW_CALL = 10.0  # seconds: a call handled slower than this is reported on stderr (the engine is slow)


def with_unimplemented(base: type) -> type:
    """``base`` (a generated servicer base) with every method answering UNIMPLEMENTED, naming
    itself: a call the SDK starts making shows up as a failing test, not as a silent gap."""

    def unimplemented(name: str) -> Callable[..., Awaitable[None]]:
        async def answer(self: Any, stream: Any) -> None:
            raise GRPCError(Status.UNIMPLEMENTED, f"the local Modal test server does not implement {name} "
                                                  "(tests/modal_server: docs/modal-test-server.md says how to add it)")
        answer.__name__ = name
        return answer

    return type(f"{base.__name__}Unimplemented", (base,),
                {name: unimplemented(name) for name in base.__abstractmethods__})  # type: ignore[attr-defined]


@dataclass
class Fault:
    """What happens to the next ``times`` calls of ``method``."""

    method: str
    times: int
    status: Status | None = None  # answer with this error instead
    message: str = ""
    delay: float = 0.0  # seconds before handling the call
    lose_reply: bool = False  # handle it, then answer with ``status`` as if the reply were lost
    then_offline: bool = False  # after losing the reply, stop answering at all


class Faults:
    """Faults to inject, set from the test's thread, taken by the server's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def fail(self, method: str, *, times: int = 1, status: Status = Status.UNAVAILABLE,
             message: str = "injected fault") -> None:
        self._add(Fault(method, times, status, message))

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        self._add(Fault(method, times, delay=seconds))

    def lose_reply(self, method: str, *, times: int = 1, status: Status = Status.UNAVAILABLE,
                   then_offline: bool = False) -> None:
        """The call is carried out, its reply lost; with ``then_offline`` the server then goes
        offline (``ModalServer.go_offline``), as when the network fails mid-call."""
        self._add(Fault(method, times, status, "connection lost before the reply", lose_reply=True,
                        then_offline=then_offline))

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def take(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.method == method and fault.times > 0:
                    fault.times -= 1
                    return fault
            return None


class _Replies:
    """The stream a handler answers on: what it sends is recorded (for replaying a retried
    call) and, when the reply is to be lost, goes nowhere."""

    def __init__(self, stream: Any, lose: bool) -> None:
        self._stream = stream
        self._lose = lose
        self.sent: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def send_message(self, message: Any, **kwargs: Any) -> None:
        self.sent.append(message)
        if not self._lose:
            await self._stream.send_message(message, **kwargs)


class _DroppableServer(Server):
    """A grpclib server whose connections can be cut (grpclib's ``close`` keeps them serving)."""

    def __init__(self, handlers: list[Any]) -> None:
        super().__init__(handlers)
        self.transports: list[asyncio.BaseTransport] = []

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        made = protocol.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            self.transports.append(transport)
            made(transport)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol

    def drop_connections(self) -> None:
        for transport in self.transports:
            transport.abort()  # type: ignore[attr-defined]
        self.transports.clear()


class ModalServer:
    """A local Modal for the SDK: ``env`` points it here (``MODAL_SERVER_URL``, a token)."""

    def __init__(self, root: Path, base_image: str, docker_client: Any) -> None:
        self.world = World(root=root, key=random.token_hex(6), base_image=base_image)
        self.tunnel_authority = TunnelAuthority(root / "tunnels")  # what a client of the tunnels trusts
        self.docker = docker_client
        self.faults = Faults()
        self.calls: collections.Counter[str] = collections.Counter()
        self.unimplemented: list[str] = []  # methods called that the server does not implement
        self.port = 0
        self.blocks_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._jwts: set[str] = set()
        self._answered: dict[tuple[str, str], list[Any]] = {}
        self._grpc: _DroppableServer | None = None

    # -- what the code under test needs --------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"MODAL_SERVER_URL": self.url, "MODAL_TOKEN_ID": TOKEN_ID, "MODAL_TOKEN_SECRET": TOKEN_SECRET}

    def blocks_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.blocks_port}/{path}"

    # -- what tests look at and do --------------------------------------------------------------

    def sandboxes(self, *, running_only: bool = False) -> list[dict[str, Any]]:
        """Every sandbox made, newest first: id, name, tags, running, returncode (as the SDK
        reports it), the definition the SDK sent and the environment it asked for."""

        async def read() -> list[dict[str, Any]]:
            from modal.sandbox._common import _result_returncode

            return [{"id": sandbox.id, "name": sandbox.name, "tags": dict(sandbox.tags), "running": sandbox.running,
                     "returncode": _result_returncode(sandbox.result), "definition": sandbox.definition,
                     "container": sandbox.container,
                     "env": dict(sandbox.env), "image_id": sandbox.image_id}
                    for sandbox in sorted(self.world.sandboxes.values(), key=lambda sandbox: -sandbox.created_at)
                    if sandbox.running or not running_only]

        return self.run(read)

    def volume_names(self) -> list[str]:
        async def read() -> list[str]:
            return sorted(volume.name for volume in self.world.volumes.values())

        return self.run(read)

    def delete_volume(self, name: str) -> None:
        """A Volume deleted behind the client's back (``modal volume delete NAME``)."""

        async def delete() -> None:
            volume = self.world.volume_named(name)
            assert volume is not None, f"no Volume {name}"
            self.world.delete_volume(volume.id)

        self.run(delete)

    def create_secret(self, name: str, values: dict[str, str]) -> None:
        """A named Secret, as ``modal secret create`` would make it."""
        from .state import new_id

        async def create() -> None:
            self.world.secrets[new_id("st")] = (name, dict(values))

        self.run(create)

    def end_sandbox(self, sandbox_id: str, how: str) -> None:
        """Modal ends a sandbox: ``terminated`` (as by ``terminate()``), ``timeout`` (its
        timeout passed), or ``crashed`` (its container killed: the entrypoint dies of SIGKILL)."""
        from modal_proto import api_pb2

        from .sandboxes import end_sandbox

        sandbox = self.world.sandboxes[sandbox_id]
        if how == "crashed":
            self.docker.containers.get(sandbox.container).kill()
            self.run(sandbox.ended.wait)
            return
        status = {"terminated": api_pb2.GenericResult.GENERIC_STATUS_TERMINATED,
                  "timeout": api_pb2.GenericResult.GENERIC_STATUS_TIMEOUT}[how]
        self.run(end_sandbox(self, sandbox, status))

    # -- life ---------------------------------------------------------------------------------------

    def start(self) -> None:
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="modal-test-server", daemon=True)
        self._thread.start()
        ready.result(timeout=30)

    def stop(self) -> None:
        """End every sandbox, remove every container and image made, stop serving."""
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self.run(self._end_everything(), timeout=300)
        self._sweep()
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._loop = None

    def run(self, make: Callable[[], Awaitable[T]] | Awaitable[T], timeout: float = 120) -> T:
        """Run a coroutine on the server's loop from the test's thread (to read or change state)."""
        assert self._loop is not None
        coroutine = make() if callable(make) else make
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def _run(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # reported to start() if it never got going
            if not ready.done():
                ready.set_exception(exc)
        finally:
            loop.close()

    async def _serve(self, ready: Future[None]) -> None:
        from aiohttp import web

        from .blocks import block_routes

        self._stop = asyncio.Event()
        await self._online()
        assert self._grpc is not None and self._grpc._server is not None
        self.port = self._grpc._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(block_routes(self))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.blocks_port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self._offline()
            await runner.cleanup()

    def _sweep(self) -> None:
        """Whatever of this server's is still on the engine (a container made as it stopped, an
        image a container still used), found by its label."""
        if self.docker is None:
            return
        label = f"{LABEL}={self.world.key}"
        with contextlib.suppress(Exception):
            for container in self.docker.containers.list(all=True, filters={"label": label}):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            for image in self.docker.images.list(filters={"label": label}):
                for tag in image.tags:
                    with contextlib.suppress(Exception):
                        self.docker.images.remove(tag, force=True)

    async def _end_everything(self) -> None:
        from .sandboxes import end_sandbox

        for sandbox in list(self.world.sandboxes.values()):
            await end_sandbox(self, sandbox, None)
        for image in list(self.world.images.values()):
            if image.made_by_server:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.docker.images.remove, image.docker_tag, force=True)

    # -- every call passes here ---------------------------------------------------------------------

    def wrap(self, method: str, handler: Callable[[Any], Awaitable[None]], *, router: bool,
             unary: bool) -> Callable[..., Any]:
        async def handle(stream: Any) -> None:
            self.calls[method] += 1
            fault = self.faults.take(method)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None and not fault.lose_reply:
                raise GRPCError(fault.status, fault.message)
            self._check_auth(stream, router=router)
            lose = fault is not None and fault.lose_reply
            replies = _Replies(stream, lose)
            # The SDK retries a call with the key it first sent: Modal answers a retry with the
            # first answer instead of doing it twice (a create whose reply was lost).
            key = (method, str((stream.metadata or {}).get("x-idempotency-key", ""))) if unary else None
            try:
                if key is not None and key[1] and key in self._answered:
                    await stream.recv_message()
                    for message in self._answered[key]:
                        await replies.send_message(message)
                else:
                    started = time.monotonic()
                    await handler(replies)
                    took = time.monotonic() - started
                    if took > SLOW_CALL and not method.startswith(("TaskExecStdioRead", "TaskExecWait", "SandboxWait")):
                        print(f"modal test server: {method} took {took:.1f} s", file=sys.stderr)
                    if key is not None and key[1]:
                        self._answered[key] = replies.sent
            except GRPCError as exc:
                if exc.status == Status.UNIMPLEMENTED:
                    self.unimplemented.append(method)
                    print(f"modal test server: UNIMPLEMENTED {method}", file=sys.stderr)
                raise
            if lose and fault is not None and fault.status is not None:
                if fault.then_offline:
                    asyncio.get_running_loop().call_soon(lambda: spawn(self._offline()))
                raise GRPCError(fault.status, fault.message)

        return handle

    # -- the network ------------------------------------------------------------------------------

    def go_offline(self) -> None:
        """Stop answering: the port is closed, every connection dropped (state is kept)."""
        self.run(self._offline)

    def go_online(self) -> None:
        """Answer again, on the same port."""
        self.run(self._online)

    async def _offline(self) -> None:
        if self._grpc is not None:
            grpc, self._grpc = self._grpc, None
            grpc.close()
            grpc.drop_connections()
            await grpc.wait_closed()

    async def _online(self) -> None:
        from .control import ControlPlane
        from .router import CommandRouter

        if self._grpc is None:
            grpc = _DroppableServer([ControlPlane(self), CommandRouter(self)])
            await grpc.start("127.0.0.1", self.port)
            self._grpc = grpc

    def _check_auth(self, stream: Any, *, router: bool) -> None:
        metadata = stream.metadata or {}
        if router:
            bearer = str(metadata.get("authorization", ""))
            if bearer.removeprefix("Bearer ") not in self._jwts:
                raise GRPCError(Status.UNAUTHENTICATED, "invalid or missing command router token")
            return
        if (metadata.get("x-modal-token-id"), metadata.get("x-modal-token-secret")) != (TOKEN_ID, TOKEN_SECRET):
            raise GRPCError(Status.UNAUTHENTICATED, "Invalid token id or secret")

    def new_jwt(self) -> str:
        """A token in JWT form (the SDK reads its expiry), good for an hour."""

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

        token = ".".join([part({"alg": "none"}), part({"exp": int(time.time()) + 3600,
                                                        "nonce": random.token_hex(4)}), "x"])
        self._jwts.add(token)
        return token


def served(base: type) -> type:
    """A servicer class on ``base`` whose every call goes through ``ModalServer.wrap``."""
    router = "TaskCommandRouter" in base.__name__

    class Served(with_unimplemented(base)):  # type: ignore[misc]
        def __init__(self, server: ModalServer) -> None:
            self.server = server
            self.world = server.world

        def __mapping__(self) -> dict[str, Any]:
            mapping = super().__mapping__()
            return {path: handler._replace(func=self.server.wrap(
                        path.rsplit("/", 1)[1], handler.func, router=router,
                        unary=handler.cardinality == Cardinality.UNARY_UNARY))
                    for path, handler in mapping.items()}

    return Served


@contextlib.contextmanager
def running(root: Path, base_image: str, docker_client: Any) -> Iterator[ModalServer]:
    server = ModalServer(root, base_image, docker_client)
    server.start()
    try:
        yield server
    finally:
        server.stop()
