"""``mngr completion SHELL``, and what completes the names in mngr's arguments.

Click completes commands and options; these callbacks complete agent and host names (from
the cache every listing keeps: no host is asked), and provider and agent type names (from
the plugins).
"""

from __future__ import annotations

import click

from ..completion import agent_choices, cached_agents
from .context import App

SHELLS = ("bash", "zsh", "fish")


def agent_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return agent_choices(incomplete)


def host_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return sorted({host for _, host, _ in cached_agents() if host.startswith(incomplete)})


def provider_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return sorted(name for name in ctx.ensure_object(App).registry.providers if name.startswith(incomplete))


def agent_type_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return sorted(name for name in ctx.ensure_object(App).registry.agent_types if name.startswith(incomplete))


@click.command("completion", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell code that completes mngr's commands, options and names.

    \b
    bash:  eval "$(mngr completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(mngr completion zsh)"       (in ~/.zshrc)
    fish:  mngr completion fish > ~/.config/fish/completions/mngr.fish

    Agent and host names come from what mngr last listed (every `mngr list` refreshes them),
    so completing never waits for a host.
    """
    from click.shell_completion import get_completion_class

    from .main import cli

    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS has one
    click.echo(completer(cli, {}, "mngr", "_MNGR_COMPLETE").source())
