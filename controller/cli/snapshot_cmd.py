"""``mngr snapshot``: record an agent as a snapshot; list and destroy snapshots."""

from __future__ import annotations

from typing import Any

import click

from .. import output
from ..commands import snapshot as snapshot_command
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


class SnapshotGroup(click.Group):
    """``mngr snapshot NAME`` takes one; ``list`` and ``destroy`` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group("snapshot", cls=SnapshotGroup, context_settings=_HELP)
def snapshot() -> None:
    """Record agents as snapshots (kept by mngr on this machine), list and destroy them.

    A snapshot holds the agent's type, command, environment and labels, every file of its
    work dir and its git branches, compressed with zstandard.
    """


@snapshot.command("create", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@output.format_option("snapshot create")
@pass_app
def create_snapshot(app: App, name: str, output_format: str) -> None:
    """Record agent NAME as a snapshot (`mngr snapshot NAME` does the same)."""
    row = snapshot_command.take_snapshot(app, snapshot_command.SnapshotRequest(name)).as_row()
    output.emit(output_format, [row], lambda: click.echo(f"snapshot {row['id']} of {row['agent']} ({row['bytes']} bytes)"),
                single=True)


@snapshot.command("list", context_settings=_HELP)
@output.format_option("snapshot list")
@pass_app
def list_snapshots(app: App, output_format: str) -> None:
    """List the snapshots kept on this machine (and providers' own, such as docker images)."""
    rows = snapshot_command.list_snapshots(app)
    output.emit(output_format, rows, lambda: _human(rows))


def _human(rows: list[dict[str, Any]]) -> None:
    if rows:
        click.echo(output.table(["ID", "AGENT", "HOST", "PROVIDER", "CREATED", "BYTES"],
                                [[r["id"], r["agent"], r["host"], r["provider"], r["created_at"], str(r["bytes"])]
                                 for r in rows]))
    else:
        click.echo("no snapshots")


@snapshot.command("destroy", context_settings=_HELP)
@click.argument("snapshot_ids", nargs=-1, required=True, metavar="ID...")
@pass_app
def destroy_snapshots(app: App, snapshot_ids: tuple[str, ...]) -> None:
    """Delete snapshots."""
    result = snapshot_command.destroy_snapshots(app, snapshot_command.DestroySnapshotsRequest(snapshot_ids))
    for snapshot_id in result.destroyed:
        click.echo(f"destroyed snapshot {snapshot_id}")
    if result.error is not None:
        raise result.error
