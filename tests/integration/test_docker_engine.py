"""The Docker test infrastructure itself: a real engine, and a base image an mngr host can use."""

from __future__ import annotations

import docker
import pytest

pytestmark = pytest.mark.docker


def _run(client: docker.DockerClient, image: str, command: list[str], **options: object) -> str:
    """Run ``command`` in a new container to its end and return its output; the container goes."""
    container = client.containers.create(image, command, **options)
    try:
        container.start()
        status = container.wait(timeout=60)
        output = container.logs(stdout=True, stderr=True).decode()
        assert status["StatusCode"] == 0, output
        return output
    finally:
        container.remove(force=True)


def test_base_image_has_what_a_host_needs(docker_client: docker.DockerClient, docker_base_image: str) -> None:
    version = _run(docker_client, docker_base_image, ["python3", "-c", "import sys; print(sys.version_info[:2])"])
    assert version.strip() == "(3, 11)"  # bookworm's python3; the helper needs 3.8 or newer
    assert _run(docker_client, docker_base_image, ["tmux", "-V"]).startswith("tmux 3.")
    tools = _run(docker_client, docker_base_image, ["sh", "-c", "command -v git; command -v pgrep"])
    assert tools.split() == ["/usr/bin/git", "/usr/bin/pgrep"]


def test_base_image_is_labelled_with_its_recipe(docker_client: docker.DockerClient, docker_base_image: str) -> None:
    from tests import docker_engine

    labels = docker_client.images.get(docker_base_image).labels
    assert labels[docker_engine.BASE_IMAGE_LABEL] == "1"
    assert labels[docker_engine.BASE_IMAGE_RECIPE_LABEL] == docker_engine.recipe_id()


def test_no_network_means_loopback_only(docker_client: docker.DockerClient, docker_base_image: str) -> None:
    interfaces = _run(docker_client, docker_base_image, ["ls", "/sys/class/net"], network_mode="none")
    assert interfaces.split() == ["lo"]
