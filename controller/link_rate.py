"""Whether compressing file data pays on the link a transfer runs over.

zlib at level 1 packs about 45 MB/s of source text on one core and roughly halves it; the
receiving side then spends about as long again inflating it. On a link that carries more
than ``COMPRESS_BELOW`` bytes a second (loopback, a LAN, a container's socket) sending the
bytes as they are is faster and costs both ends far less CPU; on a slower one (most WAN
links) compressing wins. A transfer's first batch is sent as it is, and small, to measure
the link: the bytes that crossed it over the seconds from request to reply less those the
host says it worked on the request (its reading, writing, packing). The link's latency
stays in: on a fast link far away the rate is underestimated and data compressed, as
before. Until a measurement arrives, data is compressed, as a slow link would want.
"""

from __future__ import annotations

COMPRESS_BELOW = 25e6  # bytes/s: about where zlib level 1's cost meets what it saves
FIRST_BATCH_BYTES = 1 << 20  # small, so the rate is known early on a slow link too


class LinkRate:
    def __init__(self) -> None:
        self.bytes_per_second: float | None = None

    def observe(self, wire_bytes: int, seconds: float) -> None:
        """``wire_bytes`` crossed the link in a request and its reply, in ``seconds`` of the
        round trip that were not the host's work."""
        if wire_bytes > 0:
            self.bytes_per_second = wire_bytes / seconds if seconds > 0 else float("inf")

    @property
    def compress(self) -> bool:
        return self.bytes_per_second is None or self.bytes_per_second < COMPRESS_BELOW
