"""mngr bootstrap as a user runs it, and the Dockerfile it writes, built by a real Docker engine.

(tests/integration/test_bootstrap.py is about the helper's first stage, another bootstrap.)
"""

from __future__ import annotations

import contextlib
import shlex
import time
import uuid
from pathlib import Path

import pytest

# apt-get could not reach the Debian mirror: a reason to skip, not a failure of the Dockerfile.
_NO_MIRROR = ("Temporary failure resolving", "Could not resolve", "Failed to fetch", "Unable to connect")


def _project(root: Path, *files: str) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}\n" if name.endswith(".json") else "")
    return root


def test_bootstrap_is_a_working_command(sandbox) -> None:
    top = sandbox.mngr("--help")
    (line,) = [line for line in top.stdout.splitlines() if line.split()[:1] == ["bootstrap"]]
    assert "not available" not in line
    project = _project(sandbox.work_dir, "go.mod")
    first = sandbox.mngr("bootstrap")
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"detected: go (go.mod)\nwrote {project / 'Dockerfile'} (from debian:bookworm-slim)\n"
    written = (project / "Dockerfile").read_text()
    again = sandbox.mngr("bootstrap")
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == f"mngr: error: {project / 'Dockerfile'} already exists (use --force to overwrite it)\n"
    assert (project / "Dockerfile").read_text() == written
    elsewhere = sandbox.mngr("bootstrap", str(project / "go.mod"))
    assert (elsewhere.returncode, elsewhere.stderr) == (2, f"mngr: error: {project / 'go.mod'} is not a directory\n")


@pytest.mark.docker
@pytest.mark.parametrize(("files", "tools"), [
    # A Python project with a Node frontend: toolchain packages from Debian's mirror.
    (("pyproject.toml", "requirements.txt", "web/package.json", "web/package-lock.json"),
     {"node --version": "v18.", "npm --version": "9.", "pip3 --version": "pip ",
      "python3 -m venv /tmp/venv && /tmp/venv/bin/python --version": "Python 3.11"}),
    # Nothing known: only what mngr needs, already in the base image.
    ((), {}),
], ids=["python-and-node", "no-toolchain"])
def test_the_dockerfile_builds_with_the_classic_builder_and_runs(
        sandbox, docker_client, docker_base_image: str, files: tuple[str, ...], tools: dict[str, str]) -> None:
    import docker.errors

    project = _project(sandbox.work_dir, *files)
    result = sandbox.mngr("bootstrap", "--from", docker_base_image)
    assert result.returncode == 0, result.stderr
    tag = f"mngr-test-bootstrap-{uuid.uuid4().hex[:12]}:latest"
    image_id = None
    containers = []
    try:
        started = time.monotonic()
        try:
            # The SDK's build is the classic builder; rm/forcerm leave no build containers behind.
            # nocache: every step runs, and this image shares no layer with another build, whose
            # removal (here or by a test running alongside) would take that layer from under it.
            image, _ = docker_client.images.build(path=str(project), dockerfile="Dockerfile", tag=tag,
                                                  rm=True, forcerm=True, nocache=True, timeout=900)
        except docker.errors.BuildError as exc:
            log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
            if any(marker in log for marker in _NO_MIRROR):
                pytest.skip(f"containers cannot reach Debian's mirror: {exc.msg}")
            raise AssertionError(f"the generated Dockerfile did not build: {exc.msg}\n{log[-4000:]}") from exc
        image_id = image.id
        print(f"built {sorted(files) or 'no toolchain'} in {time.monotonic() - started:.1f} s")
        checks = {"python3 --version": "Python 3.", "tmux -V": "tmux 3.", "git --version": "git version",
                  "pgrep --version": "pgrep from procps", "echo $LANG": "C.UTF-8", **tools}
        script = "; ".join(f"echo {shlex.quote('== ' + command)}; {command}" for command in checks)
        container = docker_client.containers.create(image_id, ["sh", "-c", script], network_mode="none")
        containers.append(container)
        container.start()
        status = container.wait(timeout=60)
        output = container.logs(stdout=True, stderr=True).decode()
        assert status["StatusCode"] == 0, output
        answers = dict(part.split("\n", 1) for part in output.split("== ")[1:])
        for command, expected in checks.items():
            assert answers[command].startswith(expected), (command, answers[command])
    finally:
        for container in containers:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(image_id or tag, force=True)
