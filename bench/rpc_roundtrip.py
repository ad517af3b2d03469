"""RPC round trip over the local channel: mngr's Ping/Pong vs a naive pipe echo.

Both sides are the same two kinds of process: this controller process, and a child
`python -I -S -c ...` talking over its stdin/stdout. mngr's child is the real helper,
bootstrapped the way mngr does it; the peer's child is a 4-byte-length-prefixed echo loop
using os.read/os.write. Rounds alternate between them so that machine noise hits both.

When the bootstrapped helper has started a host daemon (mngr's warm path), the same Ping
over the daemon's unix socket is measured too, reached the way the local provider does.
The pipe figures are also taken with both processes pinned to one CPU and to two CPUs.

Run: .venv/bin/python bench/rpc_roundtrip.py
"""

from __future__ import annotations

import os
import subprocess
import time

from _common import PYTHON, Sandbox, header, median, percentile, target

ROUNDS = 5
SMALL_PER_ROUND = 4000
SMALL_WARMUP = 2000
BLOB_SIZE = 1024 * 1024
BLOB_PER_ROUND = 20
BLOB_WARMUP = 5
TARGET_MEDIAN_US = 50.0

ECHO_CHILD = r"""
import os
def readn(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            raise SystemExit(0)
        buf += chunk
    return bytes(buf)
while True:
    data = readn(int.from_bytes(readn(4), "big"))
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(1, view):]
"""


class EchoPeer:
    """The naive peer: length-prefixed echo over a child's stdin/stdout."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([PYTHON, "-I", "-S", "-c", ECHO_CHILD],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self._out = self.process.stdin.fileno()
        self._in = self.process.stdout.fileno()

    def _readn(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = os.read(self._in, n - len(buf))
            if not chunk:
                raise EOFError("echo child exited")
            buf += chunk
        return bytes(buf)

    def roundtrip(self, payload: bytes) -> bytes:
        view = memoryview(len(payload).to_bytes(4, "big") + payload)
        while view:
            view = view[os.write(self._out, view):]
        return self._readn(int.from_bytes(self._readn(4), "big"))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()


def timed(fn, count: int) -> list[float]:
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        fn()
        samples.append(clock() - start)
    return samples


def pinned(client, peer, mngr_small, peer_small) -> list[tuple[str, float, float]]:
    """Small round trips with both processes pinned to one CPU, then to two different CPUs.

    Unpinned, the scheduler sometimes keeps a pair on one CPU and sometimes splits it, and
    a cross-CPU wake-up costs tens of microseconds on a VM; pinning shows both cases.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return []
    rows = []
    try:
        for label, here, there in (("same CPU", cpus[0], cpus[0]), ("two CPUs", cpus[0], cpus[1])):
            os.sched_setaffinity(0, {here})
            os.sched_setaffinity(client.stream.pid, {there})
            os.sched_setaffinity(peer.process.pid, {there})
            timed(mngr_small, SMALL_WARMUP)
            timed(peer_small, SMALL_WARMUP)
            mngr_samples: list[float] = []
            peer_samples: list[float] = []
            for _ in range(2):
                mngr_samples += timed(mngr_small, SMALL_PER_ROUND // 2)
                peer_samples += timed(peer_small, SMALL_PER_ROUND // 2)
            rows.append((label, median(mngr_samples), median(peer_samples)))
    finally:
        for pid in (0, client.stream.pid, peer.process.pid):
            os.sched_setaffinity(pid, cpus)
    return rows


def daemon_client():
    """An RpcClient on the host daemon's unix socket (mngr's warm path), or None if none answers."""
    from mngr.controller.channel.rpc import RpcClient
    from mngr.providers.local import LocalProvider

    for _ in range(25):
        stream = LocalProvider().open_stream("local")
        if not getattr(stream, "needs_bootstrap", True):
            return RpcClient(stream)
        stream.close()
        stream.terminate()
        time.sleep(0.2)
    return None


def main() -> None:
    header("rpc_roundtrip: Ping round trip over the local channel vs a naive pipe echo")
    from mngr.controller.channel import protocol

    us = 1e6
    mib = BLOB_SIZE / (1024 * 1024)
    with Sandbox() as box:
        peer = EchoPeer()
        client = box.rpc()
        socket_client = daemon_client()
        try:
            ping = protocol.Ping()
            blob = os.urandom(BLOB_SIZE)
            # The peer echoes as many bytes as a mngr Ping request frame has, header included.
            small = b"x" * (len(protocol.encode_frame(1, ping)) - 4)

            def small_call(rpc):
                return lambda: rpc.call(ping, protocol.Pong)

            def blob_call(rpc):
                return lambda: rpc.call_with_blob(ping, protocol.Pong, blob)

            # name -> (small round trip, 1 MiB round trip)
            channels = {
                "mngr pipe (bootstrapped helper)": (small_call(client), blob_call(client)),
                "peer pipe echo": (lambda: peer.roundtrip(small), lambda: peer.roundtrip(blob)),
            }
            if socket_client is not None:
                channels["mngr unix socket (host daemon)"] = (small_call(socket_client),
                                                              blob_call(socket_client))
            for small_fn, blob_fn in channels.values():
                timed(small_fn, SMALL_WARMUP)
                timed(blob_fn, BLOB_WARMUP)
            smalls: dict[str, list[float]] = {name: [] for name in channels}
            blobs: dict[str, list[float]] = {name: [] for name in channels}
            for _ in range(ROUNDS):
                for name, (small_fn, blob_fn) in channels.items():
                    smalls[name] += timed(small_fn, SMALL_PER_ROUND)
                    blobs[name] += timed(blob_fn, BLOB_PER_ROUND)
            mngr_name, peer_name = list(channels)[:2]
            placements = pinned(client, peer, channels[mngr_name][0], channels[peer_name][0])
        finally:
            peer.close()
            client.close()
            client.stream.terminate()
            if socket_client is not None:
                socket_client.close()

    peer_med, peer_p99 = median(smalls[peer_name]), percentile(smalls[peer_name], 0.99)
    print(f"small round trip, unpinned ({ROUNDS * SMALL_PER_ROUND} each, after {SMALL_WARMUP} warm-up):")
    for name, samples in smalls.items():
        med, p99 = median(samples), percentile(samples, 0.99)
        print(f"  {name:32s} median {med * us:6.1f} us  p99 {p99 * us:6.1f} us   "
              f"ratio to peer: median {med / peer_med:.2f}x  p99 {p99 / peer_p99:.2f}x")
    if socket_client is None:
        print("  (no host daemon answered: unix socket path not measured)")
    peer_blob = median(blobs[peer_name])
    print(f"1 MiB blob round trip ({ROUNDS * BLOB_PER_ROUND} each; MiB/s = MiB echoed per second):")
    for name, samples in blobs.items():
        med = median(samples)
        print(f"  {name:32s} median {med * 1e3:6.2f} ms  {mib / med:6.0f} MiB/s   "
              f"ratio to peer: time {med / peer_blob:.2f}x")
    for label, mngr_med, peer_med_pinned in placements:
        print(f"pinned, {label}: mngr pipe median {mngr_med * us:6.1f} us   peer median "
              f"{peer_med_pinned * us:6.1f} us   ratio {mngr_med / peer_med_pinned:.2f}x")
    pipe_med = median(smalls[mngr_name]) * us
    target(f"median Ping round trip over the pipe <= {TARGET_MEDIAN_US:.0f} us (measured {pipe_med:.1f} us)",
           pipe_med <= TARGET_MEDIAN_US)
    if socket_client is not None:
        socket_med = median(smalls["mngr unix socket (host daemon)"]) * us
        target(f"median Ping round trip over the daemon socket <= {TARGET_MEDIAN_US:.0f} us "
               f"(measured {socket_med:.1f} us)", socket_med <= TARGET_MEDIAN_US)


if __name__ == "__main__":
    main()
