"""``mngr ask QUESTION``: how to do something with mngr, answered from mngr's own docs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import click

from .. import ask as docs_search
from .. import output, verbosity

_HELP = {"help_option_names": ["-h", "--help"]}
_COMPOSE_TIMEOUT = 120


@click.command("ask", context_settings=_HELP)
@click.argument("question", nargs=-1, required=True)
@click.option("--offline", is_flag=True, help="Answer from the docs alone, even if an agent CLI is available.")
@click.option("--with", "agent_cli", default="claude", show_default=True, metavar="CLI",
              help="The agent CLI that words the answer, when it is on PATH (it gets the docs' best passages).")
@output.format_option("ask")
def ask(question: tuple[str, ...], offline: bool, agent_cli: str, output_format: str) -> None:
    """Ask how to do something with mngr; the answer comes from mngr's docs, with the command to run.

    \b
    mngr ask "How do I create a container on modal with custom packages installed by default?"

    Offline (or without the agent CLI) mngr picks the command and the passage of its docs that
    best match the question. With `claude` on PATH it also asks it to word an answer from those
    passages (--offline to skip, --with to name another CLI that takes `-p PROMPT`).
    """
    text = " ".join(question).strip()
    found = docs_search.passages()
    result = docs_search.answer(text, found)
    composed = ""
    if not offline and result is not None and shutil.which(agent_cli):
        composed = _compose(agent_cli, text, docs_search.ranked_passages(text, found, 4))
    if output_format != "human":
        output.emit(output_format, [{
            "question": text,
            "command": result.command if result else None,
            "comment": result.comment if result else None,
            "source": {"path": f"docs/{result.passage.path}", "section": result.passage.heading} if result else None,
            "also": [command for command, _ in result.also] if result else [],
            "composed": composed or None,
        }], lambda: None, single=True)
    elif result is None:
        click.echo("mngr's docs say nothing about that. `mngr --help` lists the commands; each has --help.")
    else:
        if composed:
            click.echo(composed.rstrip() + "\n")
        click.echo("Run:")
        click.echo(f"    {result.command}" + (f"    # {result.comment}" if result.comment and len(result.comment) < 90 else ""))
        for command, comment in result.also:
            click.echo(f"Also:\n    {command}" + (f"    # {comment}" if comment and len(comment) < 90 else ""))
        click.echo(f"\nFrom docs/{result.passage.path}, \"{result.passage.heading or result.passage.title}\":")
        for line in docs_search.excerpt(result.passage).splitlines():
            click.echo(f"    {line}" if line else "")
    if result is None:
        sys.exit(1)


def _compose(agent_cli: str, question: str, passages: list[docs_search.Passage]) -> str:
    context = "\n\n".join(f"[docs/{passage.path} — {passage.heading}]\n{passage.text}" for passage in passages)
    prompt = ("Answer this question about the mngr CLI in a few lines, with the exact command to run. Use only "
              f"these excerpts of mngr's documentation.\n\nQuestion: {question}\n\n{context}")
    try:
        done = subprocess.run([agent_cli, "-p", prompt], capture_output=True, text=True, timeout=_COMPOSE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        verbosity.note(f"{agent_cli} did not answer ({exc}); the docs' answer follows")
        return ""
    if done.returncode != 0 or not done.stdout.strip():
        verbosity.note(f"{agent_cli} failed (exit status {done.returncode}); the docs' answer follows")
        return ""
    return done.stdout
