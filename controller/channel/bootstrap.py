"""Getting the helper running on a host, in one round trip, with its bytes sent only once.

The first stage is a one-line ``python3 -c`` program (compressed and base64'd, so that it
survives any shell quoting). On the host it:

1. looks for ``$MNGR_HOST_DIR/helper/<hash>/`` (default ``~/.mngr``), the helper unpacked
   under its own content hash, so a helper of another version is never reused;
2. prints ``MNGR-STAGE1 <hash> have|need`` on stdout: anything a login shell printed before
   that line is skipped by the controller;
3. if ``need``: reads a 4-byte length and that many bytes of zlib-compressed helper source
   from stdin, checks the hash, unpacks it into a private temp dir and renames the dir into
   place (atomic: two controllers bootstrapping at once both succeed, one rename wins);
4. imports the helper from that dir and hands stdin/stdout over to it.

Because the helper is unpacked as plain files, Python caches its bytecode beside it and later
starts skip compilation.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import time
import zlib

from ..errors import BootstrapError, HostError
from .stream import BufferedReader, Stream

MARKER = b"MNGR-STAGE1 "
_NOISE_LIMIT = 1024 * 1024
_HELPER_PACKAGE = "mngr_remote_helper"

_STAGE1_SOURCE = r"""
import os, sys
os.environ["MNGR_ORIGINAL_UMASK"] = str(os.umask(0o077))
h = HASH
d = os.path.join(os.path.expanduser(os.environ.get("MNGR_HOST_DIR") or "~/.mngr"), "helper")
p = os.path.join(d, h)
have = os.path.isdir(os.path.join(p, "PKG"))
os.write(1, ("\nMNGR-STAGE1 %s %s\n" % (h, "have" if have else "need")).encode())
if not have:
    import hashlib, json, zlib
    def readn(n):
        b = b""
        while len(b) < n:
            c = os.read(0, n - len(b))
            if not c:
                raise SystemExit("mngr stage1: input ended during helper transfer")
            b += c
        return b
    s = zlib.decompress(readn(int.from_bytes(readn(4), "big")))
    if hashlib.sha256(s).hexdigest() != h:
        raise SystemExit("mngr stage1: helper hash mismatch")
    os.makedirs(d, 0o700, exist_ok=True)
    t = os.path.join(d, ".tmp-%d-%s" % (os.getpid(), os.urandom(4).hex()))
    os.mkdir(t, 0o700)
    for n, c in json.loads(s.decode()).items():
        f = os.path.join(t, n)
        os.makedirs(os.path.dirname(f), exist_ok=True)
        with open(f, "w") as w:
            w.write(c)
    try:
        os.rename(t, p)
    except OSError:
        if not os.path.isdir(os.path.join(p, "PKG")):
            raise
        import shutil
        shutil.rmtree(t, ignore_errors=True)
sys.path.insert(0, p)
from PKG.server import main
main(h)
"""


def _helper_source_dir() -> str:
    import mngr.remote_helper

    return os.path.dirname(os.path.abspath(mngr.remote_helper.__file__))


@functools.lru_cache(maxsize=1)
def _helper_source() -> bytes:
    directory = _helper_source_dir()
    files = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                files[f"{_HELPER_PACKAGE}/{name}"] = handle.read()
    return json.dumps(files, sort_keys=True).encode("utf-8")


@functools.lru_cache(maxsize=1)
def helper_hash() -> str:
    """Content hash of the helper shipped with this mngr: its version, as far as hosts know.

    Hashing means reading every helper file and importing hashlib, a few ms that the warm
    path otherwise never needs; so the hash is cached, keyed by each file's size and mtime.
    """
    directory = _helper_source_dir()
    stamp = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            info = os.stat(os.path.join(directory, name))
            stamp.append([name, info.st_size, info.st_mtime_ns])
    cache_path = os.path.join(_cache_dir(), "helper-hash.json")
    try:
        with open(cache_path, encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached.get("directory") == directory and cached.get("stamp") == stamp:
            return str(cached["hash"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    import hashlib

    digest = hashlib.sha256(_helper_source()).hexdigest()
    try:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        temp_path = f"{cache_path}.{os.getpid()}.tmp"
        with open(temp_path, "w", encoding="utf-8") as handle:
            json.dump({"directory": directory, "stamp": stamp, "hash": digest}, handle)
        os.replace(temp_path, cache_path)
    except OSError:
        pass  # a read-only cache only costs speed
    return digest


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mngr")


def helper_payload() -> tuple[str, bytes]:
    """(content hash, zlib-compressed payload) for the helper package shipped with this mngr."""
    return helper_hash(), zlib.compress(_helper_source(), 6)


def daemon_socket_path(host_dir: str, tmux_tmpdir: str, socket_dir: str = "") -> str:
    """Where the host daemon of this helper version listens: in ``host_dir``, or in
    ``socket_dir`` (the daemon's MNGR_DAEMON_SOCKET_DIR)."""
    from mngr.remote_helper import daemon_address

    return str(daemon_address.socket_path(host_dir, helper_hash(), tmux_tmpdir, socket_dir))


@functools.lru_cache(maxsize=1)
def _stage1_command() -> str:
    program = _STAGE1_SOURCE.replace("HASH", repr(helper_hash())).replace("PKG", _HELPER_PACKAGE)
    encoded = base64.b64encode(zlib.compress(program.encode("utf-8"), 9)).decode("ascii")
    # binascii, not base64: base64 imports re, a few ms on every helper start.
    return f"import binascii,zlib;exec(zlib.decompress(binascii.a2b_base64('{encoded}')))"


def stage1_argv(python: str = "python3") -> list[str]:
    """The command that starts the first stage: run it with stdin/stdout as the channel.

    ``-S`` skips site-packages (the helper needs only the standard library) and ``-I`` keeps
    the user's PYTHON* variables and current directory from changing what gets imported.
    """
    return [python, "-I", "-S", "-c", _stage1_command()]


def complete_bootstrap(stream: Stream, reader: BufferedReader, timeout: float | None = 30.0) -> bool:
    """Wait for the first stage's marker, send the helper if asked. Returns True if it was sent."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        reader.read_until(MARKER, _NOISE_LIMIT, deadline)
        line = reader.read_until(b"\n", 200, deadline).decode("ascii", "replace").split()
    except HostError as exc:
        raise BootstrapError(stream.host, f"helper did not start: {exc.detail}") from exc
    if len(line) != 2 or line[0] != helper_hash() or line[1] not in ("have", "need"):
        raise BootstrapError(stream.host, f"unexpected first-stage reply {' '.join(line)!r}")
    if line[1] == "have":
        return False
    _, payload = helper_payload()
    stream.write(len(payload).to_bytes(4, "big") + payload)
    return True
