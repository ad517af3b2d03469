"""`mngr list --include ... --sort ...` against plain `mngr list`: 200 agents on 5 SSH hosts.

Hosts as in ssh_list.py: one sshd each on a loopback port (tests/sshd.py's SshHost, its own
MNGR_HOST_DIR and TMUX_TMPDIR), 40 `sleep 600` agents per host made by `mngr create --in
ssh`, with labels (team a/b/c, tier 0-3). Then, warm (ssh masters and host daemons up),
alternating in the same run so that machine noise hits both:

plain     `mngr list --format json`
filtered  `mngr list --format json --include EXPR --exclude EXPR --sort host,-labels.tier,name`
fields    `mngr list --include EXPR --sort -name --fields name,state,host,age --limit 50` (human table)

The filtered listing asks every host the same question as the plain one and filters and
sorts the rows in mngr: its cost over plain is what the language costs (parsing once,
one test per row, a sort). Checked: the filtered output holds exactly the agents a
Python reference selects from the plain output. Because a whole listing over ssh is
noisy on a shared machine, the language's own share is also timed in this process: the
first import of controller/agent_filter.py, and reading the expressions, testing the
200 rows of the plain output and sorting them (median of 200 rounds).

Run (root, sshd installed): .venv/bin/python bench/list_filter.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import MNGR, Sandbox, compile_bytecode, header, median, timed_run
from ssh_list import go_cold, start_hosts, use_hosts, write_ssh_config

HOSTS = 5
PER_HOST = 40
RUNS = 21
WARMUP = 2
INCLUDE = "state in [running, waiting] && (labels.team == a || name ~ '*-1?') && idle < 1d"
EXCLUDE = "labels.tier == 3"
SORT = "host,-labels.tier,name"


def _reference(rows: list[dict]) -> list[str]:
    def kept(row: dict) -> bool:
        name_matches = len(row["name"]) >= 3 and row["name"][-3] == "-" and row["name"][-2] == "1"
        return (row["state"] in ("RUNNING", "WAITING") and (row["labels"].get("team") == "a" or name_matches)
                and row["idle_seconds"] is not None and row["labels"].get("tier") != "3")

    chosen = sorted((row for row in rows if kept(row)), key=lambda row: row["name"])
    chosen.sort(key=lambda row: row["labels"]["tier"], reverse=True)
    chosen.sort(key=lambda row: row["host"])
    return [row["id"] for row in chosen]


def _in_process(rows: list[dict]) -> tuple[float, float]:
    """(seconds to import the language, median seconds to read, filter and sort ``rows``)."""
    start = time.perf_counter()
    from mngr.controller.agent_filter import Selection, parse_sort, sorted_rows

    imported = time.perf_counter() - start
    rounds = []
    for _ in range(200):
        start = time.perf_counter()
        test = Selection((INCLUDE,), (EXCLUDE,)).compile()
        sorted_rows([row for row in rows if test(row)], parse_sort(SORT))
        rounds.append(time.perf_counter() - start)
    return imported, median(rounds)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.sshd
    from tests.sshd import unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    header(f"list_filter: `mngr list --include/--sort` vs plain `mngr list`, "
           f"{HOSTS * PER_HOST} agents on {HOSTS} SSH hosts")
    compile_bytecode()
    with Sandbox() as box:
        control_dir = box.root / "s" / "ssh"
        os.environ["MNGR_STATE_DIR"] = str(control_dir.parent)
        hosts: list = []
        try:
            start_hosts(box, HOSTS, hosts)
            config = write_ssh_config(box.root / "ssh_config", hosts, [h.port for h in hosts])
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
            use_hosts(box, hosts)
            specs = [(host.alias, f"a{h:d}-{i:02d}", i) for h, host in enumerate(hosts) for i in range(PER_HOST)]
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda spec: box.mngr(
                    "create", spec[1], "command", "--in", "ssh", "--host", spec[0], "--no-connect",
                    "--label", f"team={'abc'[spec[2] % 3]}", "--label", f"tier={spec[2] % 4}",
                    "--", "sleep", "600"), specs))
            created = time.perf_counter() - start
            plain_argv = [MNGR, "list", "--format", "json"]
            filtered_argv = [*plain_argv, "--include", INCLUDE, "--exclude", EXCLUDE, "--sort", SORT]
            fields_argv = [MNGR, "list", "--include", INCLUDE, "--sort", "-name",
                           "--fields", "name,state,host,age", "--limit", "50"]
            plain: list[float] = []
            filtered: list[float] = []
            fields: list[float] = []
            for run in range(WARMUP + RUNS):
                plain_time, plain_out = timed_run(box, plain_argv)
                filtered_time, filtered_out = timed_run(box, filtered_argv)
                fields_time, _ = timed_run(box, fields_argv)
                if run >= WARMUP:
                    plain.append(plain_time)
                    filtered.append(filtered_time)
                    fields.append(fields_time)
            everything = json.loads(plain_out)["agents"]
            chosen = [row["id"] for row in json.loads(filtered_out)["agents"]]
            expected = _reference(everything)
        finally:
            go_cold(control_dir, hosts)
            for host in hosts:
                host.stop()
    print(f"\ncreated {len(specs)} agents on {HOSTS} hosts (8 creates at a time) in {created:.1f} s; "
          f"listed {len(everything)}")
    print(f"median of {RUNS} runs each (after {WARMUP} warm-up), alternating, warm:")
    print(f"plain     {median(plain) * 1e3:8.1f} ms   `mngr list --format json`")
    print(f"filtered  {median(filtered) * 1e3:8.1f} ms   {median(filtered) / median(plain):.3f}x plain, "
          f"{(median(filtered) - median(plain)) * 1e3:+.1f} ms  (--include/--exclude/--sort, json)")
    print(f"fields    {median(fields) * 1e3:8.1f} ms   {median(fields) / median(plain):.3f}x plain  "
          f"(--include, --sort, --fields, --limit 50, table)")
    imported, per_listing = _in_process(everything)
    print(f"in this process: importing the language {imported * 1e3:.2f} ms (once per command that uses it); "
          f"reading the expressions, testing {len(everything)} rows and sorting them {per_listing * 1e3:.2f} ms")
    print(f"filtered output: {len(chosen)} agents, "
          f"{'the same as' if chosen == expected else 'DIFFERENT FROM'} the reference selection ({len(expected)})")


if __name__ == "__main__":
    main()
