"""Create/destroy cycles through one controller leak nothing (bench/load.py runs 1,000)."""

from __future__ import annotations

import os
import threading
import time

from mngr.controller.hosts import HostHandle
from mngr.providers.local import LocalProvider


def _counts(sandbox) -> dict[str, int]:  # type: ignore[no-untyped-def]
    agents = sandbox.host_dir / "agents"
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "processes": len(sandbox.own_processes()),
        "sessions": len(sandbox.sessions()),
        "agent dirs": len(list(agents.iterdir())) if agents.exists() else 0,
    }


def _settled_counts(sandbox) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Counts once tmux is done ending: killing the last session makes its server exit (and
    the pane's output pipe close) a moment after destroy returns, with no agent process left."""
    deadline = time.monotonic() + 10.0
    previous = _counts(sandbox)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = _counts(sandbox)
        if current == previous and not _tmux_processes(sandbox):
            return current
        previous = current
    return previous


def _tmux_processes(sandbox) -> list[int]:  # type: ignore[no-untyped-def]
    found = []
    for pid in sandbox.own_processes():
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() in ("tmux: server", "tmux", "cat"):
                    found.append(pid)
        except OSError:
            continue
    return found


def test_a_hundred_create_destroy_cycles_leave_no_fd_thread_process_session_or_file(sandbox, monkeypatch) -> None:
    sandbox.apply_env(monkeypatch)
    with HostHandle(LocalProvider(), "local", 30.0) as handle:
        def cycle(name: str) -> None:
            handle.create_agent(name=name, agent_type="command", command="cat", binary=None,
                                work_dir=str(sandbox.work_dir), env={"SECRET": "x"}, labels={})
            handle.destroy_agent(name)

        cycle("warm")  # the host daemon and the tmux server start once
        before = _settled_counts(sandbox)
        for index in range(100):
            cycle(f"c{index % 7}")
        after = _settled_counts(sandbox)
        # Fewer descriptors is no leak: one may have been open for a moment at the first count.
        assert after.pop("fds") <= before.pop("fds")
        assert after == before
