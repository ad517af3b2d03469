"""`mngr stop`, `start` and `destroy` of many agents: this tree against an earlier mngr.

Cases (agents run `sleep 600`, type command):

- 1 agent on the local host;
- 20 agents on the local host;
- 20 agents spread over 10 SSH hosts (2 each): one sshd per host on a loopback port
  (tests/sshd.py's SshHost, as bench/ssh_list.py starts them), warm (masters and host
  daemons up).

Each round makes the agents afresh (not timed), then times `mngr stop NAMES...`, `mngr
start NAMES...` and `mngr destroy -f NAMES...`, for this tree and for mngr at ``--against``
(default main, exported with `git archive` as bench/start_up.py does), in alternating
order. Both run as `python -c "from mngr.controller.cli.entry import main; main()"` with
PYTHONPATH on the tree. Medians, and the ratio this tree / the earlier one.

Run (root, sshd installed): .venv/bin/python bench/lifecycle.py [--runs N] [--against REV]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import PYTHON, REPO, Sandbox, compile_bytecode, header, median
from ssh_list import start_hosts, use_hosts, write_ssh_config
from start_up import export

RUNS = 5
ACTIONS = ("stop", "start", "destroy")


def run_mngr(box: Sandbox, path: Path, args: list[str]) -> float:
    """Wall seconds of one mngr command (run from the tree on ``path``), which must succeed."""
    start = time.perf_counter()
    box.run([PYTHON, "-c", "from mngr.controller.cli.entry import main; main()", *args],
            env={"PYTHONPATH": str(path)})
    return time.perf_counter() - start


def make_agents(box: Sandbox, placements: list[tuple[str, str | None]]) -> None:
    """Create each (name, ssh host or None for local) agent, a few at a time."""
    def one(placement: tuple[str, str | None]) -> None:
        name, host = placement
        where = ["--in", "ssh", "--host", host] if host else []
        box.mngr("create", name, "command", *where, "--no-connect", "--", "sleep", "600")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, placements))


def measure(box: Sandbox, trees: dict[str, Path], placements: list[tuple[str, str | None]],
            runs: int) -> dict[str, dict[str, list[float]]]:
    names = [name for name, _ in placements]
    times: dict[str, dict[str, list[float]]] = {who: {action: [] for action in ACTIONS} for who in trees}
    order = list(trees)
    for round_number in range(runs + 1):  # the first round warms up (masters, daemons, bytecode)
        for who in order if round_number % 2 else reversed(order):
            make_agents(box, placements)
            for action in ACTIONS:
                seconds = run_mngr(box, trees[who], [action, *(["-f"] if action == "destroy" else []), *names])
                if round_number:
                    times[who][action].append(seconds)
    return times


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"rounds of each case (default {RUNS})")
    parser.add_argument("--against", default="main", help="the earlier mngr: a git revision (default main)")
    options = parser.parse_args()
    sys.path.insert(0, str(REPO))  # the repository: tests.sshd
    from tests.sshd import unavailable_reason

    against = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", options.against],
                             capture_output=True, text=True, check=True).stdout.strip()
    header(f"lifecycle: `mngr stop/start/destroy` of 1 and 20 agents, local and over 10 SSH hosts, vs mngr at "
           f"{against}")
    compile_bytecode()
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    with Sandbox() as box:
        os.environ["MNGR_STATE_DIR"] = str(box.root / "s")
        here = box.root / "here"
        here.mkdir()
        (here / "mngr").symlink_to(REPO)
        earlier = box.root / "earlier"
        earlier.mkdir()
        trees = {"this tree": here, f"mngr@{against}": export(options.against, earlier)}
        results["1 agent, local"] = measure(box, trees, [("solo", None)], options.runs)
        results["20 agents, local"] = measure(box, trees, [(f"l{i:02d}", None) for i in range(20)], options.runs)
        reason = unavailable_reason()
        hosts: list = []
        if reason:
            print(f"skipped the SSH case: {reason}")
        else:
            try:
                start_hosts(box, 10, hosts)
                config = write_ssh_config(box.root / "ssh_config", hosts, [h.port for h in hosts])
                os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
                use_hosts(box, hosts)
                placements = [(f"s{i:02d}", hosts[i % len(hosts)].alias) for i in range(20)]
                results["20 agents on 10 SSH hosts"] = measure(box, trees, placements, options.runs)
            finally:
                for host in hosts:
                    host.stop()

    before = f"mngr@{against}"
    print(f"\nmedians of {options.runs} rounds (after one warm-up round), the two trees alternating; "
          f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"| case | command | this tree | {before} | this tree / {before} |")
    print("|---|---|---|---|---|")
    for case, times in results.items():
        for action in ACTIONS:
            now, then = median(times["this tree"][action]), median(times[before][action])
            print(f"| {case} | {action} | {now * 1e3:.0f} ms | {then * 1e3:.0f} ms | {now / then:.2f}x |")


if __name__ == "__main__":
    main()
