"""Rendering throughput of `plain_lines` (controller/terminal_text.py), in process, in MB/s.

Two 16 MB streams:
log         what transcript_tail.py writes into output logs: test runner, compiler and logger
            lines with ANSI colours, CR-redrawn progress lines, long JSON lines, CRLF endings;
redraw      a TUI redrawing in place as ink does: a box-drawn frame of a few lines, then cursor
            up and erase line over each of them, then the next frame, with a line of history
            printed above it now and then.

Peer in the same run: strip, the regular-expression pass that transcripts used before they
were rendered (escapes removed, CR resolved per line; no cursor moves, no wrapping): what
rendering costs on top of reading the escapes at all. Best of 5 runs each.

Run: .venv/bin/python bench/render_throughput.py
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from _common import header, target
from transcript_tail import output_lines

SIZE = 16_000_000
RUNS = 5

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[PX^_][^\x1b]*\x1b\\"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b[()][0-9A-Za-z]"
)
_OTHER_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip(text: str) -> list[str]:
    text = _ESCAPES.sub("", text).replace("\r\n", "\n")
    return [_OTHER_CONTROLS.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]) for line in text.split("\n")]


def redraw_stream(size: int) -> str:
    parts = []
    total = 0
    frame = 0
    while total < size:
        frame += 1
        lines = ["╭" + "─" * 78 + "╮",
                 f"│ \x1b[1m✻ Working…\x1b[0m ({frame % 60}s · ↓ {frame * 7 % 9000} tokens · esc to interrupt)".ljust(79)
                 + "│",
                 "╰" + "─" * 78 + "╯"]
        text = "\r\n".join(lines) + "\r\n"
        if frame % 20 == 0:
            text = f"\x1b[32m⏺\x1b[0m Read src/module_{frame}.py ({frame % 400} lines)\r\n" + text
        erase = "\x1b[2K\x1b[1A" * len(lines) + "\x1b[2K\x1b[G"
        parts.append(text + erase)
        total += len((text + erase).encode())
    return "".join(parts)


def throughput(render: Callable[[str], list[str]], text: str) -> float:
    best = min(_timed(render, text) for _ in range(RUNS))
    return len(text.encode()) / 1e6 / best


def _timed(render: Callable[[str], list[str]], text: str) -> float:
    start = time.perf_counter()
    render(text)
    return time.perf_counter() - start


def main() -> None:
    header("render_throughput: plain_lines on 16 MB of terminal output, MB/s")
    from mngr.controller.terminal_text import plain_lines

    streams = {"log": b"".join(output_lines(SIZE, 0)).decode(), "redraw": redraw_stream(SIZE)}
    results = {}
    for name, text in streams.items():
        rendered, stripped = throughput(plain_lines, text), throughput(strip, text)
        results[name] = rendered
        print(f"  {name:7} {len(text.encode()) / 1e6:5.1f} MB: render {rendered:6.1f} MB/s   strip {stripped:6.1f} MB/s"
              f"   render/strip {rendered / stripped:.2f}x   ({len(plain_lines(text)):,} lines rendered)")
    target(f"a 16 MB log renders in under 1 s (log: {SIZE / 1e6 / results['log']:.2f} s)", results["log"] * 1.0 >= 16)


if __name__ == "__main__":
    main()
