"""`mngr message NAME TEXT` end to end, a short text and a 100 KB one, vs plain tmux doing the same.

The agent is a recorder (as in tests/integration/test_talking.py): a Python program that puts
its terminal in raw mode and appends every byte it reads to a file, so arrival is measurable
and checked byte for byte. Two times per run, both from the start of the command:

command  until the command (or, for tmux, the last of its commands) has exited;
arrival  until the recorder's file holds every byte of the text plus the Enter (a CR in raw
         mode), watched by a thread polling the file's size every 0.2 ms.

Peers, measured in the same run and on the same agent pane (`=mngr-NAME:^`):

short  `mngr message rec TEXT` (a 38-byte printable text: sent as literal keys) vs
       `tmux send-keys -t =mngr-rec:^ -l -- TEXT` + `tmux send-keys -t =mngr-rec:^ Enter`;
100KB  `mngr message rec --message-file FILE` (100,000 bytes of diff-like lines: sent through a
       paste buffer) vs `tmux load-buffer -b b -` (text on stdin) +
       `tmux paste-buffer -d -p -r -b b -t =mngr-rec:^` + `tmux send-keys -t =mngr-rec:^ Enter`;
floor  `.venv/bin/python -c "import mngr.controller.cli.main"`: interpreter start plus the
       CLI's imports.

Also printed, for the breakdown: one SendMessage request of each text on an already-open
channel (a bootstrapped helper): the helper's own share of the work, that is a `list-panes`,
then one tmux call for the short text (leave copy mode; type; Enter) or two for the big one
(load-buffer; then leave copy mode; paste; Enter), and an event appended to the agent's log.

mngr runs as it does by default (after the warm-up, through the host daemon's unix socket).
Runs alternate floor / mngr short / tmux short / mngr 100KB / tmux 100KB so that machine
noise hits all of them alike. No target was set for this command; it prints the ratios.

Run: .venv/bin/python bench/message.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _common import FLOOR_ARGV, MNGR, REPO, Sandbox, compile_bytecode, header, median

sys.path.insert(0, str(REPO))  # the repository: the recording agent the tests use
from tests.recorder import RECORDER

RUNS = 20
WARMUP = 3
NAME = "rec"
TARGET = f"=mngr-{NAME}:^"
SHORT = "Please run the tests and fix failures."  # 38 bytes, printable: the send-keys path
POLL_SECONDS = 0.0002
ARRIVAL_TIMEOUT = 30.0



def big_text(size: int = 100_000) -> str:
    """About what a large message is in practice: a diff, many short lines, some indentation."""
    lines = []
    i = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines += [f"@@ -{i * 7},6 +{i * 7},7 @@ def handler_{i}(request):",
                  f"     value = request.get('field_{i}')",
                  f"-    return process(value, retries={i % 5})",
                  f"+    result = process(value, retries={i % 5}, timeout=30)",
                  f"+    log.info('handled %s in %.2f s (case {i})', value, result.elapsed)",
                  "     # unchanged context line, with \"quotes\", $HOME and a tab:\tdone"]
        i += 1
    return "\n".join(lines)[:size]


class Arrival(threading.Thread):
    """Polls the recorder's file until it reaches ``target`` bytes; notes when (perf_counter)."""

    def __init__(self, path: Path, target: int) -> None:
        super().__init__(daemon=True)
        self.path, self.target = path, target
        self.at: float | None = None

    def run(self) -> None:
        deadline = time.perf_counter() + ARRIVAL_TIMEOUT
        while time.perf_counter() < deadline:
            if os.stat(self.path).st_size >= self.target:
                self.at = time.perf_counter()
                return
            time.sleep(POLL_SECONDS)


def deliver(received: Path, steps: list[tuple[list[str], bytes | None]] | Callable[[], None],
            expected: bytes) -> tuple[float, float]:
    """Run ``steps`` (argv, stdin) one after another, or call it; (seconds to the end, to full arrival)."""
    label = "SendMessage rpc" if callable(steps) else " ".join(steps[0][0][:3])
    before = os.stat(received).st_size
    watcher = Arrival(received, before + len(expected))
    watcher.start()
    start = time.perf_counter()
    if callable(steps):
        steps()
    else:
        for argv, stdin in steps:
            completed = subprocess.run(argv, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                                       capture_output=True)
            if completed.returncode != 0:
                raise RuntimeError(f"{label}... failed: {completed.stderr.decode().strip()}")
    done = time.perf_counter()
    watcher.join(ARRIVAL_TIMEOUT + 1)
    if watcher.at is None:
        raise RuntimeError(f"{label}...: the recorder did not get {len(expected)} bytes")
    with open(received, "rb") as handle:
        handle.seek(before)
        got = handle.read()
    if got != expected:
        raise RuntimeError(f"{label}...: the recorder got {len(got)} bytes, not the text plus CR "
                           f"({len(expected)} bytes)")
    return done - start, watcher.at - start


def main() -> None:
    header("message: `mngr message` short and 100 KB to a recording agent vs plain tmux and the floor")
    compile_bytecode()
    from mngr.controller.channel import protocol

    big = big_text()
    with Sandbox() as box:
        received = box.root / "received"
        message_file = box.root / "message.txt"
        message_file.write_bytes(big.encode())
        box.mngr("create", NAME, "--agent-type", "command", "--no-connect", "--",
                 sys.executable, "-c", RECORDER, str(received))
        deadline = time.monotonic() + 10
        while not received.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the recorder did not start")
            time.sleep(0.01)
        time.sleep(0.3)  # tty.setraw runs right after the file is opened; let it take effect
        agents = json.loads(box.mngr("list", "--format", "json").stdout)["agents"]
        print(f"agent: {NAME} state={agents[0]['state']}; short text {len(SHORT.encode())} bytes, "
              f"big text {len(big.encode())} bytes ({big.count(chr(10)) + 1} lines)")

        cases = {
            "mngr short": ([([MNGR, "message", NAME, SHORT], None)], SHORT),
            "tmux short": ([(["tmux", "send-keys", "-t", TARGET, "-l", "--", SHORT], None),
                            (["tmux", "send-keys", "-t", TARGET, "Enter"], None)], SHORT),
            "mngr 100KB": ([([MNGR, "message", NAME, "--message-file", str(message_file)], None)], big),
            "tmux 100KB": ([(["tmux", "load-buffer", "-b", "b", "-"], big.encode()),
                            (["tmux", "paste-buffer", "-d", "-p", "-r", "-b", "b", "-t", TARGET], None),
                            (["tmux", "send-keys", "-t", TARGET, "Enter"], None)], big),
        }
        client = box.rpc()

        def rpc(text: str) -> Callable[[], None]:
            return lambda: client.call(protocol.SendMessage(name=NAME, text=text), protocol.Done)

        rpcs = {"rpc short": (rpc(SHORT), SHORT), "rpc 100KB": (rpc(big), big)}
        command: dict[str, list[float]] = {label: [] for label in ["floor", *cases, *rpcs]}
        arrival: dict[str, list[float]] = {label: [] for label in [*cases, *rpcs]}
        try:
            for i in range(WARMUP + RUNS):
                start = time.perf_counter()
                box.run(FLOOR_ARGV)
                floor_time = time.perf_counter() - start
                results = {label: deliver(received, steps, text.encode() + b"\r")
                           for label, (steps, text) in [*cases.items(), *rpcs.items()]}
                if i >= WARMUP:
                    command["floor"].append(floor_time)
                    for label, (done, arrived) in results.items():
                        command[label].append(done)
                        arrival[label].append(arrived)
        finally:
            client.close()
            client.stream.terminate()

    ms = {label: median(samples) * 1e3 for label, samples in command.items()}
    arrive = {label: median(samples) * 1e3 for label, samples in arrival.items()}
    print(f"median of {RUNS} runs each (after {WARMUP} warm-up), ms from the start of the command:")
    print(f"  {'':28} {'command':>8} {'min':>7} {'arrival':>8} {'min':>7}")
    labels = {"floor": "floor (import CLI)", "mngr short": "mngr message, 38 B",
              "tmux short": "tmux send-keys x2, 38 B", "mngr 100KB": "mngr message, 100 KB file",
              "tmux 100KB": "tmux load/paste/send, 100 KB",
              "rpc short": "SendMessage rpc, 38 B", "rpc 100KB": "SendMessage rpc, 100 KB"}
    for label, shown in labels.items():
        line = f"  {shown:28} {ms[label]:8.1f} {min(command[label]) * 1e3:7.1f}"
        if label in arrival:
            line += f" {arrive[label]:8.1f} {min(arrival[label]) * 1e3:7.1f}"
        print(line)
    for size in ("short", "100KB"):
        m, t = f"mngr {size}", f"tmux {size}"
        print(f"  {size}: mngr/tmux command {ms[m] / ms[t]:.2f}x, arrival {arrive[m] / arrive[t]:.2f}x; "
              f"mngr/floor {ms[m] / ms['floor']:.2f}x; mngr - floor - tmux = {ms[m] - ms['floor'] - ms[t]:.1f} ms")
    print("target: none set for message (figures only)")


if __name__ == "__main__":
    main()
