"""``mngr push`` and ``mngr pull``: move files between a local directory and an agent's work dir."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from .. import local_walk as walks
from ..errors import MngrError, UsageError
from ..local_walk import LocalWalk
from .completion_cmd import agent_names
from .context import App, pass_app

_HELP = {"help_option_names": ["-h", "--help"]}
PARTIAL_EXIT = 3  # some entries were refused or skipped, everything else landed


def _options(function: Callable[..., None]) -> Callable[..., None]:
    for decorator in reversed([
        click.argument("name", shell_complete=agent_names),
        click.argument("local_path", required=False, type=click.Path(file_okay=False)),
        click.option("--delete", is_flag=True, help="Also remove what the receiving side has and the source does not."),
        click.option("--dry-run", is_flag=True,
                     help="Only list what would change (+ new, ~ changed, - deleted, ! refused)."),
        click.option("--include-gitignored", is_flag=True,
                     help="Also move files that .gitignore excludes (.git itself never moves)."),
        click.option("--force", is_flag=True, help="Overwrite or delete uncommitted changes on the receiving side."),
        click.option("--format", "output_format", type=click.Choice(["human", "json"]), default="human",
                     show_default=True),
    ]):
        function = decorator(function)
    return function


def _run(app: App, action: str, name: str, local_path: str | None, **options: bool) -> None:
    output_format = str(options.pop("output_format"))
    options["include_ignored"] = options.pop("include_gitignored")
    root = os.path.abspath(local_path or os.getcwd())
    if not os.path.isdir(root):
        if action == "push":
            raise UsageError(f"{root} is not a directory")
        os.makedirs(root, exist_ok=True)
    # The local tree is listed (by a child process) while the rest of mngr loads and the
    # agent is looked for: hence the imports below, after it started.
    intent = (action == "push", options["delete"])
    with walks.claim(root, options["include_ignored"], agent=name, intent=intent) as local_walk:
        _transfer(app, action, name, root, local_walk, output_format, options)


def _transfer(app: App, action: str, name: str, root: str, local_walk: LocalWalk, output_format: str,
              options: dict[str, bool]) -> None:
    from mngr.remote_helper.wire import RequestFailed

    from .. import output, sync
    from ..agent_lookup import located_agent

    with located_agent(app, name) as agent:
        transfer = sync.push if action == "push" else sync.pull
        branches: list[str] = []
        sent_before, received_before = agent.handle.wire_bytes()
        try:
            plan = transfer(agent.handle, name, root, local_walk=local_walk, **options)
            if action == "pull" and not options["dry_run"]:
                branches = sync.fetch_branches(agent.handle, name, root)
        except RequestFailed as exc:
            raise MngrError(exc.message) from exc
        except OSError as exc:
            raise MngrError(f"{action} {name}: {exc}") from exc
        sent, received = agent.handle.wire_bytes()
        wire = {"sent": sent - sent_before, "received": received - received_before}
    changes = plan.changes()
    missed = [("refused", path, why) for path, why in plan.refused] + [("skipped", path, why)
                                                                        for path, why in plan.skipped]
    if output_format == "json":
        click.echo(output.to_json({
            "agent": name, "local_path": root, "dry_run": options["dry_run"],
            "changes": [{"change": mark, "path": path} for mark, path in changes],
            "refused": [{"path": path, "reason": why} for path, why in plan.refused],
            "skipped": [{"path": path, "reason": why} for path, why in plan.skipped],
            "bytes": plan.bytes_to_send,
            "wire": wire,
            **({"branches": branches} if action == "pull" else {}),
        }))
    else:
        if options["dry_run"]:
            for mark, path in changes:
                click.echo(f"{mark} {_shown(path)}")
            for path, why in plan.refused:
                click.echo(f"! {_shown(path)}: {why}")
            click.echo(f"would {action} {len(changes)} change(s), {plan.bytes_to_send} bytes")
        elif not changes and not missed:  # directory mtimes alone may have been set
            click.echo(f"{name}: nothing to {action}, already the same")
        else:
            click.echo(f"{name}: {action}ed {len(changes) - len(plan.skipped)} change(s), {plan.bytes_to_send} bytes")
        if branches:
            click.echo(f"{name}: branches fetched as {', '.join(branches)}")
        if not options["dry_run"]:
            for what, path, why in missed:
                click.echo(f"mngr {action}: {what} {_shown(path)}: {why}", err=True)
    if missed:
        # Like rsync's 23: the rest landed; these did not (or, in a dry run, would not).
        click.echo(f"mngr {action}: {len(missed)} entr{'y' if len(missed) == 1 else 'ies'} not "
                   f"{action}ed (exit status {PARTIAL_EXIT})", err=True)
        raise SystemExit(PARTIAL_EXIT)


def _shown(path: str) -> str:
    """``path`` as it can be printed: bytes that are not UTF-8 as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@click.command("push", context_settings=_HELP)
@_options
@pass_app
def push(app: App, name: str, local_path: str | None, **options: bool) -> None:
    """Make LOCAL_PATH's contents (default: this directory) arrive in agent NAME's work dir.

    Only what changed travels (size, modification time, mode). By default files that
    .gitignore excludes stay behind. Files land whole: an interrupted push leaves no
    truncated file, and the next push finishes the job. Uncommitted changes in the
    agent's work dir (a git work tree) are never overwritten without --force.

    \b
    Examples:
      mngr push my-task                  this directory into my-task's work dir
      mngr push my-task ./src --delete   and remove what ./src does not have
      mngr push my-task --dry-run        list what would change
    """
    _run(app, "push", name, local_path, **options)


@click.command("pull", context_settings=_HELP)
@_options
@pass_app
def pull(app: App, name: str, local_path: str | None, **options: bool) -> None:
    """Bring agent NAME's work dir into LOCAL_PATH (default: this directory).

    The same rules as push, the other way: only what changed travels, and uncommitted
    changes in LOCAL_PATH (a git work tree) are never overwritten without --force. When
    both the work dir and LOCAL_PATH are the tops of git repositories, the agent's branches
    are fetched too, as mngr/NAME/BRANCH (your own branches are not touched).

    \b
    Examples:
      mngr pull my-task                  the agent's work into this directory
      mngr pull my-task ./out --dry-run  list what would change in ./out
    """
    _run(app, "pull", name, local_path, **options)


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

    \b
    Example:
      mngr pair my-task ./work --conflict newer
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
        click.echo(f"pairing {root} with {name} on {agent.host} (Ctrl-C to stop)")
        try:
            pairing.run(agent.handle, name, root, conflict, interval, stop, report)
        except KeyboardInterrupt:
            pass
        except RequestFailed as exc:
            raise MngrError(exc.message) from exc
    click.echo("pairing stopped")
