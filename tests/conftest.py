"""Fixtures shared by every test: an isolated host dir, tmux server and config per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

MNGR_BIN = Path(sys.executable).with_name("mngr")


class Sandbox:
    """One test's private world: its own host dir, tmux server, config dir and work dir."""

    def __init__(self, root: Path, tmux_dir: Path) -> None:
        self.root = root
        self.host_dir = root / "host"
        self.config_dir = root / "config"
        self.work_dir = root / "work"
        self.tmux_dir = tmux_dir
        self.work_dir.mkdir()
        self.env = dict(os.environ)
        for key in list(self.env):
            if key.startswith("MNGR_") or key in ("TMUX", "TMUX_PANE"):
                del self.env[key]
        self.env.update(
            MNGR_HOST_DIR=str(self.host_dir),
            MNGR_CONFIG_DIR=str(self.config_dir),
            TMUX_TMPDIR=str(tmux_dir),
        )

    def mngr(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
             cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the installed ``mngr`` command, as a user would."""
        return subprocess.run(
            [str(MNGR_BIN), *args],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=str(cwd or self.work_dir),
            timeout=timeout,
        )

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, env=self.env)

    def sessions(self) -> list[str]:
        result = self.tmux("list-sessions", "-F", "#{session_name}")
        return sorted(result.stdout.split()) if result.returncode == 0 else []

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key in list(os.environ):
            if key.startswith("MNGR_") or key in ("TMUX", "TMUX_PANE"):
                monkeypatch.delenv(key)
        for key in ("MNGR_HOST_DIR", "MNGR_CONFIG_DIR", "TMUX_TMPDIR"):
            monkeypatch.setenv(key, self.env[key])


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    # tmux sockets must fit in a unix socket path (108 bytes): keep them short and in /tmp.
    tmux_dir = Path(tempfile.mkdtemp(prefix="mngr-tmux-", dir="/tmp"))
    box = Sandbox(tmp_path, tmux_dir)
    try:
        yield box
    finally:
        box.tmux("kill-server")
        shutil.rmtree(tmux_dir, ignore_errors=True)
