"""A Ctrl-C is "mngr: interrupted" and status 130 however Python hands it over: a
KeyboardInterrupt raised while a class is being made (as importing ``platform`` does, under
click) arrives as a RuntimeError caused by it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mngr.controller.cli.entry import caused_by_ctrl_c
from mngr.controller.cli.exits import exit_status


def _make_a_class_interrupted() -> int:
    class InterruptedWhileNamed:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt  # where SIGINT's handler would raise it

    class Made:
        field = InterruptedWhileNamed()

    return 0


def test_an_interrupt_wrapped_by_class_creation_is_an_interrupt(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError) as raised:
        _make_a_class_interrupted()
    assert caused_by_ctrl_c(raised.value)
    assert exit_status(_make_a_class_interrupted) == 130
    assert capsys.readouterr().err == "mngr: interrupted\n"


def test_an_error_while_handling_an_interrupt_is_an_interrupt() -> None:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError("cleanup failed")  # noqa: B904 - the implicit chain is what is checked
    except OSError as exc:
        assert caused_by_ctrl_c(exc)


def test_other_failures_stay_what_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    assert not caused_by_ctrl_c(RuntimeError("x"))
    assert not caused_by_ctrl_c(ValueError("y").with_traceback(None))

    def broken() -> int:
        raise RuntimeError("a defect")

    assert exit_status(broken) == 1
    assert "internal error: RuntimeError: a defect" in capsys.readouterr().err


def test_the_console_script_leaves_with_one_line_when_loading_is_interrupted() -> None:
    """The console script's own handler, around its first imports."""
    program = """
import sys
from mngr.controller.cli import entry, resident_client
from tests.unit.test_ctrl_c_exits import _make_a_class_interrupted
resident_client.run = lambda argv: _make_a_class_interrupted()
sys.argv = ["mngr", "list"]
entry.main()
"""
    finished = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert (finished.returncode, finished.stderr) == (130, "mngr: interrupted\n")
