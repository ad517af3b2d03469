"""The idle watcher's cost (CPU, memory) with 1, 20 and 100 agents, and how late it acts.

Cost. Agents are `sleep 600` made with `mngr create aNN command --no-connect -- sleep 600`;
a lease (`mngr keepalive a00 --for 2h`) keeps the host active, so the watcher measures
everything on every poll but never stops anything. For each configuration the host daemon
(pid from `host/daemon-*.pid`) is left alone for a window of WINDOW_SECONDS, no request
sent, after the watcher has had time to see the new settings:

off       `mngr limit a00 --idle-mode disabled`: the same daemon with idle shutdown off
          (its watcher reads the settings every 5 s and measures nothing): the CPU peer.
1h, 30s   `mngr limit a00 --idle-mode io --idle-timeout 1h` (or 30): polls every 5 s.
3s        `--idle-timeout 3`: polls every 0.5 s (20 agents only), so the cost of one poll
          shows.

CPU is the daemon's utime+stime (/proc/PID/stat, 10 ms ticks) and the run time in ns of its
threads (/proc/PID/task/*/schedstat), as % of one core over the window. The watcher thread
(the daemon's first thread after the main one) is sampled every 10 ms (run time and read
syscalls, /proc/PID/task/TID/io): each burst of run time that reads files is a poll, one
that reads nothing is a wake-up between polls (the watcher looks at the settings' mtime
every 0.5 s); this gives the CPU of one poll and what the wake-ups cost. What the polls
cost the tmux server and the daemon's control-mode tmux client is shown apart. Memory is the daemon's
VmRSS, against a bare interpreter (the daemon's own executable and flags, `-I -S -c "import
time; time.sleep(60)"`).

Lateness. In a fresh sandbox, `mngr create sN command --no-connect --idle-timeout 3 -- sleep
600` makes a silent agent; the watcher should stop it 3 s after the newest counted activity:
its creation (mtime of `host/activity/create`) or the settings change (mtime of
`host/idle.json`), whichever is later. Lateness = `at` in `host/shutdown.json` minus that
deadline; the `stopping` entry of `host/watcher.jsonl` splits it into deciding and acting.
Each agent is destroyed (`mngr destroy -f`) before the next, which is created after a
random pause of up to one poll interval (otherwise every create lands at the same point
between two polls). The first agent turns idle shutdown on for a host that had it off; the
next REPEATS find the setting in place and are the measured ones. Peer: the poll interval (0.5 s for a 3 s timeout).

Targets: under 0.5% of one core and under 30 MB RSS while watching 20 agents; lateness at
most the poll interval plus 1 s.

Run: .venv/bin/python bench/watcher.py   (about 5.5 min)
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import random
import subprocess
import time
from pathlib import Path

from _common import Sandbox, compile_bytecode, header, median, target

WINDOW_SECONDS = 30.0
SAMPLE_SECONDS = 0.01
QUIET_SAMPLES = 10  # a poll is a burst of watcher run time after at least 100 ms of none
CONFIGS = ((1, "off"), (1, "1h"), (20, "off"), (20, "1h"), (20, "30"), (20, "3"),
           (100, "off"), (100, "1h"))
POLL_SECONDS = {"off": 5.0, "1h": 5.0, "30": 5.0, "3": 0.5}
REPEATS = 5
LATE_TIMEOUT = 3.0
LATE_POLL = 0.5
TARGET_CPU_PERCENT = 0.5
TARGET_RSS_MB = 30.0
TARGET_LATE_SECONDS = LATE_POLL + 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def daemon_pid(box: Sandbox) -> int:
    """The host daemon whose watcher watches: the only one, or the one in host/watcher.lock."""
    paths = glob.glob(str(box.host_dir / "host" / "daemon-*.pid"))
    if len(paths) > 1:  # a daemon per helper version: the helper changed during the run
        paths = [str(box.host_dir / "host" / "watcher.lock")]
    pid = int(Path(paths[0]).read_text().split()[0])
    if b"mngr_remote_helper.daemon" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        raise RuntimeError(f"pid {pid} from {paths[0]} is not the host daemon")
    return pid


def tasks(pid: int) -> list[int]:
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))


def thread_ns(pid: int, tid: int) -> int:
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])


def process_ns(pid: int) -> dict[int, int]:
    """Run time in ns of each of ``pid``'s threads."""
    found = {}
    for tid in tasks(pid):
        try:
            found[tid] = thread_ns(pid, tid)
        except OSError:
            continue
    return found


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def tmux_pids(box: Sandbox, daemon: int) -> list[int]:
    """The sandbox's tmux server and the daemon's control-mode client(s)."""
    pids = [int(box.tmux("display-message", "-p", "#{pid}", check=True).stdout)]
    for tid in tasks(daemon):
        children = Path(f"/proc/{daemon}/task/{tid}/children").read_text().split()
        pids += [int(child) for child in children
                 if Path(f"/proc/{child}/comm").read_text().strip() == "tmux"]
    return pids


def thread_reads(pid: int, tid: int) -> int:
    for line in Path(f"/proc/{pid}/task/{tid}/io").read_text().splitlines():
        if line.startswith("syscr:"):
            return int(line.split()[1])
    raise KeyError("syscr")


def measure(box: Sandbox, pid: int) -> dict[str, float]:
    """Leave the daemon alone for WINDOW_SECONDS; what it (and tmux for it) used meanwhile."""
    watcher_tid = next(tid for tid in tasks(pid) if tid != pid)
    side = tmux_pids(box, pid)
    side_start = {p: sum(process_ns(p).values()) for p in side}
    ticks_start, threads_start = ticks(pid), process_ns(pid)
    start = time.monotonic()
    # Bursts of the watcher thread's run time: [ns, read syscalls]. A poll reads files (the
    # settings at least); a wake-up between polls (a look at the settings' mtime) reads none.
    bursts: list[list[int]] = []
    last_ns, last_reads, quiet = thread_ns(pid, watcher_tid), thread_reads(pid, watcher_tid), QUIET_SAMPLES
    while time.monotonic() - start < WINDOW_SECONDS:
        time.sleep(SAMPLE_SECONDS)
        now_ns, now_reads = thread_ns(pid, watcher_tid), thread_reads(pid, watcher_tid)
        if now_ns != last_ns or now_reads != last_reads:
            if quiet >= QUIET_SAMPLES:
                bursts.append([0, 0])
            bursts[-1][0] += now_ns - last_ns
            bursts[-1][1] += now_reads - last_reads
            quiet = 0
        else:
            quiet += 1
        last_ns, last_reads = now_ns, now_reads
    wall = time.monotonic() - start
    threads_end, ticks_end = process_ns(pid), ticks(pid)
    if daemon_pid(box) != pid:
        print("warning: another daemon (another helper version) took over during the window")
    if set(threads_end) != set(threads_start):
        print(f"warning: the daemon's threads changed during the window: {sorted(threads_start)} -> "
              f"{sorted(threads_end)}")
    side_ns = 0
    for p, used in side_start.items():
        try:
            side_ns += sum(process_ns(p).values()) - used
        except OSError:
            print(f"warning: tmux process {p} exited during the window")
    daemon_ns = sum(threads_end[t] - threads_start.get(t, 0) for t in threads_end)
    polls = [burst_ns for burst_ns, reads in bursts if reads]
    wakes = [burst_ns for burst_ns, reads in bursts if not reads]
    return {
        "wall": wall,
        "cpu": daemon_ns / 1e9 / wall * 100,
        "ticks_cpu": (ticks_end - ticks_start) / CLK_TCK / wall * 100,
        "polls": len(polls),
        "per_poll_ms": sum(polls) / 1e6 / max(len(polls), 1),
        "wakes": len(wakes),
        "wake_cpu": sum(wakes) / 1e9 / wall * 100,
        "tmux_cpu": side_ns / 1e9 / wall * 100,
        "tmux_per_poll_ms": side_ns / 1e6 / max(len(polls), 1),
        "rss_mb": status_kb(pid, "VmRSS") / 1024,
    }


def apply_setting(box: Sandbox, setting: str) -> None:
    if setting == "off":
        box.mngr("limit", "a00", "--idle-mode", "disabled")
    else:
        box.mngr("limit", "a00", "--idle-mode", "io", "--idle-timeout", setting)
    # The watcher polls under new settings within at most 5 s; that first poll (which also
    # does one-off work) stays out of the window.
    time.sleep(5.5)


def bare_interpreter_rss_mb(pid: int) -> float:
    peer = subprocess.Popen([os.readlink(f"/proc/{pid}/exe"), "-I", "-S", "-c",
                             "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        return status_kb(peer.pid, "VmRSS") / 1024
    finally:
        peer.terminate()
        peer.wait()


def cost() -> tuple[list[tuple[int, str, dict[str, float]]], float]:
    rows = []
    with Sandbox() as box:
        created = 0
        for count, setting in CONFIGS:
            while created < count:
                box.mngr("create", f"a{created:02d}", "command", "--no-connect", "--", "sleep", "600")
                created += 1
                if created == 1:
                    box.mngr("keepalive", "a00", "--for", "2h")
            apply_setting(box, setting)
            pid = daemon_pid(box)
            row = measure(box, pid)
            rows.append((count, setting, row))
            print(f"  {count:>3} agents, idle {setting:>3}: {row['cpu']:.3f}% of a core, "
                  f"{row['polls']} polls, {row['rss_mb']:.1f} MB", flush=True)
        peer_rss = bare_interpreter_rss_mb(daemon_pid(box))
        decisions = [json.loads(line)["decision"]
                     for line in (box.host_dir / "host" / "watcher.jsonl").read_text().splitlines()]
        if "stopping" in decisions:
            print("warning: the watcher stopped the agents during the cost windows")
    return rows, peer_rss


def iso_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def lateness() -> list[dict[str, float]]:
    runs = []
    with Sandbox() as box:
        host = box.host_dir / "host"
        for rep in range(1 + REPEATS):
            name = f"s{rep}"
            # Creating right after the previous stop would always land at the same point
            # between two polls; start at a random one.
            time.sleep(random.uniform(0.0, LATE_POLL))
            box.mngr("create", name, "command", "--no-connect", "--idle-timeout", "3", "--", "sleep", "600")
            created = (host / "activity" / "create").stat().st_mtime
            settings = (host / "idle.json").stat().st_mtime
            deadline = max(created, settings) + LATE_TIMEOUT
            give_up = time.time() + LATE_TIMEOUT + 20.0
            at = None
            while time.time() < give_up:
                try:
                    shutdown = json.loads((host / "shutdown.json").read_text())
                except (OSError, ValueError):
                    shutdown = {}
                if shutdown.get("at", 0.0) > created:
                    at = shutdown["at"]
                    break
                time.sleep(0.01)
            stopping = [entry for entry in map(json.loads, (host / "watcher.jsonl").read_text().splitlines())
                        if entry["decision"] == "stopping"]
            # The newest of every activity file as the watcher counts it (io mode), for comparison.
            counted = [path.stat().st_mtime for path in (host / "activity").iterdir()
                       if path.name != "process"]
            newest = max([settings, *(m for m in counted if at is None or m <= at)])
            runs.append({
                "rep": rep,
                "deadline_from": "create" if created >= settings else "idle.json",
                "late": None if at is None else at - deadline,
                "decide": None if at is None or not stopping else iso_time(stopping[-1]["time"]) - deadline,
                "act": None if at is None or not stopping else at - iso_time(stopping[-1]["time"]),
                "other_activity": newest - max(created, settings),
            })
            box.mngr("destroy", "-f", name)
    return runs


def main() -> None:
    header("watcher: the idle watcher's CPU and memory with 1/20/100 agents, and how late it acts")
    compile_bytecode()
    started = time.monotonic()
    print(f"cost windows of {WINDOW_SECONDS:.0f} s each:", flush=True)
    rows, peer_rss = cost()
    runs = lateness()

    off = {count: row["cpu"] for count, setting, row in rows if setting == "off"}
    print(f"\ndaemon CPU over {WINDOW_SECONDS:.0f} s with no requests, % of one core (schedstat; "
          "utime+stime in brackets); per poll: the watcher thread's CPU in one poll; wake-ups: its "
          "wake-ups between polls, count and CPU; tmux: server + control client")
    print(f"{'agents':>6} {'idle':>4} {'poll':>5} {'polls':>5} | {'daemon CPU':>17} {'/ off':>6} | "
          f"{'per poll':>9} | {'wake-ups':>14} | {'tmux CPU':>8} {'per poll':>9} | {'RSS':>8}")
    for count, setting, row in rows:
        ratio = f"{row['cpu'] / off[count]:5.1f}x" if setting != "off" else "     -"
        print(f"{count:>6} {setting:>4} {POLL_SECONDS[setting]:4.1f}s {row['polls']:>5} | "
              f"{row['cpu']:7.3f}% ({row['ticks_cpu']:6.3f}%) {ratio} | {row['per_poll_ms']:6.2f} ms | "
              f"{row['wakes']:>4} {row['wake_cpu']:7.3f}% | "
              f"{row['tmux_cpu']:7.3f}% {row['tmux_per_poll_ms']:6.2f} ms | {row['rss_mb']:5.1f} MB")
    print(f"bare interpreter (the daemon's executable, -I -S, sleeping): {peer_rss:.1f} MB RSS")

    print(f"\nlateness of the idle stop, timeout {LATE_TIMEOUT:.0f} s (poll {LATE_POLL} s), "
          "ms after the deadline (newest of activity/create and idle.json + timeout):")
    print(f"{'agent':>5} {'deadline from':>13} | {'stopped':>8} {'/ poll':>7} | {'decided':>8} {'acting':>7}")
    for run in runs:
        agent = f"s{run['rep']}"
        if run["late"] is None:
            print(f"{agent:>5} {run['deadline_from']:>13} | not stopped within 20 s")
            continue
        print(f"{agent:>5} {run['deadline_from']:>13} | {run['late'] * 1e3:8.0f} "
              f"{run['late'] / LATE_POLL:6.2f}x | {run['decide'] * 1e3:8.0f} {run['act'] * 1e3:7.0f}"
              + ("   (first timeout on this host)" if run["rep"] == 0 else ""))
        if run["other_activity"] > 0.001:
            print(f"      note: other counted activity {run['other_activity'] * 1e3:.0f} ms after the deadline's base")
    measured = [run["late"] for run in runs[1:]]
    stopped = [late for late in measured if late is not None]
    if stopped:
        print(f"agents s1-s{REPEATS}: median {median(stopped) * 1e3:.0f} ms, max {max(stopped) * 1e3:.0f} ms "
              f"late ({median(stopped) / LATE_POLL:.2f}x / {max(stopped) / LATE_POLL:.2f}x the poll interval)")

    watching = [row for count, setting, row in rows if count == 20 and setting in ("1h", "30")]
    cpu20 = max(row["cpu"] for row in watching)
    rss20 = max(row["rss_mb"] for row in watching)
    fast = next(row for count, setting, row in rows if count == 20 and setting == "3")
    target(f"watching 20 agents under {TARGET_CPU_PERCENT}% of one core (measured {cpu20:.3f}%; "
           f"with 0.5 s polls {fast['cpu']:.3f}%)", cpu20 < TARGET_CPU_PERCENT)
    target(f"watching 20 agents under {TARGET_RSS_MB:.0f} MB RSS (measured {rss20:.1f} MB)", rss20 < TARGET_RSS_MB)
    worst = max(measured) if stopped and len(stopped) == len(measured) else None
    target(f"stop at most {TARGET_LATE_SECONDS:.1f} s after the deadline "
           f"(worst of {REPEATS}: {'never stopped' if worst is None else f'{worst:.2f} s'})",
           worst is not None and worst <= TARGET_LATE_SECONDS)
    print(f"(run took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
