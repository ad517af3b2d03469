"""`mngr list` across 1, 10 and 50 SSH hosts, warm and cold, on loopback and with 25 ms RTT.

Hosts: one sshd each on a loopback port (tests/sshd.py's SshHost: user mngr-test, its own
MNGR_HOST_DIR and TMUX_TMPDIR per host through sshd's SetEnv), one client key for all,
known_hosts filled in advance (HostKeyAlias = alias), one `sleep 600` agent per host made by
`mngr create --in ssh`. `mngr list` searches the `[hosts.hNN]` sections of the sandbox's
config.toml (the first 1, 10 or 50) and the local host (no agents, daemon up); the client
ssh_config is given with MNGR_PROVIDERS__SSH__SSH_CONFIG.

warm   masters and host daemons up (3 runs first): each host is reached through the host
       daemon's socket, forwarded by its ssh master.
cold   before each run the ssh masters (`ssh: <control path> [mux]`) and host daemons are
       killed and the forwarded sockets removed: every host is dialled and bootstrapped again.
floor  `.venv/bin/python -c "import mngr.controller.cli.main"` (for cold: after the kill).
naive  a `python -c` running `ssh HOST tmux list-sessions` for all hosts at once (threads of
       subprocess.run, same ssh_config, no ControlMaster).

All of it again with 25 ms of added round trip: a TCP proxy per host (this script with
--delay-proxy, in a child process) holds each chunk 12.5 ms each way, and a second ssh_config
points HostName/Port at it. Also: Ping over a warm SSH channel vs the local daemon socket, and
the CPU a warm 50-host list costs, by process (all hosts share this machine's CPUs).

Run (root, sshd installed): .venv/bin/python bench/ssh_list.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import FLOOR_ARGV, MNGR, PYTHON, Sandbox, compile_bytecode, header, median, target

SIZES = (1, 10, 50)
WARMUP, RUNS, COLD_RUNS = 3, 20, 5      # loopback
LAT_RUNS, LAT_COLD_RUNS = 10, 3         # with the delay proxy
DELAY = 0.0125                          # each direction: 25 ms round trip
TIMER_LATE = 0.001                      # asyncio timers fire ~1-2 ms late here (ms epoll timeouts)
PINGS, LAT_PINGS = 2000, 40
TARGET_OVER_FLOOR_MS, TARGET_PER_HOST_MS = 100.0, 2.0

NAIVE = r"""
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
config, hosts = sys.argv[1], sys.argv[2:]
def one(host):
    return subprocess.run(["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ControlMaster=no",
                           "-o", "ControlPath=none", "-T", host, "tmux", "list-sessions"],
                          stdin=subprocess.DEVNULL, capture_output=True)
with ThreadPoolExecutor(len(hosts)) as pool:
    results = list(pool.map(one, hosts))
print(sum(len(r.stdout.splitlines()) for r in results))
sys.exit(max(r.returncode for r in results))
"""


async def delay_proxy(delay: float, targets: list[int]) -> None:
    """A loopback listener per target port; every chunk is held `delay` s in each direction."""
    loop = asyncio.get_running_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            with contextlib.suppress(OSError):
                while True:
                    due, data = await queue.get()
                    await asyncio.sleep(max(0.0, due - loop.time() - TIMER_LATE))
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((loop.time() + delay, b""))
        await sender

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    ports = []
    for port in targets:
        server = await asyncio.start_server(lambda r, w, p=port: serve(r, w, p), "127.0.0.1", 0, backlog=256)
        ports.append(server.sockets[0].getsockname()[1])
    print(*ports, flush=True)
    await asyncio.Event().wait()


def write_ssh_config(path: Path, hosts: list, ports: list[int]) -> Path:
    path.write_text("".join(
        f"Host {h.alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {h.user.pw_name}\n"
        f"  IdentityFile {h.client_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {h.known_hosts}\n"
        f"  HostKeyAlias {h.alias}\n" for h, port in zip(hosts, ports, strict=True)))
    return path


def start_hosts(box: Sandbox, count: int, hosts: list) -> None:
    """``count`` sshd hosts (tests/sshd.py), appended to ``hosts`` as they start (so the
    caller stops every one even if a later one fails), each host key known in advance."""
    from tests.sshd import SshHost

    client_dir = box.root / "client"
    client_dir.mkdir(exist_ok=True)
    for index in range(count):
        hosts.append(SshHost(f"h{index:02d}", client_dir))
    hosts[0].known_hosts.write_text("".join(
        f"{h.alias} {' '.join(Path(f'{h.host_key}.pub').read_text().split()[:2])}\n" for h in hosts))


def use_hosts(box: Sandbox, hosts: list) -> None:
    """The hosts `mngr list` searches: [hosts.NAME] sections (provider ssh by default)."""
    (box.config_dir / "config.toml").write_text("".join(f"[hosts.{h.alias}]\n" for h in hosts))


def proc_text(pid: int, name: str) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/{name}").read_bytes()
    return b""


def pids_where(test) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid() and test(int(e))]


def kill_and_wait(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            proc_text(pid, "stat").split(b") ")[-1][:1] not in (b"", b"Z") for pid in pids):
        time.sleep(0.01)


def go_cold(control_dir: Path, hosts: list) -> None:
    """Kill the ssh masters, remove the forwarded sockets, kill the host daemons and helpers."""
    title = f"ssh: {control_dir}/".encode()
    kill_and_wait(pids_where(lambda pid: proc_text(pid, "cmdline").startswith(title)))
    for leftover in control_dir.glob("*"):
        leftover.unlink(missing_ok=True)
    markers = {f"TMUX_TMPDIR={h.remote_tmux_dir}".encode() for h in hosts}
    kill_and_wait(pids_where(lambda pid: b"mngr_remote_helper" in proc_text(pid, "cmdline")
                             and not markers.isdisjoint(proc_text(pid, "environ").split(b"\0"))))


def cpu_per_list(box: Sandbox, hosts: list, count: int = 5) -> dict[str, float]:
    """CPU seconds per warm `mngr list`: mngr itself, the hosts' side, the ssh masters."""
    markers = {f"TMUX_TMPDIR={h.remote_tmux_dir}".encode() for h in hosts}

    def snapshot() -> dict[str, float]:
        totals = dict.fromkeys(("hosts: sshd, daemons, tmux", "ssh masters"), 0.0)
        for pid in pids_where(lambda pid: True):
            fields, cmd = proc_text(pid, "stat").rsplit(b") ", 1)[-1].split(), proc_text(pid, "cmdline")
            cpu = sum(map(int, fields[11:15])) / os.sysconf("SC_CLK_TCK") if len(fields) > 15 else 0.0
            if cmd.startswith(b"ssh: "):
                totals["ssh masters"] += cpu
            elif cmd.startswith(b"sshd") or not markers.isdisjoint(proc_text(pid, "environ").split(b"\0")):
                totals["hosts: sshd, daemons, tmux"] += cpu
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return totals | {"mngr list": children.ru_utime + children.ru_stime}

    before = snapshot()
    for _ in range(count):
        box.run([MNGR, "list"], check=False)
    return {key: (value - before[key]) / count for key, value in snapshot().items()}


def timed(box: Sandbox, argv: list[str]) -> tuple[float, bool, bytes]:
    start = time.perf_counter()
    done = box.run(argv, check=False)
    return time.perf_counter() - start, done.returncode == 0, done.stdout


def listed_all(ok: bool, out: bytes, hosts: list) -> bool:
    names = {line.split()[0] for line in out.decode().splitlines()[1:] if line.strip()}
    return ok and {f"ag{h.alias[1:]}" for h in hosts} <= names


def measure(box: Sandbox, hosts: list, config: Path, control_dir: Path, runs: int, cold_runs: int) -> dict:
    """Medians (s) of floor, warm list, naive, cold floor and cold list; failure counts."""
    listing = [MNGR, "list"]
    naive = [PYTHON, "-I", "-S", "-c", NAIVE, str(config), *(h.alias for h in hosts)]
    use_hosts(box, hosts)
    for _ in range(WARMUP):
        timed(box, listing)
    masters = len([p for p in control_dir.glob("*") if not p.name.startswith("fwd-")])
    if masters != len(hosts):
        print(f"warning: {masters} ssh masters after warm-up, expected {len(hosts)}")
    samples: dict[str, list[float]] = {k: [] for k in ("floor", "list", "naive", "cold floor", "cold list")}
    fails = {"list": 0, "naive": 0, "cold list": 0}
    for _ in range(runs):
        samples["floor"].append(timed(box, FLOOR_ARGV)[0])
        seconds, ok, out = timed(box, listing)
        samples["list"].append(seconds)
        fails["list"] += not listed_all(ok, out, hosts)
        seconds, ok, out = timed(box, naive)
        samples["naive"].append(seconds)
        fails["naive"] += not (ok and out.strip() == str(len(hosts)).encode())
    for _ in range(cold_runs):
        go_cold(control_dir, hosts)
        samples["cold floor"].append(timed(box, FLOOR_ARGV)[0])
        seconds, ok, out = timed(box, listing)
        samples["cold list"].append(seconds)
        fails["cold list"] += not listed_all(ok, out, hosts)
    return {key: median(values) for key, values in samples.items()} | {"fails": fails}


def ping_medians(config: Path, count: int) -> tuple[float, float] | None:
    """Median Ping over the warm SSH channel (host h00) and over the local daemon's socket."""
    from rpc_roundtrip import daemon_client
    from rpc_roundtrip import timed as timed_calls

    from mngr.controller.channel import protocol
    from mngr.controller.channel.rpc import RpcClient
    from mngr.providers.ssh import SshProvider

    stream = SshProvider({"ssh_config": str(config)}).open_stream("h00")
    if stream.needs_bootstrap:
        stream.close()
        print("warning: no warm SSH channel to h00; Ping not measured")
        return None
    remote, local = RpcClient(stream), daemon_client()
    try:
        calls = [lambda client=client: client.call(protocol.Ping(), protocol.Pong) for client in (remote, local)]
        for call in calls:
            timed_calls(call, count // 10)
        return median(timed_calls(calls[0], count)), median(timed_calls(calls[1], count))
    finally:
        remote.close()
        local.close()


def per_host(rows: dict[int, dict]) -> float:
    first, last = rows[SIZES[0]], rows[SIZES[-1]]
    return ((last["list"] - last["floor"]) - (first["list"] - first["floor"])) / (SIZES[-1] - SIZES[0])


def report(label: str, rows: dict[int, dict], pings: tuple[float, float] | None, runs: int, cold_runs: int,
           added: float | None) -> None:
    ms = 1e3
    print(f"\n-- {label}: warm = median of {runs} (after {WARMUP} warm-up), cold = median of {cold_runs}; ms")
    print(f"{'hosts':>5} | {'floor':>6} {'list':>6} {'-floor':>7} {'/floor':>6} | {'naive':>6} {'list/naive':>10} | "
          f"{'floor':>6} {'cold':>7} {'-floor':>7} {'/floor':>6} {'cold/naive':>10} | failures l/n/c")
    for n, r in rows.items():
        f = r["fails"]
        print(f"{n:>5} | {r['floor'] * ms:6.1f} {r['list'] * ms:6.1f} {(r['list'] - r['floor']) * ms:7.1f} "
              f"{r['list'] / r['floor']:5.2f}x | {r['naive'] * ms:6.1f} {r['list'] / r['naive']:9.2f}x | "
              f"{r['cold floor'] * ms:6.1f} {r['cold list'] * ms:7.1f} {(r['cold list'] - r['cold floor']) * ms:7.1f} "
              f"{r['cold list'] / r['cold floor']:5.2f}x {r['cold list'] / r['naive']:9.2f}x | "
              f"{f['list']}/{f['naive']}/{f['cold list']}")
    print(f"warm list - floor grows {per_host(rows) * ms:.2f} ms per extra host ({SIZES[0]} -> {SIZES[-1]})")
    if pings:
        print(f"Ping round trip: warm SSH channel {pings[0] * 1e6:.0f} us, local daemon socket "
              f"{pings[1] * 1e6:.0f} us, ratio {pings[0] / pings[1]:.1f}x")
    if added:
        print(f"round trip added by the delay proxy (Ping through it minus Ping on loopback): {added * 1e3:.1f} ms")


def main() -> None:
    if sys.argv[1:2] == ["--delay-proxy"]:
        asyncio.run(delay_proxy(float(sys.argv[2]), [int(p) for p in sys.argv[3:]]))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.sshd
    from tests.sshd import unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    header("ssh_list: `mngr list` over 1/10/50 SSH hosts, warm and cold, loopback and +25 ms RTT")
    compile_bytecode()
    results = {}
    with Sandbox() as box:
        control_dir = box.root / "s" / "ssh"
        os.environ["MNGR_STATE_DIR"] = str(control_dir.parent)
        hosts: list = []
        proxy = None
        try:
            start_hosts(box, max(SIZES), hosts)
            proxy = subprocess.Popen([PYTHON, __file__, "--delay-proxy", str(DELAY), *(str(h.port) for h in hosts)],
                                     stdout=subprocess.PIPE)
            proxy_ports = [int(p) for p in proxy.stdout.readline().split()]  # type: ignore[union-attr]
            configs = {"loopback": write_ssh_config(box.root / "ssh_loop", hosts, [h.port for h in hosts]),
                       "+25 ms RTT": write_ssh_config(box.root / "ssh_lat", hosts, proxy_ports)}
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(configs["loopback"])
            use_hosts(box, hosts)
            start = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                created = list(pool.map(lambda h: box.mngr("create", f"ag{h.alias[1:]}", "command", "--in", "ssh",
                                                           "--host", h.alias, "--no-connect", "--", "sleep", "600",
                                                           check=False), hosts))
            bad = [c.stderr.decode().strip() for c in created if c.returncode]
            print(f"created {len(hosts) - len(bad)} agents on {len(hosts)} hosts in "
                  f"{time.perf_counter() - start:.1f} s" + (f"; failures: {bad[:3]}" if bad else ""))
            for label, runs, cold_runs, pings in (("loopback", RUNS, COLD_RUNS, PINGS),
                                                  ("+25 ms RTT", LAT_RUNS, LAT_COLD_RUNS, LAT_PINGS)):
                go_cold(control_dir, hosts)  # masters of the previous ssh_config
                os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(configs[label])
                rows = {n: measure(box, hosts[:n], configs[label], control_dir, runs, cold_runs) for n in SIZES}
                box.run([MNGR, "list"], check=False)  # warm again
                results[label] = (rows, ping_medians(configs[label], pings), runs, cold_runs)
                if label == "loopback":
                    cpu = cpu_per_list(box, hosts)
        finally:
            if proxy is not None:
                proxy.kill()
                proxy.wait()
            go_cold(control_dir, hosts)
            for host in hosts:
                host.stop()

    loop_ping, lat_ping = results["loopback"][1], results["+25 ms RTT"][1]
    added = lat_ping[0] - loop_ping[0] if loop_ping and lat_ping else None
    for label, (rows, pings, runs, cold_runs) in results.items():
        report(label, rows, pings, runs, cold_runs, added if label != "loopback" else None)
    print(f"\nCPU per warm list over {len(hosts)} hosts (loopback, {len(os.sched_getaffinity(0))} CPUs shared by "
          "all): " + ", ".join(f"{key} {value * 1e3:.0f} ms" for key, value in cpu.items()))
    rows = results["loopback"][0]
    over = (rows[SIZES[-1]]["list"] - rows[SIZES[-1]]["floor"]) * 1e3
    target(f"warm list over 50 hosts <= floor + {TARGET_OVER_FLOOR_MS:.0f} ms on loopback (measured floor + "
           f"{over:.1f} ms)", over <= TARGET_OVER_FLOOR_MS)
    slope = per_host(rows) * 1e3
    target(f"warm list grows <= {TARGET_PER_HOST_MS:.0f} ms per extra host on loopback (measured {slope:.2f} ms)",
           slope <= TARGET_PER_HOST_MS)
    cold_fails = {label: r[0][SIZES[-1]]["fails"]["cold list"] for label, r in results.items()}
    target(f"cold list over 50 hosts never fails (failed runs: {cold_fails})", not any(cold_fails.values()))


if __name__ == "__main__":
    main()
