"""The dashboard's HTTP server: the page, the listing, an agent's transcript as it grows,
and the buttons' operations, on 127.0.0.1 behind the token (guard.py).

Every operation is one of the CLI's (controller/commands) run on a worker thread, so that
the event loop answers other requests while a host is slow; the listing is renewed on a
thread of its own (fleet_watch.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..commands import transcript as history
from ..commands.agents import WorkWouldBeLost
from ..errors import UsageError
from . import actions
from .errors import error_line
from .fleet_watch import FleetWatch
from .guard import TOKEN_QUERY, Guard

if TYPE_CHECKING:
    from ..cli.app import App

STATIC = Path(__file__).resolve().parent / "static"
_STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
TOKEN_PLACEHOLDER = "__MNGR_WEB_TOKEN__"
TRANSCRIPT_TAIL = 2000  # entries shown of a long transcript; the rest: mngr transcript
KEEPALIVE_SECONDS = 5.0  # an idle event stream writes this often, and so notices a closed page
OPERATION_THREADS = 16  # operations under way at once (more wait their turn)


class Dashboard:
    def __init__(self, app: App, token: str, list_document: Callable[[], str], interval: float = 2.0) -> None:
        self.app = app
        self.guard = Guard(token)
        self.watch = FleetWatch(list_document, interval)
        self._pool = concurrent.futures.ThreadPoolExecutor(OPERATION_THREADS, thread_name_prefix="mngr-web")
        self._streams: set[threading.Event] = set()  # each open transcript's "page closed"

    def web_app(self) -> web.Application:
        application = web.Application(middlewares=[self.guard.middleware], client_max_size=1024 ** 2)
        application.on_response_prepare.append(self.guard.on_response_prepare)
        application.add_routes([
            web.get("/", self.page),
            web.get("/static/{file}", self.static),
            web.get("/api/agents", self.listing),
            web.get("/api/agents/{name}/transcript", self.transcript),
            web.post("/api/agents/{name}/{action}", self.act),
        ])
        return application

    def close(self) -> None:
        self.watch.stop()
        for closed in list(self._streams):
            closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def page(self, request: web.Request) -> web.Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return web.Response(text=html.replace(TOKEN_PLACEHOLDER, self.guard.token), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in _STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(text=(STATIC / name).read_text(encoding="utf-8"), content_type=_STATIC_FILES[name])

    async def listing(self, request: web.Request) -> web.Response:
        return web.json_response(self.watch.snapshot().as_json())

    async def act(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _answer(actions.Outcome(False, ["mngr: error: the request's body is not JSON"]), status=400)
        if not isinstance(body, dict):
            body = {}
        name = _agent_ref(request.match_info["name"], body)
        operations: dict[str, Callable[[], actions.Outcome]] = {
            "stop": lambda: actions.stop(self.app, name),
            "start": lambda: actions.start(self.app, name),
            "destroy": lambda: actions.destroy(self.app, name, bool(body.get("force"))),
            "message": lambda: actions.message(self.app, name, str(body.get("text") or "")),
            "open": lambda: actions.open_url(self.app, name, body.get("target") or None),
        }
        if action not in operations:
            raise web.HTTPNotFound()
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self._pool, operations[action])
        except WorkWouldBeLost as exc:
            return _answer(actions.Outcome(False, [error_line(exc)]), status=409, can_force=True)
        except UsageError as exc:
            return _answer(actions.Outcome(False, [error_line(exc)]), status=400)
        except Exception as exc:  # the CLI's line for it, on the page
            return _answer(actions.Outcome(False, [error_line(exc)]), status=500 if _is_defect(exc) else 400)
        finally:
            if action != "open":
                self.watch.refresh()  # the page shows the change at its next poll
        return _answer(outcome, status=200 if outcome.ok else 400)

    async def transcript(self, request: web.Request) -> web.StreamResponse:
        """``mngr transcript NAME --follow --tail N`` as a stream of server-sent events:
        ``entries`` (a list of {role, text, time}), and ``failure`` (the CLI's line) at the end."""
        name = _agent_ref(request.match_info["name"], request.query)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        closed = threading.Event()
        self._streams.add(closed)

        def put(kind: str, data: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has ended: the server is going
                loop.call_soon_threadsafe(events.put_nowait, (kind, data))

        def emit(entries: list[Any]) -> None:
            if closed.is_set():
                raise _StreamClosed
            if entries:
                put("entries", [asdict(entry) for entry in entries])

        def follow() -> None:
            try:
                history.follow_transcript(self.app, history.TranscriptRequest(name, TRANSCRIPT_TAIL), emit)
            except _StreamClosed:
                return
            except Exception as exc:
                put("failure", error_line(exc))

        threading.Thread(target=follow, name=f"mngr-web-transcript-{name}", daemon=True).start()
        try:
            while not closed.is_set():
                try:
                    kind, data = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                if kind == "failure":
                    break
        except ConnectionError:
            pass  # the page went away
        finally:
            closed.set()
            self._streams.discard(closed)
        return response


class _StreamClosed(Exception):
    """Raised into a transcript's follow once its page is gone: it ends, closing its host."""


def _agent_ref(name: str, place: Mapping[str, Any]) -> str:
    """The agent a row of the page shows: NAME@PROVIDER/HOST (agent_refs.py) when the request
    says where, so that an older mngr's agents of one name on two hosts are each their own."""
    host, provider = place.get("host"), place.get("provider")
    if isinstance(host, str) and isinstance(provider, str) and host and provider:
        return f"{name}@{provider}/{host}"
    return name


def _answer(outcome: actions.Outcome, status: int, can_force: bool = False) -> web.Response:
    return web.json_response({"ok": outcome.ok, "lines": outcome.lines, "url": outcome.url,
                              "can_force": can_force}, status=status)


def _is_defect(exc: BaseException) -> bool:
    from ..errors import MngrError

    return not isinstance(exc, MngrError | OSError)


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free one), or a one-line error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    sock.listen(128)
    return sock


def url_of(sock: socket.socket, token: str) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}/?{TOKEN_QUERY}={token}"


def serve(dashboard: Dashboard, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` once requests are answered."""
    asyncio.run(_serve(dashboard, sock, on_ready))


async def _serve(dashboard: Dashboard, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(dashboard.web_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        dashboard.watch.start()
        on_ready()
        await stop.wait()
    finally:
        dashboard.close()
        await runner.cleanup()
