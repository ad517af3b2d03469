"""`mngr create NAME --agent-type command --no-connect -- sleep 600`, end to end.

create  the mngr command as a subprocess, a new name each run, as mngr runs by default (after
        the warm-up, through the host daemon's unix socket); the agent is destroyed
        (untimed, through an RpcClient) before the next run, so every run sees the same host.
tmux    `tmux new-session -d -s NAME sleep 600`: the tmux work any create must do; the
        session is killed (untimed) before the next run.
floor   `.venv/bin/python -c "import mngr.controller.cli.main"`: interpreter start plus the
        CLI's imports.

A `keeper` session (not an mngr agent) holds the sandbox's tmux server up for the whole run,
so neither mngr nor the tmux peer pays for starting a tmux server. Runs alternate the three.

Run: .venv/bin/python bench/create_agent.py
"""

from __future__ import annotations

import time

from _common import FLOOR_ARGV, MNGR, Sandbox, compile_bytecode, header, median, target

RUNS = 20
WARMUP = 3
TARGET_MS = 300.0


def timed_run(box: Sandbox, argv: list[str]) -> float:
    start = time.perf_counter()
    box.run(argv)
    return time.perf_counter() - start


def main() -> None:
    header("create_agent: `mngr create ... --no-connect -- sleep 600` vs tmux new-session and the floor")
    compile_bytecode()
    from mngr.controller.channel import protocol

    with Sandbox() as box:
        box.tmux("new-session", "-d", "-s", "keeper", "sleep 3600", check=True)
        client = box.rpc()
        create: list[float] = []
        tmux: list[float] = []
        floor: list[float] = []
        try:
            for i in range(WARMUP + RUNS):
                name = f"bench-{i}"
                create_time = timed_run(box, [MNGR, "create", name, "--agent-type", "command",
                                              "--no-connect", "--", "sleep", "600"])
                client.call(protocol.DestroyAgent(name=name), protocol.Done)
                tmux_time = timed_run(box, ["tmux", "new-session", "-d", "-s", f"peer-{i}", "sleep 600"])
                box.tmux("kill-session", "-t", f"=peer-{i}", check=True)
                floor_time = timed_run(box, FLOOR_ARGV)
                if i >= WARMUP:
                    create.append(create_time)
                    tmux.append(tmux_time)
                    floor.append(floor_time)
        finally:
            client.close()
            client.stream.terminate()

    c, t, f = median(create) * 1e3, median(tmux) * 1e3, median(floor) * 1e3
    print(f"median of {RUNS} runs each (after {WARMUP} warm-up), ms:")
    print(f"  mngr create            {c:7.1f}   min {min(create) * 1e3:6.1f}")
    print(f"  tmux new-session -d    {t:7.1f}   min {min(tmux) * 1e3:6.1f}")
    print(f"  floor (import CLI)     {f:7.1f}   min {min(floor) * 1e3:6.1f}")
    print(f"  ratio create/tmux {c / t:.2f}x   create/floor {c / f:.2f}x   "
          f"create - floor - tmux = {c - f - t:.1f} ms")
    target(f"create <= {TARGET_MS:.0f} ms (measured {c:.1f} ms)", c <= TARGET_MS)


if __name__ == "__main__":
    main()
