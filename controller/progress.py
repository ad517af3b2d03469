"""What a long operation is doing, on one line of the user's terminal.

A command wraps work that can take more than a second (a transfer, an image build, the
wait for an agent to be ready, asking every host for its agents) in ``Progress``. Nothing
is drawn for the first ``DELAY_SECONDS``: quick work stays silent, and rich (which draws
the line, and respects NO_COLOR) is imported only once something is worth drawing, on the
drawing thread, so a command's start-up never pays for it. The line goes to stderr and is
cleared when the work ends, fails or is interrupted (Ctrl-C), before the command prints
its result.

Nothing at all is written unless ``progress_allowed``: stderr a terminal that is not
TERM=dumb, and progress not turned off (``-q``, verbosity.QUIET, or MNGR_QUIET).
A pipe, a log or a script reading stderr sees only what the command says without it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

DELAY_SECONDS = 0.5  # work shorter than this shows nothing
REFRESH_SECONDS = 0.1

def progress_allowed(stream: TextIO) -> bool:
    """Whether progress may be drawn on ``stream``."""
    from . import verbosity

    if verbosity.quiet() or os.environ.get("MNGR_QUIET", "").lower() not in ("", "0", "false", "no", "off"):
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


class Progress:
    """One operation's line: ``what`` it does, how far it got of ``total`` (in ``unit``:
    "bytes" shows sizes, rate and time left; another word, a count "3/7 hosts"; no total,
    the time it has taken so far), and a short ``note`` after it.

    Thread-safe: the work may ``advance`` it from several threads. ``follow`` names a
    function asked for the amount done at every redraw, for work that counts it itself;
    one operation may go through several stages, each with its own ``what``, total and
    count.
    """

    def __init__(self, what: str, *, total: float | None = None, unit: str = "", stream: TextIO | None = None,
                 delay: float = DELAY_SECONDS) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._what = what
        self._total = total
        self._unit = unit
        self._delay = delay
        self._done = 0.0
        self._note = ""
        self._source: Callable[[], float] | None = None
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._drawer: threading.Thread | None = None

    @property
    def done(self) -> float:
        with self._lock:
            return self._done

    def advance(self, amount: float = 1) -> None:
        with self._lock:
            self._done += amount

    def update(self, *, done: float | None = None, total: float | None = None, what: str | None = None,
               note: str | None = None) -> None:
        with self._lock:
            if done is not None:
                self._done = done
            if total is not None:
                self._total = total
            if what is not None:
                self._what = what
            if note is not None:
                self._note = note

    def follow(self, source: Callable[[], float]) -> None:
        """From now on the amount done is what ``source`` says (asked at each redraw)."""
        with self._lock:
            self._source = source
            self._done = 0

    def start(self) -> Progress:
        if self._drawer is None and progress_allowed(self._stream):
            self._drawer = threading.Thread(target=self._draw, name="mngr-progress", daemon=True)
            self._drawer.start()
        return self

    def close(self) -> None:
        """End the line: cleared, and nothing more drawn. Waits for the drawing thread, so
        that what the command writes next is not mixed with the line."""
        self._ended.set()
        if self._drawer is not None and self._drawer is not threading.current_thread():
            self._drawer.join()

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _snapshot(self) -> tuple[str, float | None, float, str]:
        with self._lock:
            source = self._source
        if source is not None:
            try:
                done = source()
            except Exception:  # a count that cannot be read now is drawn as it was
                done = None
            if done is not None:
                with self._lock:
                    if self._source is source:
                        self._done = done
        with self._lock:
            return self._what, self._total, self._done, self._note

    def _draw(self) -> None:
        if self._ended.wait(self._delay):
            return
        try:
            bar = _Bar(self._stream, self._unit, self._total is not None or bool(self._unit))
        except ImportError:  # an install without rich: the work goes on, undrawn
            return
        try:
            while True:
                what, total, done, note = self._snapshot()
                bar.show(what, total, done, note)
                if self._ended.wait(REFRESH_SECONDS):
                    break
        except (OSError, ValueError):  # stderr went away (closed, a hung-up terminal): nothing to draw on
            return
        with contextlib.suppress(OSError, ValueError):
            bar.clear()


class _Bar:
    """The line as rich draws it (imported here: only for work that lasted)."""

    def __init__(self, stream: TextIO, unit: str, counted: bool) -> None:
        from rich import progress as rich_progress
        from rich.console import Console
        from rich.table import Column

        def cell() -> Column:  # one line whatever the terminal's width: cut short, never wrapped
            return Column(no_wrap=True, overflow="ellipsis")

        def text(template: str) -> Any:
            return rich_progress.TextColumn(template, table_column=cell())

        # What the columns after the description take (bar, sizes, rate, time, spaces): the
        # description is cut short to leave them room.
        self._others = 56 if unit == "bytes" else 36 + len(unit) if counted else 12
        self._what = Column(no_wrap=True, overflow="ellipsis")
        what = rich_progress.TextColumn("{task.description}", table_column=self._what)
        columns: list[Any]
        if unit == "bytes":
            columns = [what, rich_progress.BarColumn(bar_width=12, table_column=cell()),
                       rich_progress.DownloadColumn(table_column=cell()),
                       rich_progress.TransferSpeedColumn(table_column=cell()),
                       rich_progress.TimeRemainingColumn(table_column=cell())]
        elif counted:
            columns = [what, rich_progress.BarColumn(bar_width=12, table_column=cell()),
                       rich_progress.MofNCompleteColumn(table_column=cell()), text(unit),
                       rich_progress.TimeElapsedColumn(table_column=cell())]
        else:
            columns = [rich_progress.SpinnerColumn(table_column=cell()), what,
                       rich_progress.TimeElapsedColumn(table_column=cell())]
        columns.append(text("{task.fields[note]}"))
        self._console = Console(file=stream)
        self._progress = rich_progress.Progress(
            *columns, console=self._console, transient=True, auto_refresh=False,
            redirect_stdout=False, redirect_stderr=False)
        self._task = self._progress.add_task("", total=None, note="")
        self._started = False

    def show(self, what: str, total: float | None, done: float, note: str) -> None:
        if total is not None and done > total:
            total = done
        self._what.max_width = max(16, self._console.width - self._others - len(note))
        self._progress.update(self._task, description=what, total=total, completed=done, note=note)
        if not self._started:
            self._progress.start()
            self._started = True
        self._progress.refresh()

    def clear(self) -> None:
        if self._started:
            self._progress.stop()
