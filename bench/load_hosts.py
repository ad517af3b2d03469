"""Load across hosts: 50 SSH hosts at once, one agent each: list, message to all, destroy all.

Hosts as in ssh_list.py: one sshd each on a loopback port (tests/sshd.py's SshHost, its own
MNGR_HOST_DIR and TMUX_TMPDIR), one `cat` agent per host made by `mngr create --in ssh`.
Then, timed (median of 5 for list, once each for the others):

list     `mngr list --format json`, warm (ssh masters and host daemons up)
message  one `mngr message ag00 ... ag49 -m hello`; then checked on every host
destroy  one `mngr destroy -f --all`; then checked: no agent, no session anywhere
peer     50 x `ssh HOST tmux send-keys -t =SESSION: -l hello` at once (threads), the naive
         way to type into every agent, through the same ssh_config, with no shared masters

Run (root, sshd installed): .venv/bin/python bench/load_hosts.py
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

HOSTS = 50


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.sshd
    from tests.sshd import unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    header(f"load_hosts: {HOSTS} SSH hosts at once: list, message to all, destroy all")
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
            names = [f"ag{h.alias[1:]}" for h in hosts]
            start = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda pair: box.mngr("create", pair[1], "command", "--in", "ssh", "--host",
                                                    pair[0].alias, "--no-connect", "--", "cat"), zip(hosts, names, strict=True)))
            created = time.perf_counter() - start
            listed = median([timed_run(box, [MNGR, "list", "--format", "json"])[0] for _ in range(5)])
            message = timed_run(box, [MNGR, "message", *names, "-m", "hello"])[0]
            peer = timed_run(box, [sys.executable, "-c", PEER, str(config), *(f"{h.alias}={n}" for h, n in zip(hosts, names, strict=True))])[0]
            time.sleep(1)
            shown = box.run([MNGR, "exec", "--format", "json", *names,
                             "tmux capture-pane -p -t =mngr-$MNGR_AGENT_NAME: | grep -c hello"], check=False)
            seen = [str(int(row["stdout"].strip() or 0)) for row in json.loads(shown.stdout)]
            destroy = timed_run(box, [MNGR, "destroy", "-f", "--all"])[0]
            left = box.run([MNGR, "list", "--format", "{name}"], check=False).stdout.decode().split()
        finally:
            go_cold(control_dir, hosts)
            for host in hosts:
                host.stop()
    print(f"\ncreated {HOSTS} agents on {HOSTS} hosts (4 creates at a time) in {created:.1f} s")
    print(f"list     {listed:7.3f} s   (median of 5, warm)")
    print(f"message  {message:7.3f} s   (one command to all {HOSTS}); naive peer {peer:.3f} s: "
          f"{message / peer:.2f}x; hosts whose agent shows the text: {sum(1 for n in seen if n != '0')}/{HOSTS}")
    print(f"destroy  {destroy:7.3f} s   (mngr destroy -f --all); agents left: {len(left)}")


PEER = r"""
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
config, pairs = sys.argv[1], [pair.split("=") for pair in sys.argv[2:]]
def one(pair):
    host, agent = pair
    return subprocess.run(["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ControlMaster=no",
                           "-o", "ControlPath=none", "-T", host, "tmux", "send-keys", "-t", f"=mngr-{agent}:",
                           "-l", "hello"], stdin=subprocess.DEVNULL, capture_output=True)
with ThreadPoolExecutor(len(pairs)) as pool:
    results = list(pool.map(one, pairs))
sys.exit(max(r.returncode for r in results))
"""


if __name__ == "__main__":
    main()
