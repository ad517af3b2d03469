"""Hostile text in every value a user gives mngr reaches no shell and no tmux format unquoted.

Each payload would create a marker file if anything evaluated it: a shell (``$(..)``,
backquotes, ``;``, a newline) or tmux (``#(..)`` runs a command in a format, ``#{..}``
expands). The test puts the payloads in agent names, labels, messages, env values, template
values, work dir names and config paths, and checks that each arrives verbatim where it
belongs, that the marker never appears, and that nothing else is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import wait_for


def _payloads(marker: Path) -> list[str]:
    return [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"x; touch {marker}",
        f"x\ntouch {marker}",
        f"#(touch {marker})",
        "#{pane_id} #{session_name}",
        f"' \"; touch {marker}; echo \"'",
        f"x && touch {marker} # -t --help",
    ]


@pytest.fixture
def marker(sandbox) -> Path:  # type: ignore[no-untyped-def]
    path = sandbox.root / "pwned"
    yield path
    assert not path.exists(), "a payload was evaluated"


def test_hostile_agent_names_are_refused_and_nothing_starts(sandbox, marker: Path) -> None:
    for payload in [*_payloads(marker), "-rf", "../x", "a" * 70, "UPPER"]:
        refused = sandbox.mngr("create", payload, "command", "--no-connect", "--", "sleep", "60")
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, (payload, refused.stderr)
    assert sandbox.sessions() == [] and sandbox.mngr("list").stdout == "no agents\n"


def test_labels_env_values_and_messages_arrive_verbatim(sandbox, marker: Path) -> None:
    payloads = [payload for payload in _payloads(marker) if "\n" not in payload]  # one line each, for cat
    env_args = [arg for index, payload in enumerate(payloads) for arg in ("--env", f"V{index}={payload}")]
    label_args = [arg for index, payload in enumerate(payloads) for arg in ("--label", f"k{index}={payload}")]
    created = sandbox.mngr("create", "target", "command", "--no-connect", *env_args, *label_args, "--", "cat")
    assert created.returncode == 0, created.stderr
    [agent] = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
    assert agent["labels"] == {f"k{index}": payload for index, payload in enumerate(payloads)}
    for index, payload in enumerate(payloads):
        shown = sandbox.mngr("exec", "target", f'printf "%s" "$V{index}"')
        assert shown.stdout == payload, (payload, shown.stdout, shown.stderr)
    for payload in _payloads(marker):  # typed into cat: echoed back, never run
        sent = sandbox.mngr("message", "target", payload)
        assert sent.returncode == 0, sent.stderr
    last_line = _payloads(marker)[-1]
    wait_for(lambda: last_line in sandbox.mngr("capture", "target", "--full").stdout, "the last message's echo")
    screen = sandbox.mngr("capture", "target", "--full").stdout
    assert "#{pane_id} #{session_name}" in screen  # not expanded by tmux
    assert f"$(touch {marker})" in screen


def test_templates_work_dirs_and_config_paths_are_taken_literally(sandbox, marker: Path) -> None:
    odd_dir = sandbox.root / f"$(touch {marker.name}) ;#{{pane_id}}"
    odd_dir.mkdir()
    payload = _payloads(marker)[0]
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        "[templates.odd]\n"
        f"agent_type = \"command\"\nargs = [\"sleep\", \"60\"]\nwork_dir = {json.dumps(str(odd_dir))}\n"
        f"[templates.odd.env]\nODD = {json.dumps(payload)}\n"
        f"[templates.odd.labels]\nodd = {json.dumps(payload)}\n"
    )
    created = sandbox.mngr("create", "odd", "-T", "odd", "--no-connect")
    assert created.returncode == 0, created.stderr
    shown = sandbox.mngr("exec", "odd", 'pwd; printf "%s" "$ODD"')
    assert shown.stdout == f"{odd_dir}\n{payload}", shown.stderr
    [agent] = json.loads(sandbox.mngr("list", "--format", "json").stdout)["agents"]
    assert agent["work_dir"] == str(odd_dir) and agent["labels"] == {"odd": payload}
    # A config path is a program's path, run without a shell: it fails, literally named.
    broken = sandbox.mngr("create", "elsewhere", "command", "--no-connect", "--", "sleep", "60",
                          env={"MNGR_PROVIDERS__LOCAL__PYTHON": f"/nonexistent/python; touch {marker}",
                               "MNGR_HOST_DIR": str(sandbox.root / "other-host")})
    assert broken.returncode == 1 and "/nonexistent/python; touch" in broken.stderr, broken.stderr
