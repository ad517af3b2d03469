"""The HTTP side of Volumes: the SDK moves a file's contents in blocks of 8 MiB, each to or
from a URL the control plane hands out (``VolumePutFiles2``'s missing blocks, ``VolumeGetFile2``'s
``get_urls``). Uploaded blocks are kept by their SHA-256 until a ``VolumePutFiles2`` names them.
"""

from __future__ import annotations

import hashlib
import secrets as random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .server import ModalServer

_DOWNLOADS: dict[str, tuple[Path, int, int]] = {}  # token -> (file, offset, length); read when fetched


def offer_download(server: ModalServer, path: Path, offset: int, length: int) -> str:
    token = random.token_hex(12)
    _DOWNLOADS[token] = (path, offset, length)
    return server.blocks_url(f"get/{token}")


def upload_url(server: ModalServer) -> str:
    return server.blocks_url(f"put/{random.token_hex(12)}")


def block_routes(server: ModalServer) -> list[Any]:
    async def download(request: web.Request) -> web.Response:
        found = _DOWNLOADS.pop(request.match_info["token"], None)
        if found is None:
            return web.Response(status=404, text="no such block")
        path, offset, length = found
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except FileNotFoundError:
            return web.Response(status=404, text="the file is gone")
        return web.Response(body=data)

    async def upload(request: web.Request) -> web.Response:
        data = await request.read()
        digest = hashlib.sha256(data).digest()
        server.world.blocks[digest] = data
        return web.Response(body=digest.hex().encode())

    return [web.get("/get/{token}", download), web.put("/put/{token}", upload)]
