"""Opening a URL in the user's browser, as the tools they know do.

``$BROWSER`` first: one command or several separated by ``:`` (``os.pathsep``), each tried
in turn until one succeeds, the URL in place of ``%s`` or else added at the end (the rules
of Python's webbrowser module and of xdg-open). Without it, ``open`` on macOS and
``xdg-open`` on a Linux desktop. On a machine with no display (an SSH session) xdg-open
would start a text browser in the user's terminal, so there is no browser there: the
caller prints the URL instead.

webbrowser itself is not used because without a display it falls back to those text
browsers, and it cannot say which command opened the page.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys


def browser_commands() -> list[list[str]]:
    """The commands to try, each without the URL (a ``%s`` marks where it goes)."""
    chosen = os.environ.get("BROWSER", "")
    if chosen.strip():
        commands = []
        for command in chosen.split(os.pathsep):
            try:
                words = shlex.split(command)
            except ValueError:
                continue
            if words:
                commands.append(words)
        return commands
    if sys.platform == "darwin":
        return [["open"]]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return [["xdg-open"]]
    return []


def open_in_browser(url: str) -> str | None:
    """Open ``url``: the program that took it, or None when no browser here would."""
    for words in browser_commands():
        argv = [word.replace("%s", url) for word in words] if any("%s" in word for word in words) \
            else [*words, url]
        try:
            # Waited for, as webbrowser does for $BROWSER: a text browser needs the terminal
            # until it ends; xdg-open and open hand the URL over and return at once.
            finished = subprocess.run(argv, check=False)
        except OSError:
            continue
        if finished.returncode == 0:
            return argv[0]
    return None
