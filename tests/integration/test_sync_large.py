"""Files of any size move byte-exact in bounded memory: a 600 MB file pulled and pushed
over a real sshd, with the peak memory of mngr and of the host's processes measured."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MNGR_BIN
from tests.integration.test_ssh import create_remote, ssh_host  # noqa: F401 (a fixture)
from tests.sshd import SshHost, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

SIZE = 600 * 1024 * 1024
MEMORY_BOUND_KB = 128 * 1024  # Python and mngr's imports take ~40 MB; a file held whole would take 600


def _make(path: Path) -> str:
    digest = hashlib.sha256()
    block = os.urandom(16 * 1024 * 1024)
    with open(path, "wb") as output:
        for index in range(SIZE // len(block)):
            chunk = index.to_bytes(8, "big") + block[8:]  # no two blocks alike
            digest.update(chunk)
            output.write(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(16 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _mngr_peak_kb(sandbox, *args: str) -> int:
    """Run mngr, check it succeeded, and return its peak resident memory in KB: the VmHWM of
    its process, the last read before it exits (the high-water mark only grows). rusage's
    ru_maxrss cannot tell: Linux keeps in it the RSS the forked child had before its exec,
    that is this test process's."""
    process = subprocess.Popen([str(MNGR_BIN), *args], env=sandbox.env, cwd=sandbox.work_dir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(OSError, ValueError):  # exiting just now
            peak = max(peak, _peak_kb(process.pid))
        time.sleep(0.02)
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr
    assert peak, "the process ended before its memory could be read"
    return peak


def test_a_600_mb_file_is_pulled_and_pushed_byte_exact_in_bounded_memory(sandbox, ssh_host: SshHost,  # noqa: F811
                                                                          record_property) -> None:
    work = ssh_host.remote_root / "work"
    work.mkdir()
    os.chown(work, ssh_host.user.pw_uid, ssh_host.user.pw_gid)
    assert create_remote(sandbox, "far", "--work-dir", str(work)).returncode == 0
    big = work / "big.bin"
    expected = _make(big)
    os.chown(big, ssh_host.user.pw_uid, ssh_host.user.pw_gid)
    os.utime(big, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))

    back = sandbox.root / "back"
    pull_peak = _mngr_peak_kb(sandbox, "pull", "far", str(back))
    assert _sha256(back / "big.bin") == expected
    assert (back / "big.bin").stat().st_mtime_ns == 1_600_000_000 * 10**9

    big.unlink()
    push_peak = _mngr_peak_kb(sandbox, "push", "far", str(back))
    assert _sha256(big) == expected

    host_peaks = {pid: _peak_kb(pid) for pid in ssh_host.remote_processes(b"mngr")}
    record_property("memory_kb", {"pull": pull_peak, "push": push_peak, "host": host_peaks})
    print(f"peak RSS: mngr pull {pull_peak} KB, mngr push {push_peak} KB, host processes {host_peaks}")
    assert host_peaks, "no process of the host's was found"
    assert pull_peak < MEMORY_BOUND_KB and push_peak < MEMORY_BOUND_KB
    assert max(host_peaks.values()) < MEMORY_BOUND_KB
