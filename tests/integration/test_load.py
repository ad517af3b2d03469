"""Create/destroy cycles through one controller leak nothing (bench/load.py runs 1,000)."""

from __future__ import annotations

import os
import threading

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


def test_a_hundred_create_destroy_cycles_leave_no_fd_thread_process_session_or_file(sandbox, monkeypatch) -> None:
    sandbox.apply_env(monkeypatch)
    with HostHandle(LocalProvider(), "local", 30.0) as handle:
        def cycle(name: str) -> None:
            handle.create_agent(name=name, agent_type="command", command="cat", binary=None,
                                work_dir=str(sandbox.work_dir), env={"SECRET": "x"}, labels={})
            handle.destroy_agent(name)

        cycle("warm")  # the host daemon and the tmux server start once
        before = _counts(sandbox)
        for index in range(100):
            cycle(f"c{index % 7}")
        after = _counts(sandbox)
        # Fewer descriptors is no leak: one may have been open for a moment at the first count.
        assert after.pop("fds") <= before.pop("fds")
        assert after == before
