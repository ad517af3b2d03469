"""`mngr transcript NAME --tail 100` on a 1 MB and a 50 MB output log: the cost must not grow with the log.

Two agents (`sleep 3600`, so they print nothing themselves) get their output logs
(`agents/<id>/output.log`, the file the pane is piped to) filled directly with realistic
terminal output: test runner, compiler and logger lines with ANSI colours, progress lines
redrawn with a bare CR, a long JSON line now and then, every line ending in CRLF as a pty
writes it. 1 MB for `small`, 50 MB for `big`. MNGR_OUTPUT_LOG_MAX_BYTES is set to 200 MB in
the sandbox before the first mngr command, so neither log is rotated away.

Timed (subprocesses, output captured, runs alternated so that noise hits all alike):

small       `mngr transcript small --tail 100` (1 MB log), as mngr runs by default (through the
            host daemon's unix socket after the warm-up);
big         `mngr transcript big --tail 100` (50 MB log);
tail        `tail -n 100` on the 50 MB log: the peer that reads from the end;
naive       `.venv/bin/python -c ...` reading the whole 50 MB log and splitting it into lines
            (keeping the last 100): what a transcript that read everything would cost at least;
floor       `.venv/bin/python -c "import mngr.controller.cli.main"`.

Also in-process: the same full read and split alone, without the interpreter start. The logs
were just written, so they are in the page cache for every reader alike (a full read from
disk would cost the naive peer more, not mngr).

Evidence that the whole file is not read: the host daemon's read counters in
/proc/<pid>/io around each transcript command. rchar counts every byte the daemon got from
read() calls (files, pipes and the socket alike); read_bytes counts bytes fetched from the
block device (0 for page-cached files). Each output is checked: 100 lines, equal to the last
100 lines written, without escapes. Target (from the issue): --tail 100 on a 50 MB log must
not read the whole file; the script reports the rchar delta and big/small time ratio.

Run: .venv/bin/python bench/transcript_tail.py
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from _common import FLOOR_ARGV, MNGR, PYTHON, Sandbox, compile_bytecode, header, median, target

RUNS = 20
WARMUP = 3
TAIL = 100
SIZES = {"small": 1_000_000, "big": 50_000_000}
MAX_LOG_BYTES = "200000000"
NAIVE = ("import sys\n"
         "data = open(sys.argv[1], 'rb').read()\n"
         "lines = data.split(b'\\n')\n"
         "sys.stdout.buffer.write(b'\\n'.join(lines[-101:]))\n")


def output_lines(size: int, seed: int) -> list[bytes]:
    """About ``size`` bytes of what agents print, line by line (each ending in CRLF)."""
    rng = random.Random(seed)
    green, red, blue, bold, dim, reset = "\x1b[32m", "\x1b[31m", "\x1b[34m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
    lines = []
    total = 0
    n = 0
    while total < size:
        n += 1
        kind = rng.random()
        if kind < 0.35:
            outcome = f"{green}PASSED{reset}" if rng.random() < 0.93 else f"{red}FAILED{reset}"
            line = f"tests/unit/test_module_{n % 97}.py::test_case_{n} {outcome} {dim}[{n % 100:3d}%]{reset}"
        elif kind < 0.6:
            line = (f"2026-11-24T06:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z {blue}INFO{reset} "
                    f"worker-{n % 8}: processed batch {n} ({rng.randint(1, 5000)} items) in "
                    f"{rng.uniform(0.1, 900):.1f} ms")
        elif kind < 0.8:
            line = f"{bold}{green}   Compiling{reset} crate-{n % 300} v0.{n % 17}.{n % 9} (/work/src/crate-{n % 300})"
        elif kind < 0.9:
            line = "".join(f"Downloading layer {n}: {p:3d}% |{'#' * (p // 5):20}|\r" for p in (0, 35, 70, 100))
            line = line.rstrip("\r")
        elif kind < 0.98:
            line = f"{red}error[E0{n % 1000:03d}]{reset}{bold}: mismatched types at src/lib_{n % 50}.rs:{n % 900}:17{reset}"
        else:
            line = json.dumps({"event": "tool_call", "seq": n, "tool": "bash",
                               "args": {"command": f"grep -rn pattern_{n} src/ | head -50"},
                               "result": "x" * rng.randint(100, 400)})
        encoded = line.encode() + b"\r\n"
        lines.append(encoded)
        total += len(encoded)
    return lines


def daemon_pid(box: Sandbox) -> int | None:
    for pid in box.processes():
        try:
            if b"mngr_remote_helper.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def io_counters(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = int(value)
    return fields


def timed(box: Sandbox, argv: list[str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    completed = box.run(argv)
    return time.perf_counter() - start, completed.stdout


def main() -> None:
    header("transcript_tail: `mngr transcript NAME --tail 100` on 1 MB and 50 MB output logs")
    compile_bytecode()
    from mngr.controller.terminal_text import plain_lines

    with Sandbox() as box:
        os.environ["MNGR_OUTPUT_LOG_MAX_BYTES"] = MAX_LOG_BYTES  # before the first mngr command
        for name in SIZES:
            box.mngr("create", name, "--agent-type", "command", "--no-connect", "--", "sleep", "3600")
        ids = {agent["name"]: agent["id"] for agent in json.loads(box.mngr("list", "--format", "json").stdout)["agents"]}
        logs: dict[str, Path] = {}
        expected: dict[str, list[str]] = {}
        for seed, (name, size) in enumerate(SIZES.items()):
            lines = output_lines(size, seed)
            logs[name] = box.host_dir / "agents" / ids[name] / "output.log"
            with open(logs[name], "ab") as handle:  # the pane's `cat >>` holds it open, appending
                handle.write(b"".join(lines))
            # Lines wider than the pane wrap: the last 100 raw lines can render as more.
            expected[name] = plain_lines(b"".join(lines[-TAIL:]).decode()[:-1])[-TAIL:]
            print(f"{name}: {logs[name].stat().st_size:,} bytes, {len(lines):,} lines in {logs[name]}")

        samples: dict[str, list[float]] = {label: [] for label in ("floor", "small", "big", "tail", "naive")}
        reads: dict[str, list[dict[str, int]]] = {"small": [], "big": []}
        pid = None
        for i in range(WARMUP + RUNS):
            runs = {"floor": FLOOR_ARGV,
                    "small": [MNGR, "transcript", "small", "--tail", str(TAIL)],
                    "big": [MNGR, "transcript", "big", "--tail", str(TAIL)],
                    "tail": ["tail", "-n", str(TAIL), str(logs["big"])],
                    "naive": [PYTHON, "-c", NAIVE, str(logs["big"])]}
            for label, argv in runs.items():
                before = io_counters(pid) if label in reads and pid else None
                seconds, out = timed(box, argv)
                if label in reads:
                    got = out.decode().split("\n")[:-1]
                    if got != expected[label]:
                        raise RuntimeError(f"transcript {label} --tail {TAIL}: {len(got)} lines, not the last {TAIL}")
                    if before is not None:
                        after = io_counters(pid)
                        reads[label].append({key: after[key] - before[key] for key in after})
                elif label in ("tail", "naive") and len(out.split(b"\n")) < TAIL:
                    raise RuntimeError(f"{label}: short output")
                if i >= WARMUP:
                    samples[label].append(seconds)
            if pid is None:
                pid = daemon_pid(box)
                if pid is None:
                    raise RuntimeError("no host daemon came up: the warm path is not measured")
        in_process = []
        for _ in range(5):
            start = time.perf_counter()
            with open(logs["big"], "rb") as handle:
                handle.read().split(b"\n")
            in_process.append(time.perf_counter() - start)
        sizes_after = {name: path.stat().st_size for name, path in logs.items()}
        rotated = [name for name, path in logs.items() if path.with_name("output.log.1").exists()]

    ms = {label: median(values) * 1e3 for label, values in samples.items()}
    print(f"median of {RUNS} runs each (after {WARMUP} warm-up), ms:")
    shown = {"floor": "floor (import CLI)", "small": "mngr transcript --tail 100, 1 MB log",
             "big": "mngr transcript --tail 100, 50 MB log", "tail": "tail -n 100, 50 MB log",
             "naive": "python full read + split, 50 MB log"}
    for label, text in shown.items():
        print(f"  {text:40} {ms[label]:7.1f}   min {min(samples[label]) * 1e3:6.1f}")
    print(f"  in-process full read + split of the 50 MB log (no interpreter start): {median(in_process) * 1e3:.1f} ms")
    print(f"  ratio big/small {ms['big'] / ms['small']:.2f}x   big - small = {ms['big'] - ms['small']:+.1f} ms   "
          f"big/tail {ms['big'] / ms['tail']:.2f}x   big/naive {ms['big'] / ms['naive']:.2f}x   "
          f"big/floor {ms['big'] / ms['floor']:.2f}x   big - floor = {ms['big'] - ms['floor']:.1f} ms")
    print(f"host daemon (pid {pid}) reads per transcript command, /proc/<pid>/io deltas over {RUNS + WARMUP - 1} "
          "commands each:")
    for label in reads:
        rchar = [delta["rchar"] for delta in reads[label]]
        read_bytes = [delta["read_bytes"] for delta in reads[label]]
        print(f"  {label:6} ({SIZES[label] / 1e6:.0f} MB log): rchar median {median(rchar) / 1024:.1f} KiB, "
              f"max {max(rchar) / 1024:.1f} KiB; read_bytes max {max(read_bytes)} B")
    print(f"logs after the runs: {', '.join(f'{k} {v:,} bytes' for k, v in sizes_after.items())}; "
          f"rotated: {', '.join(rotated) or 'none'}")
    most = max(delta["rchar"] for delta in reads["big"])
    target(f"--tail {TAIL} on a 50 MB log does not read the whole file (daemon read at most {most / 1024:.0f} KiB "
           f"per command of {SIZES['big'] / 1e6:.0f} MB; big/small time {ms['big'] / ms['small']:.2f}x)",
           most < SIZES["big"] / 10)


if __name__ == "__main__":
    main()
