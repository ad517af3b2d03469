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
import hashlib
import json
import time
import zlib
from pathlib import Path

from ..errors import BootstrapError, HostError
from .stream import BufferedReader, Stream

MARKER = b"MNGR-STAGE1 "
_NOISE_LIMIT = 1024 * 1024
_HELPER_PACKAGE = "mngr_remote_helper"

_STAGE1_SOURCE = r"""
import os, sys, hashlib, zlib, json
h = HASH
d = os.path.join(os.path.expanduser(os.environ.get("MNGR_HOST_DIR") or "~/.mngr"), "helper")
p = os.path.join(d, h)
have = os.path.isdir(os.path.join(p, "PKG"))
os.write(1, ("\nMNGR-STAGE1 %s %s\n" % (h, "have" if have else "need")).encode())
if not have:
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


def _helper_source_dir() -> Path:
    import mngr.remote_helper

    return Path(mngr.remote_helper.__file__).parent


@functools.lru_cache(maxsize=1)
def helper_payload() -> tuple[str, bytes]:
    """(content hash, zlib-compressed payload) for the helper package shipped with this mngr."""
    files = {
        f"{_HELPER_PACKAGE}/{path.name}": path.read_text(encoding="utf-8")
        for path in sorted(_helper_source_dir().glob("*.py"))
    }
    source = json.dumps(files, sort_keys=True).encode("utf-8")
    return hashlib.sha256(source).hexdigest(), zlib.compress(source, 9)


@functools.lru_cache(maxsize=1)
def _stage1_command() -> str:
    helper_hash, _ = helper_payload()
    program = _STAGE1_SOURCE.replace("HASH", repr(helper_hash)).replace("PKG", _HELPER_PACKAGE)
    encoded = base64.b64encode(zlib.compress(program.encode("utf-8"), 9)).decode("ascii")
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{encoded}')))"


def stage1_argv(python: str = "python3") -> list[str]:
    """The command that starts the first stage: run it with stdin/stdout as the channel.

    ``-S`` skips site-packages (the helper needs only the standard library) and ``-I`` keeps
    the user's PYTHON* variables and current directory from changing what gets imported.
    """
    return [python, "-I", "-S", "-c", _stage1_command()]


def complete_bootstrap(stream: Stream, reader: BufferedReader, timeout: float | None = 30.0) -> bool:
    """Wait for the first stage's marker, send the helper if asked. Returns True if it was sent."""
    deadline = None if timeout is None else time.monotonic() + timeout
    helper_hash, payload = helper_payload()
    try:
        reader.read_until(MARKER, _NOISE_LIMIT, deadline)
        line = reader.read_until(b"\n", 200, deadline).decode("ascii", "replace").split()
    except HostError as exc:
        raise BootstrapError(stream.host, f"helper did not start: {exc.detail}") from exc
    if len(line) != 2 or line[0] != helper_hash or line[1] not in ("have", "need"):
        raise BootstrapError(stream.host, f"unexpected first-stage reply {' '.join(line)!r}")
    if line[1] == "have":
        return False
    stream.write(len(payload).to_bytes(4, "big") + payload)
    return True
