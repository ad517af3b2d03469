"""``mngr clone`` and ``mngr migrate``: another agent like this one, here or on another host."""

from __future__ import annotations

import os

import click

from .. import verbosity
from ..commands import copy
from ..env_options import agent_env
from ..output import format_option, say
from .common import ENV_NAME_PATTERN, parse_pairs, print_agents
from .completion_cmd import agent_names, host_names, provider_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}


def _with_target_options(command: str):  # type: ignore[no-untyped-def]
    options = [
        click.option("--in", "--provider", "provider_name", metavar="PROVIDER", shell_complete=provider_names,
                     help="Provider of the target host."),
        click.option("--work-dir", help="Work dir for the copy (default: $MNGR_HOST_DIR/work/NAME on the host)."),
        click.option("--accept-new-host-key", is_flag=True, help="Trust the target host's SSH key on first contact."),
        format_option(command),
    ]

    def decorate(function):  # type: ignore[no-untyped-def]
        for decorator in reversed(options):
            function = decorator(function)
        return function

    return decorate


@click.command("clone", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.argument("new_name")
@click.option("--host", shell_complete=host_names, help="Host for the copy (default: the agent's own).")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE",
              help="Environment variable for the copy, over the original's; KEY alone passes your current value. "
                   "Repeatable.")
@click.option("--env-file", "env_files", multiple=True, metavar="PATH",
              help="Environment variables for the copy from a dotenv file. Repeatable.")
@click.option("--pass-env", "pass_names", multiple=True, metavar="VAR",
              help="Pass this variable from your environment to the copy. Repeatable.")
@_with_target_options("clone")
@pass_app
def clone(app: App, name: str, new_name: str, host: str | None, env_pairs: tuple[str, ...],
          env_files: tuple[str, ...], pass_names: tuple[str, ...], provider_name: str | None,
          work_dir: str | None, accept_new_host_key: bool, output_format: str) -> None:
    """Create NEW_NAME as a copy of agent NAME and start it.

    The copy has NAME's type, command, environment (--env values, with those given here
    over them) and labels, and a new
    work dir holding every file of NAME's (ignored ones included) and its git branches,
    with the same branch checked out. NAME is not changed.
    """
    env = agent_env(env_files, pass_names, parse_pairs(env_pairs, "--env", ENV_NAME_PATTERN, allow_bare=True),
                    os.environ)
    target = copy.CopyTarget(provider_name, host, work_dir, accept_new_host_key)
    result = copy.clone(app, copy.CloneRequest(name, new_name, target, env))
    for warning in result.warnings:
        verbosity.warn(warning)
    print_agents([(result.info, result.host, result.provider, "created")], output_format, single=True)


@click.command("migrate", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.option("--to-host", "host", required=True, shell_complete=host_names, help="Host to move the agent to.")
@_with_target_options("migrate")
@pass_app
def migrate(app: App, name: str, host: str, provider_name: str | None, work_dir: str | None,
            accept_new_host_key: bool, output_format: str) -> None:
    """Move agent NAME to another host: copy it there, check the copy, then destroy it here.

    NAME is stopped while its work dir is copied. The copy (same name, type, command,
    environment, labels, files and git branches) is compared with the original (every
    file's size, mode and modification time); only then is the original destroyed. If
    anything fails, the copy is removed and the original is started again as it was. The
    original's work dir stays on the old host.
    """
    target = copy.CopyTarget(provider_name, host, work_dir, accept_new_host_key)
    result = copy.migrate(app, copy.MigrateRequest(name, host, target))
    for removed_host, provider in result.emptied.removed:
        say(output_format, f"removed host {removed_host} ({provider}): its last agent is gone")
    for warning in result.emptied.warnings:
        verbosity.warn(warning)
    print_agents([(result.info, result.host, result.provider, "migrated")], output_format, single=True)
