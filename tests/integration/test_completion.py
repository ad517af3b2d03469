"""Shell completion through a real bash: mngr's own script, sourced, answering COMP_WORDS."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import MNGR_BIN


def _complete(sandbox, line: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What bash offers after ``line`` (the word being completed is its last, maybe empty)."""
    script = sandbox.mngr("completion", "bash")
    assert script.returncode == 0, script.stderr
    words = line.split(" ")
    program = (
        f"{script.stdout}\n"
        f"COMP_WORDS=({' '.join(repr(word) for word in words)}); COMP_CWORD={len(words) - 1}\n"
        f"_mngr_completion {MNGR_BIN}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          env={**sandbox.env, "PATH": f"{MNGR_BIN.parent}:{sandbox.env['PATH']}"}, timeout=60)
    assert done.returncode == 0, done.stderr
    return [word for word in done.stdout.splitlines() if word]


def test_bash_completes_commands_options_and_names(sandbox) -> None:
    for name in ("alpha", "alpine", "beta"):
        created = sandbox.mngr("create", name, "command", "--no-connect", "--", "sleep", "600")
        assert created.returncode == 0, created.stderr
    assert "completion" in _complete(sandbox, "mngr comp")
    assert set(_complete(sandbox, "mngr c")) >= {"create", "connect", "capture", "clone", "config"}
    assert _complete(sandbox, "mngr list --form") == ["--format"]
    assert _complete(sandbox, "mngr stop al") == ["alpha", "alpine"]
    assert _complete(sandbox, "mngr message beta alp") == ["alpha", "alpine"]
    assert _complete(sandbox, "mngr create x --in do") == ["docker"]
    assert _complete(sandbox, "mngr create x -t cod") == ["codex"]
    assert _complete(sandbox, "mngr create x --host lo") == ["local"]


def test_names_come_from_what_mngr_last_listed_without_asking_any_host(sandbox) -> None:
    for name in ("kept-1", "kept-2"):
        assert sandbox.mngr("create", name, "command", "--no-connect", "--", "sleep", "600").returncode == 0
    # Behind mngr's back, the agents go: a listing would no longer show them...
    sandbox.tmux("kill-server")
    shutil.rmtree(sandbox.host_dir / "agents")
    # ...but completion does not list: it offers what the last listing (create's own) saw.
    assert _complete(sandbox, "mngr destroy kept") == ["kept-1", "kept-2"]
    assert sandbox.mngr("list").stdout == "no agents\n"
    assert _complete(sandbox, "mngr destroy kept") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_its_script(sandbox, shell: str) -> None:
    script = sandbox.mngr("completion", shell)
    assert script.returncode == 0 and "_MNGR_COMPLETE" in script.stdout and f"{shell}_complete" in script.stdout
    refused = sandbox.mngr("completion", "tcsh")
    assert refused.returncode == 2 and "tcsh" in refused.stderr


def test_a_name_on_two_hosts_completes_as_name_at_host(sandbox) -> None:
    """As a listing records two agents of one name (left by an older mngr) on two hosts."""
    import json

    sandbox.state_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.state_dir / "completion.json").write_text(json.dumps(
        {"agents": [["task", "box", "ssh"], ["task", "gpu", "ssh"], ["tidy", "local", "local"]]}))
    assert _complete(sandbox, "mngr stop t") == ["task@box", "task@gpu", "tidy"]
    assert _complete(sandbox, "mngr exec task@g") == ["task@gpu"]
    assert _complete(sandbox, "mngr host forget g") == ["gpu"]
