"""`mngr --help` and `mngr list` must stay light: no docker, modal, paramiko or tomlkit (only
`mngr config set|unset` need it) on those paths, nor rich (the progress line imports it
only once there is something to draw), nor aiohttp (mngr web's server, loaded once it serves)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("docker", "modal", "paramiko", "tomlkit", "rich", "aiohttp")  # aiohttp: mngr web's alone

_PROBE = """
import json, sys
from mngr.controller.cli.main import run
try:
    run(sys.argv[1:])
finally:
    sys.stdout.flush()
    sys.__stderr__.write("\\nMODULES=" + json.dumps(sorted(sys.modules)) + "\\n")
"""


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--format", "json"], ["web", "--help"]])
def test_cli_does_not_import_heavy_sdks(sandbox, args: list[str]) -> None:
    for package in HEAVY:
        # The check means something only if the packages could be imported at all.
        __import__(package)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True, text=True, env=sandbox.env, cwd=sandbox.work_dir, timeout=60,
    )
    marker = result.stderr.rsplit("MODULES=", 1)
    assert len(marker) == 2, result.stderr
    modules = json.loads(marker[1])
    assert "mngr.controller.cli.main" in modules
    loaded = [m for m in modules if m.split(".")[0] in HEAVY]
    assert loaded == [], f"mngr {' '.join(args)} imported {loaded}"
