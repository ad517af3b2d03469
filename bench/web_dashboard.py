"""`mngr web` with 20 local agents: a look at the fleet, and a stop seen, against the CLI.

Twenty `command` agents (`sleep 600`) on the local host and one `mngr web --no-browser`.
Cases, RUNS times each, interleaved in the same loop:

look, page       GET /api/agents: what the page fetches every 2 s (the listing the server
                 keeps renewing on a thread of its own)
look, cli        `mngr list --format json`: what a script or `watch mngr list` pays per look
stop, page       POST /api/agents/NAME/stop, then GET /api/agents until the agent is STOPPED
stop, cli        `mngr stop NAME`, then `mngr list --format json` until it is STOPPED

Each stopped agent is started again (untimed) before the next run.

Run (root): .venv/bin/python bench/web_dashboard.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

from _common import MNGR, REPO, Sandbox, compile_bytecode, header, median

sys.path.insert(0, str(REPO))

AGENTS = 20
RUNS = 15


class Page:
    def __init__(self, url: str) -> None:
        self.base, _, self.token = url.partition("/?token=")

    def request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={
            "X-Mngr-Token": self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def states(self) -> dict[str, str]:
        listing = self.request("/api/agents")["listing"] or {"agents": []}
        return {agent["name"]: agent["state"] for agent in listing["agents"]}


def cli_states(box: Sandbox) -> dict[str, str]:
    listed = json.loads(box.mngr("list", "--format", "json").stdout)
    return {agent["name"]: agent["state"] for agent in listed["agents"]}


def until(look, name: str, state: str) -> None:
    for _ in range(3000):
        if look().get(name) == state:
            return
    raise RuntimeError(f"{name} never showed {state}")


def main() -> None:
    header(f"web_dashboard: {AGENTS} local agents, mngr web against mngr list")
    compile_bytecode()
    with Sandbox() as box:
        for index in range(AGENTS):
            box.mngr("create", f"a{index:02d}", "command", "--no-connect", "--", "sleep", "600")
        server = subprocess.Popen([MNGR, "web", "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)
        try:
            assert server.stdout is not None
            page = Page(server.stdout.readline().decode().strip())
            while len(page.states()) < AGENTS:
                time.sleep(0.1)
            samples: dict[str, list[float]] = {case: [] for case in ("look, page", "look, cli", "stop, page",
                                                                     "stop, cli")}
            for run in range(RUNS):
                start = time.perf_counter()
                seen = page.states()
                samples["look, page"].append(time.perf_counter() - start)
                start = time.perf_counter()
                listed = cli_states(box)
                samples["look, cli"].append(time.perf_counter() - start)
                if len(seen) != AGENTS or len(listed) != AGENTS:
                    raise RuntimeError(f"listed {len(seen)} and {len(listed)} agents, not {AGENTS}")
                name = f"a{run % AGENTS:02d}"
                start = time.perf_counter()
                if not page.request(f"/api/agents/{name}/stop", {"host": "local", "provider": "local"})["ok"]:
                    raise RuntimeError(f"the page could not stop {name}")
                until(page.states, name, "STOPPED")
                samples["stop, page"].append(time.perf_counter() - start)
                box.mngr("start", name)
                start = time.perf_counter()
                box.mngr("stop", name)
                until(lambda: cli_states(box), name, "STOPPED")
                samples["stop, cli"].append(time.perf_counter() - start)
                box.mngr("start", name)
            print(f"{'case':<12} {'median':>10} {'/ cli':>8}")
            for kind in ("look", "stop"):
                cli = median(samples[f"{kind}, cli"])
                for who in ("page", "cli"):
                    value = median(samples[f"{kind}, {who}"])
                    print(f"{kind + ', ' + who:<12} {value * 1000:>8.1f}ms {value / cli:>7.3f}x")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
