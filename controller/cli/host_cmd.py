"""``mngr host list`` and ``mngr host forget``: the hosts mngr searches."""

from __future__ import annotations

from typing import Any

import click

from .. import output
from ..host_inventory import forget_hosts, host_rows
from .completion_cmd import host_names, provider_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


@click.group("host", context_settings=_HELP)
def host() -> None:
    """The hosts mngr searches for agents: list them, forget one.

    A host is searched when it is in the config ([hosts.NAME]), when an agent was created
    on it, or when its provider finds it (a docker container, a Modal sandbox). A remembered
    host that has not answered for forget_unreachable_after_seconds (7 days by default) is
    reported once more, then left out of `mngr list` and the other commands; `host list`
    still shows it (state "dropped"), and it is back as soon as it answers here.
    """


@host.command("list", context_settings=_HELP)
@click.option("--in", "--provider", "provider_names_given", multiple=True, metavar="PROVIDER",
              shell_complete=provider_names, help="Only this provider's hosts (repeatable).")
@output.format_option("host list")
@pass_app
def list_hosts(app: App, provider_names_given: tuple[str, ...], output_format: str) -> None:
    """Every host mngr searches, asked now: provider, where it came from (configured,
    remembered, local), state (answering, unreachable, dropped), agent count, last seen."""
    rows = [row.as_dict() for row in host_rows(app, provider_names_given)]
    output.emit(output_format, rows, lambda: _human(rows), envelope=lambda hosts: {"hosts": hosts})


def _human(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no hosts")
        return
    click.echo(output.table(
        ["HOST", "PROVIDER", "ORIGIN", "STATE", "AGENTS", "LAST SEEN", "ERROR"],
        [[row["host"], row["provider"], row["origin"], row["state"],
          str(row["agents"]) if row["agents"] is not None else f"{row['cached_agents']}?",
          f"{output.age(row['last_seen'])} ago" if row["last_seen"] else "never",
          row["error"]] for row in rows]))


@host.command("forget", context_settings=_HELP)
@click.argument("hosts", nargs=-1, required=True, shell_complete=host_names)
@click.option("-f", "--force", is_flag=True, help="Forget a host even though it has agents (they stay there).")
@pass_app
def forget(app: App, hosts: tuple[str, ...], force: bool) -> None:
    """Stop searching HOSTS (HOST, or PROVIDER/HOST when two providers have one so named).

    A host in the config is refused (remove it from the config instead). A host with agents
    is refused unless --force: destroy them first, or they stay on the host, unseen by mngr.
    A host that does not answer counts the agents the last listings saw there.
    """
    for host_name, provider_name in forget_hosts(app, hosts, force):
        click.echo(f"forgot host {host_name} ({provider_name})")
