"""A request's timeout is about progress, not size: over a slow link that keeps moving a
large push and pull finish whatever the timeout; a frozen host (its helper stopped with
SIGSTOP) fails them in bounded time. Cut short any way (a frozen host, kill -9 of mngr or
of the host's helper), a transfer leaves the old file or the new one, never part of it, and
the next run finishes it and leaves no part file. Real sshd, real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.remote_helper import files
from tests.conftest import MNGR_BIN
from tests.integration.test_ssh import create_remote, ssh_host  # noqa: F401 (a fixture)
from tests.sshd import SshHost, unavailable_reason
from tests.throttled_proxy import ThrottledProxy

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

SLOW_RATE = 400 * 1024  # bytes a second: a 4 MiB part takes 10 s, five times the timeout
SHORT_TIMEOUT = {"MNGR_HOST_TIMEOUT_SECONDS": "2"}
LARGE = 96 * 1024 * 1024


def _remote_work(sandbox, host: SshHost) -> Path:
    work = host.remote_root / "work"
    work.mkdir()
    os.chown(work, host.user.pw_uid, host.user.pw_gid)
    assert create_remote(sandbox, "far", "--work-dir", str(work)).returncode == 0
    return work


def _write(path: Path, data: bytes, host: SshHost | None = None) -> None:
    path.write_bytes(data)
    if host is not None:
        os.chown(path, host.user.pw_uid, host.user.pw_gid)


def _random_file(path: Path, size: int, host: SshHost | None = None) -> bytes:
    data = os.urandom(size)
    _write(path, data, host)
    return data


def _parts(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir() if path.name.startswith(files.PART_PREFIX)]


@contextlib.contextmanager
def _through_proxy(sandbox, host: SshHost, rate: float) -> Iterator[ThrottledProxy]:
    """Reach ``host`` through a throttled proxy from now on."""
    proxy = ThrottledProxy(host.port, rate)
    try:
        with host.known_hosts.open("a") as known:
            known.write(host.host_key_line().replace(f":{host.port} ", f":{proxy.port} "))
        config = Path(sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"])
        config.write_text(host.client_config().replace(f"Port {host.port}", f"Port {proxy.port}"))
        yield proxy
    finally:
        proxy.close()


def test_a_slow_link_that_keeps_moving_never_times_out(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    with _through_proxy(sandbox, ssh_host, SLOW_RATE) as proxy:
        work = _remote_work(sandbox, ssh_host)  # every connection through the proxy
        local = sandbox.root / "local"
        local.mkdir()
        pushed = _random_file(local / "up.bin", 3 * 1024 * 1024)
        pulled = _random_file(work / "down.bin", 5 * 1024 * 1024, ssh_host)
        push = sandbox.mngr("push", "far", str(local), env=SHORT_TIMEOUT, timeout=120)
        assert push.returncode == 0, push.stderr
        pull = sandbox.mngr("pull", "far", str(local), env=SHORT_TIMEOUT, timeout=120)
        assert pull.returncode == 0, pull.stderr
        assert proxy.forwarded > len(pushed) + len(pulled)  # it did go through the slow link
    assert (work / "up.bin").read_bytes() == pushed
    assert (local / "down.bin").read_bytes() == pulled


_LOG = b"".join(b"line %d of a log that compresses well\n" % index for index in range(500_000))


def _pulled_log(sandbox, host: SshHost) -> int:
    """Pull a large, compressible file; the bytes that came over the channel."""
    work = _remote_work(sandbox, host)
    _write(work / "log.txt", _LOG, host)
    local = sandbox.root / "local"
    local.mkdir()
    pulled = sandbox.mngr("pull", "far", str(local), "--format", "json", timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert (local / "log.txt").read_bytes() == _LOG
    return json.loads(pulled.stdout)["wire"]["received"]


@pytest.mark.alone  # loopback measures as a fast link only on a machine not busy with other tests
def test_a_large_files_parts_go_as_they_are_over_a_fast_link(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    assert _pulled_log(sandbox, ssh_host) > len(_LOG)  # compressing would cost more than it saves


def test_a_large_files_parts_go_compressed_over_a_slow_link(sandbox, ssh_host: SshHost) -> None:  # noqa: F811
    with _through_proxy(sandbox, ssh_host, 2 * 1024 * 1024):
        # The first part measures the link as it is; the others go compressed.
        assert _pulled_log(sandbox, ssh_host) < len(_LOG) // 2


def _host_helpers(host: SshHost) -> list[int]:
    return host.remote_processes(b"mngr")


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _start(sandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(MNGR_BIN), *args], env={**sandbox.env, **SHORT_TIMEOUT}, cwd=sandbox.work_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_part(directory: Path, process: subprocess.Popen[str]) -> None:
    """Until a part file shows up in ``directory``: the transfer is under way."""
    while not _parts(directory):
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)


@pytest.mark.parametrize("action", ["push", "pull"])
def test_a_frozen_host_fails_the_transfer_and_the_next_run_finishes_it(sandbox, ssh_host: SshHost,  # noqa: F811
                                                                     action: str) -> None:
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    source, target = (local, work) if action == "push" else (work, local)
    old = _random_file(target / "big.bin", 1024, ssh_host if action == "push" else None)
    new = _random_file(source / "big.bin", LARGE, ssh_host if action == "pull" else None)
    process = _start(sandbox, action, "far", str(local))
    frozen: list[int] = []
    try:
        _wait_for_part(target, process)
        frozen = _host_helpers(ssh_host)
        assert frozen
        _signal_all(frozen, signal.SIGSTOP)
        _, stderr = process.communicate(timeout=120)  # bounded: a hang fails the test here
        assert process.returncode == 1, stderr
        assert any(why in stderr for why in ("nothing moved", "made no progress", "no reply", "stopped arriving")), \
            stderr
        assert (target / "big.bin").read_bytes() == old
    finally:
        _signal_all(frozen, signal.SIGCONT)
        if process.poll() is None:
            process.kill()
            process.communicate()
    again = sandbox.mngr(action, "far", str(local), timeout=120)
    assert again.returncode == 0, again.stderr
    assert (target / "big.bin").read_bytes() == new
    assert _parts(target) == []


@pytest.mark.parametrize("action", ["push", "pull"])
@pytest.mark.parametrize("killed", ["mngr", "the host's helper"])
def test_kill_9_mid_transfer_tears_nothing(sandbox, ssh_host: SshHost, action: str,  # noqa: F811
                                           killed: str) -> None:
    work = _remote_work(sandbox, ssh_host)
    local = sandbox.root / "local"
    local.mkdir()
    source, target = (local, work) if action == "push" else (work, local)
    # The old version (over 1 MiB) is there to be rebuilt from: a push goes as a delta.
    old = _random_file(target / "big.bin", 2 * 1024 * 1024, ssh_host if action == "push" else None)
    new = _random_file(source / "big.bin", LARGE, ssh_host if action == "pull" else None)
    process = _start(sandbox, action, "far", str(local))
    try:
        _wait_for_part(target, process)
        if killed == "mngr":
            process.kill()
        else:
            _signal_all(_host_helpers(ssh_host), signal.SIGKILL)
        process.communicate(timeout=120)
        assert process.returncode != 0
        landed = (target / "big.bin").read_bytes()
        assert landed in (old, new)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    again = sandbox.mngr(action, "far", str(local), timeout=120)
    assert again.returncode == 0, again.stderr
    assert (target / "big.bin").read_bytes() == new
    assert _parts(target) == []
