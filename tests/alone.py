"""Tests marked ``alone`` run while no other test of the run does (the suite runs in several
processes, see pyproject.toml).

Such a test asserts a decision mngr makes from how fast this machine is: a loopback link
measured fast enough to send data as it is, files changing while a transfer runs, an agent
still within its quiet threshold; or it changes something every test of the run shares (the
installed mngr's files, which every resident mngr checks). Other tests of the same run, on a machine of two cores,
can slow the machine down enough to change that decision. (Another user's load still can,
as it could before the suite ran in several processes.)

Every test takes a shared lock on a file of the run for as long as it runs (setup and
teardown included); an ``alone`` test takes it exclusively. A gate lock, taken before
either, keeps new tests from starting while an ``alone`` test waits for the running ones
to finish, so it is not kept waiting by a stream of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

MARKER = "alone"
RUN_ID_VARIABLE = "PYTEST_XDIST_TESTRUNUID"  # set by pytest-xdist in each of its test processes


def run_dir(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"mngr-tests-{run_id}"


@contextlib.contextmanager
def turn(alone: bool) -> Iterator[None]:
    """Hold this test's turn: shared with the other tests, or, if ``alone``, with none."""
    run_id = os.environ.get(RUN_ID_VARIABLE)
    if not run_id:  # one process: nothing runs alongside
        yield
        return
    directory = run_dir(run_id)
    directory.mkdir(exist_ok=True)
    with (directory / "gate").open("a") as gate, (directory / "running").open("a") as running:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(running, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(running, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)


def remove_run_dir(run_id: str) -> None:
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
