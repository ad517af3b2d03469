"""A plain push or pull (run without click, cli/direct.py) and the same one through click
(``--`` before the positional arguments sends it there) give the same results."""

from __future__ import annotations

import json
from pathlib import Path


def _both(sandbox, *argv: str):  # type: ignore[no-untyped-def]
    """(direct, through click) runs of ``mngr ACTION ARGS...``; options first, then NAME [DIR]."""
    action, *rest = argv
    options = [word for word in rest if word.startswith("-") or word in ("json", "human")]
    positional = [word for word in rest if word not in options]
    return sandbox.mngr(action, *positional, *options), sandbox.mngr(action, *options, "--", *positional)


def test_push_and_pull_say_and_do_the_same_either_way(sandbox, agent_dir: Path) -> None:
    source = sandbox.root / "source"
    source.mkdir()
    (source / "a.txt").write_text("a")
    direct, through_click = _both(sandbox, "push", "box", str(source), "--dry-run")
    assert (direct.returncode, direct.stdout, direct.stderr) == (0, "+ a.txt\nwould push 1 change(s), 1 bytes\n", "")
    assert (through_click.returncode, through_click.stdout, through_click.stderr) == (0, direct.stdout, "")
    pushed = sandbox.mngr("push", "box", str(source), "--format", "json")
    assert pushed.returncode == 0 and json.loads(pushed.stdout)["changes"] == [{"change": "+", "path": "a.txt"}]
    assert (agent_dir / "a.txt").read_text() == "a"
    direct, through_click = _both(sandbox, "push", "box", str(source), "--format", "json")
    assert direct.returncode == through_click.returncode == 0
    assert json.loads(direct.stdout) == json.loads(through_click.stdout)
    assert json.loads(direct.stdout)["changes"] == []
    direct, through_click = _both(sandbox, "pull", "box", str(sandbox.root / "copy"))
    assert direct.returncode == through_click.returncode == 0
    assert direct.stdout == "box: pulled 1 change(s), 1 bytes\n"
    assert through_click.stdout == "box: nothing to pull, already the same\n"
    assert (sandbox.root / "copy" / "a.txt").read_text() == "a"


def test_failures_read_the_same_either_way(sandbox, agent_dir: Path) -> None:
    for argv in (["push", "nobody"], ["pull", "nobody", "--format", "json"],
                 ["push", "box", str(sandbox.root / "missing")]):
        direct, through_click = _both(sandbox, *argv)
        assert direct.returncode != 0
        assert (direct.returncode, direct.stdout, direct.stderr) == (
            through_click.returncode, through_click.stdout, through_click.stderr)
        assert direct.stderr.startswith("mngr: error: ") and direct.stderr.count("\n") == 1
