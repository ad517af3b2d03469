"""``mngr plugin list``: the plugins mngr loaded, from where, and the hooks each implements."""

from __future__ import annotations

import dataclasses

import click

from .. import output
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


@click.group("plugin", context_settings=_HELP)
def plugin() -> None:
    """See the plugins mngr loads (built-in ones, and those of the `mngr` entry-point group).

    Disable one with MNGR_DISABLE_PLUGINS=NAME,... or `plugins.disabled` in config. docs/plugins.md
    tells how to write one.
    """


@plugin.command("list", context_settings=_HELP)
@output.format_option("plugin list")
@pass_app
def list_plugins(app: App, output_format: str) -> None:
    """Every plugin: loaded, disabled or failed; where it comes from; its hooks."""
    records = app.registry.records

    def human() -> None:
        rows = [[record.name, record.status, record.origin,
                 ", ".join(hook.removeprefix("mngr_") for hook in record.hooks), record.detail] for record in records]
        click.echo(output.table(["NAME", "STATUS", "FROM", "HOOKS", "DETAIL"], rows))

    output.emit(output_format, [dataclasses.asdict(record) for record in records], human)
