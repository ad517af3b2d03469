"""Commands from the product brief that this version does not provide yet."""

from __future__ import annotations

import click

from ..errors import MngrError


class NotAvailable(MngrError):
    exit_code = 3


def unbuilt_command(name: str, help_text: str) -> click.Command:
    def run(args: tuple[str, ...]) -> None:
        raise NotAvailable(f"'mngr {name}' is not available in this version of mngr yet")

    return click.Command(
        name,
        callback=run,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=f"{help_text}.\n\nNot available in this version of mngr yet.",
        short_help=f"{help_text} [not available yet]",
        context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
    )
