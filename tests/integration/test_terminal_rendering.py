"""tmux as the oracle for the renderer: the same bytes, written raw into a 200x50 tmux pane,
must show the same lines in `capture-pane` (the history and the screen) as plain_lines
gives. The cases are the unit tests' (tests/unit/test_terminal_text.py), but for the few
where a transcript means to differ from a screen."""

from __future__ import annotations

import shlex

from mngr.controller.terminal_text import plain_lines
from tests.conftest import wait_for
from tests.unit.test_terminal_text import CASES

# Deliberate differences, each documented in controller/terminal_text.py.
NOT_LIKE_TMUX = {
    # CSI 3 J clears tmux's scrollback; a transcript keeps its record.
    "clearing the scrollback keeps the transcript",
    # capture-pane shows only the alternate screen; the transcript shows the main screen's lines first.
    "still on the alternate screen: it comes last",
    # tmux keeps the wide character whose right half was overwritten; a terminal cannot show both.
    "overwriting half a wide character blanks it",
}


def shown(lines: list[str]) -> list[str]:
    """Lines as capture-pane prints them: trailing spaces and trailing empty lines gone."""
    trimmed = [line.rstrip(" ") for line in lines]
    while trimmed and not trimmed[-1]:
        trimmed.pop()
    return trimmed


def test_the_renderer_shows_what_tmux_shows(sandbox) -> None:
    assert set(CASES) >= NOT_LIKE_TMUX
    names = sorted(set(CASES) - NOT_LIKE_TMUX)
    sessions = {}
    for index, name in enumerate(names):
        session = f"render-{index}"
        sessions[name] = session
        data = sandbox.root / f"{session}.out"
        # The title, set last, says tmux has parsed every byte before it.
        data.write_bytes(CASES[name][0].encode() + f"\x1b]2;done-{session}\x07".encode())
        # -opost: the bytes reach tmux as written, with no newline turned into CR LF.
        script = f"stty -opost; cat {shlex.quote(str(data))}; exec sleep 600"
        result = sandbox.tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", "sh", "-c", script)
        assert result.returncode == 0, result.stderr
    differences = {}
    for name, session in sessions.items():
        wait_for(lambda session=session: sandbox.tmux("display-message", "-p", "-t", f"={session}:",
                                                      "#{pane_title}").stdout.strip() == f"done-{session}",
                 f"tmux to show {name!r}")
        captured = sandbox.tmux("capture-pane", "-p", "-S", "-", "-t", f"={session}:").stdout
        expected = shown(captured.split("\n"))
        if shown(plain_lines(CASES[name][0])) != expected:
            differences[name] = (expected, shown(plain_lines(CASES[name][0])))
    assert differences == {}

