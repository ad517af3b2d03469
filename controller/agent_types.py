"""Agent types: what command an agent runs and how mngr talks to it.

Built in: ``command`` (runs the words after ``--``), ``claude`` and ``codex`` (their CLIs,
with the words after ``--`` passed through). Users add their own in config:

    [agent_types.my-bot]
    command = "python3 -m my_bot --verbose"   # shell words; arguments after -- are appended
    ready_pattern = "ready>"                   # optional: regex on screen meaning "ready"

An interactive CLI that keeps a session log gets an ``Interaction`` (docs/plugins.md): how
its screen shows that it takes input or holds a dialog, where its session log is, and how
its conversation is resumed. With one, a message is pasted, submitted and confirmed in the
session log; without one it is typed and Enter pressed, as into any program.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import agent_urls
from .errors import ConfigError, UsageError
from .plugin_spec import hookimpl


@dataclass(frozen=True)
class Dialog:
    """Something on the agent's screen that holds it until a person answers."""

    reason: str  # shown as the agent's waiting reason: "permission", "trust", "api-key", ...
    pattern: str  # a regex (multi-line mode) that finds the dialog on the screen
    detail: str = ""  # a regex whose first group is what the dialog asks (shown with the reason)


@dataclass(frozen=True)
class Launch:
    """The command lines of one agent: its first run, and later runs of the same conversation."""

    command: str
    session_id: str = ""  # known in advance ("" if the CLI picks it: see Interaction.session_file)
    resume_command: str = ""  # "{session_id}" in it stands for the session; "" if it cannot resume
    restart_command: str = ""  # a later run before any conversation was logged ("": the command)


@dataclass(frozen=True)
class Interaction:
    """How to tell what an interactive agent CLI is doing, and where it logs its conversation.

    ``config_dir`` (with ``~`` for the agent's home, overridden by the agent's environment
    variable ``config_dir_env`` when set) holds the session logs, which ``session_log`` (a
    glob with ``{session_id}``) finds. For a CLI that picks its own session id,
    ``session_file`` is a regex on a log's path whose first group is the id: the agent's log
    is then the one written since it started that names its work dir and holds the message
    just sent (remote_helper/conversation.py).
    """

    ready_pattern: str  # the screen shows the agent's input box
    busy_pattern: str = ""  # the screen shows it working on a turn
    dialogs: tuple[Dialog, ...] = ()
    config_dir: str = ""
    config_dir_env: str = ""
    session_log: str = ""
    session_file: str = ""
    # Where its CLI records that a folder is trusted (remote_helper/trust.py); None: mngr cannot.
    trust: Mapping[str, Any] | None = None
    # Its flags that take a value (so that "--model opus" is not read as a prompt "opus").
    value_flags: frozenset[str] = field(default_factory=frozenset)
    # What it shows when a slash command sent to it is none of its own (a regex on its screen).
    unknown_command: str = ""
    # Whose config format it reads ("claude", "codex"): on a host other than the user's own,
    # mngr gives the agent a config dir of its own in that format (controller/agent_config.py).
    config_kind: str = ""

    def wire(self, launch: Launch, trusted: bool = False) -> dict[str, Any]:
        """What the helper keeps in the agent's record (CreateAgent.interaction); ``trusted``:
        mark the work dir trusted in the CLI's config before it starts."""
        return {
            "ready_pattern": self.ready_pattern,
            "busy_pattern": self.busy_pattern,
            "unknown_command": self.unknown_command,
            "dialogs": [[dialog.reason, dialog.pattern, dialog.detail] for dialog in self.dialogs],
            "config_dir": self.config_dir,
            "config_dir_env": self.config_dir_env,
            "session_log": self.session_log,
            "session_file": self.session_file,
            "session_id": launch.session_id,
            "resume_command": launch.resume_command,
            "restart_command": launch.restart_command,
            "trust": dict(self.trust) if self.trust is not None else None,
            "trusted": trusted and self.trust is not None,
        }

    def flags_only(self, args: Sequence[str]) -> list[str]:
        """``args`` without the prompt words: what a later run of the same conversation keeps."""
        kept: list[str] = []
        words = iter(args)
        for word in words:
            if word == "--":
                break
            if word.startswith("-"):
                kept.append(word)
                value = next(words, None) if word in self.value_flags else None
                if value is not None:
                    kept.append(value)
        return kept


# How mngr gets an agent type's CLI onto a remote host (controller/cli_supply.py): "auto"
# the host's own if at least the user's version, else a copy of the user's; "copy" always
# the user's; "host" never provided (the host's own PATH decides).
CLI_MODES = ("auto", "copy", "host")


@dataclass(frozen=True)
class AgentType:
    name: str
    base_command: str
    description: str = ""
    ready_pattern: str | None = None
    ready_quiet_seconds: float = 1.0
    interaction: Interaction | None = None
    # The agent CLI mngr can provide on a remote host ("claude", "codex"; "" none) and how
    # (the ``cli`` setting: controller/cli_supply.py).
    cli_program: str = ""
    cli: str = "auto"
    # The ports its agents serve, as ``mngr create --port`` takes them ("8888:notebook").
    ports: tuple[str, ...] = ()

    def launch(self, args: Sequence[str]) -> Launch:
        """The agent's command lines; types with a conversation to resume override this."""
        return Launch(self.command_line(args))

    def relaunch(self, command: str) -> Launch:
        """Command lines for a new agent made from another's ``command`` (a clone, a snapshot):
        the same arguments, in a conversation of its own."""
        try:
            words = shlex.split(command)
        except ValueError:
            return Launch(command)
        base = shlex.split(self.base_command) if self.base_command else []
        if not base or words[: len(base)] != base:
            return Launch(command)
        return self.launch(self.own_arguments(words[len(base):]))

    def own_arguments(self, args: Sequence[str]) -> list[str]:
        """``args`` without what ``launch`` added to the user's."""
        return list(args)

    def command_line(self, args: Sequence[str]) -> str:
        """The shell command line that starts the agent with the user's extra arguments."""
        words = [shlex.quote(arg) for arg in args]
        if not self.base_command:
            if not words:
                raise UsageError(f"agent type {self.name!r} needs a command after '--'")
            return " ".join(words)
        return " ".join([self.base_command, *words])

    def binary(self, args: Sequence[str]) -> str | None:
        """The program that must exist on the host, or None if it cannot be told in advance."""
        if self.base_command:
            try:
                words = shlex.split(self.base_command)
            except ValueError:
                return None
            first = words[0] if words else None
        else:
            first = args[0] if args else None
        if first is None or "=" in first or any(char in first for char in "$`;&|<>(){}"):
            return None
        return first


_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# What Claude Code 2.1 shows (docs/agent-clis.md has the dialogs' full text). Its prompt
# character is U+276F, Codex's U+203A; both are followed by a no-break space.
CLAUDE_INTERACTION = Interaction(
    ready_pattern=r"^─{20,}\n\u276f(?:\s|$)",
    busy_pattern=r"esc to interrupt",
    dialogs=(
        Dialog("trust", r"Yes, I trust this folder|Do you trust the files in this folder", r"Accessing workspace:\s*(\S+)"),
        Dialog("api-key", r"Do you want to use this API key\?", r"(ANTHROPIC_API_KEY: \S+)"),
        Dialog("bypass-permissions", r"Bypass Permissions mode", r"(Bypass Permissions mode)"),
        Dialog("permission", r"^\s*Do you want to [^\n]*\?\s*\n\s*\u276f?\s*1\. Yes",
               r"─{20,}\n((?:(?!─{20,})[^\n]*\n)*?)\s*Do you want to"),
        Dialog("login", r"Select login method|Not logged in · (?:Please )?[Rr]un /login", r"(Not logged in)"),
        Dialog("onboarding", r"Choose the text style|Let's get started", ""),
    ),
    config_dir="~/.claude",
    config_dir_env="CLAUDE_CONFIG_DIR",
    trust={"kind": "json", "file": "~/.claude.json", "dir_env": "CLAUDE_CONFIG_DIR", "dir_file": ".claude.json",
           "keys": ["projects", "{work_dir}", "hasTrustDialogAccepted"]},
    session_log="projects/*/{session_id}.jsonl",
    unknown_command=r"Unknown command: /[^\s.]+[^\n]*",
    config_kind="claude",
    value_flags=frozenset({
        "--model", "--fallback-model", "--permission-mode", "--allowedTools", "--allowed-tools",
        "--disallowedTools", "--disallowed-tools", "--tools", "--append-system-prompt", "--system-prompt",
        "--add-dir", "--mcp-config", "--settings", "--setting-sources", "--agents", "--agent",
        "--output-format", "--input-format", "--plugin-dir", "--betas", "--effort", "--debug-file",
    }),
)

# What Codex CLI 0.171 shows.
CODEX_INTERACTION = Interaction(
    ready_pattern=r"^\u203a(?:\s|$)",
    busy_pattern=r"esc to interrupt",
    dialogs=(
        Dialog("trust", r"Trust this folder\?|Do you trust the contents of this directory", r"Folder access\s*\n\s*(\S+)"),
        Dialog("login", r"Sign in with ChatGPT", ""),
        Dialog("permission", r"Would you like to (?:run|make|apply)[^\n]*\?|Allow command\?", r"\$ ([^\n]+)"),
    ),
    config_dir="~/.codex",
    config_dir_env="CODEX_HOME",
    trust={"kind": "toml", "file": "~/.codex/config.toml", "dir_env": "CODEX_HOME", "dir_file": "config.toml",
           "table": "projects.{work_dir}", "key": "trust_level", "value": "trusted"},
    session_log="sessions/*/*/*/rollout-*-{session_id}.jsonl",
    session_file=r"/rollout-[^/]*-(" + _UUID + r")\.jsonl$",
    unknown_command=r"Unrecognized command '/[^']+'[^\n]*",
    config_kind="codex",
    value_flags=frozenset({
        "-m", "--model", "-c", "--config", "-p", "--profile", "-s", "--sandbox", "-a", "--ask-for-approval",
        "-C", "--cd", "-i", "--image", "--add-dir", "--local-provider", "--enable", "--disable",
    }),
)

# Arguments with which the user manages the conversation themselves.
_CLAUDE_SESSION_FLAGS = frozenset({"--session-id", "--resume", "-r", "--continue", "-c", "--fork-session",
                                   "-p", "--print"})


@dataclass(frozen=True)
class ClaudeAgentType(AgentType):
    def launch(self, args: Sequence[str]) -> Launch:
        assert self.interaction is not None
        if any(arg.split("=", 1)[0] in _CLAUDE_SESSION_FLAGS for arg in args):
            return Launch(self.command_line(args))
        session_id = str(uuid.uuid4())
        flags = self.interaction.flags_only(args)
        return Launch(
            self.command_line(["--session-id", session_id, *args]),
            session_id=session_id,
            resume_command=self.command_line(["--resume", session_id, *flags]),
            restart_command=self.command_line(["--session-id", session_id, *flags]),
        )


    def own_arguments(self, args: Sequence[str]) -> list[str]:
        kept = list(args)
        if kept[:1] == ["--session-id"]:
            del kept[:2]
        return kept


_CODEX_SUBCOMMANDS = frozenset({"exec", "e", "resume", "fork", "review", "login", "logout", "mcp", "apply"})


@dataclass(frozen=True)
class CodexAgentType(AgentType):
    def launch(self, args: Sequence[str]) -> Launch:
        assert self.interaction is not None
        if args and args[0] in _CODEX_SUBCOMMANDS:  # not the interactive CLI, or a session of the user's
            return Launch(self.command_line(args))
        flags = self.interaction.flags_only(args)
        # The session id placeholder is filled in on the host, once the CLI has chosen it.
        resume = self.command_line(["resume", *flags]) + " {session_id}"
        return Launch(self.command_line(args), resume_command=resume, restart_command=self.command_line(flags))


BUILTIN_AGENT_TYPES = [
    AgentType("command", "", "runs the command given after --"),
    ClaudeAgentType("claude", "claude", "Claude Code", ready_quiet_seconds=2.0, interaction=CLAUDE_INTERACTION,
                    cli_program="claude"),
    CodexAgentType("codex", "codex", "OpenAI Codex CLI", ready_quiet_seconds=2.0, interaction=CODEX_INTERACTION,
                   cli_program="codex"),
]


def interaction_for(agent_types: Mapping[str, AgentType], type_name: str, launch: Launch,
                    trusted: bool = False) -> dict[str, Any] | None:
    """What the helper keeps for an agent of ``type_name`` run by ``launch`` (None: plain typing)."""
    agent_type = agent_types.get(type_name)
    if agent_type is None or agent_type.interaction is None:
        return None
    return agent_type.interaction.wire(launch, trusted)


@hookimpl
def mngr_agent_types() -> list[AgentType]:
    return list(BUILTIN_AGENT_TYPES)


def from_config(name: str, section: Any, known: Mapping[str, AgentType] | None = None) -> AgentType:
    """The agent type an ``[agent_types.NAME]`` table describes.

    A table named after a known type (``claude``), or with ``like = "claude"``, keeps that
    type's way of talking to its CLI (dialogs, session log, resume) with its own command; an
    ``[agent_types.NAME.interaction]`` table gives a CLI of its own one (docs/configuration.md).
    """
    known = known or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"agent_types.{name} must be a table with a 'command' key")
    like = section.get("like", name if name in known else None)
    command = section.get("command")
    if command is None and like in known and "interaction" not in section:
        command = known[like].base_command  # a known type's settings alone (cli = ...)
    if not isinstance(command, str) or not command.strip():
        raise ConfigError(f"agent_types.{name}.command must be a non-empty string")
    ready_pattern = section.get("ready_pattern")
    if ready_pattern is not None and not isinstance(ready_pattern, str):
        raise ConfigError(f"agent_types.{name}.ready_pattern must be a string")
    quiet = section.get("ready_quiet_seconds", 1.0)
    if not isinstance(quiet, int | float):
        raise ConfigError(f"agent_types.{name}.ready_quiet_seconds must be a number")
    if like is not None and like not in known:
        raise ConfigError(f"agent_types.{name}.like: unknown agent type {like!r} (known: {', '.join(sorted(known))})")
    cli = section.get("cli", "auto")
    if cli not in CLI_MODES:
        raise ConfigError(f"agent_types.{name}.cli must be one of {', '.join(CLI_MODES)}, not {cli!r}")
    ports = section.get("ports", [])
    if not isinstance(ports, list) or not all(isinstance(port, str | int) for port in ports):
        raise ConfigError(f"agent_types.{name}.ports must be a list of \"PORT[:NAME]\" strings")
    try:
        agent_urls.parse_ports([str(port) for port in ports], f"agent_types.{name}.ports")
    except UsageError as exc:
        raise ConfigError(str(exc)) from exc
    fields = {"name": name, "base_command": command.strip(), "description": section.get("description", ""),
              "ready_pattern": ready_pattern, "ready_quiet_seconds": float(quiet), "cli": cli,
              "ports": tuple(str(port) for port in ports)}
    if "interaction" in section:
        return AgentType(**fields, interaction=_interaction_from_config(name, section["interaction"]))
    if like is not None:
        base = known[like]
        if "ready_pattern" not in section:
            fields["ready_pattern"] = base.ready_pattern
        if "ready_quiet_seconds" not in section:
            fields["ready_quiet_seconds"] = base.ready_quiet_seconds
        if "description" not in section:
            fields["description"] = base.description
        if "ports" not in section:
            fields["ports"] = base.ports
        return replace(base, **fields)
    return AgentType(**fields)


def _interaction_from_config(name: str, table: Any) -> Interaction:
    prefix = f"agent_types.{name}.interaction"
    if not isinstance(table, Mapping) or not isinstance(table.get("ready_pattern"), str):
        raise ConfigError(f"{prefix} must be a table with a 'ready_pattern' (a regex for the input box)")
    texts = {}
    for key in ("ready_pattern", "busy_pattern", "config_dir", "config_dir_env", "session_log", "session_file"):
        value = table.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{prefix}.{key} must be a string")
        texts[key] = value
    unknown = set(table) - {*texts, "dialogs"}
    if unknown:
        raise ConfigError(f"{prefix}: unknown key {sorted(unknown)[0]} (known: dialogs, {', '.join(sorted(texts))})")
    dialogs = []
    for index, dialog in enumerate(table.get("dialogs", [])):
        if not isinstance(dialog, Mapping) or not all(isinstance(dialog.get(key), str) for key in ("reason", "pattern")):
            raise ConfigError(f"{prefix}.dialogs[{index}] must be a table with 'reason' and 'pattern' strings")
        dialogs.append(Dialog(dialog["reason"], dialog["pattern"], str(dialog.get("detail", ""))))
    for key, pattern in [*((key, texts[key]) for key in ("ready_pattern", "busy_pattern", "session_file")),
                         *((f"dialogs[{index}]", dialog.pattern) for index, dialog in enumerate(dialogs))]:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{prefix}.{key}: invalid regex {pattern!r}: {exc}") from exc
    return Interaction(
        ready_pattern=texts["ready_pattern"], busy_pattern=texts["busy_pattern"], dialogs=tuple(dialogs),
        config_dir=texts["config_dir"], config_dir_env=texts["config_dir_env"], session_log=texts["session_log"],
        session_file=texts["session_file"],
    )
