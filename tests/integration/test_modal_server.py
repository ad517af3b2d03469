"""The local Modal server itself, through the real SDK in a child process (the SDK keeps one
client per process): it refuses a wrong token as Modal does, answers a call it does not
implement loudly, and replays the answer of a retried call. No sandbox is made, so no Docker
engine is needed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.modal_server import ModalServer, running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ModalServer]:
    with running(tmp_path / "server", "unused-image", docker_client=None) as started:
        yield started


def _sdk(server: ModalServer, tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MODAL_CONFIG_PATH": str(tmp_path / "none.toml"),
                   **server.env, **env}
    return subprocess.run([sys.executable, "-c", "import modal\n" + code], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_a_wrong_token_is_an_auth_error(server: ModalServer, tmp_path: Path) -> None:
    ran = _sdk(server, tmp_path, 'modal.App.lookup("a", create_if_missing=True)', MODAL_TOKEN_SECRET="as-wrong")
    assert ran.returncode == 1 and "modal.exception.AuthError: Invalid token id or secret" in ran.stderr, ran.stderr
    assert server.calls["AppGetOrCreate"] == 1


def test_a_call_it_does_not_implement_fails_loudly_and_is_recorded(server: ModalServer, tmp_path: Path) -> None:
    ran = _sdk(server, tmp_path, "modal.Secret.objects.list()")
    assert ran.returncode == 1, ran.stderr
    assert "UnimplementedError: the local Modal test server does not implement SecretList" in ran.stderr
    assert server.unimplemented == ["SecretList"]


def test_a_retried_call_gets_the_first_answer_and_makes_one_object(server: ModalServer, tmp_path: Path) -> None:
    server.faults.lose_reply("AppGetOrCreate")  # made, the reply lost: the SDK retries with the same key
    ran = _sdk(server, tmp_path, 'print(modal.App.lookup("once", create_if_missing=True).app_id)')
    assert ran.returncode == 0, ran.stderr
    assert server.calls["AppGetOrCreate"] == 2
    assert list(server.world.apps) == ["once"] and ran.stdout.strip() == server.world.apps["once"]


def test_errors_past_the_sdks_retries_reach_the_caller(server: ModalServer, tmp_path: Path) -> None:
    server.faults.fail("VolumeGetOrCreate", times=10, message="storage is down")
    ran = _sdk(server, tmp_path, 'modal.Volume.from_name("v", create_if_missing=True).hydrate()')
    assert ran.returncode == 1 and "ServiceError: storage is down" in ran.stderr, ran.stderr
    assert server.calls["VolumeGetOrCreate"] == 4  # the first try and the SDK's 3 retries
