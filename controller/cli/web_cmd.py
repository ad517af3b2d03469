"""``mngr web``: the local dashboard (controller/web; aiohttp is loaded by this command only)."""

from __future__ import annotations

import os
import sys
import threading

import click

from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


@click.command("web", context_settings=_HELP)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, metavar="PORT",
              help="The port on 127.0.0.1 to serve on (0: any free one).")
@click.option("--no-browser", is_flag=True, help="Print the dashboard's URL only; do not open a browser.")
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=2.0, show_default=True, metavar="SECONDS",
              help="How long after one listing of every host the next one starts.")
@pass_app
def web(app: App, port: int, no_browser: bool, interval: float) -> None:
    """Serve a dashboard of every agent on every host, in your browser, until Ctrl-C.

    It lists each agent with its state, host and URLs, updated as they change; shows an
    agent's transcript as it grows; sends messages; stops, starts and destroys agents
    (after asking). It listens on 127.0.0.1 only, behind a random token that is part of
    the URL it prints: nothing without the token, or from another site, is answered.
    """
    from ..browser import browser_commands, open_in_browser
    from ..web import guard
    from ..web.fleet_watch import listing_document
    from ..web.server import Dashboard, bind, serve, url_of

    # Many operations run at once here and the page shows what each did: no progress line
    # of each drawn over the others on this terminal.
    os.environ["MNGR_QUIET"] = "1"
    # The config, plugins and providers made once, before the server's threads share them.
    _ = app.registry
    app.providers()
    token = guard.new_token()
    sock = bind(port)
    url = url_of(sock, token)
    dashboard = Dashboard(app, token, lambda: listing_document(app), interval)
    browser = not no_browser and bool(browser_commands())

    def ready() -> None:
        click.echo(url)
        sys.stdout.flush()
        how = "opening it in your browser" if browser else "open it in your browser"
        click.echo(f"mngr: the dashboard is at the URL above ({how}); Ctrl-C stops it", err=True)
        if browser:
            # On a thread: a browser command may hold on until its window closes (as mngr open waits
            # for it); the server answers meanwhile.
            threading.Thread(target=open_in_browser, args=(url,), daemon=True).start()

    serve(dashboard, sock, ready)
