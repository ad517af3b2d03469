"""A real ``mngr web`` process for tests, and a headless chromium to drive its page.

The browser is Debian's chromium with its chromedriver (./scripts/install.sh --test installs
them), driven by selenium; ``unavailable_reason`` says why it cannot run here.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import MNGR_BIN

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def unavailable_reason() -> str | None:
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        return "chromium and chromium-driver are not installed (./scripts/install.sh --test installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def headless_chromium(width: int = 1400, height: int = 900) -> WebDriver:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: the tests run as root, where chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(argument)
    # The driver's path given: selenium looks for no other (nothing is downloaded).
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@dataclass
class Dashboard:
    url: str  # as printed: with the token
    port: int
    token: str
    process: subprocess.Popen[str]

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, str]:
        """A request as any program on this machine could send it (no browser rules)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            given = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            for key, value in given.items():
                connection.putheader(key, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def api(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        return self.request(method, path, {"X-Mngr-Token": self.token}, body)


@contextlib.contextmanager
def running_dashboard(sandbox, env: dict[str, str] | None = None, mngr: Path = MNGR_BIN) -> Iterator[Dashboard]:
    """``mngr web --no-browser`` in the sandbox, stopped (SIGINT, as Ctrl-C) at the end."""
    process = subprocess.Popen([str(mngr), "web", "--no-browser"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**sandbox.env, **(env or {})}, cwd=str(sandbox.work_dir))
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url:
            raise AssertionError(f"mngr web printed no URL: {process.communicate(timeout=30)}")
        parsed = urllib.parse.urlsplit(url)
        token = urllib.parse.parse_qs(parsed.query)["token"][0]
        yield Dashboard(url, int(parsed.port or 0), token, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
