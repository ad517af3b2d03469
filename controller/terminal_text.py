"""Turning what a terminal program printed into plain text: escapes removed, lines resolved."""

from __future__ import annotations

import re

# CSI (colours, cursor moves), OSC (titles, links; ended by BEL or ST), and two-byte escapes.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[PX^_][^\x1b]*\x1b\\"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b[()][0-9A-Za-z]"
)
_OTHER_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain_lines(text: str) -> list[str]:
    """The lines a reader would see: escapes gone, a carriage return starting its line over."""
    text = _ESCAPES.sub("", text).replace("\r\n", "\n")
    lines = []
    for raw_line in text.split("\n"):
        # "50%\r100%" shows as "100%": the last segment overwrites what came before it.
        # Trailing carriage returns ("\r\r\n" from a program that printed "\r\n" on a
        # terminal) move the cursor without overwriting anything.
        line = raw_line.rstrip("\r").rsplit("\r", 1)[-1]
        lines.append(_OTHER_CONTROLS.sub("", line))
    return lines
