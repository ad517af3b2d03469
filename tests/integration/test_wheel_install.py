"""mngr as a user installs it: a wheel built from this tree, put into a fresh environment of
its own by ``uv tool install``, then run from there (no checkout on its path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, built once per session (from a copy: a build writes build/
    and *.egg-info into its source tree)."""
    source = tmp_path_factory.mktemp("wheel-source") / "mngr"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests", "bench"))
    out = tmp_path_factory.mktemp("wheel-dist")
    built = subprocess.run([str(UV), "build", "--wheel", "--python", sys.executable, "--out-dir", str(out),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("*.whl")
    return found


@pytest.fixture(scope="session")
def installed_mngr(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``mngr`` command of the wheel, installed by ``uv tool install`` into a fresh tool dir."""
    tools = tmp_path_factory.mktemp("uv-tools")
    env = {**os.environ, "UV_TOOL_DIR": str(tools / "tools"), "UV_TOOL_BIN_DIR": str(tools / "bin")}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([str(UV), "tool", "install", "--python", sys.executable, str(wheel)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    yield tools / "bin" / "mngr"


def test_the_wheel_is_named_for_pypi_and_carries_the_helper_and_the_docs(wheel: Path) -> None:
    assert wheel.name.startswith("mngr_agents-")
    names = set(zipfile.ZipFile(wheel).namelist())
    helper_sources = {f"mngr/remote_helper/{path.name}" for path in (ROOT / "remote_helper").glob("*.py")}
    assert helper_sources <= names, sorted(helper_sources - names)
    assert {"mngr/docs/architecture.md", "mngr/docs/commands/list.md"} <= names
    assert {f"mngr/controller/web/static/{page}" for page in ("index.html", "app.js", "style.css")} <= names
    info = next(name for name in names if name.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(info).decode()
    for line in ("Name: mngr-agents", "Requires-Python: >=3.11", "License-Expression: MIT",
                 "Classifier: Programming Language :: Python :: 3.11", "Project-URL: Homepage, "):
        assert line in metadata, line
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_installed_command_lists_creates_and_destroys(installed_mngr: Path, sandbox) -> None:
    def mngr(*args: str) -> subprocess.CompletedProcess[str]:
        # No checkout on the path: what runs is the wheel's code, in its own environment.
        env = {key: value for key, value in sandbox.env.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run([str(installed_mngr), *args], capture_output=True, text=True, env=env,
                              cwd=sandbox.work_dir, stdin=subprocess.DEVNULL, timeout=120)

    version = mngr("--version")
    assert version.returncode == 0 and version.stdout.startswith("mngr, version "), version.stderr
    listed = mngr("list")
    assert (listed.returncode, listed.stdout) == (0, "no agents\n"), listed.stderr
    work = sandbox.root / "agent-work"
    work.mkdir()
    created = mngr("create", "from-wheel", "command", "--no-connect", "--work-dir", str(work), "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    assert sandbox.sessions() == ["mngr-from-wheel"]
    # A push: the command the installed console script may hand to a resident mngr.
    (sandbox.work_dir / "notes.txt").write_text("from the installed mngr\n")
    pushed = mngr("push", "from-wheel", str(sandbox.work_dir))
    assert pushed.returncode == 0, pushed.stderr
    assert (work / "notes.txt").read_text() == "from the installed mngr\n"
    agents = json.loads(mngr("list", "--format", "json").stdout)["agents"]
    assert [(agent["name"], agent["state"]) for agent in agents] == [("from-wheel", "RUNNING")]
    # The helper the host runs was unpacked from the wheel's own copy of its sources: the same
    # files as this tree's, so the same content hash.
    from mngr.controller.channel.bootstrap import helper_hash

    assert [path.name for path in (sandbox.host_dir / "helper").iterdir()] == [helper_hash()]
    destroyed = mngr("destroy", "-f", "from-wheel")
    assert destroyed.returncode == 0, destroyed.stderr
    assert sandbox.sessions() == []
    assert mngr("list").stdout == "no agents\n"


def test_the_installed_command_serves_the_dashboard(installed_mngr: Path, sandbox) -> None:
    from tests.web_dashboard import running_dashboard

    sandbox.env.pop("PYTHONPATH", None)
    with running_dashboard(sandbox, mngr=installed_mngr) as dashboard:
        status, page = dashboard.api("GET", "/")
        assert status == 200 and '<table id="agents">' in page
        assert dashboard.api("GET", "/static/app.js")[0] == 200
