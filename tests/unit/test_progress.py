"""The progress line (controller/progress.py), in-process on streams that say they are a
terminal or not. Through a real pseudo-terminal: tests/integration/test_progress_terminal.py."""

from __future__ import annotations

import io
import threading

import pytest

from mngr.controller.progress import Progress, progress_allowed


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _a_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "MNGR_QUIET", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def _drawn(stream: io.StringIO, *, total: float | None = 100, unit: str = "bytes", what: str = "pushing to box",
           steps: int = 3) -> str:
    """What a Progress with no delay writes while it moves on ``steps`` times by 10 (each
    step once it was drawn), then closed."""
    line = Progress(what, total=total, unit=unit, stream=stream, delay=0)
    with line:
        for step in range(steps):
            note = f"step {step}"
            line.update(done=10 * (step + 1), note=note)
            _wait_until(lambda note=note: note in stream.getvalue() or not progress_allowed(stream))
    return stream.getvalue()


def _wait_until(condition) -> None:  # bounded by the test's own timeout, nothing timed
    event = threading.Event()
    while not condition():
        event.wait(0.01)


def test_on_a_terminal_the_line_is_redrawn_then_cleared() -> None:
    drawn = _drawn(_Terminal())
    assert drawn.count("pushing to box") >= 3
    assert "step 2" in drawn
    assert " bytes" in drawn or "/100 bytes" in drawn or " B" in drawn  # sizes, for unit "bytes"
    # Cleared at the end: the cursor back at the start of an erased line.
    assert drawn.endswith("\x1b[2K")


def test_a_count_shows_done_of_total_in_its_unit() -> None:
    drawn = _drawn(_Terminal(), total=30, unit="hosts", what="asking hosts", steps=2)
    assert "asking hosts" in drawn and "20/30" in drawn and " hosts" in drawn


def test_work_with_no_total_shows_its_time_so_far() -> None:
    drawn = _drawn(_Terminal(), total=None, unit="", what="waiting for box to be ready", steps=1)
    assert "waiting for box to be ready" in drawn and "0:00:0" in drawn


def test_nothing_is_written_where_stderr_is_not_a_terminal() -> None:
    assert _drawn(io.StringIO()) == ""


def test_nothing_is_written_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert _drawn(_Terminal()) == ""


@pytest.mark.parametrize("how", ["-q", "MNGR_QUIET"])
def test_quiet_turns_it_off(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "-q":
        from mngr.controller import verbosity

        verbosity.set_level(verbosity.QUIET)
        try:
            assert _drawn(_Terminal()) == ""
        finally:
            verbosity.set_level(verbosity.NORMAL)
    else:
        monkeypatch.setenv("MNGR_QUIET", "1")
        assert _drawn(_Terminal()) == ""
        monkeypatch.setenv("MNGR_QUIET", "0")
    assert _drawn(_Terminal()) != ""  # and back on


def test_no_color_draws_the_line_without_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "\x1b[3" in _drawn(_Terminal()) or "\x1b[9" in _drawn(_Terminal())  # coloured by default
    monkeypatch.setenv("NO_COLOR", "1")
    drawn = _drawn(_Terminal())
    assert "pushing to box" in drawn
    assert not any(f"\x1b[{code}" in drawn for code in ("31m", "32m", "36m", "90m", "91m"))


def test_work_shorter_than_the_delay_shows_nothing() -> None:
    terminal = _Terminal()
    with Progress("quick", total=1, stream=terminal, delay=3600) as line:
        line.advance()
    assert terminal.getvalue() == ""


def test_a_failure_clears_the_line() -> None:
    terminal = _Terminal()
    with pytest.raises(RuntimeError), Progress("failing", stream=terminal, delay=0):
        _wait_until(lambda: "failing" in terminal.getvalue())
        raise RuntimeError("boom")
    assert terminal.getvalue().endswith("\x1b[2K")


def test_a_followed_count_is_read_at_each_redraw() -> None:
    terminal = _Terminal()
    counted = [0]
    with Progress("following", total=100, unit="files", stream=terminal, delay=0) as line:
        line.follow(lambda: counted[0])
        counted[0] = 42
        _wait_until(lambda: "42/100" in terminal.getvalue())
        assert line.done == 42
