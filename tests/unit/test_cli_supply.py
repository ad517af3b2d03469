"""Finding the user's own agent CLIs, the ``cli`` setting, and the helper's bundle keeping,
in-process on real files (the copy to real hosts: tests/integration/test_cli_supply.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from mngr.controller.agent_types import BUILTIN_AGENT_TYPES, from_config
from mngr.controller.cli_supply import (
    FIRST_PART_BYTES,
    PART_BYTES,
    cli_program,
    part_spans,
    user_bundles,
)
from mngr.controller.errors import ConfigError, MngrError
from mngr.remote_helper import cli_bundles
from mngr.remote_helper.wire import RequestFailed
from tests import agent_clis

TYPES = {agent_type.name: agent_type for agent_type in BUILTIN_AGENT_TYPES}
NPM_ROOT = agent_clis.AGENT_CLI_BIN.parent
ARM_ELF = (b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xb7\x00").ljust(256, b"\0")


@pytest.fixture(autouse=True)
def _own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))


@pytest.mark.skipif(agent_clis.missing_reason() is not None, reason=agent_clis.missing_reason() or "")
def test_the_users_npm_installs_give_a_bundle_for_their_machine() -> None:
    claude = user_bundles("claude", str(agent_clis.AGENT_CLI_BIN))
    version = json.loads((NPM_ROOT / "@anthropic-ai" / "claude-code" / "package.json").read_text())["version"]
    [(machine, bundle)] = claude.items()
    assert machine == os.uname().machine == bundle.machine
    assert bundle.version == version and bundle.entry == "claude" and bundle.path_dirs == (".",)
    [only] = bundle.files
    assert only.source == (NPM_ROOT / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe").resolve()
    assert only.mode == 0o755 and only.size == only.source.stat().st_size
    codex = user_bundles("codex", str(agent_clis.AGENT_CLI_BIN))[os.uname().machine]
    assert codex.entry == "bin/codex" and codex.path_dirs == ("bin", "codex-path")
    relatives = [f.relative for f in codex.files]
    # What it looks for next to its binary; not its optional voice runtime.
    assert relatives == ["codex-package.json", "bin/codex", "bin/codex-code-mode-host", "codex-path/rg",
                         "codex-resources/bwrap"]
    # The key names the content: the same install gives the same key (the hash is remembered).
    assert user_bundles("claude", str(agent_clis.AGENT_CLI_BIN))[machine].key == bundle.key


def test_an_install_of_another_machine_gives_that_machines_bundle(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "@anthropic-ai" / "claude-code"
    (package / "bin").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"version": "9.8.7"}))
    (package / "bin" / "claude.exe").write_bytes(ARM_ELF)
    (package / "bin" / "claude.exe").chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "claude").symlink_to(package / "bin" / "claude.exe")
    bundles = user_bundles("claude", str(tmp_path / "bin"))
    assert list(bundles) == ["aarch64"] and bundles["aarch64"].version == "9.8.7"
    assert bundles["aarch64"].files[0].sha256 == hashlib.sha256(ARM_ELF).hexdigest()


def test_an_install_without_a_native_binary_or_none_at_all_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "claude").write_text("#!/usr/bin/env node\n")
    (tmp_path / "claude").chmod(0o755)
    with pytest.raises(MngrError, match="has no native Linux binary to copy"):
        user_bundles("claude", str(tmp_path))
    with pytest.raises(MngrError, match="codex is not installed here"):
        user_bundles("codex", str(tmp_path / "nothing"))


def test_only_the_cli_itself_by_its_own_name_is_provided() -> None:
    assert cli_program("claude", "claude") == "claude"
    assert cli_program("claude", "/opt/claude/bin/claude") is None  # a path of the user's
    assert cli_program("claude", "my-claude-wrapper") is None
    assert cli_program("", "claude") is None  # a command type that happens to run claude


def test_the_cli_setting_per_agent_type() -> None:
    assert TYPES["claude"].cli == "auto" and TYPES["claude"].cli_program == "claude"
    copying = from_config("claude", {"cli": "copy"}, TYPES)  # a known type's settings alone
    assert copying.cli == "copy" and copying.base_command == "claude"
    assert copying.interaction is TYPES["claude"].interaction and copying.description == "Claude Code"
    mine = from_config("mine", {"command": "codex -m o3", "like": "codex", "cli": "host"}, TYPES)
    assert (mine.cli_program, mine.cli) == ("codex", "host")
    assert from_config("bot", {"command": "bot"}, TYPES).cli_program == ""
    with pytest.raises(ConfigError, match=r"agent_types\.claude\.cli must be one of auto, copy, host"):
        from_config("claude", {"cli": "sometimes"}, TYPES)
    with pytest.raises(ConfigError, match="command must be a non-empty string"):
        from_config("bot", {"cli": "copy"}, TYPES)


GOOD_TOOL = b"#!/bin/sh\necho 'tool 1.2.3'\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload(claimed: bytes) -> tuple[str, str, list[list[object]]]:
    """An upload begun for a bundle whose one file (bin/tool) is ``claimed``, sent in two
    parts; its FinishCli manifest."""
    half = len(claimed) // 2
    manifest: list[list[object]] = [["bin/tool", _sha(claimed), len(claimed), 0o755,
                                     [_sha(claimed[:half]), _sha(claimed[half:])]]]
    key = cli_bundles.manifest_key(manifest)
    place = cli_bundles.ensure({"program": "tool", "version": "1.2.3", "mode": "copy",
                                "bundles": {cli_bundles.machine(): [key, len(claimed), ["bin"]]}})
    assert place["source"] == "" and place["upload"]
    assert place["dirs"] == [os.path.join(cli_bundles.clis_dir(), key, "bin")]  # where it will be
    return key, place["upload"], manifest


def _put(key: str, upload: str, offset: int, data: bytes, digest: str | None = None,
         compressed: bool = False) -> None:
    blob = zlib.compress(data, 1) if compressed else data
    cli_bundles.put_part({"key": key, "upload": upload, "path": "bin/tool", "offset": offset, "length": len(data),
                          "sha256": digest or _sha(data), "compressed": compressed}, blob)


def _stage(claimed: bytes, sent: bytes) -> tuple[str, str, list[list[object]]]:
    """An upload of ``sent`` (each part with its own hash) for a bundle whose manifest says ``claimed``."""
    key, upload, manifest = _upload(claimed)
    half = len(sent) // 2  # the parts arrive in any order
    _put(key, upload, half, sent[half:], compressed=True)
    _put(key, upload, 0, sent[:half])
    return key, upload, manifest


def _finish(key: str, upload: str, manifest: list[list[object]]) -> None:
    cli_bundles.finish({"key": key, "upload": upload, "program": "tool", "version": "1.2.3", "entry": "bin/tool",
                        "files": manifest})


def _nothing_kept() -> None:
    assert cli_bundles.cached_keys() == []
    assert os.listdir(Path(cli_bundles.clis_dir()) / ".parts") == []


def test_a_bundle_lands_whole_under_its_key_only_once_checked_and_run() -> None:
    key, upload, manifest = _stage(GOOD_TOOL, GOOD_TOOL)
    assert cli_bundles.cached_keys() == []
    _finish(key, upload, manifest)
    root = Path(cli_bundles.clis_dir()) / key
    assert (root / "bin" / "tool").read_bytes() == GOOD_TOOL
    assert (root / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert os.listdir(Path(cli_bundles.clis_dir()) / ".parts") == []
    again = cli_bundles.ensure({"program": "tool", "version": "1.2.3", "mode": "copy",
                                "bundles": {cli_bundles.machine(): [key, 1, ["bin"]]}})
    assert (again["source"], again["dirs"]) == ("cache", [str(root / "bin")])


@pytest.mark.parametrize(("claimed", "sent", "error"), [
    (GOOD_TOOL, GOOD_TOOL + b"x", f"arrived with {len(GOOD_TOOL) + 1} of {len(GOOD_TOOL)} bytes"),
    (GOOD_TOOL, GOOD_TOOL.replace(b"3", b"4"), "arrived without all of its 2 parts"),
    (b"#!/bin/sh\nexit 3\n", b"#!/bin/sh\nexit 3\n", "does not run on this host"),
    (GOOD_TOOL.replace(b"3", b"4"), GOOD_TOOL.replace(b"3", b"4"), "reports version 'tool 1.2.4'"),
])
def test_a_bundle_that_is_not_the_one_sent_or_does_not_run_is_refused_and_removed(
    claimed: bytes, sent: bytes, error: str
) -> None:
    key, upload, manifest = _stage(claimed, sent)
    with pytest.raises(RequestFailed, match=error):
        _finish(key, upload, manifest)
    _nothing_kept()


def test_a_part_whose_bytes_are_not_the_ones_its_hash_names_is_refused_and_the_bundle_never_lands() -> None:
    key, upload, manifest = _upload(GOOD_TOOL)
    half = len(GOOD_TOOL) // 2
    _put(key, upload, 0, GOOD_TOOL[:half])
    damaged = GOOD_TOOL[half:].replace(b"3", b"4")
    for compressed in (False, True):
        with pytest.raises(RequestFailed, match=f"a part of bin/tool at {half} arrived with sha256 "):
            _put(key, upload, half, damaged, _sha(GOOD_TOOL[half:]), compressed=compressed)
    with pytest.raises(RequestFailed, match=f"bin/tool of tool arrived with {half} of {len(GOOD_TOOL)} bytes"):
        _finish(key, upload, manifest)  # (the refused part was not written)
    _nothing_kept()


def test_a_missing_part_fails_the_finish_and_nothing_lands() -> None:
    key, upload, manifest = _upload(GOOD_TOOL)
    half = len(GOOD_TOOL) // 2
    _put(key, upload, half, GOOD_TOOL[half:])  # the first part never came: a hole of zeros
    with pytest.raises(RequestFailed, match="arrived without all of its 2 parts \\(1 of them checked\\)"):
        _finish(key, upload, manifest)
    _nothing_kept()


def test_a_compressed_part_that_inflates_to_more_than_its_length_is_refused() -> None:
    key, upload, _ = _upload(GOOD_TOOL)
    bomb = zlib.compress(bytes(1 << 20), 1)
    with pytest.raises(RequestFailed, match="inflates to other than its 10 bytes"):
        cli_bundles.put_part({"key": key, "upload": upload, "path": "bin/tool", "offset": 0, "length": 10,
                              "sha256": _sha(bytes(10)), "compressed": True}, bomb)


def test_paths_outside_the_bundle_and_unknown_machines_are_refused() -> None:
    with pytest.raises(RequestFailed, match="invalid path"):
        cli_bundles.put_part({"key": "ab" * 32, "upload": "0123456789abcdef", "path": "../../escape", "offset": 0,
                              "length": 1, "sha256": _sha(b"x"), "compressed": False}, b"x")
    with pytest.raises(RequestFailed, match="has a binary for sparc64 only"):
        cli_bundles.ensure({"program": "tool", "version": "1", "mode": "copy",
                            "bundles": {"sparc64": ["ab" * 32, 1, ["."]]}})


def test_the_provided_dirs_come_first_on_path_once() -> None:
    assert cli_bundles.prefixed_path(["/c/bin", "/c/path"], "/usr/bin:/c/bin:/bin") == "/c/bin:/c/path:/usr/bin:/bin"
    assert cli_bundles.prefixed_path(None, "/usr/bin") == "/usr/bin"


def test_files_are_cut_into_a_small_first_part_then_whole_parts() -> None:
    assert part_spans(0) == [(0, 0)]
    assert part_spans(10) == [(0, 10)]
    first = FIRST_PART_BYTES
    assert part_spans(first + 2 * PART_BYTES + 5) == [(0, first), (first, PART_BYTES),
                                                      (first + PART_BYTES, PART_BYTES),
                                                      (first + 2 * PART_BYTES, 5)]


def _aged(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_bundle_no_agent_names_goes_only_once_nothing_ensured_it_for_the_grace() -> None:
    key, upload, manifest = _stage(GOOD_TOOL, GOOD_TOOL)
    _finish(key, upload, manifest)
    root = Path(cli_bundles.clis_dir()) / key
    day = 24 * 3600.0
    using = [{"name": "a", "path_dirs": [str(root / "bin")]}, {"name": "b"}]
    assert cli_bundles.unused_bundles([], day) == []  # just landed: a create is about to use it
    _aged(root, 2 * day)
    assert cli_bundles.unused_bundles(using, day) == []  # an agent runs from it
    assert cli_bundles.unused_bundles([{"name": "b"}], day) == [str(root)]
    # An ensure that finds it marks it used now: the create that asked keeps it.
    again = cli_bundles.ensure({"program": "tool", "version": "1.2.3", "mode": "copy",
                                "bundles": {cli_bundles.machine(): [key, 1, ["bin"]]}})
    assert again["source"] == "cache"
    assert cli_bundles.unused_bundles([], day) == []
    _aged(root, 2 * day)
    cli_bundles.remove_bundle(str(root))
    assert cli_bundles.cached_keys() == [] and not root.exists()
    assert os.listdir(Path(cli_bundles.clis_dir()) / ".parts") == []
    gone = cli_bundles.ensure({"program": "tool", "version": "1.2.3", "mode": "copy",
                               "bundles": {cli_bundles.machine(): [key, 1, ["bin"]]}})
    assert gone["source"] == "" and gone["upload"]


def test_a_bundle_a_process_still_runs_from_is_not_unused() -> None:
    # An agent whose record was given a newer bundle may still run the old one's binary.
    root = Path(cli_bundles.clis_dir()) / ("cd" * 32)
    root.mkdir(parents=True)
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", root / "sleep")
    _aged(root, 2 * 24 * 3600.0)
    running = subprocess.Popen([str(root / "sleep"), "60"])
    try:
        assert cli_bundles.unused_bundles([], 24 * 3600.0) == []
    finally:
        running.kill()
        running.wait()
    assert cli_bundles.unused_bundles([], 24 * 3600.0) == [str(root)]
