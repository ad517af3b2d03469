"""The ssh provider's pure parts: how addresses become ssh arguments, the host registry."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.controller.errors import ConfigError, UsageError
from mngr.controller.paths import state_dir
from mngr.providers import ssh
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


@pytest.fixture
def ssh_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """(the user's ssh_config, the system's), both empty, in place of this machine's."""
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    user, system = tmp_path / "user" / "config", tmp_path / "etc" / "ssh_config"
    for path in (user, system):
        path.parent.mkdir()
        path.write_text("# Ciphers aes256-ctr (a comment chooses nothing)\nHost *\n    ServerAliveInterval 5\n")
    monkeypatch.setattr(ssh, "SYSTEM_SSH_CONFIG", str(system))
    ssh._config_chooses_ciphers.cache_clear()
    yield user, system
    ssh._config_chooses_ciphers.cache_clear()


def _ciphers(settings: dict[str, object]) -> list[str]:
    return [arg for arg in SshProvider(settings).ssh_argv("alias") if arg.startswith("Ciphers=")]


def test_aes_gcm_is_offered_first_unless_turned_off(ssh_configs: tuple[Path, Path]) -> None:
    ciphers = _ciphers({"ssh_config": str(ssh_configs[0])})
    assert len(ciphers) == 1
    offered = ciphers[0].removeprefix("Ciphers=").split(",")
    assert offered[0] == "aes128-gcm@openssh.com"
    # OpenSSH's own default set, reordered: nothing weaker is offered, nothing is dropped.
    assert sorted(offered) == sorted(["chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr",
                                      "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"])
    assert not _ciphers({"ssh_config": str(ssh_configs[0]), "prefer_aes_gcm": False})


@pytest.mark.parametrize("where", ["user", "system", "included"])
def test_ciphers_chosen_in_any_ssh_config_are_left_alone(ssh_configs: tuple[Path, Path], where: str) -> None:
    user, system = ssh_configs
    choice = "Host build-*\n  Ciphers=aes256-gcm@openssh.com\n"
    if where == "included":
        (user.parent / "conf.d").mkdir()
        (user.parent / "conf.d" / "fips.conf").write_text(choice)
        user.write_text(user.read_text() + f'Include "{user.parent / "conf.d" / "*.conf"}"\n')
    else:
        path = user if where == "user" else system
        path.write_text(path.read_text() + choice)
    assert not _ciphers({"ssh_config": str(user)})


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
    with pytest.raises(ConfigError):
        SshProvider({"prefer_aes_gcm": "yes"})


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
    remote = shlex.split(provider.attach_argv("box", "mngr-job")[-1])
    tmux = remote.index("tmux")
    expected = ["tmux", "-u", "attach-session"] if utf8 else ["tmux", "attach-session"]
    assert remote[tmux : tmux + len(expected)] == expected and remote[-1] == "=mngr-job:^"
