"""Make docs/images/dashboard.png: `mngr web` over a few real agents, in headless chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [OUTPUT.png]

Everything runs in a private world of its own (host dir, config, tmux server under a temp
dir), removed at the end: local agents (one serving a page on a declared URL, one echoing
its messages, one printing as it works, one quiet, one stopped) and an SSH host entry
nobody answers at, so that the picture shows a host's error too. Needs what the tests
need: chromium, chromium-driver and selenium (./scripts/install.sh --test).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web_dashboard import headless_chromium, running_dashboard  # noqa: E402

MNGR = Path(sys.executable).with_name("mngr")


class World:
    """What tests/conftest.Sandbox gives a test: the environment of a private mngr."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work_dir = root / "work"
        self.work_dir.mkdir()
        self.config_dir = root / "config"
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("MNGR_") and key not in ("TMUX", "TMUX_PANE")}
        self.env.update(MNGR_HOST_DIR=str(root / "host"), MNGR_CONFIG_DIR=str(self.config_dir),
                        MNGR_STATE_DIR=str(root / "state"), TMUX_TMPDIR=str(root),
                        MNGR_AGENT_QUIET_SECONDS="3")

    def mngr(self, *args: str) -> None:
        done = subprocess.run([str(MNGR), *args], env=self.env, cwd=self.work_dir, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"mngr {' '.join(args)}: {done.stderr.strip()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "dashboard.png"
    root = Path(tempfile.mkdtemp(prefix="mngr-shot-", dir="/tmp"))  # short: tmux's socket path
    world = World(root)
    try:
        site = root / "site"
        site.mkdir()
        (site / "index.html").write_text("<h1>preview</h1>")
        port = free_port()
        world.config_dir.mkdir()
        (world.config_dir / "config.toml").write_text('[hosts.build-box]\naddress = "me@127.0.0.1:1"\n')
        world.mngr("create", "site-preview", "command", "--no-connect", "--label", "team=web",
                   "--port", f"{port}:preview", "--", "python3", "-m", "http.server", str(port),
                   "--bind", "127.0.0.1", "--directory", str(site))
        world.mngr("create", "fix-login", "command", "--no-connect", "--label", "team=web", "--",
                   "sh", "-c", 'echo "ready for instructions"; while read line; do echo "on it: $line"; done')
        world.mngr("create", "train-model", "command", "--no-connect", "--label", "team=ml", "--",
                   "sh", "-c", 'i=0; while :; do i=$((i+1)); echo "epoch $i: loss 0.$((900 - i))"; sleep 1; done')
        world.mngr("create", "write-docs", "command", "--no-connect", "--label", "team=docs", "--", "sleep", "3600")
        world.mngr("create", "old-spike", "command", "--no-connect", "--", "sleep", "3600")
        world.mngr("stop", "old-spike")
        world.mngr("message", "fix-login", "the login form rejects valid emails: find out why")
        with running_dashboard(world, {"MNGR_HOST_TIMEOUT_SECONDS": "5"}) as dashboard:
            browser = headless_chromium(1400, 600)
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
    finally:
        subprocess.run(["tmux", "kill-server"], env=world.env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
