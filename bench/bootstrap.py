"""Bootstrap: spawning the first stage until the first Pong, with a cold and a warm helper cache.

cold  a fresh MNGR_HOST_DIR every time: the first stage answers "need", the controller sends
      the compressed helper, the first stage checks and unpacks it, Python compiles it.
warm  the same MNGR_HOST_DIR every time: the helper (and its bytecode) is already cached.
peer  `python -I -S -c pass`, spawn to exit, on the same interpreter: the cost of any
      helper that is a fresh Python process.

Runs alternate cold / warm / peer so that machine noise hits all three alike. The helper
payload (read, hash and compress the helper source) is computed once before timing, as
mngr caches it per process; its cost in a fresh process is printed separately.

The helpers run with MNGR_HOST_DAEMON=0: a bootstrapped helper otherwise starts a detached
host daemon in the background, and one per fresh host dir would pile up and compete for
the CPU with later runs. This measures the bootstrap path alone.

Run: .venv/bin/python bench/bootstrap.py
"""

from __future__ import annotations

import os
import subprocess
import time

from _common import PYTHON, Sandbox, header, median

RUNS = 30
WARMUP = 3


def bootstrap_to_pong(host_dir: str) -> tuple[float, bool]:
    """Seconds from spawning the first stage to the first Pong; and whether the helper was sent."""
    from mngr.controller.channel import protocol
    from mngr.controller.channel.bootstrap import stage1_argv
    from mngr.controller.channel.rpc import RpcClient
    from mngr.controller.channel.stream import ProcessStream

    env = dict(os.environ, MNGR_HOST_DIR=host_dir, MNGR_HOST_DAEMON="0")
    argv = stage1_argv(PYTHON)
    start = time.perf_counter()
    stream = ProcessStream("local", argv, env)
    client = RpcClient.bootstrap(stream)
    client.call(protocol.Ping(), protocol.Pong)
    elapsed = time.perf_counter() - start
    client.close()
    stream.terminate()  # reap it; not part of the timing
    return elapsed, client.helper_was_sent


def payload_cost() -> float:
    """Seconds a fresh mngr process spends building the helper payload (hash + compress)."""
    program = ("import time; from mngr.controller.channel import bootstrap; t = time.perf_counter(); "
               "bootstrap.helper_payload(); print(time.perf_counter() - t)")
    return float(subprocess.run([PYTHON, "-c", program], capture_output=True, check=True).stdout)


def spawn_peer() -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-I", "-S", "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    header("bootstrap: first stage spawn to first Pong, cold vs warm helper cache")
    from mngr.controller.channel import bootstrap

    with Sandbox() as box:
        payload_time = median([payload_cost() for _ in range(5)])
        helper_hash, payload = bootstrap.helper_payload()
        warm_dir = str(box.root / "warm")
        bootstrap_to_pong(warm_dir)  # fill the warm cache
        cold: list[float] = []
        warm: list[float] = []
        peer: list[float] = []
        sent = {"cold": set(), "warm": set()}
        for i in range(WARMUP + RUNS):
            cold_time, cold_sent = bootstrap_to_pong(str(box.root / f"cold{i}"))
            warm_time, warm_sent = bootstrap_to_pong(warm_dir)
            peer_time = spawn_peer()
            if i >= WARMUP:
                cold.append(cold_time)
                warm.append(warm_time)
                peer.append(peer_time)
                sent["cold"].add(cold_sent)
                sent["warm"].add(warm_sent)
        daemons = len(box.processes())

    ms = 1e3
    c, w, p = median(cold) * ms, median(warm) * ms, median(peer) * ms
    print(f"helper payload: {len(payload)} bytes compressed (hash {helper_hash[:12]}); "
          f"building it (read + sha256 + zlib) costs {payload_time * ms:.2f} ms per mngr process")
    print(f"median of {RUNS} runs each (after {WARMUP} warm-up):")
    print(f"  cold cache (helper sent: {sorted(sent['cold'])})  {c:7.2f} ms   min {min(cold) * ms:6.2f}")
    print(f"  warm cache (helper sent: {sorted(sent['warm'])})  {w:7.2f} ms   min {min(warm) * ms:6.2f}")
    print(f"  peer python -I -S -c pass       {p:7.2f} ms   min {min(peer) * ms:6.2f}")
    print(f"  ratio cold/peer {c / p:.2f}x   warm/peer {w / p:.2f}x   cold/warm {c / w:.2f}x")
    if daemons:
        print(f"note: {daemons} other sandbox processes were running (host daemons?); stopped at exit")


if __name__ == "__main__":
    main()
