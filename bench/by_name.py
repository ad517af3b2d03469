"""By-name commands on a local agent, with and without dead remembered hosts.

A local agent `here` (`command -- cat`). Five SSH hosts are remembered (ssh_hosts.json in
the state dir) that do not answer, ssh aliases for 127.0.0.1, in two settings:

refused   ports where nothing listens (connection refused at once)
silent    ports where a socket listens and never accepts: the TCP handshake completes
          (the kernel's backlog), ssh then waits for a banner that never comes, up to its
          ConnectTimeout (providers.ssh.connect_timeout, 10 s): a machine that hangs

Cases, each RUNS times, the settings alternating (the registry is rewritten before each
run; the commands are the same):

exec      `mngr exec here true`
capture   `mngr capture here`
list      `mngr list` (asks every host: what a by-name command would cost if it did too;
          LIST_RUNS times only, since each silent run takes the whole ConnectTimeout)
create    `mngr create NAME command --no-connect -- true`, a new name each run: the name
          check asks every host, but waits for the silent ones only name_check_seconds
          (3 s), not the ConnectTimeout; CREATE_RUNS times

Peer: the same command with no remembered host. Ratio = median with 5 dead hosts / median
with none; by-name commands go straight to the recorded host, so the target is a ratio
under 1.2 for exec and capture in both settings. create has no target: it must ask
every host, and is shown for what a silent host costs it.

Run: .venv/bin/python bench/by_name.py
"""

from __future__ import annotations

import json
import os
import socket
import time

from _common import MNGR, Sandbox, compile_bytecode, header, median, target

RUNS = 15
LIST_RUNS = 3
CREATE_RUNS = 5
DEAD_HOSTS = 5


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on (bound, noted, released)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def main() -> None:
    header(f"by_name: a by-name command on a local agent with 0 and {DEAD_HOSTS} dead remembered hosts")
    compile_bytecode()
    with Sandbox() as box:
        state = box.root / "s"
        os.environ["MNGR_STATE_DIR"] = str(state)
        config = box.root / "ssh_config"
        refused = [f"refused{index}" for index in range(DEAD_HOSTS)]
        silent = [f"silent{index}" for index in range(DEAD_HOSTS)]
        listeners = []
        for _ in silent:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)  # never accepted
            listeners.append(listener)
        ports = [*free_ports(DEAD_HOSTS), *(listener.getsockname()[1] for listener in listeners)]
        config.write_text("".join(f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n"
                                  for name, port in zip([*refused, *silent], ports, strict=True)))
        os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        box.mngr("create", "here", "command", "--no-connect", "--", "cat")
        registry = state / "ssh_hosts.json"
        settings = {"none": "{}", "refused": json.dumps(dict.fromkeys(refused, time.time())),
                    "silent": json.dumps(dict.fromkeys(silent, time.time()))}
        cases = {"exec": ["exec", "here", "true"], "capture": ["capture", "here"], "list": ["list"],
                 "create": ["create", "NAME", "command", "--no-connect", "--", "true"]}
        samples: dict[tuple[str, str], list[float]] = {(case, setting): [] for case in cases for setting in settings}
        for case, argv in cases.items():  # warm the agent's path once
            if case != "create":
                box.run([MNGR, *argv], check=False)
        for run in range(RUNS):
            for case, argv in cases.items():
                if (case == "list" and run >= LIST_RUNS) or (case == "create" and run >= CREATE_RUNS):
                    continue
                for setting, content in settings.items():
                    registry.write_text(content)
                    named = [f"new-{setting}-{run}" if word == "NAME" else word for word in argv]
                    start = time.perf_counter()
                    done = box.run([MNGR, *named], check=False)
                    samples[(case, setting)].append(time.perf_counter() - start)
                    if case != "list" and done.returncode != 0:
                        raise RuntimeError(f"mngr {' '.join(argv)} failed: {done.stderr.decode().strip()}")
        for listener in listeners:
            listener.close()
        print(f"{'case':<10} {'0 dead':>10} {'5 refused':>10} {'ratio':>7} {'5 silent':>10} {'ratio':>7}")
        for case in cases:
            plain = median(samples[(case, "none")])
            cells = []
            for setting in ("refused", "silent"):
                burdened = median(samples[(case, setting)])
                cells.append(f"{burdened * 1000:>8.0f}ms {burdened / plain:>6.2f}x")
                if case in ("exec", "capture"):
                    target(f"{case}: {DEAD_HOSTS} {setting} hosts cost under 1.2x", burdened / plain < 1.2)
            print(f"{case:<10} {plain * 1000:>8.0f}ms {' '.join(cells)}")


if __name__ == "__main__":
    main()
