"""The modal stand-in against a real Docker engine: what a Modal provider will lean on.

The stand-in is imported here as ``tests.modal_standin.modal`` (the real SDK stays ``modal``
in this process); one test runs it as ``modal`` in another process, the way mngr will.
Every test's sandboxes, images and volumes carry a label of its own state directory, and the
fixture removes them all, and checks that nothing is left.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

STANDIN_PATH = Path(__file__).resolve().parents[1] / "modal_standin"
# Answers each framed message (4-byte length, payload) with the payload reversed, until EOF:
# a long-lived binary conversation, as the channel to mngr's helper is.
MIRROR = r"""
import sys
read, write = sys.stdin.buffer.read, sys.stdout.buffer
while True:
    head = read(4)
    if len(head) < 4:
        break
    size = int.from_bytes(head, "big")
    payload = read(size)
    write.write(head + payload[::-1])
    write.flush()
"""


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: Any,
            docker_base_image: str) -> Iterator[types.ModuleType]:
    """The stand-in with a state directory of this test's own, and credentials."""
    monkeypatch.setenv("MNGR_MODAL_STANDIN_DIR", str(tmp_path / "modal-state"))
    monkeypatch.setenv("MNGR_MODAL_STANDIN_BASE_IMAGE", docker_base_image)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.delenv("MNGR_MODAL_STANDIN_FAULTS", raising=False)
    from tests.modal_standin import modal
    from tests.modal_standin.modal import _standin

    try:
        yield modal
    finally:
        _standin.cleanup()
        left = _standin.docker_objects()
        assert left == {"containers": [], "images": [], "volumes": []}, left


def _app(modal: types.ModuleType) -> Any:
    return modal.App.lookup("mngr-standin-test", create_if_missing=True)


def _run(sandbox: Any, *command: str) -> str:
    process = sandbox.exec(*command)
    output = str(process.stdout.read())
    assert process.wait() == 0, process.stderr.read()
    return output


def _read_exactly(chunks: Iterator[bytes], buffer: bytearray, count: int) -> bytes:
    while len(buffer) < count:
        buffer.extend(next(chunks))
    taken = bytes(buffer[:count])
    del buffer[:count]
    return taken


def test_exec_carries_a_long_binary_conversation_both_ways(standin: types.ModuleType) -> None:
    sandbox = standin.Sandbox.create(app=_app(standin), timeout=300)
    process = sandbox.exec("python3", "-c", MIRROR, text=False)
    chunks, pending = iter(process.stdout), bytearray()
    messages = [bytes(range(256)) * 3, b"\r\n\x00\xff" * 10, b"", os.urandom(3 << 20)]
    for payload in messages:  # one at a time: each reply must come before the next question
        process.stdin.write(struct.pack(">I", len(payload)) + payload)
        process.stdin.drain()
        head = _read_exactly(chunks, pending, 4)
        assert head == struct.pack(">I", len(payload))
        assert _read_exactly(chunks, pending, len(payload)) == payload[::-1]
    process.stdin.write_eof()
    process.stdin.drain()
    assert list(chunks) == [] and process.wait() == 0 and process.returncode == 0
    assert process.stderr.read() == b""


def test_import_modal_is_the_standin_in_another_process_and_state_is_shared(standin: types.ModuleType,
                                                                           tmp_path: Path) -> None:
    sandbox = standin.Sandbox.create(app=_app(standin))
    script = (
        "import sys, modal\n"
        "sandbox = modal.Sandbox.from_id(sys.argv[1])\n"
        "process = sandbox.exec('sh', '-c', 'echo from-another-process > /tmp/mark; cat /tmp/mark')\n"
        "print(modal.__file__, process.stdout.read().strip(), process.wait())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(STANDIN_PATH)}
    ran = subprocess.run([sys.executable, "-c", script, sandbox.object_id], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60)
    assert ran.returncode == 0, ran.stderr
    module_file, said, status = ran.stdout.split()
    assert Path(module_file).resolve() == (STANDIN_PATH / "modal" / "__init__.py").resolve()
    assert (said, status) == ("from-another-process", "0")
    assert _run(sandbox, "cat", "/tmp/mark") == "from-another-process\n"


def test_tags_list_names_and_the_end_of_a_sandbox(standin: types.ModuleType) -> None:
    app = _app(standin)
    first = standin.Sandbox.create(app=app, name="mngr-one", tags={"mngr-ns": "t", "mngr-host": "one"})
    second = standin.Sandbox.create(app=app, tags={"mngr-ns": "t", "mngr-host": "two"})

    def listed(**tags: str) -> list[str]:
        return [found.object_id for found in standin.Sandbox.list(app_id=app.app_id, tags=tags)]

    assert listed(**{"mngr-ns": "t"}) == [second.object_id, first.object_id]  # newest first
    assert listed(**{"mngr-host": "one"}) == [first.object_id]
    second.set_tags({"mngr-ns": "t", "mngr-host": "renamed"})  # replaces the whole set
    assert standin.Sandbox.from_id(second.object_id).get_tags() == {"mngr-ns": "t", "mngr-host": "renamed"}
    assert standin.Sandbox.from_name("mngr-standin-test", "mngr-one").object_id == first.object_id
    with pytest.warns(standin.exception.DeprecationError, match="app_id"):
        assert len(list(standin.Sandbox.list())) == 2

    assert first.poll() is None and first.returncode is None
    first.terminate()
    assert listed(**{"mngr-ns": "t"}) == [second.object_id]  # running sandboxes only
    found = standin.Sandbox.from_id(first.object_id)
    assert found.returncode == 137 and found.poll() == 137
    with pytest.raises(standin.exception.SandboxTerminatedError):
        found.wait()
    found.wait(raise_on_termination=False)
    with pytest.raises(standin.exception.NotFoundError):
        standin.Sandbox.from_name("mngr-standin-test", "mngr-one")
    assert standin.Sandbox.from_name("mngr-standin-test", "mngr-one",
                                     include_terminated=True).object_id == first.object_id
    with pytest.raises(standin.exception.ConflictError):
        found.exec("true")
    assert second.terminate(wait=True) == 137


def test_a_filesystem_snapshot_starts_a_new_sandbox_with_its_files(standin: types.ModuleType) -> None:
    app = _app(standin)
    original = standin.Sandbox.create(app=app)
    _run(original, "sh", "-c", "mkdir -p /root/work /opt/extra && echo precious > /root/work/f && echo sys > /opt/extra/g")
    image = original.snapshot_filesystem(ttl=None)
    assert image.object_id.startswith("im-")
    original.terminate()
    restored = standin.Sandbox.create(app=app, image=standin.Image.from_id(image.object_id))
    assert _run(restored, "cat", "/root/work/f", "/opt/extra/g") == "precious\nsys\n"
    restored.terminate()
    from tests.modal_standin.modal import experimental

    experimental.image_delete(image.object_id)
    with pytest.raises(standin.exception.NotFoundError):
        standin.Sandbox.create(app=app, image=standin.Image.from_id(image.object_id))


def test_a_volume_outlives_its_sandbox_and_is_read_from_outside(standin: types.ModuleType) -> None:
    app = _app(standin)
    volume = standin.Volume.from_name("mngr-t-host", create_if_missing=True, version=2)
    writer = standin.Sandbox.create(app=app, volumes={"/mngr": volume})
    _run(writer, "sh", "-c", "mkdir -p /mngr/host/agents/a && echo '{\"name\": \"a\"}' > /mngr/host/agents/a/record.json")
    with pytest.raises(standin.exception.ConflictError):
        standin.Volume.objects.delete("mngr-t-host")  # still mounted in a running sandbox
    writer.terminate()
    entries = volume.listdir("/host/agents")
    assert [(entry.path, entry.type.name) for entry in entries] == [("host/agents/a", "DIRECTORY")]
    assert b"".join(volume.read_file("host/agents/a/record.json")) == b'{"name": "a"}\n'
    with pytest.raises(FileNotFoundError):
        list(volume.read_file("host/nothing"))
    with volume.batch_upload() as batch:  # written from here, without a sandbox: e.g. a host's record
        batch.put_file(io.BytesIO(b"im-123\n"), "/modal/host.json")
    with pytest.raises(FileExistsError), volume.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"again"), "modal/host.json")
    volume.remove_file("host/agents", recursive=True)
    assert sorted(entry.path for entry in volume.listdir("/", recursive=True)) == [
        "host", "modal", "modal/host.json"]
    reader = standin.Sandbox.create(app=app, volumes={"/mngr": standin.Volume.from_name("mngr-t-host")})
    assert _run(reader, "cat", "/mngr/modal/host.json") == "im-123\n"
    reader.terminate()
    assert [found.name for found in standin.Volume.objects.list()] == ["mngr-t-host"]
    standin.Volume.objects.delete("mngr-t-host")
    with pytest.raises(standin.exception.NotFoundError):
        standin.Volume.from_name("mngr-t-host").hydrate()


def test_the_entrypoint_ending_ends_the_sandbox_with_its_status(standin: types.ModuleType) -> None:
    app = _app(standin)
    keep_running = "trap 'exit 0' TERM; touch /tmp/trapped; while :; do sleep 3600 & wait $!; done"
    idle = standin.Sandbox.create("sh", "-c", keep_running, app=app)
    # Once the entrypoint has its trap (a TERM before it would kill it: status 143), an idle
    # watcher's way to stop its host, from inside. The command's own status is not asked for:
    # the sandbox ending may kill it before it exits.
    idle.exec("sh", "-c", "while [ ! -e /tmp/trapped ]; do sleep 0.05; done; kill -TERM 1")
    idle.wait()
    assert idle.returncode == 0
    failing = standin.Sandbox.create("sh", "-c", "sleep 0.5; exit 3", app=app)
    failing.wait()  # ended on its own: no exception
    assert failing.returncode == 3


def test_timeouts_end_sandboxes_and_commands(standin: types.ModuleType) -> None:
    from tests.modal_standin.modal import _standin

    app = _app(standin)
    short = standin.Sandbox.create(app=app, timeout=2)
    with pytest.raises(standin.exception.SandboxTimeoutError):
        short.wait()
    assert short.returncode == 124
    long = standin.Sandbox.create(app=app, timeout=3600)
    _standin.simulate_timeout(long.object_id)  # Modal's clock, run forward
    assert standin.Sandbox.from_id(long.object_id).poll() == 124
    worker = standin.Sandbox.create(app=app)
    started = time.monotonic()
    assert worker.exec("sleep", "30", timeout=1).wait() == -1  # the SDK's value for a command past its timeout
    assert time.monotonic() - started < 20
    worker.terminate()


def test_faults_fail_as_the_sdk_does_and_leave_what_modal_would(standin: types.ModuleType,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.modal_standin.modal import _standin

    app = _app(standin)
    for arguments, expected in (({"gpu": "Z9000"}, "GPU"), ({"gpu": "a10g:two"}, "GPU count"),
                                ({"region": "mars-north-1"}, "region")):
        with pytest.raises(standin.exception.InvalidError, match=expected):
            standin.Sandbox.create(app=app, **arguments)
    assert _standin.docker_objects()["containers"] == []
    standin.Sandbox.create(app=app, gpu="H100:2", region=["us-east", "eu-west-1"]).terminate()  # accepted

    monkeypatch.setenv("MNGR_MODAL_STANDIN_FAULTS", "create-offline")
    with pytest.raises(standin.exception.ConnectionError):
        standin.Sandbox.create(app=app, tags={"fault": "offline"})
    assert _standin.docker_objects()["containers"] == []
    monkeypatch.setenv("MNGR_MODAL_STANDIN_FAULTS", "create-lost")
    with pytest.raises(standin.exception.ConnectionError):
        standin.Sandbox.create(app=app, tags={"fault": "lost"})
    monkeypatch.delenv("MNGR_MODAL_STANDIN_FAULTS")
    lost = list(standin.Sandbox.list(app_id=app.app_id, tags={"fault": "lost"}))
    assert len(lost) == 1  # made all the same: whoever created it must find it by its tags
    lost[0].terminate()

    monkeypatch.setenv("MNGR_MODAL_STANDIN_FAULTS", "offline")
    with pytest.raises(standin.exception.ConnectionError, match="Could not connect to the Modal server"):
        standin.App.lookup("mngr-standin-test")
    monkeypatch.delenv("MNGR_MODAL_STANDIN_FAULTS")
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    with pytest.raises(standin.exception.AuthError, match="modal token new"):
        standin.App.lookup("mngr-standin-test")


def test_isolation_resources_env_and_secrets(standin: types.ModuleType, docker_client: Any) -> None:
    from tests.modal_standin.modal import _standin

    app = _app(standin)
    _standin.create_secret("mngr-t-secret", {"TOKEN": "s3cret"})
    sandbox = standin.Sandbox.create(
        app=app, block_network=True, cpu=(0.5, 1.5), memory=(256, 512), workdir="/tmp",
        env={"PLAIN": "yes", "DROPPED": None},
        secrets=[standin.Secret.from_name("mngr-t-secret"), standin.Secret.from_dict({"INLINE": "1"})])
    record = _standin.sandbox_record(sandbox.object_id)
    config = docker_client.containers.get(record["container"]).attrs["HostConfig"]
    assert config["NetworkMode"] == "none"
    assert (config["NanoCpus"], config["Memory"], config["MemoryReservation"]) == (1_500_000_000, 512 << 20, 256 << 20)
    assert _run(sandbox, "ls", "/sys/class/net").split() == ["lo"]
    assert _run(sandbox, "sh", "-c", "pwd; echo $PLAIN $TOKEN $INLINE ${DROPPED:-none}") == "/tmp\nyes s3cret 1 none\n"
    with pytest.raises(standin.exception.NotFoundError):
        standin.Sandbox.create(app=app, secrets=[standin.Secret.from_name("no-such-secret")])
    allowed = standin.Sandbox.create(app=app, outbound_cidr_allowlist=["203.0.113.0/24"])
    # Recorded, not enforced: Docker has no per-container egress allowlist without iptables rules.
    assert _standin.sandbox_record(allowed.object_id)["options"]["outbound_cidr_allowlist"] == ["203.0.113.0/24"]


def test_a_command_with_a_pseudo_terminal(standin: types.ModuleType) -> None:
    sandbox = standin.Sandbox.create(app=_app(standin))
    process = sandbox.exec("sh", "-c", "tty; read line; echo got:$line", pty=True, text=False)
    process.stdin.write(b"hello\n")
    process.stdin.drain()
    output = process.stdout.read()
    assert process.wait() == 0
    assert b"/dev/pts/" in output and b"got:hello" in output
    assert process.stderr.read() == b""  # a terminal carries both on stdout
