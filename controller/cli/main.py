"""The ``mngr`` command: a click group whose default command is ``create``."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from .. import verbosity
from ..errors import MngrError
from .exits import exit_status, fill_closed_standard_streams, leave, one_line
from .global_options import OPTION_NAMES, add_verbosity_options, verbosity_params

# name -> (module, attribute, one-line help); modules load only when their command runs.
_COMMANDS = {
    "create": ("create", "create", "(default) Create and run an agent on a host"),
    "list": ("listing", "list_command", "List agents on every host"),
    "connect": ("lifecycle", "connect", "Attach your terminal to an agent"),
    "open": ("open_cmd", "open_command", "Open a URL from an agent in your browser"),
    "stop": ("lifecycle", "stop", "Stop agents (their records stay)"),
    "start": ("lifecycle", "start", "Start stopped agents again"),
    "destroy": ("lifecycle", "destroy", "Stop agents and delete everything mngr keeps for them"),
    "rename": ("manage_cmd", "rename", "Give an agent a new name (a running agent goes on running)"),
    "label": ("manage_cmd", "label", "Add, change or remove agents' labels"),
    "archive": ("manage_cmd", "archive", "Stop agents and keep them out of listings"),
    "unarchive": ("manage_cmd", "unarchive", "Bring archived agents back into listings"),
    "cleanup": ("manage_cmd", "cleanup", "Stop or destroy agents that are old, idle or in a state"),
    "message": ("message", "message", "Send a message to agents"),
    "wait": ("wait_cmd", "wait", "Wait until agents reach a state (running, waiting, done, stopped)"),
    "events": ("events_cmd", "events", "Print what happens to agents on every host (--follow: as it happens)"),
    "transcript": ("transcript", "transcript", "Show an agent's history"),
    "capture": ("transcript", "capture", "Print what an agent's screen shows now"),
    "exec": ("exec_cmd", "exec_command", "Run a command on agents' hosts, in their work dirs"),
    "limit": ("idle_cmd", "limit", "Show or change a host's idle shutdown settings"),
    "keepalive": ("idle_cmd", "keepalive", "Keep an agent's host from stopping for a while"),
    "snapshot": ("snapshot_cmd", "snapshot", "Record an agent as a snapshot; list and destroy them"),
    "clone": ("copy_cmd", "clone", "Create a copy of an existing agent"),
    "migrate": ("copy_cmd", "migrate", "Move an agent to a different host"),
    "push": ("sync_cmd", "push", "Push a local directory into an agent's work dir"),
    "pull": ("sync_cmd", "pull", "Pull an agent's work dir into a local directory"),
    "pair": ("sync_cmd", "pair", "Keep a local directory and an agent's work dir in step"),
    "config": ("config_cmd", "config", "View and edit mngr configuration"),
    "bootstrap": ("bootstrap_cmd", "bootstrap", "Generate a Dockerfile for your project"),
    "plugin": ("plugin_cmd", "plugin", "List the plugins mngr loaded, and what they add"),
    "completion": ("completion_cmd", "completion", "Print shell completion code for bash, zsh or fish"),
    "schedule": ("schedule_cmd", "schedule", "Create agents, or message one, on a cron schedule"),
    "ask": ("ask_cmd", "ask", "Ask how to do something with mngr (answered from its docs)"),
    "gc": ("gc_cmd", "gc", "Remove what interrupted operations left on hosts"),
    "host": ("host_cmd", "host", "List the hosts mngr searches; forget one"),
    "provision": ("provision_cmd", "provision_command", "Refresh agents' CLI config and credentials on their hosts"),
    "schema": ("schema_cmd", "schema", "Print the JSON Schema of a command's --format json output"),
    "web": ("web_cmd", "web", "Serve a dashboard of every agent in your browser (on 127.0.0.1)"),
}
_GROUP_OPTIONS = ("--help", "-h", "--version", *OPTION_NAMES)
_HELP_WANTED, _BARE = "mngr.help_wanted", "mngr.bare_command"
# The short names users of git, docker and kubectl type: each stands for one command.
ALIASES = {"ls": "list", "rm": "destroy", "c": "create", "msg": "message", "x": "exec"}
# Words that mean a command but name none: an error pointing at it, never an agent so named.
_MEANT = {"copy": "clone", "cp": "clone", "delete": "destroy", "remove": "destroy", "kill": "stop",
          "attach": "connect", "logs": "transcript", "send": "message", "upload": "push", "download": "pull",
          "sync": "pair", "ps": "list"}


class MngrGroup(click.Group):
    """Loads commands lazily and treats anything that is not a command as ``create`` input."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*_COMMANDS, *_plugin_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self._command(ctx, cmd_name)
        return None if command is None else add_verbosity_options(command)

    def _command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd_name = ALIASES.get(cmd_name, cmd_name)
        if cmd_name in _COMMANDS:
            module_name, attribute, _ = _COMMANDS[cmd_name]
            module = __import__(f"{__package__}.{module_name}", fromlist=[attribute])
            command: click.Command = getattr(module, attribute)
            if ctx.meta.get(_HELP_WANTED) or (ctx.meta.get(_BARE) and isinstance(command, click.Group)):
                from . import examples

                examples.attach(command, cmd_name)  # the one place they join the commands' help
            return command
        return _plugin_commands(ctx).get(cmd_name)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from . import examples

        self.epilog = examples.epilog("")
        super().format_epilog(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        aliases = {command: alias for alias, command in ALIASES.items()}
        rows = [(f"{name} ({aliases[name]})" if name in aliases else name, help_text)
                for name, (_, _, help_text) in _COMMANDS.items()]
        rows += [(name, command.get_short_help_str(60)) for name, command in _plugin_commands(ctx).items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and ctx.resilient_parsing:  # completing the first word: a command's name
            return super().parse_args(ctx, args)
        leading: list[str] = []
        while args and args[0] in OPTION_NAMES:  # `mngr -v list`: the group's own options first
            leading.append(args[0])
            args = args[1:]
        if args and args[0] in ("help", "version"):
            # `mngr help`, `mngr help CMD ...`, `mngr version`: the options they stand for.
            if args[0] == "help" and args[1:] and self.get_command(ctx, args[1]) is None:
                from ..errors import UsageError

                raise UsageError(f"no command {args[1]!r} (mngr --help lists them)")
            args = ["--version"] if args[0] == "version" else [*args[1:2], "--help"]
        if args and args[0] in ALIASES:
            args = [ALIASES[args[0]], *args[1:]]
        if not args or (args[0] not in _COMMANDS and args[0] not in _GROUP_OPTIONS
                        and args[0] not in _plugin_commands(ctx)):
            if args and not ctx.resilient_parsing:
                _refuse_a_mistyped_command(args[0], [*_COMMANDS, *_plugin_commands(ctx)])
            args = ["create", *args]
        # The examples (examples.py) are loaded only when help may be shown: asked for, or
        # a group given no subcommand.
        words = args[:args.index("--")] if "--" in args else args
        ctx.meta[_HELP_WANTED] = any(word in ("-h", "--help") for word in words)
        ctx.meta[_BARE] = len(args) == 1
        return super().parse_args(ctx, [*leading, *args])


def _refuse_a_mistyped_command(word: str, commands: list[str]) -> None:
    """A first word that is not a command becomes ``create``'s: an agent's name. One that
    looks like a command mistyped (``lsit``, ``destory``) or named otherwise (``copy``) is
    an error instead, with the way to create an agent so named anyway."""
    meant = _MEANT.get(word)
    if meant is None and word.isalpha() and word.islower():
        import difflib

        close = difflib.get_close_matches(word, commands + [alias for alias in ALIASES if len(alias) > 2],
                                          n=1, cutoff=0.75)
        meant = ALIASES.get(close[0], close[0]) if close else None
    if meant is not None:
        from ..errors import UsageError

        raise UsageError(f"no command {word!r}; did you mean 'mngr {meant}'? "
                         f"(to create an agent named {word!r}: mngr create {word})")


def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
    """The commands plugins add (loading the plugins once per command); none while the
    config cannot be read, so that `mngr --help` and `mngr config` still work."""
    from .context import App

    app = ctx.find_object(App) or ctx.ensure_object(App)
    try:
        return app.plugin_commands(tuple(_COMMANDS))
    except MngrError:
        return {}


@click.group(cls=MngrGroup, context_settings={"help_option_names": ["-h", "--help"]},
             params=verbosity_params())
@click.version_option(package_name="mngr-agents", prog_name="mngr")
def cli() -> None:
    """mngr creates and manages AI coding agents in tmux sessions on hosts.

    With no command, mngr creates an agent: `mngr`, `mngr NAME`, `mngr NAME TYPE`,
    `mngr -- ARGS` all mean `mngr create ...`.
    """


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; every failure becomes one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    verbosity.set_level(verbosity.NORMAL)  # each command from its own options
    fill_closed_standard_streams()
    return exit_status(lambda: _run_click(args))


def _run_click(args: list[str]) -> int:
    try:
        # Without standalone mode click returns the exit code of --help/--version as a value.
        result = cli.main(args, prog_name="mngr", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            print("mngr: interrupted", file=sys.stderr)
            return 130
        print("mngr: aborted", file=sys.stderr)
        return 1
    except click.exceptions.NoArgsIsHelpError as exc:  # `mngr host`: its help, as written, not one line
        print(exc.format_message(), file=sys.stderr)
        return 2
    except click.UsageError as exc:
        print(f"mngr: error: {one_line(exc.format_message())}", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"mngr: error: {one_line(exc.format_message())}", file=sys.stderr)
        return exc.exit_code
    return result if isinstance(result, int) else 0


def main() -> None:
    """Run mngr as the console script does (see entry.py)."""
    run_and_exit()


def run_and_exit(on_exit: Callable[[], None] | None = None) -> None:
    """Run, then leave at once (exits.leave)."""
    leave(run(), on_exit)
