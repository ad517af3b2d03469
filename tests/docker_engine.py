"""A real Docker engine for the tests, and a local Debian base image to run in it.

No image registry is reachable from the machines the tests run on, and Docker may not be
running there: so, as root with dockerd installed, the tests start dockerd themselves (and
stop it at the end of the session), and build their base image from Debian packages with
debootstrap, once per machine: the image stays in the engine and its root file system is
cached on disk, so a fresh engine only needs an import.

    client, reason = engine_or_skip_reason()   # client is None when no engine can run; reason says why
    tag = base_image(client)                   # raises BaseImageUnavailable when it cannot be built
    stop_started_engine()                      # stops the tests' dockerd, when no other session uses it

An engine that was running before the tests is never stopped. One the tests started (known by
its pid file) is shared by every pytest process that finds it: each holds a shared lock on
DOCKERD_USERS while it uses it, and the last to finish stops it, so a session never loses its
engine to another session ending first, and an engine left by a killed session is stopped by
the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import docker
import docker.errors

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DOCKERD_LOG = Path("/tmp/mngr-test-dockerd.log")
DOCKERD_PIDFILE = Path("/tmp/mngr-test-dockerd.pid")  # dockerd writes it, and removes it when it exits cleanly
DOCKERD_LOCK = Path("/tmp/mngr-test-dockerd.lock")  # held while deciding to start or stop the tests' dockerd
DOCKERD_USERS = Path("/tmp/mngr-test-dockerd.users")  # a shared lock on it per session using the tests' dockerd
# dockerd starts its own containerd and writes its pid here; only needed when dockerd had to be killed.
MANAGED_CONTAINERD_PIDFILE = Path("/var/run/docker/containerd/containerd.pid")
DOCKERD_START_TIMEOUT = 30.0
CLIENT_TIMEOUT = 300  # seconds an API call of the tests may take
DOCKERD_STOP_TIMEOUT = 30.0  # dockerd gives running containers 15 s to stop on SIGTERM

# What to try, best first; each later one gives up something the ones before keep. With no
# flags dockerd picks the storage driver itself (overlay2 where the kernel allows it, else the
# next that works) and sets up a NAT'ed bridge with iptables. The fallbacks are for kernels
# that accept overlay mounts but fail them (overlay on overlay in nested sandboxes) and for
# sandboxes without iptables or a bridge module. vfs copies the whole image for each
# container (seconds per container, but works on any file system); without iptables,
# containers on the bridge have no outbound NAT; with --bridge=none there is no default
# bridge network at all, so containers can only use network_mode "none" or "host".
DOCKERD_FLAG_LADDER: tuple[tuple[str, ...], ...] = (
    (),
    ("--iptables=false", "--ip6tables=false"),
    ("--storage-driver=vfs",),
    ("--storage-driver=vfs", "--iptables=false", "--ip6tables=false"),
    ("--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"),
)
# Long enough for another session to try the whole ladder, or to stop its dockerd.
DOCKERD_LOCK_TIMEOUT = DOCKERD_START_TIMEOUT * len(DOCKERD_FLAG_LADDER) + DOCKERD_STOP_TIMEOUT + 10


@dataclass
class _Engine:
    """What this process found or started; decided once, on the first call."""

    client: docker.DockerClient | None
    reason: str
    users_lock: IO[bytes] | None = None  # open, with a shared lock, while we use the tests' dockerd
    started_flags: tuple[str, ...] | None = None  # set only when this process started dockerd
    process: subprocess.Popen[bytes] | None = None  # likewise


_engine: _Engine | None = None
# A dockerd we started and left to a session still using it: kept referenced, so that Python
# does not warn at garbage collection that a child it never waited for is still running.
_left_running: list[subprocess.Popen[bytes]] = []


def engine_or_skip_reason() -> tuple[docker.DockerClient | None, str]:
    """A client of a running Docker engine and "", or None and a one-line reason why none can run.

    An engine that already answers is used as it is; otherwise, as root with dockerd installed,
    dockerd is started here on the default socket (so code under test that uses
    ``docker.from_env()`` finds it too) and stays up until ``stop_started_engine``.
    The outcome is remembered: later calls in the same process return it again.
    """
    global _engine
    if _engine is None:
        _engine = _find_or_start_engine()
    return _engine.client, _engine.reason


def started_engine_flags() -> tuple[str, ...] | None:
    """The extra dockerd flags of the engine this process started, or None if it started none."""
    return None if _engine is None else _engine.started_flags


def stop_started_engine() -> None:
    """Let go of the engine; stop the tests' dockerd (SIGTERM, then SIGKILL) if no other session uses it.

    An engine the tests did not start is left running.
    """
    global _engine
    engine, _engine = _engine, None
    if engine is None:
        return
    if engine.client is not None:
        engine.client.close()
    if engine.users_lock is None:
        return
    with _locked(DOCKERD_LOCK, timeout=DOCKERD_LOCK_TIMEOUT), engine.users_lock:
        try:
            # Exclusive only when no other session holds its shared lock.
            fcntl.flock(engine.users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if engine.process is not None:
                _left_running.append(engine.process)
            return  # the last session to go stops it
        pid = _tests_dockerd_pid()
        if pid is None and engine.process is not None and engine.process.poll() is None:
            pid = engine.process.pid  # alive without its pid file: stop it all the same
        if pid is not None:
            _stop_dockerd(pid)
        if engine.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                engine.process.wait(10)  # reap our child; it ended above, or before


def _find_or_start_engine() -> _Engine:
    docker_host = os.environ.get("DOCKER_HOST")
    if docker_host and docker_host != DEFAULT_SOCKET:
        client = _answering_client()
        # Starting a local engine would not help code under test that follows DOCKER_HOST.
        return _Engine(client, "" if client else f"no Docker engine answers at DOCKER_HOST={docker_host}")
    dockerd = _dockerd_path()
    if dockerd is None or os.geteuid() != 0:
        # Without dockerd or root we cannot start an engine (nor stop one), only use one.
        client = _answering_client()
        if client is not None:
            return _Engine(client, "")
        if dockerd is None:
            return _Engine(None, "no Docker engine running and dockerd not installed "
                                 "(./scripts/install.sh --test installs docker.io)")
        return _Engine(None, "no Docker engine running, and starting dockerd needs root")
    # One decision at a time across pytest processes: two must not both start a dockerd, and
    # one must not stop the tests' dockerd while another is joining it.
    with _locked(DOCKERD_LOCK, timeout=DOCKERD_LOCK_TIMEOUT):
        client = _answering_client()
        if client is not None:
            started_by_tests = _tests_dockerd_pid() is not None
            return _Engine(client, "", _join_users() if started_by_tests else None)
        engine = _start_dockerd(dockerd)
        if engine.client is not None:
            engine.users_lock = _join_users()
        return engine


def _join_users() -> IO[bytes]:
    handle = DOCKERD_USERS.open("ab")
    fcntl.flock(handle, fcntl.LOCK_SH)  # only ever held exclusively under DOCKERD_LOCK, which we hold
    return handle


def _tests_dockerd_pid() -> int | None:
    """The pid of a live dockerd started by the tests (of this session or an earlier one)."""
    try:
        pid = int(DOCKERD_PIDFILE.read_text().split()[0])
        # A pid file left by a dockerd that was killed may name a reused pid.
        if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
            return pid
    except (OSError, ValueError, IndexError):
        pass
    return None


def _answering_client() -> docker.DockerClient | None:
    if os.environ.get("DOCKER_HOST", DEFAULT_SOCKET) == DEFAULT_SOCKET and not _default_socket_accepts():
        # Asked first, as the docker SDK leaks the socket of a refused connection.
        return None
    try:
        client = docker.from_env(timeout=10)  # negotiates the API version: any engine version will do
    except docker.errors.DockerException:
        return None
    try:
        client.ping()
    except (docker.errors.DockerException, OSError):
        client.close()
        return None
    # Short to find out whether an engine answers; the tests' own calls get longer, as on a
    # loaded machine removing a large image or committing a layer can take a while.
    client.api.timeout = CLIENT_TIMEOUT
    return client


def _default_socket_accepts() -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(5)
        try:
            probe.connect(DEFAULT_SOCKET.removeprefix("unix://"))
        except OSError:
            return False
    return True


def _dockerd_path() -> str | None:
    # docker.io puts dockerd in /usr/sbin, which is not on every PATH.
    return shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")


def _start_dockerd(dockerd: str) -> _Engine:
    """Try each configuration of the ladder until one answers; the reason is the last failure's."""
    DOCKERD_LOG.write_bytes(b"")
    reason = "dockerd failed to start"
    for flags in DOCKERD_FLAG_LADDER:
        with DOCKERD_LOG.open("ab") as log:
            log.write(f"--- mngr tests: {dockerd} {' '.join(flags)}\n".encode())
            log.flush()
            start_offset = log.tell()
            # Its own session: a Ctrl-C meant for pytest must not take the engine down mid-test,
            # and it may outlive this process when another session still uses it.
            process = subprocess.Popen(
                [dockerd, "--pidfile", str(DOCKERD_PIDFILE), *flags],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        client = _wait_answering(process, DOCKERD_START_TIMEOUT)
        if client is not None:
            return _Engine(client, "", started_flags=flags, process=process)
        _stop_dockerd(process.pid)
        process.wait()
        reason = f"dockerd failed to start: {_last_line(DOCKERD_LOG, start_offset)} (log: {DOCKERD_LOG})"
    return _Engine(None, reason)


def _wait_answering(process: subprocess.Popen[bytes], timeout: float) -> docker.DockerClient | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        client = _answering_client()
        if client is not None:
            return client
        time.sleep(0.1)
    return None


def _last_line(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _stop_dockerd(pid: int) -> None:
    """SIGTERM, then SIGKILL if it is still there after DOCKERD_STOP_TIMEOUT.

    It may not be our child (a session that ended first started it), so its end is watched in
    /proc rather than waited for.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, DOCKERD_STOP_TIMEOUT):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 10)
    # Killed, dockerd leaves the containerd it started running.
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int(MANAGED_CONTAINERD_PIDFILE.read_text().split()[0]), signal.SIGKILL)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` ended (or is a zombie: ended, not yet reaped) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


# --- the base image -----------------------------------------------------------------------

BASE_IMAGE_TAG = "mngr-test-debian:bookworm"
BASE_IMAGE_LABEL = "mngr.test-base"
BASE_IMAGE_RECIPE_LABEL = "mngr.test-base.recipe"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What an mngr host needs (python3 for the helper, tmux for agents, git for push/pull, procps
# for the tests' pgrep, ca-certificates for any https), on top of minbase: about 200 MB in all.
PACKAGES = ("python3", "tmux", "procps", "git", "ca-certificates")
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",  # tmux draws UTF-8 only under a UTF-8 locale; C.UTF-8 is built into glibc
    'CMD ["/bin/bash"]',
)
# Bump when the recipe changes in a way the values above do not show (how the tree is cleaned).
RECIPE_REVISION = 2
CACHE_DIR = Path("/var/cache/mngr-test")
BUILD_LOCK_TIMEOUT = 20 * 60.0


class BaseImageUnavailable(Exception):
    """The base image cannot be built on this machine (a reason to skip, not a failure)."""


def recipe_id() -> str:
    """A short hash of everything that decides the image's content: a new recipe, a new image."""
    recipe = repr((RECIPE_REVISION, SUITE, "minbase", PACKAGES, IMAGE_CHANGES))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_image(client: docker.DockerClient) -> str:
    """The tag of the local Debian base image, imported (and first built) if need be."""
    recipe = recipe_id()
    if _has_current_image(client, recipe):
        return BASE_IMAGE_TAG
    if os.geteuid() != 0:
        raise BaseImageUnavailable("building the Debian base image with debootstrap needs root")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Two pytest processes must not build it twice: the second waits, then finds the image.
    with _locked(CACHE_DIR / "build.lock", timeout=BUILD_LOCK_TIMEOUT):
        if _has_current_image(client, recipe):
            return BASE_IMAGE_TAG
        tarball = CACHE_DIR / f"{SUITE}-{recipe}.tar"
        # Holding the lock, anything else here is from an older recipe or a killed build.
        for stale in CACHE_DIR.iterdir():
            if stale.name.startswith("rootfs-"):
                _unmount_under(stale)
                shutil.rmtree(stale, ignore_errors=True)
            elif stale.suffix in (".tar", ".partial", ".log") and recipe not in stale.name:
                stale.unlink()
        if not tarball.exists():
            _debootstrap_tarball(tarball)
        _import(client, tarball, recipe)
    return BASE_IMAGE_TAG


def _has_current_image(client: docker.DockerClient, recipe: str) -> bool:
    try:
        image = client.images.get(BASE_IMAGE_TAG)
    except docker.errors.ImageNotFound:
        return False
    return (image.labels or {}).get(BASE_IMAGE_RECIPE_LABEL) == recipe


def _debootstrap_tarball(tarball: Path) -> None:
    debootstrap = shutil.which("debootstrap", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if debootstrap is None:
        raise BaseImageUnavailable("debootstrap not installed (./scripts/install.sh --test installs it)")
    # On the cache's file system, so the finished tarball is renamed into place, never half there.
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR))
    log_path = CACHE_DIR / f"debootstrap-{tarball.stem}.log"
    partial = tarball.with_suffix(".tar.partial")
    try:
        with log_path.open("wb") as log:
            result = subprocess.run(
                [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({result.returncode}): {_last_line(log_path, 0)} (log: {log_path})")
        _unmount_under(rootfs)
        # What a test image does not need, a quarter of its size: downloaded packages and package
        # lists (apt-get update brings the lists back), documentation and translations (as in
        # Debian's slim images), and device nodes (the engine gives each container its own /dev).
        for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "dev/*",
                        "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*"):
            for path in rootfs.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    finally:
        partial.unlink(missing_ok=True)
        # debootstrap mounts /proc and /sys into the tree (and may bind /dev); a run that died
        # can leave them mounted, and deleting through them would reach the real ones.
        _unmount_under(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)


def _unmount_under(directory: Path) -> None:
    prefix = str(directory.resolve())
    mount_points = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            # Spaces and other specials are octal-escaped in this file; the tree's paths have none.
            mount_point = line.split()[1]
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                mount_points.append(mount_point)
    for mount_point in sorted(mount_points, key=len, reverse=True):  # the deepest first
        subprocess.run(["umount", "--lazy", mount_point], check=False)


def _import(client: docker.DockerClient, tarball: Path, recipe: str) -> None:
    repository, tag = BASE_IMAGE_TAG.split(":")
    changes = [*IMAGE_CHANGES, f"LABEL {BASE_IMAGE_LABEL}=1", f"LABEL {BASE_IMAGE_RECIPE_LABEL}={recipe}"]
    previous = _image_id(client)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    if not _has_current_image(client, recipe):
        raise RuntimeError(f"importing {tarball} did not give {BASE_IMAGE_TAG} with recipe {recipe}")
    if previous is not None and previous != _image_id(client):
        # The image of an older recipe, now untagged; still used by a container, it stays.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(previous)


def _image_id(client: docker.DockerClient) -> str | None:
    try:
        return str(client.images.get(BASE_IMAGE_TAG).id)
    except docker.errors.ImageNotFound:
        return None


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (waiting at most ``timeout`` for it)."""
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {timeout:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
