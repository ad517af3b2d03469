"""A container on a local engine gets the agent's CLI through a read-only mount of the
user's own bundles: no copy per container (the copy itself: tests/integration/test_cli_supply.py)."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from mngr.controller.cli_supply import ensure_cli, user_bundles
from mngr.controller.hosts import HostHandle
from mngr.providers.docker import AGENT_CLIS_IN_CONTAINER, DockerProvider
from tests import agent_clis

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(agent_clis.missing_reason() is not None, reason=agent_clis.missing_reason() or "")]

NPM_ROOT = agent_clis.AGENT_CLI_BIN.parent
CLAUDE_VERSION = json.loads((NPM_ROOT / "@anthropic-ai" / "claude-code" / "package.json").read_text())["version"]


def test_a_container_from_the_base_image_gets_claude_through_the_read_only_mount(
    sandbox, docker_client, docker_base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.apply_env(monkeypatch)
    monkeypatch.setenv("PATH", f"{agent_clis.AGENT_CLI_BIN}{os.pathsep}{os.environ['PATH']}")
    namespace = "t" + uuid.uuid4().hex[:10]
    provider = DockerProvider({"namespace": namespace, "base_image": docker_base_image})
    try:
        assert provider.prepare_host("clis", [])
        container = docker_client.containers.get(provider.container_name("clis"))
        assert container.exec_run(["sh", "-c", "command -v claude"]).exit_code != 0, "the image has no claude"
        with HostHandle(provider, "clis", timeout=60) as handle:
            handle.connect()
            before, _ = handle.wire_bytes()
            supply = ensure_cli(handle, "claude", "copy")
            sent = handle.wire_bytes()[0] - before
        key = user_bundles("claude")[supply.machine].key
        assert (supply.source, supply.path_dirs) == ("cache", [f"{AGENT_CLIS_IN_CONTAINER}/{key}"])
        assert sent < 64 * 1024, f"{sent} bytes sent: the binary went over the channel"
        ran = container.exec_run([f"{AGENT_CLIS_IN_CONTAINER}/{key}/claude", "--version"])
        assert ran.exit_code == 0 and f"{CLAUDE_VERSION} (Claude Code)" in ran.output.decode(), ran.output
        # Nothing was copied into the container, and the mount cannot be written from it.
        listed = container.exec_run(["sh", "-c", "ls -A $HOME/.mngr/clis 2>/dev/null"]).output.decode().split()
        assert key not in listed
        assert container.exec_run(["touch", f"{AGENT_CLIS_IN_CONTAINER}/{key}/x"]).exit_code != 0
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            container.remove(force=True)


def test_mngr_create_of_claude_in_a_container_runs_it_from_the_mount(sandbox, docker_client,
                                                                    docker_base_image: str) -> None:
    from tests.model_standin import ModelStandin

    namespace = "t" + uuid.uuid4().hex[:10]
    sandbox.env["MNGR_PROVIDERS__DOCKER__NAMESPACE"] = namespace
    sandbox.env["MNGR_PROVIDERS__DOCKER__BASE_IMAGE"] = docker_base_image
    standin = ModelStandin()
    try:
        home = sandbox.root / "home"
        agent_clis.set_up_home(home, standin, trusted=[sandbox.work_dir])
        sandbox.env.update(agent_clis.user_environment(home, standin, sandbox.env["PATH"]))
        for name in ("d1", "d2"):  # two containers, one bundle on this machine
            created = sandbox.mngr("create", name, "claude", "--in", "docker", "--no-connect", timeout=300)
            assert created.returncode == 0, created.stderr
            where = sandbox.mngr("exec", name, "command -v claude; claude --version; ls -A $HOME/.mngr/clis 2>/dev/null; true")
            assert where.returncode == 0, where.stderr
            lines = where.stdout.split()
            assert lines[0].startswith(f"{AGENT_CLIS_IN_CONTAINER}/") and lines[0].endswith("/claude"), lines
            assert f"{CLAUDE_VERSION} (Claude Code)" in where.stdout
            assert len(lines) == 4 or lines[4:] == [".parts"], "nothing copied into the container"
    finally:
        standin.close()
        for container in docker_client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            container.remove(force=True)
