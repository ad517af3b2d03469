"""docs/commands/: a page per command, whose options part is what click says (scripts/command_docs.py)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from mngr.controller.cli.main import _COMMANDS

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "command_docs.py"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("command_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_says_what_the_click_definitions_say() -> None:
    checked = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO,
                             timeout=60)
    assert checked.returncode == 0 and checked.stdout == "", (
        f"{checked.stdout}{checked.stderr}run: .venv/bin/python scripts/command_docs.py")


def test_every_command_is_in_the_index() -> None:
    index = (REPO / "docs" / "commands" / "README.md").read_text()
    linked = set(re.findall(r"\[`([a-z-]+)`\]\(([a-z-]+)\.md\)", index))
    assert {name for name, _ in linked} >= set(_COMMANDS), set(_COMMANDS) - {name for name, _ in linked}


def test_a_drifted_option_is_caught_and_the_prose_is_kept() -> None:
    docs = _script()
    page = ("# mngr stop\n\nprose\n\n## Options\n\n| Option | Meaning |\n|---|---|\n| `--gone` | an option "
            "click no longer has |\n\nA note under the table.\n\n## Examples\n\nmore prose\n")
    block = docs.generated("stop")
    updated = docs.updated_page(page, block)
    assert "--gone" not in updated and "`--all`" in updated
    assert "A note under the table." in updated and "more prose" in updated and updated.startswith("# mngr stop")
    assert docs.updated_page(updated, block) == updated  # again: nothing changes
    drifted = updated.replace("Stop every agent", "Stop all agents")
    assert docs.updated_page(drifted, block) == updated
