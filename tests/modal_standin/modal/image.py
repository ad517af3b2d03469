"""``modal.Image``: a recipe, built (as a local Docker image) when a sandbox first needs it.

As in the SDK an Image is lazy: ``object_id`` exists only once it is built (``build()``, or
``Sandbox.create`` with it), from an id (``from_id``), or from a snapshot. Built images get an
``im-`` id derived from their recipe, so the same recipe gives the same id, as Modal's cache does.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from . import _core
from .exception import ImageBuildError, NotFoundError
from .secret import Secret

BUILT_REPOSITORY = "modal-standin-image"
# The SDK's default `ignore` is a sentinel meaning "use a .dockerignore if there is one".
AUTO_DOCKERIGNORE: Sequence[str] = ()


class Image:
    def __init__(self, recipe: tuple[Any, ...], rep: str, object_id: str | None = None) -> None:
        self._recipe = recipe
        self._rep = rep
        self._object_id = object_id

    def __repr__(self) -> str:
        return self._rep

    @property
    def object_id(self) -> str:
        if self._object_id is None:
            raise AttributeError(f"Attempting to get object_id of unhydrated {self}")
        return self._object_id

    # -- recipes ------------------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: str | None = None, force_build: bool = False) -> Image:
        """Modal's default image; here the local image named by MNGR_MODAL_STANDIN_BASE_IMAGE."""
        return Image(("base", python_version), f"Image.debian_slim({python_version!r})")

    @staticmethod
    def from_registry(
        tag: str,
        secret: Secret | None = None,
        *,
        setup_dockerfile_commands: list[str] = [],  # noqa: B006 - the SDK's signature
        force_build: bool = False,
        add_python: str | None = None,
        **kwargs: Any,
    ) -> Image:
        """An image of a registry; no registry is reachable here, so it must be a local image."""
        if setup_dockerfile_commands or add_python or kwargs:
            raise NotImplementedError("modal stand-in: from_registry takes only a tag (and an unused secret)")
        return Image(("registry", tag), f"Image.from_registry({tag!r})")

    @staticmethod
    def from_dockerfile(
        path: str | Path,
        *,
        force_build: bool = False,
        context_dir: Path | str | None = None,
        ignore: Sequence[str] | Callable[[Path], bool] = AUTO_DOCKERIGNORE,
        build_args: dict[str, str] = {},  # noqa: B006 - the SDK's signature
        registry_secret: Secret | None = None,
        secrets: Collection[Secret] | None = None,
        env: dict[str, str | None] | None = None,
        gpu: str | None = None,
        add_python: str | None = None,
    ) -> Image:
        """A Dockerfile built with ``context_dir`` as its context: by default the current
        directory, as in the SDK (not the Dockerfile's directory, as ``docker build`` would)."""
        if secrets or env or add_python or ignore is not AUTO_DOCKERIGNORE:
            raise NotImplementedError("modal stand-in: from_dockerfile takes no secrets, env, add_python or ignore")
        context = os.path.abspath(context_dir if context_dir is not None else os.getcwd())
        recipe = ("dockerfile", os.path.abspath(path), context, dict(build_args), force_build)
        return Image(recipe, f"Image.from_dockerfile({str(path)!r})")

    @classmethod
    def from_id(cls, image_id: str, client: Any | None = None) -> Image:
        """An image known by id (a build's or a snapshot's); checked when used."""
        return cls(("id",), f"Image.from_id({image_id!r})", object_id=image_id)

    def apt_install(
        self,
        *packages: str | list[str],
        force_build: bool = False,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        gpu: str | None = None,
    ) -> Image:
        names: list[str] = []
        for item in packages:
            names += [item] if isinstance(item, str) else list(item)
        if not names:
            return self
        if env or secrets:
            raise NotImplementedError("modal stand-in: apt_install takes no env or secrets")
        return Image(("apt", self, tuple(names), force_build), f"{self._rep}.apt_install({', '.join(names)})")

    def build(self, app: Any | None = None) -> Image:
        """Build it now (the SDK runs the build in ``app``, or in an ephemeral App)."""
        _core.check_credentials()
        self._docker_image()
        return self

    # -- building -------------------------------------------------------------------------------

    def _docker_image(self) -> str:
        """The local Docker image this Image is (built now if need be); sets ``object_id``.

        The state is locked only to look up and to record: a build may take minutes, and other
        processes must not wait for it."""
        kind = self._recipe[0]
        if self._object_id is not None:
            with _core.state() as state:
                record = state["images"].get(self._object_id)
            if record is not None:
                return str(record["docker_image"])
            if kind == "id":
                raise NotFoundError(f"Image {self._object_id!r} not found")
        client = _core.docker_client()
        if kind == "base":
            docker_image = _local_image(client, _core.base_image(), "debian_slim")
            digest = _digest("base", docker_image)
        elif kind == "registry":
            digest = _digest("registry", self._recipe[1])
            docker_image = _local_image(client, self._recipe[1], "im-" + digest)
        elif kind == "apt":
            parent: Image = self._recipe[1]
            parent_image = parent._docker_image()
            names = " ".join(self._recipe[2])
            digest = _digest("apt", parent.object_id, names)
            dockerfile = (f"FROM {parent_image}\n"
                          f"RUN dpkg -s {names} >/dev/null 2>&1 || (apt-get update && "
                          f"DEBIAN_FRONTEND=noninteractive apt-get install -y {names})\n")
            docker_image = _build(client, "im-" + digest, nocache=self._recipe[3],
                                  fileobj=io.BytesIO(dockerfile.encode()))
        else:  # dockerfile
            _, path, context, build_args, force_build = self._recipe
            try:
                content = Path(path).read_bytes()
            except OSError as exc:
                raise ImageBuildError(f"cannot read Dockerfile {path}: {exc.strerror}", "") from exc
            digest = _digest("dockerfile", content.hex(), context, repr(sorted(build_args.items())))
            docker_image = _build(client, "im-" + digest, nocache=force_build, path=context, dockerfile=path,
                                  buildargs=build_args)
        self._object_id = "im-" + digest
        with _core.state() as state:
            record = state["images"].setdefault(self._object_id, {"created_at": time.time(), "ttl": None,
                                                                  "source": kind})
            record["docker_image"] = docker_image
        return docker_image


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:22]


def _local_image(client: Any, reference: str, image_id: str) -> str:
    import docker

    try:
        return str(client.images.get(reference).id)
    except docker.errors.ImageNotFound:
        raise ImageBuildError(f"Image build for {image_id} failed: {reference!r} is not a local image "
                              "(the modal stand-in has no registry)", image_id) from None


def _build(client: Any, image_id: str, *, nocache: bool, **options: Any) -> str:
    import docker

    # The state directory's key in the tag: each state's builds are its own, and removed with
    # it (by label), so one test's cleanup never takes away an image another test is using.
    tag = f"{BUILT_REPOSITORY}:{_core.key()}-{image_id.removeprefix('im-').lower()}"
    if not nocache:
        try:
            return str(client.images.get(tag).id)
        except docker.errors.ImageNotFound:
            pass
    try:
        # Never from Docker's layer cache (the tag above is the stand-in's cache): a cached layer
        # would be shared with another state's image, and removing that one (with its unused
        # parents) while this build stands on the layer fails this build.
        image, _ = client.images.build(tag=tag, rm=True, forcerm=True, nocache=True, labels=_core.labels(),
                                       **options)
    except docker.errors.BuildError as exc:
        lines = [str(line.get("stream", line.get("error", ""))).strip() for line in exc.build_log]
        last = next((line for line in reversed(lines) if line), str(exc))
        raise ImageBuildError(f"Image build for {image_id} failed: {last}", image_id) from None
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"Image build for {image_id} failed: {exc.explanation or exc}", image_id) from None
    return str(image.id)
