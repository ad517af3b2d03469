"""Make docs/images/dashboard.png: `mngr web` over a few real agents, in headless chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [OUTPUT.png]

Everything runs in a private world of the tests' kind (tests/conftest.Sandbox: its own host
dir, config and tmux server), stopped and removed at the end: local agents (one serving a
page on a declared URL, one echoing its messages, one printing as it works, one quiet, one
stopped), agents on two real SSH hosts where this machine can run them (tests/sshd.py: root,
OpenSSH), and an SSH host entry nobody answers at, so that the picture shows a host's error.
Needs what the tests need: chromium, chromium-driver and selenium (./scripts/install.sh --test).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import Sandbox  # noqa: E402
from tests.sshd import SshHost, unavailable_reason  # noqa: E402
from tests.web_dashboard import headless_chromium, running_dashboard  # noqa: E402


def create(world: Sandbox, name: str, *args: str) -> None:
    done = world.mngr("create", name, "command", "--no-connect", *args, timeout=180)
    if done.returncode != 0:
        raise SystemExit(f"mngr create {name}: {done.stderr.strip()}")


def ssh_hosts(world: Sandbox, stack: contextlib.ExitStack, aliases: tuple[str, ...]) -> list[SshHost]:
    if unavailable_reason() is not None:
        print(f"no SSH hosts in the picture: {unavailable_reason()}", file=sys.stderr)
        return []
    client_dir = world.root / "client"
    client_dir.mkdir()
    hosts = []
    for alias in aliases:
        host = SshHost(alias, client_dir)
        stack.callback(host.stop)
        host.trust()
        hosts.append(host)
    (world.root / "ssh_config").write_text("".join(host.client_config() for host in hosts))
    world.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(world.root / "ssh_config")
    return hosts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "dashboard.png"
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="mngr-shot-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        world = Sandbox(root, Path(tempfile.mkdtemp(prefix="mngr-s-", dir="/tmp")))  # short: socket paths
        stack.callback(world.tear_down)
        world.env["MNGR_AGENT_QUIET_SECONDS"] = "3"
        world.config_dir.mkdir()
        (world.config_dir / "config.toml").write_text('[hosts.gpu-box]\naddress = "me@127.0.0.1:1"\n')
        if ssh_hosts(world, stack, ("build-box", "staging")):
            create(world, "api-tests", "--in", "ssh", "--host", "build-box", "--label", "team=infra", "--",
                   "sh", "-c", "i=0; while :; do i=$((i+1)); echo test $i passed; sleep 2; done")
            create(world, "deploy-check", "--in", "ssh", "--host", "staging", "--label", "team=infra", "--",
                   "sleep", "3600")
        site = root / "site"
        site.mkdir()
        (site / "index.html").write_text("<h1>preview</h1>")
        port = free_port()
        create(world, "site-preview", "--label", "team=web", "--port", f"{port}:preview", "--",
               "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site))
        create(world, "fix-login", "--label", "team=web", "--",
               "sh", "-c", 'echo "ready for instructions"; while read line; do echo "on it: $line"; done')
        create(world, "train-model", "--label", "team=ml", "--",
               "sh", "-c", 'i=0; while :; do i=$((i+1)); echo "epoch $i: loss 0.$((900 - i))"; sleep 1; done')
        create(world, "write-docs", "--label", "team=docs", "--", "sleep", "3600")
        create(world, "old-spike", "--", "sleep", "3600")
        world.mngr("stop", "old-spike")
        world.mngr("message", "fix-login", "the login form rejects valid emails: find out why")
        with running_dashboard(world, {"MNGR_HOST_TIMEOUT_SECONDS": "5"}) as dashboard:
            browser = headless_chromium(1400, 860)
            try:
                browser.get(dashboard.url)
                deadline = time.monotonic() + 60
                while not browser.find_elements("css selector", "tr.agent") and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(4)  # the quiet ones shown WAITING
                browser.find_element("css selector", 'tr[data-agent="fix-login"] td.name').click()
                time.sleep(2)
                output.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(output))
            finally:
                browser.quit()
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
