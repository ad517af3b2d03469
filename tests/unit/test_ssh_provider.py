"""The ssh provider's pure parts: how addresses become ssh arguments, the host registry."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from mngr.controller.errors import ConfigError, UsageError
from mngr.controller.paths import state_dir
from mngr.providers.ssh import SshProvider


@pytest.fixture
def provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SshProvider:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    return SshProvider({}, {"box": {"address": "dev@build.example.com:2222"}})


@pytest.mark.parametrize(
    ("host", "destination"),
    [
        ("alias", ["--", "alias"]),
        ("u@host", ["--", "u@host"]),
        ("u@host:2222", ["-p", "2222", "--", "u@host"]),
        ("u@[::1]:2222", ["-p", "2222", "--", "u@::1"]),
        ("[fe80::1]:22", ["-p", "22", "--", "fe80::1"]),
        ("box", ["-p", "2222", "--", "dev@build.example.com"]),
    ],
)
def test_destinations(provider: SshProvider, host: str, destination: list[str]) -> None:
    argv = provider.ssh_argv(host)
    assert argv[argv.index("-T") + 1 :] == destination
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
    assert not any("StrictHostKeyChecking=no" in arg for arg in argv)


def test_accepting_new_keys_is_accept_new_never_no(provider: SshProvider) -> None:
    provider.trust_new_host_keys()
    argv = provider.ssh_argv("alias")
    assert "StrictHostKeyChecking=accept-new" in argv


@pytest.mark.parametrize("host", ["-oProxyCommand=x", "a b", "h;rm", "h$(x)", ""])
def test_hostile_host_names_are_refused(provider: SshProvider, host: str) -> None:
    with pytest.raises(UsageError):
        provider.check_host(host)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        SshProvider({"connect_timeout": "soon"})
    with pytest.raises(ConfigError):
        SshProvider({"accept_new_host_keys": "no"})
    with pytest.raises(ConfigError):
        SshProvider({"bogus": 1})


def test_concurrent_remembering_loses_no_host(provider: SshProvider) -> None:
    hosts = [f"host-{i}" for i in range(24)]
    threads = [threading.Thread(target=provider.remember, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(provider.known_hosts()) == sorted(["box", *hosts])
    provider.forget("host-3", time.time() + 1)
    assert "host-3" not in provider.known_hosts() and "box" in provider.known_hosts()


def test_a_host_remembered_after_the_listing_asked_is_not_forgotten(provider: SshProvider) -> None:
    provider.remember("busy")
    asked_at = time.time()
    provider.remember("busy")  # its first agent was created after the listing asked
    provider.forget("busy", asked_at)
    assert "busy" in provider.known_hosts()
    provider.forget("busy", time.time() + 1)
    assert "busy" not in provider.known_hosts()


def test_the_older_registry_of_names_is_read(provider: SshProvider) -> None:
    provider.remember("new")
    registry = Path(state_dir()) / "ssh_hosts.json"
    registry.write_text(json.dumps(["old-1", "old-2"]))
    assert list(provider.known_hosts()) == ["box", "old-1", "old-2"]
    provider.forget("old-1", time.time())
    assert list(provider.known_hosts()) == ["box", "old-2"]


@pytest.mark.parametrize(
    ("locale", "utf8"),
    [
        ({"LANG": "C.UTF-8"}, True),
        ({"LANG": "en_US.utf8"}, True),
        ({"LANG": "C"}, False),
        ({}, False),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "C"}, False),  # LC_ALL, then LC_CTYPE, then LANG
        ({"LANG": "C", "LC_CTYPE": "C.UTF-8"}, True),
    ],
)
def test_the_remote_tmux_client_draws_utf8_when_the_local_locale_is(
    provider: SshProvider, monkeypatch: pytest.MonkeyPatch, locale: dict[str, str], utf8: bool
) -> None:
    for variable in ("LC_ALL", "LC_CTYPE", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in locale.items():
        monkeypatch.setenv(variable, value)
    remote = provider.attach_argv("box", "mngr-job")[-1].split()
    tmux = remote.index("tmux")
    expected = ["tmux", "-u", "attach-session"] if utf8 else ["tmux", "attach-session"]
    assert remote[tmux : tmux + len(expected)] == expected and remote[-1] == "=mngr-job"
