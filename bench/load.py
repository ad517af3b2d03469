"""Load on one host: 200 agents, and 1,000 create/destroy cycles that must leak nothing.

1. 200 agents (`command -- cat`) on the local host, made by one `mngr create` each; then
   `mngr list` (median of 5), one `mngr message` to all 200, and `mngr destroy -f --all`.
   Peer: tmux itself doing the same with one command per step (new-session x200,
   list-panes -a, send-keys x200, kill-session x200), in the same sandbox's tmux server.
2. 1,000 create/destroy cycles through one controller (HostHandle in this process, the host
   daemon behind it), counting after every 100: this process's open file descriptors, its
   threads, the sandbox's processes, tmux sessions, agent dirs and files in the host dir.
   Each count must come back to where it started: no leak.

Everything runs in a Sandbox (bench/_common.py) and is removed at the end.

Run: .venv/bin/python bench/load.py
"""

from __future__ import annotations

import os
import threading
import time

from _common import MNGR, Sandbox, compile_bytecode, header, median, timed_run

AGENTS = 200
CYCLES = 1000


def tmux_peer(box: Sandbox) -> dict[str, float]:
    steps: dict[str, float] = {}
    start = time.perf_counter()
    for index in range(AGENTS):
        box.tmux("new-session", "-d", "-s", f"peer-{index}", "cat")
    steps["create"] = time.perf_counter() - start
    steps["list"] = median([timed_run(box, ["tmux", "list-panes", "-a"])[0] for _ in range(5)])
    start = time.perf_counter()
    for index in range(AGENTS):
        box.tmux("send-keys", "-t", f"=peer-{index}:", "-l", "hello")
        box.tmux("send-keys", "-t", f"=peer-{index}:", "Enter")
    steps["message"] = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(AGENTS):
        box.tmux("kill-session", "-t", f"=peer-{index}")
    steps["destroy"] = time.perf_counter() - start
    return steps


def mngr_run(box: Sandbox) -> dict[str, float]:
    steps: dict[str, float] = {}
    names = [f"a{index:03d}" for index in range(AGENTS)]
    start = time.perf_counter()
    for name in names:
        box.mngr("create", name, "command", "--no-connect", "--", "cat")
    steps["create"] = time.perf_counter() - start
    listed = box.mngr("list", "--format", "{name}").stdout.decode().split()
    if sorted(listed) != names:
        raise RuntimeError(f"mngr list showed {len(listed)} agents, not {AGENTS}")
    steps["list"] = median([timed_run(box, [MNGR, "list", "--format", "json"])[0] for _ in range(5)])
    steps["message"] = timed_run(box, [MNGR, "message", *names, "-m", "hello"])[0]
    steps["destroy"] = timed_run(box, [MNGR, "destroy", "-f", "--all"])[0]
    if box.mngr("list").stdout != b"no agents\n":
        raise RuntimeError("agents left after destroy --all")
    return steps


def counts(box: Sandbox) -> dict[str, int]:
    host_files = sum(len(files) for _, _, files in os.walk(box.host_dir / "agents"))
    sessions = box.tmux("list-sessions", "-F", "#{session_name}").stdout.decode().split()
    return {
        "controller fds": len(os.listdir("/proc/self/fd")),
        "controller threads": threading.active_count(),
        "sandbox processes": len(box.processes()),
        "tmux sessions": len([name for name in sessions if name.startswith("mngr-")]),
        "agent dirs": len(list((box.host_dir / "agents").iterdir())) if (box.host_dir / "agents").exists() else 0,
        "files under agents/": host_files,
    }


def cycles(box: Sandbox) -> tuple[list[dict[str, int]], float]:
    from mngr.controller.hosts import HostHandle
    from mngr.providers.local import LocalProvider

    work = box.work_dir
    provider = LocalProvider()
    rows = []
    start = time.perf_counter()
    with HostHandle(provider, "local", 30.0) as handle:
        handle.create_agent(name="warm", agent_type="command", command="cat", binary=None, work_dir=str(work),
                            env={}, labels={})
        handle.destroy_agent("warm")
        rows.append(counts(box))
        for cycle in range(1, CYCLES + 1):
            handle.create_agent(name=f"c{cycle % 7}", agent_type="command", command="cat", binary=None,
                                work_dir=str(work), env={"SECRET": "x"}, labels={"cycle": str(cycle)})
            handle.destroy_agent(f"c{cycle % 7}")
            if cycle % 100 == 0:
                rows.append(counts(box))
    return rows, time.perf_counter() - start


def main() -> None:
    header("load: 200 agents on one host, and 1,000 create/destroy cycles")
    compile_bytecode()
    with Sandbox() as box:
        os.environ["MNGR_STATE_DIR"] = str(box.root / "s")
        peer = tmux_peer(box)
        ours = mngr_run(box)
        rows, seconds = cycles(box)
    print(f"\n-- {AGENTS} agents on one host (s; mngr: one command per agent for create)")
    print(f"{'step':10} {'mngr':>9} {'tmux alone':>11} {'ratio':>7}")
    for step in ("create", "list", "message", "destroy"):
        print(f"{step:10} {ours[step]:9.3f} {peer[step]:11.3f} {ours[step] / peer[step]:6.1f}x")
    print(f"\n-- {CYCLES} create/destroy cycles through one controller: {seconds:.1f} s "
          f"({seconds / CYCLES * 1e3:.1f} ms a cycle); counts after every 100:")
    keys = list(rows[0])
    print("cycles  " + "  ".join(f"{key:>20}" for key in keys))
    for index, row in enumerate(rows):
        print(f"{index * 100:6}  " + "  ".join(f"{row[key]:>20}" for key in keys))
    leaks = {key: rows[-1][key] - rows[0][key] for key in keys if rows[-1][key] != rows[0][key]}
    print("leaks: none" if not leaks else f"leaks: {leaks}")


if __name__ == "__main__":
    main()
