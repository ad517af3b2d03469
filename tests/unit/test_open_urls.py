"""mngr open's pure parts, in process: which port a URL is on, the URL pointed at where this
machine reaches it, and the browser commands $BROWSER names."""

from __future__ import annotations

import pytest

from mngr.controller import browser
from mngr.controller.commands.open import local_url, loopback_port
from mngr.controller.errors import UsageError
from mngr.providers.base import Reached
from mngr.providers.ssh import SshProvider


@pytest.mark.parametrize(("url", "port"), [
    ("http://localhost:8000/", 8000),
    ("http://127.0.0.1:5173/app?x=1", 5173),
    ("http://[::1]:9000/", 9000),
    ("http://0.0.0.0:3000", 3000),
    ("http://localhost/", 80),
    ("https://localhost/lab", 443),
    ("https://example.com:8443/", None),  # not the host's loopback: opened as it is
    ("http://build-box:8000/", None),
    ("http://localhost:99999/", None),  # no valid port
    ("ftp://localhost/", None),
])
def test_the_port_of_a_url_on_the_hosts_loopback(url: str, port: int | None) -> None:
    assert loopback_port(url) == port


@pytest.mark.parametrize(("url", "reached", "expected"), [
    # The same machine, the same port: the agent's own URL, its host name kept.
    ("http://127.0.0.1:8000/x", Reached("localhost", 8000), "http://127.0.0.1:8000/x"),
    # A server's "every address" is not one to connect to: this machine's name for it instead.
    ("http://0.0.0.0:3000/app", Reached("localhost", 3000), "http://localhost:3000/app"),
    # A forward: another port here, the path, query and fragment kept.
    ("http://localhost:8888/lab?token=abc#top", Reached("127.0.0.1", 41234),
     "http://127.0.0.1:41234/lab?token=abc#top"),
    ("http://localhost:8000", Reached("172.17.0.2", 8000), "http://172.17.0.2:8000/"),
    ("http://localhost:8000/", Reached("fd00::2", 8000), "http://[fd00::2]:8000/"),
    # A TLS tunnel on its default port: https, no port in the URL.
    ("http://localhost:8000/app", Reached("ab12.r5.modal.host", 443, "https"), "https://ab12.r5.modal.host/app"),
    ("http://user:pw@localhost:8000/", Reached("127.0.0.1", 40000), "http://user:pw@127.0.0.1:40000/"),
])
def test_a_url_pointed_at_where_this_machine_reaches_it(url: str, reached: Reached, expected: str) -> None:
    assert local_url(url, reached) == expected


def test_browser_commands_follow_browser_then_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER", "firefox --new-tab %s:  :w3m")
    assert browser.browser_commands() == [["firefox", "--new-tab", "%s"], ["w3m"]]
    monkeypatch.setenv("BROWSER", "")
    monkeypatch.setattr(browser.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert browser.browser_commands() == []  # no desktop: xdg-open would start a text browser here
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert browser.browser_commands() == [["xdg-open"]]
    monkeypatch.setattr(browser.sys, "platform", "darwin")
    assert browser.browser_commands() == [["open"]]


def test_a_browser_that_fails_passes_the_url_to_the_next(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    seen = tmp_path / "seen"
    monkeypatch.setenv("BROWSER", f"false:{tmp_path}/absent:sh -c 'echo \"$0\" > {seen}' %s")
    assert browser.open_in_browser("http://127.0.0.1:1234/a?b=c") == "sh"
    assert seen.read_text() == "http://127.0.0.1:1234/a?b=c\n"
    monkeypatch.setenv("BROWSER", "false")
    assert browser.open_in_browser("http://x/") is None


def test_open_over_ssh_without_openssh_says_so() -> None:
    provider = SshProvider({"transport": "paramiko"})
    with pytest.raises(UsageError) as raised:
        provider.reach_port("build-box", 8000, "agent-1")
    assert str(raised.value) == "mngr open on an SSH host needs the OpenSSH client (ssh), which is not installed here"
