"""`mngr config get|set|list|path` on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path


def test_set_get_list_path(sandbox) -> None:
    path = sandbox.mngr("config", "path", "--scope", "user")
    assert path.stdout.strip() == str(sandbox.config_dir / "config.toml")
    assert sandbox.mngr("config", "set", "default_agent_type", "command").returncode == 0
    assert sandbox.mngr("config", "set", "agent_types.bot.command", "bot --fast").returncode == 0
    assert sandbox.mngr("config", "get", "default_agent_type").stdout == "command\n"
    assert sandbox.mngr("config", "get", "agent_types.bot.command").stdout == "bot --fast\n"
    listing = sandbox.mngr("config", "list").stdout.splitlines()
    assert "agent_types.bot.command = bot --fast" in listing
    assert "default_provider = local" in listing
    document = json.loads(sandbox.mngr("config", "list", "--format", "json").stdout)
    assert document["agent_types"] == {"bot": {"command": "bot --fast"}}
    # The value set is used: a create with no type gets the configured default.
    created = sandbox.mngr("create", "cfg", "--no-connect", "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    assert "(command)" in created.stdout


def test_project_scope_and_precedence(sandbox) -> None:
    (sandbox.work_dir / ".mngr").mkdir()
    assert sandbox.mngr("config", "set", "default_agent_type", "codex").returncode == 0
    assert sandbox.mngr("config", "set", "--scope", "project", "default_agent_type", "command").returncode == 0
    assert (sandbox.work_dir / ".mngr" / "config.toml").read_text() == 'default_agent_type = "command"\n'
    assert sandbox.mngr("config", "get", "default_agent_type").stdout == "command\n"
    env_wins = sandbox.mngr("config", "get", "default_agent_type", env={"MNGR_DEFAULT_AGENT_TYPE": "claude"})
    assert env_wins.stdout == "claude\n"


def test_config_errors_are_one_line(sandbox) -> None:
    missing = sandbox.mngr("config", "get", "no.such.key")
    assert missing.returncode == 1 and missing.stderr == "mngr: error: no.such.key is not set\n"
    bad_type = sandbox.mngr("config", "set", "default_provider", "7")
    assert bad_type.returncode == 2 and "default_provider must be a str" in bad_type.stderr
    assert not (sandbox.config_dir / "config.toml").exists(), "a rejected value must not be written"
    (sandbox.config_dir).mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text("[broken\n")
    broken = sandbox.mngr("list")
    assert broken.returncode == 1 and broken.stderr.startswith("mngr: error: invalid TOML in ")
    assert broken.stderr.count("\n") == 1
    outside = sandbox.mngr("config", "set", "--scope", "project", "a", "b", cwd=sandbox.root)
    assert outside.returncode == 2 and "not inside a project" in outside.stderr


HAND_WRITTEN = """\
# my settings
default_provider = "local"   # ssh when travelling

agent_quiet_seconds = 15

# bots
[agent_types.bot]
command = "python3 -m bot"  # from ~/src/bot
"""


def _hand_written(sandbox) -> Path:
    sandbox.config_dir.mkdir(exist_ok=True)
    config = sandbox.config_dir / "config.toml"
    config.write_text(HAND_WRITTEN)
    return config


def test_set_and_unset_keep_the_comments_and_layout(sandbox) -> None:
    config = _hand_written(sandbox)
    assert sandbox.mngr("config", "set", "agent_quiet_seconds", "3").returncode == 0
    assert sandbox.mngr("config", "set", "agent_types.bot.description", "mine").returncode == 0
    assert config.read_text() == HAND_WRITTEN.replace("= 15", "= 3") + 'description = "mine"\n'
    unset = sandbox.mngr("config", "unset", "agent_types.bot.description")
    assert unset.returncode == 0 and unset.stdout == f"unset agent_types.bot.description  ({config})\n"
    assert config.read_text() == HAND_WRITTEN.replace("= 15", "= 3")
    assert sandbox.mngr("config", "unset", "agent_types.bot.command").returncode == 0
    assert "[agent_types" not in config.read_text(), "a table left empty goes too"
    missing = sandbox.mngr("config", "unset", "agent_types.bot.command")
    assert missing.returncode == 1 and missing.stderr == f"mngr: error: agent_types.bot.command is not set in {config}\n"


def test_set_refuses_what_the_loader_would_and_leaves_the_file_byte_identical(sandbox) -> None:
    config = _hand_written(sandbox)
    for args, message in [
        (["default_provder", "local"], "unknown config key 'default_provder'"),
        (["agent_quiet_seconds", "soon"], "agent_quiet_seconds must be a number, got 'soon'"),
        (["host_timeout_seconds", "-5"], "host_timeout_seconds must be a number of seconds more than 0"),
        (["trust_work_dirs", "sometimes"], "trust_work_dirs must be one of made, always, never"),
        (["agent_types.bot.colour", "red"], "unknown key agent_types.bot.colour"),
        (["default_agent_type", "nosuch"], "unknown agent type 'nosuch'"),
        (["default_provider", "nosuch"], "unknown provider 'nosuch'"),
        (["agent_quiet_seconds.x", "1"], "agent_quiet_seconds must be a number"),
    ]:
        refused = sandbox.mngr("config", "set", *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert message in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
        assert config.read_text() == HAND_WRITTEN, args


def test_edit_runs_the_editor_on_a_copy_and_refuses_an_invalid_result(sandbox) -> None:
    config = _hand_written(sandbox)
    temp = sandbox.root / "tmp"
    temp.mkdir()
    editor = sandbox.root / "editor.sh"
    # The editor appends what EDIT_LINE says, and records the file it was given.
    editor.write_text('#!/bin/sh\necho "$1" > "$EDITED"\nprintf "%s\\n" "$EDIT_LINE" >> "$1"\n')
    editor.chmod(0o755)
    env = {"EDITOR": str(editor), "VISUAL": "", "TMPDIR": str(temp), "EDITED": str(sandbox.root / "edited")}

    edited = sandbox.mngr("config", "edit", env={**env, "EDIT_LINE": 'description = "mine"'})
    assert edited.returncode == 0 and edited.stdout == f"updated  ({config})\n", edited.stderr
    assert config.read_text() == HAND_WRITTEN + 'description = "mine"\n'
    assert list(temp.iterdir()) == [], "the copy goes once the file is replaced"

    invalid = sandbox.mngr("config", "edit", env={**env, "EDIT_LINE": "colour = 1"})
    assert invalid.returncode == 1 and "unknown key agent_types.bot.colour" in invalid.stderr
    copy = Path((sandbox.root / "edited").read_text().strip())
    assert f"left as it was, your edit is kept in {copy}" in invalid.stderr
    assert copy.read_text().endswith("colour = 1\n"), "what was typed is kept"
    assert config.read_text() == HAND_WRITTEN + 'description = "mine"\n'

    broken = sandbox.mngr("config", "edit", env={**env, "EDIT_LINE": "[unclosed"})
    assert broken.returncode == 1 and "invalid TOML" in broken.stderr
    assert config.read_text() == HAND_WRITTEN + 'description = "mine"\n'

    failed = sandbox.mngr("config", "edit", env={**env, "EDITOR": "false"})
    assert failed.returncode == 1 and "the editor (false) exited with status 1" in failed.stderr
    unchanged = sandbox.mngr("config", "edit", env={**env, "EDITOR": "true"})
    assert unchanged.returncode == 0 and unchanged.stdout.startswith("no changes")

    # VISUAL first, as git does; a project's file with --project.
    (sandbox.work_dir / ".mngr").mkdir()
    project = sandbox.mngr("config", "edit", "--project",
                           env={**env, "VISUAL": str(editor), "EDITOR": "false", "EDIT_LINE": "agent_quiet_seconds = 1"})
    assert project.returncode == 0, project.stderr
    assert (sandbox.work_dir / ".mngr" / "config.toml").read_text().endswith("agent_quiet_seconds = 1\n")


def test_list_and_get_say_where_values_come_from(sandbox) -> None:
    config = _hand_written(sandbox)
    (sandbox.work_dir / ".mngr").mkdir()
    project = sandbox.work_dir / ".mngr" / "config.toml"
    assert sandbox.mngr("config", "set", "--project", "agent_quiet_seconds", "5").returncode == 0
    env = {"MNGR_AGENT_TYPES__BOT__READY_PATTERN": "> "}
    listing = sandbox.mngr("config", "list", "--show-origin", env=env).stdout.splitlines()
    assert f"user:{config}\tdefault_provider = local" in listing
    assert f"project:{project.resolve()}\tagent_quiet_seconds = 5" in listing
    assert "env:MNGR_AGENT_TYPES__BOT__READY_PATTERN\tagent_types.bot.ready_pattern = > " in listing
    assert "default\thost_timeout_seconds = 30.0" in listing
    origin = sandbox.mngr("config", "get", "--show-origin", "agent_quiet_seconds")
    assert origin.stdout == f"project:{project.resolve()}\t5\n"
    assert sandbox.mngr("config", "get", "--user", "agent_quiet_seconds").stdout == "15\n"
    only_user = sandbox.mngr("config", "list", "--user").stdout.splitlines()
    assert only_user == ["agent_quiet_seconds = 15", "agent_types.bot.command = python3 -m bot",
                         "default_provider = local"]
    assert sandbox.mngr("config", "path", "--project").stdout == f"{project.resolve()}\n"
    both = sandbox.mngr("config", "path", "--user", "--project")
    assert both.returncode == 2 and "give one scope" in both.stderr


def test_edit_at_a_terminal_offers_another_edit_of_an_invalid_result(sandbox) -> None:
    from tests.terminal import run_in_pty

    config = _hand_written(sandbox)
    editor = sandbox.root / "editor.sh"
    # First edit: a wrong type; the second, given the same copy, corrects it.
    editor.write_text('#!/bin/sh\nif [ -e "$1.seen" ]; then sed -i "s/= \\"x\\"/= false/" "$1"; rm "$1.seen"\n'
                      'else printf \'resident = "x"\\n\' > "$1.tmp"; cat "$1" >> "$1.tmp"; mv "$1.tmp" "$1"; '
                      'touch "$1.seen"; fi\n')
    editor.chmod(0o755)
    sandbox.env.update(EDITOR=str(editor), VISUAL="", TMPDIR=str(sandbox.root))
    asked = []

    def answer(screen: bytes, terminal: int) -> bool:
        if b"Edit again? [Y/n]" not in screen:
            return False
        asked.append(screen)
        os.write(terminal, b"y\r")
        return True

    status, screen = run_in_pty(sandbox, ["config", "edit"], answer)
    assert asked and b"resident must be a boolean" in asked[0]
    assert status == 0 and b"updated" in screen, screen
    assert config.read_text() == "resident = false\n" + HAND_WRITTEN
