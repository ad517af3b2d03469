"""``mngr web``: the local dashboard, an aiohttp server on 127.0.0.1 behind a random token.

Nothing outside ``mngr web`` imports this package: aiohttp is loaded by that command only.

- ``guard``: who may ask anything (the token, this server's own origin);
- ``fleet_watch``: the listing, renewed in the background so that a slow host never holds a request up;
- ``server``: the routes, each calling the same operations as the CLI (controller/commands);
- ``static/``: the page (plain HTML, JS and CSS, nothing fetched from elsewhere).
"""
