"""``mngr open``: one of an agent's URLs, reachable from here, in the browser."""

from __future__ import annotations

import click

from .. import output
from .completion_cmd import agent_names
from .context import App, pass_app


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("agent", metavar="NAME", shell_complete=agent_names)
@click.argument("target", metavar="[URL_NAME|PORT]", required=False)
@click.option("--print", "print_only", is_flag=True,
              help="Print the local URL and open no browser.")
@output.format_option("open", help="human, json, jsonl or a template such as '{local_url}'.")
@pass_app
def open_command(app: App, agent: str, target: str | None, print_only: bool, output_format: str) -> None:
    """Open one of an agent's URLs in your browser, reachable from this machine.

    URL_NAME is one of the agent's URLs (mngr list shows them; mngr create --port declares
    them); PORT any TCP port something listens on on the agent's host. Without either, the
    agent's first URL. On the local host the URL is the agent's own; on an SSH host it goes
    through a forward of the host's shared ssh connection (kept for later opens, removed
    when the agent stops); in a Docker container, to the container's address or a published
    port; in a Modal sandbox, through its tunnel.

    The browser is $BROWSER, else xdg-open (on a desktop) or open (macOS). With --print, or
    where there is no browser, the URL is printed instead.
    """
    from ..browser import open_in_browser
    from ..commands.open import OpenRequest, open_url

    opened = open_url(app, OpenRequest(agent, target))
    browser = None if print_only else open_in_browser(opened.local_url)
    row = {"agent": opened.agent, "host": opened.host, "provider": opened.provider, "name": opened.name,
           "remote_url": opened.remote_url, "local_url": opened.local_url, "browser": browser or ""}

    def human() -> None:
        if browser is None:
            click.echo(opened.local_url)
        else:
            what = f"URL {opened.name}" if opened.name else opened.remote_url
            click.echo(f"opened {opened.local_url} ({what} of agent {opened.agent} on {opened.host}) with {browser}")

    output.emit(output_format, [row], human, single=True)
