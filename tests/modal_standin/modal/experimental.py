"""``modal.experimental``: ``image_delete``, the SDK's (experimental) way to delete an Image."""

from __future__ import annotations

import contextlib
from typing import Any

from . import _core
from .exception import NotFoundError


def image_delete(image_id: str, *, client: Any | None = None) -> None:
    """Delete an Image (a snapshot's or a build's) by id; irreversible."""
    import docker

    _core.check_credentials()
    with _core.state() as state:
        record = state["images"].pop(image_id, None)
        if record is None:
            raise NotFoundError(f"Image {image_id!r} not found")
        images = _core.docker_client().images
        try:
            image = images.get(record["docker_image"])
        except docker.errors.ImageNotFound:
            return
        # Only what the stand-in made: debian_slim() and from_registry() name images it did not.
        if (image.labels or {}).get(_core.LABEL) == _core.key():
            for tag in image.tags or [image.id]:
                # A running sandbox still using it keeps its layers until it goes, as on Modal.
                with contextlib.suppress(docker.errors.APIError):
                    images.remove(tag, noprune=False)
