"""``mngr push`` and ``mngr pull``: move files between a local directory and an agent's work dir."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from ..errors import MngrError
from ..output import format_option
from .completion_cmd import agent_names
from .context import App, pass_app
from .sync_run import run_sync

_HELP = {"help_option_names": ["-h", "--help"]}


def _options(command: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return lambda function: _decorated(function, command)


def _decorated(function: Callable[..., None], command: str) -> Callable[..., None]:
    for decorator in reversed([
        click.argument("name", shell_complete=agent_names),
        click.argument("local_path", required=False, type=click.Path(file_okay=False)),
        click.option("--delete", is_flag=True, help="Also remove what the receiving side has and the source does not."),
        click.option("--dry-run", is_flag=True,
                     help="Only list what would change (+ new, ~ changed, - deleted, ! refused)."),
        click.option("--include-gitignored", is_flag=True,
                     help="Also move files that .gitignore excludes (.git itself never moves)."),
        click.option("--force", is_flag=True, help="Overwrite or delete uncommitted changes on the receiving side "
                     "(a pull: and move a diverged mngr/NAME branch to the agent's)."),
        format_option(command),
    ]):
        function = decorator(function)
    return function


@click.command("push", context_settings=_HELP)
@_options("push")
@pass_app
def push(app: App, name: str, local_path: str | None, **options: bool) -> None:
    """Make LOCAL_PATH's contents (default: this directory) arrive in agent NAME's work dir.

    Only what changed travels (size, modification time, mode). By default files that
    .gitignore excludes stay behind. Files land whole: an interrupted push leaves no
    truncated file, and the next push finishes the job. Uncommitted changes in the
    agent's work dir (a git work tree) are never overwritten without --force.
    """
    run_sync(app, "push", name, local_path, **options)


@click.command("pull", context_settings=_HELP)
@_options("pull")
@pass_app
def pull(app: App, name: str, local_path: str | None, **options: bool) -> None:
    """Bring agent NAME's work dir into LOCAL_PATH (default: this directory).

    The same rules as push, the other way: only what changed travels, and uncommitted
    changes in LOCAL_PATH (a git work tree) are never overwritten without --force. When
    both the work dir and LOCAL_PATH are the tops of git repositories, the agent's branches
    come too: its own as the branch mngr/NAME (fast-forward only, unless --force), the
    others as mngr-NAME/BRANCH (your own branches are not touched).
    """
    run_sync(app, "pull", name, local_path, **options)


@click.command("pair", context_settings=_HELP)
@click.argument("name", shell_complete=agent_names)
@click.argument("local_path", required=False, type=click.Path(file_okay=False))
@click.option("--conflict", type=click.Choice(["newer", "local", "remote"]), default="newer", show_default=True,
              help="Who wins when both sides changed a file: the later change, yours, or the agent's. "
                   "The loser is kept as PATH.conflict-SIDE-TIME.")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=1.0, show_default=True,
              help="Seconds between two whole comparisons on a host that cannot report its changes "
                   "(no host daemon). Elsewhere changes travel as they happen.")
@pass_app
def pair(app: App, name: str, local_path: str | None, conflict: str, interval: float) -> None:
    """Keep LOCAL_PATH (default: this directory) and agent NAME's work dir in step, both ways.

    Changes on either side reach the other as they happen (file-system events on both
    sides), until you stop it (Ctrl-C). When both sides changed the same file,
    --conflict decides; the losing version is kept beside it as a copy, never dropped.
    .gitignore'd files and .git stay out of it.
    """
    import signal
    import threading

    from mngr.remote_helper.wire import RequestFailed

    from .. import pair as pairing
    from ..agent_lookup import located_agent

    root = os.path.abspath(local_path or os.getcwd())
    os.makedirs(root, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report(mark: str, text: str) -> None:
        click.echo(f"{mark} {text}")

    with located_agent(app, name) as agent:
        name = agent.info.name
        click.echo(f"pairing {root} with {name} on {agent.host} (Ctrl-C to stop)")
        try:
            pairing.run(agent.handle, name, root, conflict, interval, stop, report)
        except KeyboardInterrupt:
            pass
        except RequestFailed as exc:
            raise MngrError(exc.message) from exc
    click.echo("pairing stopped")
