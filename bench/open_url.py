"""`mngr open --print` on a local agent and an SSH agent, against the floor and ssh by hand.

A local agent `here` and an agent `far` on one SSH host (tests/sshd.py's SshHost), each
serving a page with `python3 -m http.server`. Cases, RUNS times each, interleaved with their
peers in the same loop:

local        `mngr open here PORT --print` (the helper asks the port; the URL is the agent's)
  floor      `.venv/bin/python -c "import mngr.controller.cli.main"`
ssh reused   `mngr open far PORT --print` with its forward in place (the master confirms it)
ssh new      the same after the forward was cancelled and forgotten (a new forward each run)
  by hand    `ssh -O forward -L 127.0.0.1:LPORT:localhost:PORT far` through the same shared
             connection: what a user types to make the tunnel with a master already up, with
             no check that anything listens and no browser or URL
  by hand, new master  `ssh -f -N -L ...` with no shared connection (a new handshake), as one
             would without mngr's shared connections, then `ssh -O exit`

Each run fetches every URL made (but the by-hand one, cancelled at once), to check it gives the page.

Run (root, sshd installed): .venv/bin/python bench/open_url.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import urllib.request

from _common import FLOOR_ARGV, MNGR, REPO, Sandbox, compile_bytecode, header, median

sys.path.insert(0, str(REPO))

RUNS = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(box: Sandbox, argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = box.run(argv)
    return time.perf_counter() - start, done.stdout.decode().strip()


def check_page(url: str, page: bytes) -> None:
    with urllib.request.urlopen(url, timeout=10) as answer:
        if not answer.read().startswith(page):
            raise RuntimeError(f"{url} does not answer with {page!r}")


def serving(page: str, port: int) -> list[str]:
    return ["sh", "-c", f"echo '{page}' > index.html && exec python3 -m http.server {port} --bind 127.0.0.1"]


def until_open(box: Sandbox, name: str, port: int) -> str:
    for _ in range(200):
        done = box.run([MNGR, "open", name, str(port), "--print"], check=False)
        if done.returncode == 0:
            return done.stdout.decode().strip()
        time.sleep(0.1)
    raise RuntimeError(f"mngr open {name} {port}: {done.stderr.decode().strip()}")


def main() -> None:
    from tests.sshd import SshHost

    header("open_url: mngr open --print, local and over SSH, against the floor and ssh by hand")
    compile_bytecode()
    with Sandbox() as box:
        state = box.root / "s"
        os.environ["MNGR_STATE_DIR"] = str(state)
        client_dir = box.root / "client"
        client_dir.mkdir()
        host = SshHost("far-host", client_dir)
        try:
            host.trust()
            config = box.root / "ssh_config"
            config.write_text(host.client_config())
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
            local_port, far_port = free_port(), free_port()
            box.mngr("create", "here", "command", "--no-connect", "--", *serving("local page", local_port))
            box.mngr("create", "far", "command", "--in", "ssh", "--host", "far-host", "--no-connect", "--",
                     *serving("far page", far_port))
            until_open(box, "here", local_port)
            until_open(box, "far", far_port)
            mux = ["ssh", "-F", str(config), "-o", f"ControlPath={state}/ssh/%C"]
            forwards = state / "ssh_port_forwards.json"
            samples: dict[str, list[float]] = {case: [] for case in (
                "local", "floor", "ssh reused", "ssh new", "by hand", "by hand, new master")}
            urls: dict[str, str] = {}
            for _ in range(RUNS):
                seconds, urls["local"] = timed(box, [MNGR, "open", "here", str(local_port), "--print"])
                samples["local"].append(seconds)
                samples["floor"].append(timed(box, FLOOR_ARGV)[0])
                seconds, urls["ssh reused"] = timed(box, [MNGR, "open", "far", str(far_port), "--print"])
                samples["ssh reused"].append(seconds)
                check_page(urls.pop("ssh reused"), b"far page")  # before its forward is cancelled
                (noted,) = json.loads(forwards.read_text()).values()
                box.run([*mux, "-O", "cancel", "-L", noted["spec"], "far-host"])
                forwards.write_text("{}")
                seconds, urls["ssh new"] = timed(box, [MNGR, "open", "far", str(far_port), "--print"])
                samples["ssh new"].append(seconds)
                by_hand = free_port()
                spec = f"127.0.0.1:{by_hand}:localhost:{far_port}"
                samples["by hand"].append(timed(box, [*mux, "-O", "forward", "-L", spec, "far-host"])[0])
                urls["by hand"] = f"http://127.0.0.1:{by_hand}/"
                box.run([*mux, "-O", "cancel", "-L", spec, "far-host"])
                own = free_port()
                control = box.root / "hand-master"
                start = time.perf_counter()
                box.run(["ssh", "-F", str(config), "-o", "ControlMaster=yes", "-o", f"ControlPath={control}",
                         "-f", "-N", "-L", f"127.0.0.1:{own}:localhost:{far_port}", "far-host"])
                samples["by hand, new master"].append(time.perf_counter() - start)
                urls["by hand, new master"] = f"http://127.0.0.1:{own}/"
                for name, url in urls.items():
                    if name != "by hand":
                        check_page(url, b"local page" if name == "local" else b"far page")
                box.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", "far-host"], check=False)
            floor = median(samples["floor"])
            hand = median(samples["by hand"])
            print(f"{'case':<22} {'median':>9} {'- floor':>9} {'/ floor':>8} {'/ by hand':>10}")
            for case, values in samples.items():
                value = median(values)
                print(f"{case:<22} {value * 1000:>7.1f}ms {(value - floor) * 1000:>7.1f}ms {value / floor:>7.2f}x "
                      f"{value / hand:>9.2f}x")
        finally:
            host.stop()
            shutil.rmtree(host.remote_root, ignore_errors=True)


if __name__ == "__main__":
    main()
