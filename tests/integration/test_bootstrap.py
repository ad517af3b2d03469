"""The first stage: helper sent once, cached by content hash, noise skipped, races survived."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import zlib

import pytest

from mngr.controller.channel import bootstrap, protocol
from mngr.controller.channel.rpc import RpcClient
from mngr.controller.channel.stream import ProcessStream
from mngr.controller.errors import BootstrapError, ChannelClosed


def _connect(env, argv=None) -> RpcClient:
    return RpcClient.bootstrap(ProcessStream("local", argv or bootstrap.stage1_argv(sys.executable), env))


def test_cold_cache_sends_the_helper_and_warm_cache_does_not(sandbox) -> None:
    helper_hash = bootstrap.helper_hash()
    with _connect(sandbox.env) as first:
        assert first.helper_was_sent
        assert first.call(protocol.GetHelperInfo(), protocol.HelperInfo).version == helper_hash
    assert (sandbox.host_dir / "helper" / helper_hash / "mngr_remote_helper" / "server.py").is_file()
    with _connect(sandbox.env) as second:
        assert not second.helper_was_sent
        assert second.call(protocol.GetHelperInfo(), protocol.HelperInfo).version == helper_hash


def test_the_cache_is_private_to_the_user(sandbox) -> None:
    with _connect(sandbox.env) as client:
        client.call(protocol.Ping(), protocol.Pong)
    assert (sandbox.host_dir / "helper").stat().st_mode & 0o077 == 0


def test_login_noise_before_the_marker_is_skipped(sandbox) -> None:
    noisy = ["sh", "-c", 'echo "Welcome to host!"; printf "MNGR-STAGE no\\n\\x00\\xff"; exec "$@"', "sh",
             *bootstrap.stage1_argv(sys.executable)]
    with _connect(sandbox.env, noisy) as client:
        assert client.call(protocol.Ping(), protocol.Pong) == protocol.Pong()


def test_a_helper_of_another_version_is_never_reused(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    with _connect(sandbox.env) as client:
        client.call(protocol.Ping(), protocol.Pong)
    real_hash = bootstrap.helper_hash()
    # A different helper source gives a different hash, so a new cache dir and a fresh send.
    files = json.loads(bootstrap._helper_source())
    files["mngr_remote_helper/server.py"] += "\n# another version\n"
    source = json.dumps(files, sort_keys=True).encode()
    other_hash = hashlib.sha256(source).hexdigest()
    monkeypatch.setattr(bootstrap, "_helper_source", lambda: source)
    monkeypatch.setattr(bootstrap, "helper_hash", lambda: other_hash)
    bootstrap._stage1_command.cache_clear()
    try:
        with _connect(sandbox.env) as client:
            assert client.helper_was_sent
            assert client.call(protocol.GetHelperInfo(), protocol.HelperInfo).version == other_hash
    finally:
        bootstrap._stage1_command.cache_clear()
    assert sorted(p.name for p in (sandbox.host_dir / "helper").iterdir()) == sorted([real_hash, other_hash])


def test_concurrent_cold_bootstraps_all_succeed(sandbox) -> None:
    results: list[object] = []

    def run() -> None:
        try:
            with _connect(sandbox.env) as client:
                results.append(client.call(protocol.GetHelperInfo(), protocol.HelperInfo).version)
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [bootstrap.helper_hash()] * 8
    leftovers = [p.name for p in (sandbox.host_dir / "helper").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


def test_a_missing_interpreter_is_a_clear_error(sandbox) -> None:
    with pytest.raises(ChannelClosed) as excinfo:
        _connect(sandbox.env, ["/nonexistent/python3", "-c", "x"])
    assert "cannot start '/nonexistent/python3'" in str(excinfo.value)


def test_a_first_stage_that_dies_reports_why(sandbox) -> None:
    argv = ["sh", "-c", "echo 'sh: 1: python3: not found' >&2; exit 127"]
    with pytest.raises(BootstrapError) as excinfo:
        _connect(sandbox.env, argv)
    message = str(excinfo.value)
    assert "exit status 127" in message and "python3: not found" in message


def test_a_corrupted_transfer_is_refused(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    real_hash = bootstrap.helper_hash()
    files = json.loads(bootstrap._helper_source())
    files["mngr_remote_helper/server.py"] = "raise SystemExit('tampered')"
    tampered = zlib.compress(json.dumps(files, sort_keys=True).encode())
    monkeypatch.setattr(bootstrap, "helper_payload", lambda: (real_hash, tampered))
    with pytest.raises((BootstrapError, ChannelClosed)) as excinfo, _connect(sandbox.env) as client:
        client.call(protocol.Ping(), protocol.Pong)
    assert "hash mismatch" in str(excinfo.value)
    assert not (sandbox.host_dir / "helper" / real_hash).exists()
