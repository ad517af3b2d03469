"""The pages people look at first stay true: the troubleshooting page quotes messages mngr
still prints, the architecture picture is rendered from its current source, and the
README and architecture.md link to it."""

from __future__ import annotations

import ast
import hashlib
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


_PERCENT_FIELD = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrf]")


def _literal(node: ast.AST) -> str | None:
    """A string literal as mngr prints it, each value it fills in written as …"""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _PERCENT_FIELD.sub("…", node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "…" for part in node.values)
    return None


def _sources() -> str:
    """Every message mngr's code and install scripts can print: the code's string literals
    (so that a message written over several lines is whole), and the scripts' text."""
    texts = []
    for folder in ("controller", "providers", "remote_helper"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            texts += [text for node in ast.walk(tree) if (text := _literal(node)) is not None]
    texts += [path.read_text(encoding="utf-8") for path in (ROOT / "scripts").glob("*.sh")]
    return "\n".join(texts)


def _quoted_messages() -> list[str]:
    """The messages the troubleshooting page's entries are headed with."""
    headings = re.findall(r"^### (`+)(.+?)\1$", (DOCS / "troubleshooting.md").read_text(), re.MULTILINE)
    return [message.strip() for _, message in headings]


def test_troubleshooting_has_entries_by_area() -> None:
    messages = _quoted_messages()
    assert len(messages) >= 20
    text = (DOCS / "troubleshooting.md").read_text()
    for section in ("## Installing", "## Reaching an SSH host", "## Agents", "## Disk space", "## Docker"):
        assert section in text
    # Every entry says why and what to do.
    entries = text.split("\n### ")[1:]
    assert all("**Cause.**" in entry and "**Fix.**" in entry for entry in entries)


def test_every_troubleshooting_message_is_one_mngr_prints() -> None:
    sources = _sources()
    missing = []
    for message in _quoted_messages():
        for fragment in message.split("…"):
            fragment = fragment.strip()
            if len(fragment) >= 6 and fragment not in sources:
                missing.append(fragment)
    assert missing == []


def test_the_checker_finds_a_message_that_is_not_there() -> None:
    assert "a message mngr never prints" not in _sources()
    assert "helper exited before it started" in _sources()


def test_the_architecture_picture_is_rendered_from_its_source() -> None:
    source = (DOCS / "architecture.dot").read_bytes()
    picture = (DOCS / "architecture.svg").read_text()
    # scripts/render_architecture.sh stamps the picture with its source's hash.
    assert f"sha256 {hashlib.sha256(source).hexdigest()}" in picture, (
        "docs/architecture.svg is older than docs/architecture.dot: run scripts/render_architecture.sh")
    root = ElementTree.fromstring(picture.encode())
    assert root.tag.endswith("svg")
    labels = " ".join(text for text in root.itertext())
    for node in ("first stage", "host daemon", "tmux server", "forwarded socket"):
        assert node in labels, node


def test_the_picture_is_linked_where_people_look() -> None:
    assert "docs/architecture.svg" in (ROOT / "README.md").read_text()
    assert "](architecture.svg)" in (DOCS / "architecture.md").read_text()
    assert "](docs/troubleshooting.md)" in (ROOT / "README.md").read_text()


def test_contributing_gives_the_two_commands_and_the_layout() -> None:
    readme = (ROOT / "README.md").read_text()
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    test_command = "./scripts/install.sh --test && .venv/bin/python -m pytest"
    assert test_command in readme and test_command in contributing
    assert test_command in (ROOT / ".ci" / "run").read_text()
    for folder in ("controller/", "remote_helper/", "providers/", "tests/", "docs/"):
        assert folder in contributing
