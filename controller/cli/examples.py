"""The examples at the end of every command's ``--help``, kept in one table.

Keys are command paths (``""`` is ``mngr`` itself, ``"snapshot list"`` a subcommand);
each example is a command line and what it does. tests/unit/test_help_examples.py parses
every one with the click definitions (so an option that does not exist fails) and finds it
on the command's page in docs/commands/.
"""

from __future__ import annotations

from collections.abc import Iterable

import click

Example = tuple[str, str]  # (command line, what it does)

EXAMPLES: dict[str, tuple[Example, ...]] = {
    "": (
        ("mngr my-task", "create an agent named my-task (claude, on this machine) and attach to it"),
        ("mngr list --state waiting", "which agents wait for you"),
        ('mngr message my-task "Tell me a joke"', "send an agent a message"),
        ("mngr connect my-task", "attach your terminal to it"),
        ("mngr destroy -f job-1 job-2", "remove agents and what mngr keeps for them"),
    ),
    "create": (
        ("mngr my-task codex", "codex instead of claude (create is the default command)"),
        ("mngr create --name job -t command --no-connect -- python3 train.py --epochs 3",
         "any program as the agent, without attaching"),
        ('mngr create --no-connect --initial-message "Speed up one of my tests"', "start it on a task"),
        ("mngr create far -t command --in ssh --host build-box --no-connect -- make test", "on an SSH host"),
        ("mngr create run-1 -T trainer -T long", "options from two templates of the config"),
    ),
    "list": (
        ("mngr list --state waiting", "who needs you"),
        ("mngr list --include 'state == waiting && idle > 1h' --sort -idle", "filter and sort"),
        ("mngr list --label team=infra --format '{name} {state} {idle_seconds}'", "your own columns"),
        ("mngr list --format jsonl | jq -r 'select(.state==\"DONE\") | .name'", "for scripts"),
    ),
    "connect": (
        ("mngr connect my-task", "attach; detach with Ctrl-b d"),
        ("mngr connect --start my-task", "start it first if it is stopped"),
    ),
    "open": (
        ("mngr open my-task", "its first URL, in your browser"),
        ("mngr open my-task preview", "the URL it declared as preview (mngr create --port 5173:preview)"),
        ("mngr open far-task 8000 --print", "any port it listens on, reachable here; the URL printed"),
        ("mngr open far-task 8000 --print --format json", "for scripts: where it is here and on its host"),
    ),
    "web": (
        ("mngr web", "the dashboard, in your browser, until Ctrl-C"),
        ("mngr web --no-browser --port 8765", "on a port of your choosing; the URL printed"),
    ),
    "stop": (
        ("mngr stop my-task", "one agent"),
        ("mngr stop --include 'labels.team == web && idle > 2h' --dry-run", "what a filter would stop"),
        ("mngr list --ids --include \"name ~ 'job-*'\" | mngr stop -", "the agents a listing selected"),
    ),
    "start": (
        ("mngr start my-task", "a stopped agent, running again"),
        ("mngr start my-task && mngr connect my-task", "and attach to it"),
    ),
    "destroy": (
        ("mngr destroy my-task", "asks first"),
        ("mngr destroy -f job-1 job-2", "without asking"),
        ("mngr destroy --include 'state == done && age > 1d' --dry-run", "what a filter would remove"),
        ("mngr list --ids --include \"name ~ 'tmp-*'\" | mngr destroy -f -", "the agents a listing selected"),
    ),
    "rename": (
        ("mngr rename fix-bug fix-login-bug", "a new name; a running agent goes on running"),
        ("mngr rename web-01@build-box web-frontend", "an agent on a given host"),
        ("mngr rename fix-bug fix-login-bug --format '{old_name} -> {name} on {host}'", "for scripts"),
    ),
    "label": (
        ("mngr label my-agent --add team=web --add tier=1", "set labels"),
        ("mngr label my-agent --remove tier", "drop one"),
        ("mngr label --include \"name ~ 'web-*'\" --add team=web --dry-run", "what a filter would label"),
        ("mngr list --ids --include 'state == waiting' | mngr label - --add review=yes",
         "the agents a listing selected"),
    ),
    "archive": (
        ("mngr archive old-experiment", "stopped, kept, out of mngr list"),
        ("mngr archive --include 'state == done && age > 7d' --dry-run", "what a filter would archive"),
        ("mngr list --ids --include 'labels.sprint == 41' | mngr archive -", "the agents a listing selected"),
        ("mngr list --archived", "the archived agents"),
    ),
    "unarchive": (
        ("mngr unarchive old-experiment && mngr start old-experiment", "back in listings, and running"),
        ("mngr unarchive --include 'labels.team == web' --dry-run", "what a filter would unarchive"),
    ),
    "cleanup": (
        ("mngr cleanup --older-than 7d --dry-run", "what a week-old cleanup would destroy"),
        ("mngr cleanup --idle-for 2h --action stop", "stop agents quiet for two hours"),
        ("mngr cleanup --state done --older-than 1d -y", "destroy finished agents, without asking"),
        ("mngr cleanup --older-than 30d --include 'labels.team == web' -f", "past the lost-work refusal too"),
    ),
    "message": (
        ('mngr message my-task "Tell me a joke"', "send a message to an agent"),
        ('mngr message agent-1 agent-2 -m "rebase on main"', "the same message to two agents"),
        ("git diff | mngr message reviewer --message-file -", "the message from stdin"),
        ("mngr message --include 'state == waiting && labels.team == web' -m \"status?\"", "to every agent selected"),
    ),
    "wait": (
        ('mngr message fixer "run the tests and fix what fails" && mngr wait fixer --for waiting',
         "until the agent is done with its turn"),
        ("mngr wait a b c --for done --timeout 30m", "at most 30 minutes"),
    ),
    "schema": (
        ("mngr schema", "the commands with a schema"),
        ("mngr schema list", "the schema of mngr list --format json"),
        ("mngr schema snapshot list > snapshot-list.schema.json", "a subcommand's, into a file"),
    ),
    "events": (
        ("mngr events --since 1h --format human", "what happened in the last hour"),
        ("mngr events fixer --follow --event state,message_sent", "as it happens, for one agent"),
        ("mngr events --follow -n", "only the notifications"),
    ),
    "transcript": (
        ("mngr transcript my-task", "the conversation so far"),
        ("mngr transcript job -f", "like tail -f"),
        ("mngr transcript my-task --format jsonl | jq -r 'select(.role==\"assistant\") | .text'", "for scripts"),
    ),
    "capture": (
        ("mngr capture my-task", "its screen now"),
        ("mngr capture my-task --full | less", "with the scrollback"),
    ),
    "exec": (
        ('mngr exec my-task "git status"', "in the agent's work dir, on its host"),
        ('mngr exec agent-1 agent-2 "pytest -x" --timeout 600', "on two agents"),
        ("mngr exec --include 'labels.team == web' \"git pull --ff-only\" --on-error abort",
         "on every agent selected, stopping at the first failure"),
    ),
    "limit": (
        ("mngr limit my-task", "show the settings and the idle status"),
        ("mngr limit my-task --idle-timeout 30m", "stop the host's agents after 30 idle minutes"),
        ("mngr limit my-task --idle-mode disabled", "never stop this host by itself"),
        ("mngr limit my-task --log 20", "the watcher's last 20 decisions"),
    ),
    "keepalive": (
        ("mngr keepalive my-task --for 2h", "the host counts as active for two hours"),
    ),
    "snapshot": (
        ("mngr snapshot my-task", "record an agent; prints the snapshot's id"),
        ("mngr snapshot list", "the snapshots on this machine"),
        ('mngr create my-task-2 --snapshot "$id"', "the same agent again, from the id mngr snapshot printed"),
    ),
    "snapshot create": (
        ('mngr snapshot create my-task --format "{id}"', "only the new snapshot's id"),
    ),
    "snapshot list": (
        ("mngr snapshot list", "the snapshots on this machine, newest last"),
    ),
    "snapshot destroy": (
        ('mngr snapshot destroy "$id"', "delete one, by the id mngr snapshot printed"),
    ),
    "clone": (
        ("mngr clone my-task my-task-2", "on the same host"),
        ("mngr clone my-task try-b --in ssh --host gpu-box", "on another host"),
    ),
    "migrate": (
        ("mngr migrate my-task --to-host gpu-box --in ssh", "move an agent to an SSH host"),
    ),
    "push": (
        ("mngr push my-task", "this directory into my-task's work dir"),
        ("mngr push my-task ./src --delete", "exactly ./src's contents"),
        ("mngr push my-task --dry-run", "what would change"),
    ),
    "pull": (
        ("mngr pull my-task", "the agent's work into this directory"),
        ("mngr pull my-task ./review --dry-run", "what would change in ./review"),
    ),
    "pair": (
        ("mngr pair my-task", "this directory and my-task's work dir, both ways, until Ctrl-C"),
        ("mngr pair my-task ./work --conflict local", "on a conflict, your side wins"),
    ),
    "config": (
        ("mngr config set default_agent_type codex", "in your user file"),
        ("mngr config list --show-origin", "every setting, and where it comes from"),
        ("mngr config edit", "in $VISUAL or $EDITOR, checked before it is saved"),
    ),
    "config get": (
        ("mngr config get default_agent_type", "the effective value"),
        ("mngr config get --show-origin agent_quiet_seconds", "and where it comes from"),
        ("mngr config get --project agent_quiet_seconds", "what the project's file says"),
    ),
    "config set": (
        ("mngr config set default_agent_type codex", "in your user file"),
        ('mngr config set agent_types.bot.command "python3 -m bot --verbose"', "a dotted key reaches into tables"),
        ("mngr config set --project agent_quiet_seconds 5", "in the project's .mngr/config.toml"),
    ),
    "config unset": (
        ("mngr config unset default_agent_type", "back to the default"),
        ("mngr config unset --project agent_types.bot.ready_pattern", "from the project's file"),
    ),
    "config list": (
        ("mngr config list", "every effective setting"),
        ("mngr config list --show-origin", "and where each comes from"),
        ("mngr config list --user", "only what your user file sets"),
    ),
    "config edit": (
        ("mngr config edit", "your user file"),
        ("EDITOR=nano mngr config edit --project", "the project's file, in nano"),
    ),
    "config path": (
        ("mngr config path", "both files, with their scope"),
        ("mngr config path --user", "only your user file's path"),
    ),
    "bootstrap": (
        ("mngr bootstrap", "./Dockerfile for this project"),
        ("mngr bootstrap ../api -o api.Dockerfile", "for another project, written here"),
        ("mngr bootstrap --stdout | less", "only look"),
    ),
    "plugin": (
        ("mngr plugin list", "what each plugin adds, and whether it loaded"),
    ),
    "plugin list": (
        ("mngr plugin list", "what each plugin adds, and whether it loaded"),
        ("mngr plugin list --format json | jq -r '.[] | select(.status != \"loaded\") | .name'", "the failed ones"),
    ),
    "completion": (
        ("mngr completion bash", "print bash's completion code"),
        ("mngr completion fish > ~/.config/fish/completions/mngr.fish", "install it for fish"),
    ),
    "schedule": (
        ('mngr schedule --template my-daily-hook "look at any flaky tests and try to fix one" --cron "0 * * * *"',
         "a new agent every hour"),
        ("mngr schedule list", "every schedule, its next and last run"),
    ),
    "schedule add": (
        ('mngr schedule add "summarise yesterday\'s CI failures" --agent reporter --cron "0 9 * * 1-5" --tz Europe/Paris',
         "message an agent every weekday at 9"),
    ),
    "schedule list": (
        ("mngr schedule list", "every schedule, its next and last run"),
    ),
    "schedule log": (
        ("mngr schedule log my-daily-hook --tail 5", "what its runs did"),
    ),
    "schedule remove": (
        ("mngr schedule remove my-daily-hook", "stop running it"),
    ),
    "schedule run": (
        ("mngr schedule run my-daily-hook", "run it now, by hand"),
    ),
    "schedule serve": (
        ("mngr schedule serve", "run the schedules from this terminal, where there is no cron"),
    ),
    "schedule tick": (
        ("mngr schedule tick", "what cron runs every minute"),
    ),
    "ask": (
        ('mngr ask "How do I create a container on modal with custom packages installed by default?"', "ask"),
        ("mngr ask --offline how do I keep syncing my changes with an agent", "from the docs alone"),
    ),
    "gc": (
        ("mngr gc --dry-run", "what would go"),
        ("mngr gc --older-than 0 --in ssh", "every leftover, however new, on SSH hosts only"),
    ),
    "host": (
        ("mngr host list", "every host, asked now, with its state"),
        ("mngr host forget old-box", "stop searching a host that is gone"),
    ),
    "host list": (
        ("mngr host list --in ssh", "the SSH hosts, asked now"),
    ),
    "host forget": (
        ("mngr host forget old-box", "stop searching a host that is gone"),
    ),
    "provision": (
        ("mngr provision far-task --dry-run", "what would change on a remote agent"),
        ("mngr provision far-task --restart", "update it, and restart it to use the change"),
    ),
}


def epilog(path: str) -> str | None:
    """The Examples block for ``mngr PATH --help``, as click prints an epilog (``\\b``
    keeps each example's lines as they are)."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    blocks = [f"\b\n  # {note[:1].upper()}{note[1:]}\n  {line}" for line, note in examples]
    return "\b\nExamples:" + blocks[0].removeprefix("\b") + "".join(f"\n\n{block}" for block in blocks[1:])


def attach(command: click.Command, path: str) -> None:
    """Give ``command`` and its subcommands their examples (once; a command that has an
    epilog of its own, as a plugin's may, keeps it)."""
    if command.epilog is None:
        command.epilog = epilog(path) or ""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach(sub, f"{path} {name}".strip())


def paths(command: click.Command, path: str = "") -> Iterable[tuple[str, click.Command]]:
    """Every command under ``command``, with its path."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from paths(sub, f"{path} {name}".strip())
