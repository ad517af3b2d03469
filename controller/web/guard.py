"""Who may talk to the dashboard: the holder of its token, from its own page.

The server listens on 127.0.0.1 only, but any web page the user visits can make the browser
send requests there, and a DNS name rebound to 127.0.0.1 makes them same-origin to that
page. So every request must
- carry the token: in the query (the printed URL), or in the cookie the page sets from it,
  or in the ``X-Mngr-Token`` header;
- name this server in ``Host`` (127.0.0.1:PORT or localhost:PORT; a rebound name is refused);
- when the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), come from here.
A request that changes anything is a POST with the token in the header: a cookie is sent
with requests other sites forge, a header is not.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

TOKEN_HEADER = "X-Mngr-Token"
TOKEN_QUERY = "token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_name(port: int) -> str:
    """Cookies are not kept apart by port: two dashboards on one machine each have their own."""
    return f"mngr_web_{port}"


class Guard:
    def __init__(self, token: str) -> None:
        self.token = token

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused (None: it may go on)."""
        port = _local_port(request)
        own_hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if request.headers.get("Host", "") not in own_hosts:
            return "this dashboard answers only at its own address (127.0.0.1)"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in {f"http://{host}" for host in own_hosts}:
            return f"requests from another origin ({origin}) are refused"
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "requests from another site are refused"
        if request.method == "POST":
            given = request.headers.get(TOKEN_HEADER, "")
        elif request.method in ("GET", "HEAD"):
            given = (request.query.get(TOKEN_QUERY) or request.cookies.get(cookie_name(port))
                     or request.headers.get(TOKEN_HEADER) or "")
        else:
            return f"method {request.method} is not allowed"
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return "the dashboard's token is missing or wrong (open the URL mngr web printed)"
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self.refusal(request)
        if refusal is not None:
            return web.json_response({"ok": False, "error": refusal}, status=403)
        return await handler(request)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every response's headers, set before they are sent (an event stream's too)."""
        response.headers.update(SECURITY_HEADERS)
        if request.method == "GET" and request.query.get(TOKEN_QUERY) == self.token:
            # The page's own requests (the transcript's event stream among them) carry the token
            # as this cookie; SameSite=Strict keeps it off requests that other sites start.
            # (A header: the response's cookies were made into headers before this runs.)
            response.headers.add("Set-Cookie", f"{cookie_name(_local_port(request))}={self.token}; "
                                               "HttpOnly; SameSite=Strict; Path=/")


# No framing by other pages, nothing but this server's own scripts and styles, no Referer
# (with the token in it) sent to the agents' URLs, nothing cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _local_port(request: web.Request) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else 0
