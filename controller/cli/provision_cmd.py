"""``mngr provision``: bring agents' CLI and CLI config on their hosts up to date with the user's."""

from __future__ import annotations

import sys

import click

from ..commands.provision import (
    AT_NEXT_START,
    NOTHING,
    RESTART_NEEDED,
    RESTARTED,
    Provisioned,
    ProvisionRequest,
    provision,
)
from ..errors import UsageError
from ..output import emit, format_option
from .completion_cmd import agent_names
from .context import App, pass_app
from .targets import agent_test, expand_names, filter_options


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("names", nargs=-1, metavar="[NAME|-]...", shell_complete=agent_names)
@click.option("--all", "every", is_flag=True, help="Every agent on every host (those it has nothing for say so).")
@filter_options
@click.option("--dry-run", is_flag=True, help="Say what would change (by name: files, variables), change nothing.")
@click.option("--restart", is_flag=True,
              help="Stop a running agent, write, and start it again, so that it has the new variables and CLI "
                   "at once (its conversation is resumed).")
@format_option("provision")
@pass_app
def provision_command(app: App, names: tuple[str, ...], every: bool, includes: tuple[str, ...],
                      excludes: tuple[str, ...], dry_run: bool, restart: bool, output_format: str) -> None:
    """Refresh agents' CLI, credentials and settings on their hosts from yours.

    For an agent on a host other than your own, mngr makes sure of its CLI there as create
    does, makes its CLI config again from your files and environment as they are now,
    compares it with what the host holds, and writes what differs. Files change at once;
    variables (API keys) and a new CLI reach the agent when it starts again (--restart).
    Values are never printed: only file and variable names.
    """
    if dry_run and restart:
        raise UsageError("--dry-run changes nothing: it cannot --restart")
    keep = agent_test(app, includes, excludes)
    expanded, piped = expand_names(names)
    result = provision(app, ProvisionRequest(expanded, every=every, dry_run=dry_run, restart=restart, keep=keep,
                                             piped=piped))
    def human() -> None:
        for done in result.provisioned:
            click.echo(_line(done, dry_run))

    emit(output_format, [_json(done) for done in result.provisioned], human)
    for failed in result.failed:
        click.echo(f"mngr: error: provision {failed.name}: {failed.error}", err=True)
    if result.interrupted:
        click.echo("mngr: interrupted", err=True)
        sys.exit(130)
    if result.failed:
        sys.exit(1)


def _line(done: Provisioned, dry_run: bool) -> str:
    where = f"agent {done.info.name} on {done.host}"
    if done.outcome == NOTHING:
        return f"{where}: nothing to provision: {done.reason}"
    changes = ", ".join(done.changes())
    if not changes:
        text = f"{where}: up to date"
    elif dry_run:
        text = f"{where}: would change {changes}"
    else:
        text = f"{where}: changed {changes}"
    if done.restart == RESTARTED:
        return f"{text}; restarted"
    if done.restart == RESTART_NEEDED and dry_run:
        return f"{text}; would take effect when the agent restarts"
    if done.restart == RESTART_NEEDED:
        return f"{text}; takes effect when the agent restarts (mngr provision {done.info.name} --restart)"
    if done.restart == AT_NEXT_START:
        return f"{text}; the agent is {done.info.state}: takes effect when it starts"
    return text


def _json(done: Provisioned) -> dict[str, object]:
    return {"name": done.info.name, "host": done.host, "provider": done.provider, "outcome": done.outcome,
            "reason": done.reason, "files": list(done.config.files), "removed_files": list(done.config.removed_files),
            "env": list(done.config.env), "removed_env": list(done.config.removed_env),
            "cli": done.cli.describe(done.dry_run) if done.cli is not None else None, "restart": done.restart,
            "state": done.info.state}
