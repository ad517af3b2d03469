"""Text someone typed into an agent's input box and did not send, told from the placeholder
an empty box shows, on screens as the real CLIs draw them (capture-pane -e)."""

from __future__ import annotations

from mngr.controller.agent_types import CLAUDE_INTERACTION, CODEX_INTERACTION
from mngr.remote_helper.conversation import command_word, typed_draft

RULE = "\x1b[38;5;244m" + "─" * 60 + "\n"
CLAUDE_HISTORY = "\x1b[38;5;239m\x1b[48;5;237m\u276f \x1b[38;5;231mhello first\x1b[39m\n\n● heard: hello first\n\n"
CLAUDE_FOOTER = "\x1b[0m\x1b[38;5;244m\x1b[49m" + "─" * 60 + "\n\x1b[39m  \x1b[38;5;246m?\x1b[39m for shortcuts\n"
CODEX_HEADER = "  \x1b[38;5;75m>_ \x1b[1m\x1b[39mOpenAI Codex\x1b[0;2m\x1b[39m\x1b[49m (v0.171.0)\n\x1b[0m\n"
CODEX_HISTORY = "\x1b[1;2m\u203a \x1b[0m\x1b[38;5;255m\x1b[48;5;238mhello first\n\n\x1b[39m\x1b[49m\n\x1b[2m• \x1b[0mheard: hello first\n\n"
CODEX_FOOTER = "\n  \x1b[38;5;223mgpt-5-codex default\x1b[39m · \x1b[38;5;151m/work\n\x1b[39m"


def _claude(box: str) -> str:
    return typed_draft(CLAUDE_HISTORY + RULE + box + CLAUDE_FOOTER, {"ready_pattern": CLAUDE_INTERACTION.ready_pattern})


def _codex(box: str) -> str:
    return typed_draft(CODEX_HEADER + CODEX_HISTORY + box + CODEX_FOOTER, {"ready_pattern": CODEX_INTERACTION.ready_pattern})


def test_an_empty_box_holds_no_draft() -> None:
    assert _claude("\x1b[39m\u276f\xa0\x1b[7m\n") == ""
    assert _codex("\x1b[1m\u203a\x1b[0m\x1b[39m\x1b[49m\n") == ""


def test_a_placeholder_drawn_dim_is_no_draft() -> None:
    assert _codex("\x1b[1m\u203a\x1b[0m\x1b[39m\x1b[49m \x1b[2mAsk Codex to do anything\n\x1b[0m") == ""
    assert _claude('\x1b[39m\u276f\xa0\x1b[7mT\x1b[0m\x1b[2mry "fix lint errors"\x1b[22m\n') == "T"  # the cursor on its first letter
    assert _claude('\x1b[39m\u276f\xa0\x1b[2mTry "fix lint errors"\x1b[22m\n') == ""


def test_typed_text_is_the_draft_and_past_prompts_are_not() -> None:
    assert _claude("\x1b[39m\u276f\xa0fix the\x1b[7m \x1b[0m\x1b[39m\x1b[49m\n") == "fix the"
    assert _codex("\x1b[1m\u203a\x1b[0m\x1b[39m\x1b[49m fix the\n") == "fix the"
    assert _codex("\x1b[1m\u203a\x1b[0m\x1b[39m\x1b[49m   \n") == ""  # only spaces: nothing a message would run into


def test_a_colour_numbered_two_is_not_dim() -> None:
    assert _codex("\x1b[1m\u203a\x1b[0m \x1b[38;5;2mfix\x1b[39m \x1b[38;2;2;2;2mthe\n") == "fix the"
    assert _codex("\x1b[1m\u203a\x1b[0m \x1b[1;2mdim\x1b[22m typed\n") == "typed"


def test_a_screen_without_the_box_or_with_a_bad_pattern_has_no_draft() -> None:
    assert typed_draft("Loading...\n", {"ready_pattern": CODEX_INTERACTION.ready_pattern}) == ""
    assert typed_draft("\u203a text\n", {"ready_pattern": "(unclosed"}) == ""
    assert typed_draft("\u203a text\n", {}) == ""


def test_a_slash_command_is_one_line_starting_with_its_name() -> None:
    assert command_word("/compact") == "/compact"
    assert command_word("  /review src/app.py please\n") == "/review"
    assert command_word("/plugin:do-it x") == "/plugin:do-it"
    assert command_word("/tmp/foo.txt is broken") is None  # a path: a message for the model
    assert command_word("/compact\nand more") is None
    assert command_word("please /compact") is None
    assert command_word("/") is None
