"""``mngr schema``: the JSON Schema of what a command prints with --format json and jsonl."""

from __future__ import annotations

import click

from .. import output, records
from ..errors import UsageError

_HELP = {"help_option_names": ["-h", "--help"]}


@click.command("schema", context_settings=_HELP)
@click.argument("words", nargs=-1, metavar="[COMMAND]")
def schema(words: tuple[str, ...]) -> None:
    """Print the JSON Schema of `mngr COMMAND --format json`; its "x-jsonl-record" names
    what each line of `--format jsonl` is. With no COMMAND, list the commands that have one.

    Every record carries "schema_version" (now %d); docs/output.md tells what changes it.
    """
    if not words:
        for command in records.CONTRACTS:
            click.echo(command)
        return
    from .main import ALIASES

    command = " ".join([ALIASES.get(words[0], words[0]), *words[1:]])
    if command not in records.CONTRACTS:
        raise UsageError(f"no schema for {command!r}: `mngr schema` lists the commands that print records")
    click.echo(output.to_json(records.json_schema(command)))


schema.help = (schema.help or "").replace("%d", str(output.SCHEMA_VERSION))
