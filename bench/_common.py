"""Shared pieces of the benchmarks: an isolated sandbox, bytecode warm-up, timing statistics.

Every benchmark runs inside a Sandbox: its own MNGR_HOST_DIR, MNGR_CONFIG_DIR and tmux
server (a short TMUX_TMPDIR under /tmp, because tmux socket paths must fit in 108 bytes), a
work dir outside the repository (so no project config is picked up), and no inherited
TMUX*/MNGR_* variables. The sandbox also becomes this process's own environment and cwd, so
helpers started in-process (RpcClient.bootstrap) see the same world as `mngr` subprocesses.
On exit the sandbox's tmux server is killed, then every process still carrying the sandbox's
paths in its environment (helpers, host daemons, agents: all started by this benchmark) is
stopped by pid, and the sandbox's directories are deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MNGR = str(Path(sys.executable).with_name("mngr"))
# `.venv/bin/python -c "import mngr.controller.cli.main"`: interpreter start plus the CLI's imports.
FLOOR_ARGV = [PYTHON, "-c", "import mngr.controller.cli.main"]


# The start of a child's script that times some of mngr's functions from outside (nothing
# in mngr changes): timed(owner, attribute, label) wraps one; seconds add up in `steps`.
STEP_TIMER = r"""
import json, sys, time
steps = {}
def timed(owner, name, label):
    function = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            steps[label] = steps.get(label, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)
"""

# The end of a child script that times mngr's steps: run the command in-process, then print
# the steps' seconds to stderr as JSON.
RUN_TIMED = r"""
from mngr.controller.cli.main import run
start = time.perf_counter()
code = run(sys.argv[1:])
steps["whole command after imports"] = time.perf_counter() - start
print(json.dumps(steps), file=sys.stderr)
sys.exit(code)
"""


# Finds or starts the engine and the base image, prints the image, waits for stdin to close,
# then lets the engine go (stopping a dockerd only if this child started it).
ENGINE_CHILD = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from tests import docker_engine
client, reason = docker_engine.engine_or_skip_reason()
if client is None:
    print("SKIP " + reason, flush=True)
else:
    try:
        print("IMAGE " + docker_engine.base_image(client), flush=True)
    except docker_engine.BaseImageUnavailable as exc:
        print("SKIP " + str(exc), flush=True)
sys.stdin.read()
docker_engine.stop_started_engine()
"""


@contextlib.contextmanager
def docker_base_image() -> Iterator[str]:
    """The local Debian test image, on a Docker engine found or started (as the tests do) by a
    child that runs for the whole block and then lets the engine go (stopping a dockerd only
    if it started one). SystemExit when no engine can be had."""
    engine = subprocess.Popen([PYTHON, "-c", ENGINE_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=str(REPO))
    try:
        found = engine.stdout.readline().decode().strip()  # type: ignore[union-attr]
        if not found.startswith("IMAGE "):
            raise SystemExit(f"cannot run: {found.removeprefix('SKIP ') or 'the engine child failed'}")
        yield found.removeprefix("IMAGE ")
    finally:
        engine.stdin.close()  # type: ignore[union-attr]
        engine.wait(60)


def timed_run(box: Sandbox, argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, bytes]:
    """(wall seconds, stdout) of a command that must succeed."""
    start = time.perf_counter()
    done = box.run(argv, env=env)
    return time.perf_counter() - start, done.stdout


class Sandbox:
    def __init__(self, under: str = "/tmp") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mngr-bench-", dir=under))
        self.host_dir = self.root / "h"
        self.config_dir = self.root / "c"
        self.work_dir = self.root / "w"
        self.config_dir.mkdir()
        self.work_dir.mkdir()
        self._saved_env = dict(os.environ)
        self._saved_cwd = os.getcwd()

    def __enter__(self) -> Sandbox:
        for key in list(os.environ):
            if key.startswith("MNGR_") or key in ("TMUX", "TMUX_PANE"):
                del os.environ[key]
        # Users' machines write bytecode; measure mngr, not recompilation on every start.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ.update(
            MNGR_HOST_DIR=str(self.host_dir),
            MNGR_CONFIG_DIR=str(self.config_dir),
            TMUX_TMPDIR=str(self.root),
        )
        os.chdir(self.work_dir)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.tmux("kill-server")
        self.stop_processes()
        os.chdir(self._saved_cwd)
        os.environ.clear()
        os.environ.update(self._saved_env)
        shutil.rmtree(self.root, ignore_errors=True)

    def processes(self) -> list[int]:
        """Pids of processes whose MNGR_HOST_DIR or TMUX_TMPDIR lies in this sandbox."""
        exact = [f"{key}={self.root}".encode() for key in ("MNGR_HOST_DIR", "TMUX_TMPDIR")]
        prefixes = tuple(item + b"/" for item in exact)
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if any(item in exact or item.startswith(prefixes) for item in environ.split(b"\0")):
                pids.append(int(entry))
        return pids

    def stop_processes(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(0.3)

    def stop_daemons(self) -> None:
        """Stop this sandbox's host daemons (mngr's warm path): later commands bootstrap."""
        for pid in self.processes():
            with contextlib.suppress(OSError):
                if b"mngr_remote_helper.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGTERM)

    def run(self, argv: Sequence[str], check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        completed = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                                   env={**os.environ, **env} if env else None)
        if check and completed.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])}... failed: {completed.stderr.decode().strip()}")
        return completed

    def mngr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return self.run([MNGR, *args], check)

    def tmux(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[bytes]:
        return self.run(["tmux", *args], check)

    def rpc(self):  # -> RpcClient; imported lazily so that importing _common stays cheap
        from mngr.controller.channel.bootstrap import stage1_argv
        from mngr.controller.channel.rpc import RpcClient
        from mngr.controller.channel.stream import ProcessStream

        return RpcClient.bootstrap(ProcessStream("local", stage1_argv(PYTHON)))


def compile_bytecode() -> None:
    """Write .pyc files for mngr and the venv once, as a normal (bytecode-writing) install has."""
    import sysconfig

    targets = [str(REPO / "controller"), str(REPO / "providers"), str(REPO / "remote_helper"),
               sysconfig.get_paths()["purelib"]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([PYTHON, "-m", "compileall", "-q", "-j", "0", *targets], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def header(title: str) -> None:
    print(f"== {title}")
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: nproc={len(os.sched_getaffinity(0))} python={platform.python_version()} "
          f"({sys.executable}) kernel={platform.release()}")
    print(f"code: {git_state()}")


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", "controller", "providers", "remote_helper").strip()
    return f"git {head}" + (" + uncommitted changes in controller/providers/remote_helper" if dirty else "")


def target(label: str, met: bool) -> None:
    print(f"target {label}: {'MET' if met else 'MISSED'}")
