"""``mngr bootstrap``: write a Dockerfile for a project, with what mngr and the project's toolchains need."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

import click

from .. import dockerfile, verbosity
from ..errors import MngrError, UsageError

_HELP = {"help_option_names": ["-h", "--help"]}


@click.command("bootstrap", context_settings=_HELP)
@click.argument("path", required=False, type=click.Path())
@click.option("-o", "--output", type=click.Path(), metavar="FILE", help="Where to write it.  [default: PATH/Dockerfile]")
@click.option("--from", "base_image", default=dockerfile.DEFAULT_BASE_IMAGE, show_default=True, metavar="IMAGE",
              help="The base image (Debian or Ubuntu: packages come from apt).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--stdout", "--dry-run", "to_stdout", is_flag=True,
              help="Print the Dockerfile instead of writing it.")
def bootstrap(path: str | None, output: str | None, base_image: str, force: bool, to_stdout: bool) -> None:
    """Write a Dockerfile for the project in PATH (default: this directory).

    The toolchains come from the project's files, in PATH and its direct subfolders:
    pyproject.toml, setup.py, requirements.txt, uv.lock, poetry.lock (Python), package.json
    with its lock file (Node: npm, yarn or pnpm), go.mod (Go), Cargo.toml (Rust). The
    Dockerfile installs them, and what mngr needs on every host (python3, tmux, git,
    procps, ca-certificates), from Debian packages where Debian has them. It copies
    nothing from the project: mngr brings the work dir into the container itself. An
    existing file is never overwritten without --force.
    """
    root = Path(os.path.abspath(path or os.getcwd()))
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    if not dockerfile.valid_image(base_image):
        raise UsageError(f"--from: not an image reference: {base_image!r}")
    target = Path(os.path.abspath(output)) if output else root / "Dockerfile"
    toolchains = dockerfile.detect(root)
    shown = _shown(target, root)
    text = dockerfile.render(toolchains, base_image, shown if shown.isprintable() else "Dockerfile")
    detected = f"detected: {dockerfile.describe(toolchains)}"
    if to_stdout:
        if not verbosity.quiet():
            click.echo(detected, err=True)  # stdout is the Dockerfile alone: `> Dockerfile` works
        click.echo(text, nl=False)
        return
    if not target.parent.is_dir():
        raise MngrError(f"cannot write {target}: {target.parent} is not a directory")
    if target.is_dir():
        raise MngrError(f"cannot write {target}: it is a directory")
    if not force and _exists(target):
        raise _refusal(target)
    try:
        _write_atomically(target, text, replace=force)
    except OSError as exc:
        raise MngrError(f"cannot write {target}: {exc.strerror or exc}") from exc
    click.echo(detected)
    click.echo(f"wrote {target} (from {base_image})")


def _shown(target: Path, root: Path) -> str:
    """The output's path as the Dockerfile's usage comment names it: from the project when inside it."""
    try:
        return str(target.relative_to(root))
    except ValueError:
        return str(target)


def _exists(target: Path) -> bool:
    return target.exists() or target.is_symlink()


def _refusal(target: Path) -> MngrError:
    return MngrError(f"{target} already exists (use --force to overwrite it)")


def _write_atomically(target: Path, text: str, replace: bool) -> None:
    """Write a temp file beside ``target``, fsync it, and put it in place in one step.

    Readers see the old file or the new one, never part of one. Without ``replace``, the
    new file is hard-linked into place, which fails rather than overwrite a file that
    appeared since the check. A replaced file keeps its mode; a new one gets 0666 less
    the umask, as any new file would.
    """
    temp = target.with_name(f".{target.name}.mngr-{os.getpid()}-{secrets.token_hex(4)}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if replace and target.exists():
                os.fchmod(handle.fileno(), stat.S_IMODE(target.stat().st_mode))
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target, follow_symlinks=False)
            except FileExistsError:
                raise _refusal(target) from None
            except OSError:  # a file system without hard links: check, then rename
                if _exists(target):
                    raise _refusal(target) from None
                os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
