"""Opening a URL in the user's browser: $BROWSER, else xdg-open, else macOS's open."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys


def browser_command(url: str) -> list[str] | None:
    """The command that opens ``url`` here (None: no browser to be found)."""
    configured = os.environ.get("BROWSER", "").strip()
    if configured:
        words = shlex.split(configured.split(os.pathsep)[0])
        return [word.replace("%s", url) for word in words] if "%s" in configured else [*words, url]
    if sys.platform == "darwin" and shutil.which("open"):
        return ["open", url]
    if shutil.which("xdg-open") and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ["xdg-open", url]
    return None


def open_in_browser(url: str) -> bool:
    """Start the browser on ``url`` (not waiting for it); whether one was started."""
    command = browser_command(url)
    if command is None:
        return False
    try:
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        return False
    return True
