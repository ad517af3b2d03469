"""-q, -v and --debug: accepted by the ``mngr`` group (``mngr -v list``) and by every
command after its name (``mngr list -v``), as gh and uv users type them."""

from __future__ import annotations

import click

from .. import verbosity
from ..errors import UsageError

_GIVEN_KEY = "mngr.verbosity_given"
# option name -> level; the help each shows.
_LEVELS = {
    "quiet": (verbosity.QUIET, verbosity.OPTIONS["quiet"], "Print only errors and the records asked for."),
    "verbose": (verbosity.VERBOSE, verbosity.OPTIONS["verbose"],
                "Show each action on a host (channel, helper, requests) and the time per host, on stderr."),
    "debug": (verbosity.DEBUG, verbosity.OPTIONS["debug"], "As -v, and show the traceback of an internal error."),
}
OPTION_NAMES = verbosity.OPTION_NAMES
PARAM_NAMES = frozenset(_LEVELS)  # as click names the parameters


def _set(ctx: click.Context, param: click.Parameter, given: bool) -> None:
    if not given or ctx.resilient_parsing:
        return
    assert param.name is not None
    root_meta = ctx.find_root().meta
    chosen: set[str] = root_meta.setdefault(_GIVEN_KEY, set())
    chosen.add(param.name)
    if "quiet" in chosen and chosen & {"verbose", "debug"}:
        raise UsageError("-q and -v/--debug ask for opposite things: give one")
    verbosity.set_level(max(_LEVELS[name][0] for name in chosen) if "quiet" not in chosen else verbosity.QUIET)


def verbosity_params() -> list[click.Parameter]:
    """Fresh -q/-v/--debug options (a click Option belongs to one command)."""
    return [click.Option([name, *names], is_flag=True, expose_value=False, is_eager=True,
                         callback=_set, help=help_text)
            for name, (_, names, help_text) in _LEVELS.items()]


def add_verbosity_options(command: click.Command) -> click.Command:
    """``command`` (and, for a group, each of its subcommands) taking -q, -v and --debug;
    an option of the same name the command has of its own is left alone (it wins)."""
    if not any(param.name in _LEVELS for param in command.params):  # not done yet
        taken = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        command.params.extend(param for param in verbosity_params() if not set(param.opts) & taken)
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            add_verbosity_options(subcommand)
    return command
