"""`mngr events --follow`: how soon a state change is printed, and what noting states costs.

Latency. One `mngr events --follow --event state` runs for the whole benchmark. Each round
makes an agent (`mngr create rN command --no-connect -- sh -c 'until [ -e GATE ]; do sleep
0.02; done'`, untimed), waits until the follower has printed its RUNNING or WAITING line (so
the follow is live), then opens the gate: the agent's command exits and the agent is DONE.
Measured from the gate's creation to the DONE line on the follower's stdout. Peers, running
at the same time on the same change:

poll      `while :; do tmux list-panes -a -F '#{session_name} #{pane_dead}'; sleep 0.1; done`,
          the loop a script would write to notice an agent's exit by itself;
tail -F   `tail -n0 -F` of the agent's events.jsonl: the DONE line mngr wrote, read by plain
          tail (so it shows what mngr's delivery adds after the line is written).

The same over SSH (a test sshd on a loopback port, tests/sshd.py): the agents on the SSH
host, the peers run there through `ssh HOST '...'` (the same ssh config mngr uses).

Cost of noting states. N agents (`sleep 600`) whose records say they are Claude agents (the
Claude screen patterns), so every look must know their screens. One look as the watcher and
each follower does it (events.StateNoter.note: panes whose output has not changed since
their screen was read are not captured again) against the look a `mngr list` takes
(agents.list_agents: every such pane captured), alternated, in this process; CPU is this
process's plus the tmux server's (/proc/PID/stat), per look.

Run: .venv/bin/python bench/events.py [--rounds 15] [--agents 20]   (about 4 min; root, sshd for the SSH part)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import MNGR, Sandbox, compile_bytecode, header, median

WARMUP = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Lines:
    """A process's stdout lines, each with when it arrived."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env={**os.environ, **(env or {})})
        self.seen: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            now = time.perf_counter()
            with self._lock:
                self.seen.append((now, raw.decode("utf-8", "replace")))

    def first(self, test, after: float) -> float | None:
        with self._lock:
            return next((when for when, line in self.seen if when >= after and test(line)), None)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def wait_until(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    return None


def is_state(name: str, states: tuple[str, ...]):
    def test(line: str) -> bool:
        try:
            row = json.loads(line)
        except ValueError:
            return False
        return row.get("agent") == name and row.get("event") == "state" and row.get("state") in states
    return test


_POLL_LOOP = "while :; do tmux list-panes -a -F '#{session_name} #{pane_dead}'; sleep 0.1; done"


class Place:
    """Where the agents run: the local host, or an SSH host reached with ``ssh`` (its own)."""

    def __init__(self, label: str, gate_dir: Path, host_dir: Path, ssh: list[str] | None = None,
                 create: tuple[str, ...] = ()) -> None:
        self.label = label
        self.gate_dir = gate_dir
        self.host_dir = host_dir
        self.ssh = ssh
        self.create = create

    def there(self, command: str) -> list[str]:
        return [*self.ssh, command] if self.ssh else ["sh", "-c", command]


def latency(box: Sandbox, place: Place, rounds: int) -> None:
    follower = Lines([MNGR, "events", "--follow", "--event", "state", "--format", "jsonl"])
    poll = Lines(place.there(_POLL_LOOP))
    results: dict[str, list[float]] = {"mngr events --follow": [], "poll": [], "tail -F": []}
    try:
        for index in range(WARMUP + rounds):
            name = f"r{index}"
            gate = place.gate_dir / f"gate{index}"
            box.mngr("create", name, "command", "--no-connect", *place.create, "--", "sh", "-c",
                     f"until [ -e {gate} ]; do sleep 0.02; done")
            started = time.perf_counter() - 60
            if wait_until(lambda name=name, started=started: follower.first(is_state(name, ("RUNNING", "WAITING")),
                                                                             started)) is None:
                raise SystemExit(f"the follower never printed {name} running")
            listed = json.loads(box.mngr("list", "--format", "json").stdout)["agents"]
            agent_id = next(agent["id"] for agent in listed if agent["name"] == name)
            tail = Lines(place.there(f"tail -n0 -F {place.host_dir / 'agents' / agent_id / 'events.jsonl'}"))
            # Anywhere between two of the follower's looks (and, over ssh, after tail started).
            time.sleep((1.0 if place.ssh else 0.3) + random.uniform(0, 0.25))
            opened = time.perf_counter()
            gate.touch()
            done, dead = is_state(name, ("DONE",)), f"mngr-{name} 1"
            times = {
                "mngr events --follow": wait_until(lambda done=done, opened=opened: follower.first(done, opened)),
                "poll": wait_until(lambda dead=dead, opened=opened: poll.first(lambda line: line.strip() == dead,
                                                                               opened)),
                "tail -F": wait_until(lambda tail=tail, opened=opened: tail.first(lambda line: '"DONE"' in line,
                                                                                  opened)),
            }
            tail.stop()
            box.mngr("destroy", "-f", name)
            shown = ", ".join(f"{key} {(value - opened) * 1000:.0f} ms" if value else f"{key} -"
                              for key, value in times.items())
            print(f"{place.label} round {index}{' (warm-up)' if index < WARMUP else ''}: {shown}", flush=True)
            if index >= WARMUP:
                for key, value in times.items():
                    if value is not None:
                        results[key].append((value - opened) * 1000)
    finally:
        follower.stop()
        poll.stop()
    follow_ms = median(results["mngr events --follow"])
    print()
    print(f"| {place.label}: from the agent's exit to the line | median | range | / poll |")
    print("|---|---|---|---|")
    for key, values in results.items():
        print(f"| {key} | {median(values):.0f} ms | {min(values):.0f}-{max(values):.0f} ms | "
              f"{median(values) / median(results['poll']):.2f}x |")
    print(f"\n(mngr events --follow / tail -F of the line it wrote: {follow_ms / median(results['tail -F']):.2f}x)")


def latency_over_ssh(box: Sandbox, rounds: int) -> None:
    from tests.sshd import SshHost, unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"\nno SSH host: {reason}")
        return
    client_dir = box.root / "client"
    client_dir.mkdir()
    host = SshHost("testhost", client_dir)
    try:
        host.trust()
        config = box.root / "ssh_config"
        config.write_text(host.client_config())
        os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        os.environ["MNGR_STATE_DIR"] = str(box.root / "s")
        (box.config_dir / "config.toml").write_text("[hosts.testhost]\n")
        latency(box, Place("ssh", host.remote_root, host.remote_host_dir, ["ssh", "-F", str(config), "testhost"],
                           ("--in", "ssh", "--host", "testhost")), rounds)
    finally:
        host.stop()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cost(box: Sandbox, agents: int, looks: int) -> None:
    from mngr.controller.agent_types import CLAUDE_INTERACTION
    from mngr.remote_helper import agents as host_agents
    from mngr.remote_helper import events, state

    for index in range(agents):
        box.mngr("create", f"c{index:02d}", "command", "--no-connect", "--", "sleep", "600")
    interaction = {"ready_pattern": CLAUDE_INTERACTION.ready_pattern, "busy_pattern": CLAUDE_INTERACTION.busy_pattern,
                   "dialogs": [[dialog.reason, dialog.pattern, dialog.detail] for dialog in CLAUDE_INTERACTION.dialogs]}
    for directory in (box.host_dir / "agents").iterdir():
        record_path = directory / "record.json"
        if record_path.exists():
            record = json.loads(record_path.read_text())
            record["interaction"] = interaction
            state.atomic_write_json(str(record_path), record)
    tmux_pid = int(box.tmux("display-message", "-p", "#{pid}").stdout.strip() or 0)
    noter = events.StateNoter()
    noter.note(10.0)  # the first look reads every screen
    captures_before = noter.captures
    samples: dict[str, list[tuple[float, float]]] = {"events.StateNoter.note": [], "agents.list_agents": []}
    for _ in range(looks):
        for label, look in (("events.StateNoter.note", lambda: noter.note(10.0)),
                            ("agents.list_agents", lambda: host_agents.list_agents(10.0))):
            cpu_before = time.process_time() + _cpu_seconds(tmux_pid)
            wall_before = time.perf_counter()
            look()
            samples[label].append(((time.perf_counter() - wall_before) * 1000,
                                   (time.process_time() + _cpu_seconds(tmux_pid) - cpu_before) * 1000))
    print()
    print(f"| one look at {agents} Claude-like agents (idle screens) | wall | CPU (this process + tmux) |")
    print("|---|---|---|")
    for label, values in samples.items():
        print(f"| {label} | {median([v[0] for v in values]):.1f} ms | {median([v[1] for v in values]):.1f} ms |")
    print(f"\npanes captured by the noter after its first look: {noter.captures - captures_before} in {looks} looks")
    ratio = median([v[1] for v in samples["events.StateNoter.note"]]) / max(
        0.001, median([v[1] for v in samples["agents.list_agents"]]))
    print(f"noter / list CPU: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--looks", type=int, default=30)
    arguments = parser.parse_args()
    header("events: mngr events --follow latency (vs a tmux poll loop, tail -F) and the cost of noting states")
    compile_bytecode()
    with Sandbox() as box:
        latency(box, Place("local", box.root, box.host_dir), arguments.rounds)
    with Sandbox() as box:
        latency_over_ssh(box, arguments.rounds)
    with Sandbox() as box:
        cost(box, arguments.agents, arguments.looks)


if __name__ == "__main__":
    main()
