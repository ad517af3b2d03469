"""What ``mngr push`` and ``mngr pull`` do once their arguments are parsed (by click in
sync_cmd.py, or by direct.py): free of click."""

from __future__ import annotations

import os
import sys

from .. import local_walk as walks
from ..errors import MngrError, UsageError
from ..local_walk import LocalWalk
from .app import App

PARTIAL_EXIT = 3  # some entries were refused or skipped, everything else landed


def echo(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def run_sync(app: App, action: str, name: str, local_path: str | None, **options: bool) -> None:
    """``mngr push`` or ``mngr pull`` (``action``) with its arguments as click gives them."""
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

    from .. import sync
    from ..agent_lookup import located_agent
    from ..progress import Progress

    with located_agent(app, name, with_state=False) as agent:
        name = agent.info.name
        transfer = sync.push if action == "push" else sync.pull
        branches: list[str] = []
        sent_before, received_before = agent.handle.wire_bytes()
        # (cleared when the transfer ends, before anything below is printed)
        line = Progress(f"pushing to {name}" if action == "push" else f"pulling from {name}", unit="bytes")
        try:
            with line:
                if action == "pull" and not options["dry_run"]:
                    # Before the files: a branch refused (diverged) leaves everything as it was.
                    branches = sync.fetch_branches(agent.handle, name, root, agent.info.work_dir_origin,
                                                   force=options["force"])
                plan = transfer(agent.handle, name, root, local_walk=local_walk, progress=line, **options)
        except RequestFailed as exc:
            raise MngrError(exc.message) from exc
        except OSError as exc:
            raise MngrError(f"{action} {name}: {exc}") from exc
        sent, received = agent.handle.wire_bytes()
        wire = {"sent": sent - sent_before, "received": received - received_before}
    changes = plan.changes()
    missed = [("refused", path, why) for path, why in plan.refused] + [("skipped", path, why)
                                                                        for path, why in plan.skipped]
    if output_format != "human":
        from .. import output  # json and the rest of output.py: only for these formats

        record = {
            "agent": name, "local_path": root, "dry_run": options["dry_run"],
            "changes": [{"change": mark, "path": path} for mark, path in changes],
            "refused": [{"path": path, "reason": why} for path, why in plan.refused],
            "skipped": [{"path": path, "reason": why} for path, why in plan.skipped],
            "bytes": plan.bytes_to_send,
            "wire": wire,
            **({"branches": branches} if action == "pull" else {}),
        }
        sys.stdout.write(output.render(output_format, [record], single=True))
        sys.stdout.flush()
    else:
        if options["dry_run"]:
            for mark, path in changes:
                echo(f"{mark} {_shown(path)}")
            for path, why in plan.refused:
                echo(f"! {_shown(path)}: {why}")
            echo(f"would {action} {len(changes)} change(s), {plan.bytes_to_send} bytes")
        elif not changes and not missed:  # directory mtimes alone may have been set
            echo(f"{name}: nothing to {action}, already the same")
        else:
            echo(f"{name}: {action}ed {len(changes) - len(plan.skipped)} change(s), {plan.bytes_to_send} bytes")
        if branches:
            echo(f"{name}: branches brought back as {', '.join(branches)}")
        if not options["dry_run"]:
            for what, path, why in missed:
                echo(f"mngr {action}: {what} {_shown(path)}: {why}", err=True)
    if missed:
        # Like rsync's 23: the rest landed; these did not (or, in a dry run, would not).
        echo(f"mngr {action}: {len(missed)} entr{'y' if len(missed) == 1 else 'ies'} not "
                   f"{action}ed (exit status {PARTIAL_EXIT})", err=True)
        raise SystemExit(PARTIAL_EXIT)


def _shown(path: str) -> str:
    """``path`` as it can be printed: bytes that are not UTF-8 as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
