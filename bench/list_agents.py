"""`mngr list` (default human format) with 0, 10 and 50 local agents vs the CLI import floor.

floor     `.venv/bin/python -c "import mngr.controller.cli.main"`: interpreter start plus
          the CLI's imports, the least any `mngr` command can cost.
list      `.venv/bin/mngr list` as a subprocess, output captured, as mngr runs by default:
          through the host daemon's unix socket once a daemon is up (the warm path).
no daemon the same with the daemon stopped and MNGR_HOST_DAEMON=0, so every command
          bootstraps a fresh helper (the cold path every remote host takes).

Agents (`sleep 600` in tmux) are created through one RpcClient (CreateAgent requests), which
is much faster than `mngr create` and gives the same records and sessions. Runs alternate
floor / list so that machine noise hits both. Also printed, for the breakdown: one
ListAgents request on an already-open channel (the helper's own share of the work).

Run: .venv/bin/python bench/list_agents.py
"""

from __future__ import annotations

import time

from _common import FLOOR_ARGV, MNGR, Sandbox, compile_bytecode, header, median, target

COUNTS = (0, 10, 50)
RUNS = 20
WARMUP = 3
TARGET_OVER_FLOOR_MS = 40.0
NO_DAEMON = {"MNGR_HOST_DAEMON": "0"}


def timed_run(box: Sandbox, argv: list[str], env: dict[str, str] | None = None) -> tuple[float, bytes]:
    start = time.perf_counter()
    completed = box.run(argv, env=env)
    return time.perf_counter() - start, completed.stdout


def floor_and_list(box: Sandbox, count: int, env: dict[str, str] | None) -> tuple[float, float]:
    """Median floor and median `mngr list`, alternating, after a warm-up."""
    floor: list[float] = []
    listing: list[float] = []
    for i in range(WARMUP + RUNS):
        floor_time, _ = timed_run(box, FLOOR_ARGV)
        list_time, out = timed_run(box, [MNGR, "list"], env)
        if i >= WARMUP:
            floor.append(floor_time)
            listing.append(list_time)
    shown = len(out.decode().splitlines()) - 1 if count else 0
    if shown != count:
        print(f"warning: mngr list showed {shown} agents, expected {count}")
    return median(floor), median(listing)


def main() -> None:
    header("list_agents: `mngr list` with 0/10/50 local agents vs the CLI import floor")
    compile_bytecode()
    from mngr.controller.channel import protocol

    rows = []
    with Sandbox() as box:
        client = box.rpc()
        try:
            created = 0
            for count in COUNTS:
                while created < count:
                    client.call(protocol.CreateAgent(
                        name=f"bench-{created}", agent_type="command", command="sleep 600",
                        work_dir=str(box.work_dir)), protocol.AgentReply)
                    created += 1
                warm = floor_and_list(box, count, None)
                box.stop_daemons()
                cold = floor_and_list(box, count, NO_DAEMON)
                rpc = []
                for _ in range(RUNS):
                    start = time.perf_counter()
                    client.call(protocol.ListAgents(), protocol.AgentList)
                    rpc.append(time.perf_counter() - start)
                rows.append((count, warm, cold, median(rpc)))
        finally:
            client.close()
            client.stream.terminate()

    print(f"median of {RUNS} runs each (after {WARMUP} warm-up), ms; floor measured beside each:")
    print(f"{'agents':>6} | {'floor':>6} {'list':>6} {'-floor':>7} {'ratio':>6} | "
          f"{'floor':>6} {'no daemon':>9} {'-floor':>7} {'ratio':>6} | {'ListAgents rpc':>14}")
    for count, (wf, wl), (cf, cl), rpc_s in rows:
        print(f"{count:>6} | {wf * 1e3:6.1f} {wl * 1e3:6.1f} {(wl - wf) * 1e3:7.1f} {wl / wf:5.2f}x | "
              f"{cf * 1e3:6.1f} {cl * 1e3:9.1f} {(cl - cf) * 1e3:7.1f} {cl / cf:5.2f}x | {rpc_s * 1e3:14.2f}")
    _, (wf, wl), (cf, cl), _ = rows[-1]
    over, cold_over = (wl - wf) * 1e3, (cl - cf) * 1e3
    target(f"list at 50 agents <= floor + {TARGET_OVER_FLOOR_MS:.0f} ms (measured floor + {over:.1f} ms)",
           over <= TARGET_OVER_FLOOR_MS)
    print(f"(without the host daemon: floor + {cold_over:.1f} ms, "
          f"{'within' if cold_over <= TARGET_OVER_FLOOR_MS else 'over'} the target)")


if __name__ == "__main__":
    main()
