"""A config file as a whole: read, replaced at once, and edited in the user's editor."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError, MngrError

# What `mngr config edit` shows in place of a file that does not exist yet.
NEW_FILE = "# mngr configuration (TOML). Keys: docs/configuration.md, or `mngr config list`.\n"


def read_text(path: Path) -> str | None:
    """The file's text, or None when there is none yet."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def write(path: Path, text: str) -> None:
    """Replace the file at once (a reader never sees half of it), keeping its mode, and
    writing through a symbolic link (a file kept with the user's dotfiles stays theirs)."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def editor() -> str:
    """The user's editor, as git finds it."""
    return os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"


def edit_file(path: Path, check: Callable[[dict[str, Any]], None]) -> str:
    """Let the user edit a copy of ``path``; replace the file with it once it is valid TOML
    that ``check`` accepts. Returns what was done ("updated", "no changes").

    As `crontab -e`: an invalid copy is offered for another edit when a person is at the
    terminal; otherwise it is kept, its path in the error, and the file is left as it was."""
    before = read_text(path)
    handle, name = tempfile.mkstemp(prefix="mngr-config-", suffix=".toml")  # 0600: it may hold secrets
    copy = Path(name)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(NEW_FILE if before is None else before)
    start = copy.read_text(encoding="utf-8")
    while True:
        _run_editor(copy, path)
        after = copy.read_text(encoding="utf-8")
        if after == start:
            copy.unlink()
            return "no changes"
        try:
            _check_text(after, path, check)
            break
        except MngrError as exc:
            if not (sys.stdin.isatty() and sys.stderr.isatty()):
                raise ConfigError(f"{exc}; {path} left as it was, your edit is kept in {copy}") from None
            import click

            click.echo(f"mngr: error: {exc}", err=True)
            if not click.confirm("Edit again?", default=True, err=True):
                raise ConfigError(f"{path} left as it was, your edit is kept in {copy}") from None
    if read_text(path) != before:
        raise ConfigError(f"{path} changed while you edited it; it was left as it is now, "
                          f"your edit is kept in {copy}")
    write(path, after)
    copy.unlink()
    return "updated"


def _run_editor(copy: Path, path: Path) -> None:
    command = editor()
    # Through the shell, as git does: EDITOR may hold arguments ("code --wait").
    status = subprocess.run(["sh", "-c", f'{command} "$@"', command, str(copy)], check=False).returncode
    if status != 0:
        copy.unlink(missing_ok=True)
        raise ConfigError(f"the editor ({command}) exited with status {status}; {path} left as it was")


def _check_text(text: str, path: Path, check: Callable[[dict[str, Any]], None]) -> None:
    import tomllib

    from . import config as config_module

    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from None
    config_module.validate(values, str(path), strict_keys=True)
    check(values)
