"""claude's copy to an SSH host over a slow link: as mngr sends it (the first part measures
the link, the rest goes zlib-compressed below link_rate.COMPRESS_BELOW) against the same
copy with every part sent as it is, alternating in each round.

Host: one sshd on a loopback port (tests/sshd.py, user mngr-test), reached through
tests/throttled_proxy.py at RATE bytes a second each way. Each case is an in-process
``ensure_cli(handle, "claude", "copy")`` on a host whose bundle was removed beforehand;
timed from the request to the bundle in place, with the bytes the channel sent.

Run (root, sshd installed, ./scripts/install.sh --test): .venv/bin/python bench/agent_cli_supply_slow.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, Sandbox, compile_bytecode, header, median

ROUNDS = 3
RATE = 8 * 1024 * 1024


def main() -> None:
    sys.path.insert(0, str(REPO))
    from mngr.controller import link_rate
    from mngr.controller.cli_supply import ensure_cli
    from mngr.controller.hosts import HostHandle
    from mngr.providers.ssh import SshProvider
    from tests import agent_clis
    from tests.sshd import SshHost, ensure_test_user, unavailable_reason
    from tests.throttled_proxy import ThrottledProxy

    reason = unavailable_reason() or agent_clis.missing_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    header(f"agent_cli_supply_slow: claude's copy over a {RATE >> 20} MiB/s link, compressed where it pays vs as it is")
    compile_bytecode()
    binary = (agent_clis.AGENT_CLI_BIN / "claude").resolve()
    size = binary.stat().st_size
    print(f"claude: {binary} ({size >> 20} MB)")
    results: dict[str, list[float]] = {"mngr": [], "as it is": []}
    wire: dict[str, list[int]] = {"mngr": [], "as it is": []}
    threshold = link_rate.COMPRESS_BELOW
    with Sandbox() as box:
        os.environ["MNGR_STATE_DIR"] = str(box.root / "s")
        os.environ["PATH"] = f"{agent_clis.AGENT_CLI_BIN}{os.pathsep}{os.environ['PATH']}"
        client_dir = box.root / "client"
        client_dir.mkdir()
        home = Path(tempfile.mkdtemp(prefix="mngr-bench-home-", dir="/tmp"))
        user = ensure_test_user()
        os.chown(home, user.pw_uid, user.pw_gid)
        host = SshHost("slow", client_dir, env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"})
        proxy = ThrottledProxy(host.port, RATE)
        try:
            host.trust()
            with host.known_hosts.open("a") as known:
                known.write(host.host_key_line().replace(f":{host.port} ", f":{proxy.port} "))
            config = box.root / "ssh_config"
            config.write_text(host.client_config().replace(f"Port {host.port}", f"Port {proxy.port}"))
            for index in range(ROUNDS):
                for case in ("mngr", "as it is"):
                    link_rate.COMPRESS_BELOW = threshold if case == "mngr" else 0.0
                    for bundle in (host.remote_host_dir / "clis").glob("[0-9a-f]*"):
                        shutil.rmtree(bundle)
                    with HostHandle(SshProvider({"ssh_config": str(config)}), host.alias, timeout=120) as handle:
                        handle.connect()
                        sent_before = handle.wire_bytes()[0]
                        start = time.perf_counter()
                        if ensure_cli(handle, "claude", "copy").source != "copy":
                            raise RuntimeError("the copy did not happen")
                        results[case].append(time.perf_counter() - start)
                        wire[case].append(handle.wire_bytes()[0] - sent_before)
                    print(f"round {index} {case}: {results[case][-1]:.2f} s, {wire[case][-1] >> 20} MB sent",
                          flush=True)
        finally:
            link_rate.COMPRESS_BELOW = threshold
            proxy.close()
            host.stop()
            shutil.rmtree(home, ignore_errors=True)
    ours, plain = median(results["mngr"]), median(results["as it is"])
    print()
    print("| case | median | sent | ratio |")
    print("|---|---|---|---|")
    print(f"| mngr's copy (compressed after the first part) | {ours:.2f} s | {median(wire['mngr']) / size:.2f}x the "
          f"binary | {ours / plain:.2f}x as it is |")
    print(f"| every part as it is | {plain:.2f} s | {median(wire['as it is']) / size:.2f}x the binary | |")


if __name__ == "__main__":
    main()
