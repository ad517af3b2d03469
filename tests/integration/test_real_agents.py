"""The real claude and codex CLIs, driven through mngr against the model stand-in.

Every assertion about a message is made at the model: what the stand-in received, byte for
byte, not what mngr printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import AgentUser, wait_for

BOTH = pytest.mark.parametrize("agent_type", ["claude", "codex"])


def _with_screen(user: AgentUser, name: str, error: str) -> str:
    """A failure's error with the agent's screen, which shows what the CLI was doing."""
    return f"{error}\n--- screen of {name}:\n{user.sandbox.mngr('capture', name).stdout}"


def _create(user: AgentUser, name: str, agent_type: str, *args: str, cwd: Path | None = None) -> None:
    result = user.sandbox.mngr("create", name, "-t", agent_type, "--no-connect", *args, timeout=120, cwd=cwd)
    assert result.returncode == 0, result.stderr


def _message(user: AgentUser, name: str, text: str) -> None:
    result = user.sandbox.mngr("message", name, "--message-file", "-", input=text, timeout=120)
    assert result.returncode == 0, _with_screen(user, name, result.stderr)
    assert result.stdout.startswith(f"sent message to {name}"), result.stdout


def _agent(user: AgentUser, name: str) -> dict:
    listed = json.loads(user.sandbox.mngr("list", "--format", "json").stdout)
    (agent,) = [agent for agent in listed["agents"] if agent["name"] == name]
    return agent


@BOTH
def test_messages_of_every_size_and_kind_reach_the_model_byte_exact(agent_user: AgentUser, agent_type: str) -> None:
    _create(agent_user, "talker", agent_type)
    long_line = "a line of sixty-three characters or more, which a CLI takes for a paste!!"
    ten_kb = "\n".join(f"line {number}: 'single' \"double\" $(no) `no` \\ ünï ✓ {'z' * 40}" for number in range(130))
    hundred_kb = "\n".join(f"{number:05d} " + "y" * 94 for number in range(1000))
    for text in ["x", long_line, "two\nlines with 'quotes' \"double\" $(echo no) `echo no` and ünïcødé ✓",
                 ten_kb, hundred_kb]:
        _message(agent_user, "talker", text)
        # Taken by the agent (its session log has it) comes a moment before the model hears of it.
        wait_for(lambda text=text: agent_user.standin.received(text), f"{text[:40]!r} at the model")


@BOTH
def test_the_initial_message_is_submitted_right_after_create(agent_user: AgentUser, agent_type: str) -> None:
    text = "the very first message, long enough to be taken for a paste by a TUI that is starting"
    _create(agent_user, "starter", agent_type, "--initial-message", text)
    wait_for(lambda: agent_user.standin.received(text), "the initial message at the model")
    assert agent_user.standin.times_sent(text) == 1


@BOTH
def test_a_message_to_a_busy_agent_is_taken_and_reaches_the_model(agent_user: AgentUser, agent_type: str) -> None:
    _create(agent_user, "busy", agent_type)
    _message(agent_user, "busy", "STANDIN-SLOW: 4 think for a while")
    assert _agent(agent_user, "busy")["state"] == "RUNNING"
    _message(agent_user, "busy", "and this, while you are busy")
    wait_for(lambda: agent_user.standin.received("and this, while you are busy"), "the queued message at the model",
             timeout=60)
    _message(agent_user, "busy", "STANDIN-SLOW: 4 think again")
    long_text = "\n".join(f"a long line {number} of a message sent while the agent works" for number in range(60))
    _message(agent_user, "busy", long_text)
    wait_for(lambda: agent_user.standin.received(long_text), "the long queued message at the model", timeout=60)


@BOTH
def test_a_message_never_joins_text_someone_typed_and_did_not_send(agent_user: AgentUser, agent_type: str) -> None:
    """Someone attached to the agent typed into its box: a message pasted there would go as one
    with their text. It is refused, their text left as it was; once it is gone, it goes."""
    _create(agent_user, "typed", agent_type)
    _message(agent_user, "typed", "first, with nobody typing")
    pane = "=mngr-typed:^"
    agent_user.sandbox.tmux("send-keys", "-t", pane, "-l", "half a thought")
    wait_for(lambda: "half a thought" in agent_user.sandbox.mngr("capture", "typed").stdout, "the draft on screen")
    refused = agent_user.sandbox.mngr("message", "typed", "run the tests", timeout=120)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "mngr: error: message typed: agent 'typed' has text typed into its input box and not sent ('half a thought'), "
        "which mngr neither adds to nor clears: send or clear it with `mngr connect typed`"]
    assert "half a thought" in agent_user.sandbox.mngr("capture", "typed").stdout
    assert not any("run the tests" in text or "half a thought" in text for text in agent_user.standin.received_texts())
    agent_user.sandbox.tmux("send-keys", "-t", pane, *["BSpace"] * len("half a thought"))
    wait_for(lambda: "half a thought" not in agent_user.sandbox.mngr("capture", "typed").stdout, "the draft cleared")
    _message(agent_user, "typed", "run the tests")
    wait_for(lambda: agent_user.standin.received("run the tests"), "the message at the model")


@BOTH
def test_a_slash_command_is_run_by_the_cli_and_reported_sent(agent_user: AgentUser, agent_type: str) -> None:
    """A command is the CLI's, not the model's: Claude logs it as a record of its own, Codex not
    at all; it counts as sent once it left the input box without the CLI saying it has none
    such. One it has none of is an error, and mngr's text does not stay in the box."""
    _create(agent_user, "commanded", agent_type)
    _message(agent_user, "commanded", "something to compact")
    wait_for(lambda: agent_user.standin.received("something to compact"), "the first message at the model")
    _message(agent_user, "commanded", "/compact")
    # Claude, with one exchange, has "Not enough messages to compact": the command ran all the same.
    ran = ("Compacted", "Not enough messages to compact") if agent_type == "claude" else ("Context compacted",)
    try:
        wait_for(lambda: any(outcome in agent_user.sandbox.mngr("capture", "commanded").stdout for outcome in ran),
                 "the command's outcome")
    except AssertionError as exc:
        raise AssertionError(_with_screen(agent_user, "commanded", str(exc))) from None
    refused = agent_user.sandbox.mngr("message", "commanded", "/nosuchcommand now", timeout=120)
    assert refused.returncode != 0
    (line,) = refused.stderr.strip().splitlines()
    assert "'commanded' has no command /nosuchcommand (it says: " in line, line
    _message(agent_user, "commanded", "and a message after them")  # a leftover in the box would refuse it
    wait_for(lambda: agent_user.standin.received("and a message after them"), "the last message at the model")
    assert not any("nosuchcommand" in text for text in agent_user.standin.received_texts())


def test_a_permission_prompt_is_shown_and_never_answered_by_a_message(agent_user: AgentUser) -> None:
    marker = agent_user.sandbox.work_dir / "ran.txt"
    _create(agent_user, "asker", "claude")
    _message(agent_user, "asker", f"STANDIN-TOOL: echo ran > {marker}")
    agent = wait_for(lambda: (found := _agent(agent_user, "asker"))["waiting_reason"] == "permission" and found,
                     "the permission prompt in the listing")
    assert agent["state"] == "WAITING"
    assert f"echo ran > {marker}" in agent["waiting_detail"]
    table = agent_user.sandbox.mngr("list").stdout
    assert "WAITING (permission)" in table
    refused = agent_user.sandbox.mngr("message", "asker", "no, don't run that", timeout=120)
    assert refused.returncode != 0
    assert "permission" in refused.stderr and "mngr connect asker" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    captured = agent_user.sandbox.mngr("capture", "asker")
    assert "Do you want to proceed?" in captured.stdout
    assert "waiting on a permission dialog" in captured.stderr
    assert not marker.exists()
    assert not agent_user.standin.received("no, don't run that")


@BOTH
def test_an_untrusted_work_dir_fails_a_create_that_must_send(agent_user: AgentUser, agent_type: str) -> None:
    untrusted = agent_user.sandbox.root / "untrusted"
    untrusted.mkdir()
    if agent_type == "codex":  # Codex asks only about git repositories
        os.system(f"git init -q {untrusted}")
    result = agent_user.sandbox.mngr("create", "stranger", "-t", agent_type, "--no-connect", "--work-dir",
                                     str(untrusted), "--initial-message", "hello", timeout=120)
    assert result.returncode != 0
    assert "trust" in result.stderr, result.stderr
    assert _agent(agent_user, "stranger")["waiting_reason"] == "trust"
    assert not agent_user.standin.received("hello")


@BOTH
def test_stop_then_start_resumes_the_same_conversation(agent_user: AgentUser, agent_type: str) -> None:
    _create(agent_user, "keeper", agent_type)
    _message(agent_user, "keeper", "remember the word alpha")
    assert agent_user.sandbox.mngr("stop", "keeper").returncode == 0
    assert agent_user.sandbox.mngr("start", "keeper").returncode == 0
    _message(agent_user, "keeper", "which word?")
    (last, *_) = wait_for(lambda: [exchange for exchange in agent_user.standin.conversation_requests()
                                   if exchange.user_texts()[-1:] == ["which word?"]], "the second turn at the model")
    assert "remember the word alpha" in last.user_texts()  # the earlier turn is in the history sent


@BOTH
def test_a_prompt_given_as_arguments_is_not_sent_again_on_start(agent_user: AgentUser, agent_type: str) -> None:
    prompt = "the prompt from the command line"
    _create(agent_user, "prompted", agent_type, "--", prompt)
    wait_for(lambda: agent_user.standin.received(prompt), "the prompt at the model", timeout=60)
    assert agent_user.sandbox.mngr("stop", "prompted").returncode == 0
    assert agent_user.sandbox.mngr("start", "prompted").returncode == 0
    _message(agent_user, "prompted", "after the restart")
    wait_for(lambda: agent_user.standin.received("after the restart"), "the message after the restart")
    assert agent_user.standin.times_sent(prompt) == 1


@BOTH
def test_the_transcript_is_this_agents_own_conversation_in_order(agent_user: AgentUser, agent_type: str) -> None:
    _create(agent_user, "first", agent_type)
    _create(agent_user, "second", agent_type)  # the same work dir
    _message(agent_user, "first", "question one")
    _message(agent_user, "second", "a question of the second agent")
    _message(agent_user, "first", "question two")
    shown = json.loads(agent_user.sandbox.mngr("transcript", "first", "--format", "json").stdout)
    turns = [(entry["role"], entry["text"]) for entry in shown["entries"]]
    assert turns == [("user", "question one"), ("assistant", "heard: question one"),
                     ("user", "question two"), ("assistant", "heard: question two")]


def test_the_transcript_is_found_whatever_the_work_dirs_path(agent_user: AgentUser) -> None:
    real = agent_user.sandbox.root / "ünïcødé dir" / ("long" * 30) / ("longer" * 20)  # over 200 characters
    real.mkdir(parents=True)
    link = agent_user.sandbox.root / "through-a-link"
    link.symlink_to(real)
    from tests import agent_clis

    agent_clis.set_up_home(agent_user.home, agent_user.standin, trusted=[agent_user.sandbox.work_dir, real])
    _create(agent_user, "faraway", "claude", "--work-dir", str(link))
    _message(agent_user, "faraway", "from a strange place")
    shown = agent_user.sandbox.mngr("transcript", "faraway")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["user: from a strange place", "assistant: heard: from a strange place"]


@BOTH
def test_trusting_the_work_dir_is_explicit_and_then_the_cli_does_not_ask(agent_user: AgentUser,
                                                                         agent_type: str) -> None:
    untrusted = agent_user.sandbox.root / "untrusted"
    untrusted.mkdir()
    os.system(f"git init -q {untrusted}")  # Codex asks only about git repositories
    claude_config = json.loads((agent_user.home / ".claude.json").read_text())
    result = agent_user.sandbox.mngr("create", "trusting", "-t", agent_type, "--no-connect", "--work-dir",
                                     str(untrusted), "--trust-work-dir", "--initial-message", "hello", timeout=120)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: agent_user.standin.received("hello"), "the message at the model")
    if agent_type == "claude":
        after = json.loads((agent_user.home / ".claude.json").read_text())
        assert after["projects"][str(untrusted.resolve())]["hasTrustDialogAccepted"] is True
        assert after["customApiKeyResponses"] == claude_config["customApiKeyResponses"]  # the rest is kept
    else:
        assert f'[projects."{untrusted.resolve()}"]' in (agent_user.home / ".codex" / "config.toml").read_text()


def test_a_work_dir_mngr_made_from_source_is_trusted_by_default(agent_user: AgentUser) -> None:
    source = agent_user.sandbox.root / "project"
    source.mkdir()
    (source / "README").write_text("a project\n")
    result = agent_user.sandbox.mngr("create", "copied", "-t", "claude", "--no-connect", "--source", str(source),
                                     "--initial-message", "look at the README", timeout=120)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: agent_user.standin.received("look at the README"), "the message at the model")


def test_claude_asking_about_the_api_key_is_reported_not_answered(agent_user: AgentUser) -> None:
    config = json.loads((agent_user.home / ".claude.json").read_text())
    del config["customApiKeyResponses"]
    (agent_user.home / ".claude.json").write_text(json.dumps(config))
    result = agent_user.sandbox.mngr("create", "keyed", "-t", "claude", "--no-connect", "--initial-message", "hi",
                                     timeout=120)
    assert result.returncode != 0
    assert "api-key" in result.stderr, result.stderr
    agent = _agent(agent_user, "keyed")
    assert (agent["state"], agent["waiting_reason"]) == ("WAITING", "api-key")
    after = json.loads((agent_user.home / ".claude.json").read_text())
    assert "customApiKeyResponses" not in after or not after["customApiKeyResponses"].get("rejected")


def test_codex_without_a_provider_shows_its_login_screen(agent_user: AgentUser) -> None:
    (agent_user.home / ".codex" / "config.toml").write_text("")
    result = agent_user.sandbox.mngr("create", "newcomer", "-t", "codex", "--no-connect", "--initial-message", "hi",
                                     timeout=120)
    assert result.returncode != 0
    assert "login" in result.stderr, result.stderr
    assert _agent(agent_user, "newcomer")["waiting_reason"] == "login"


def test_arguments_after_the_double_dash_reach_the_cli_and_survive_a_restart(agent_user: AgentUser) -> None:
    result = agent_user.sandbox.mngr("--no-connect", "--name", "modelled", "--", "--model", "claude-sonnet-9-9",
                                     timeout=120)  # the default type, claude, as `mngr -- --model X`
    assert result.returncode == 0, result.stderr
    assert _agent(agent_user, "modelled")["type"] == "claude"
    for text in ("before the restart", "after the restart"):
        _message(agent_user, "modelled", text)
        exchange = wait_for(lambda text=text: [exchange for exchange in agent_user.standin.conversation_requests()
                                               if exchange.user_texts()[-1:] == [text]], f"{text!r} at the model")[0]
        assert exchange.body["model"] == "claude-sonnet-9-9"
        assert agent_user.sandbox.mngr("stop", "modelled").returncode == 0
        assert agent_user.sandbox.mngr("start", "modelled").returncode == 0


def test_the_bypass_permissions_warning_is_reported_not_answered(agent_user: AgentUser) -> None:
    # As root Claude takes --dangerously-skip-permissions only in a sandbox; then it warns first.
    result = agent_user.sandbox.mngr("create", "daring", "-t", "claude", "--no-connect", "--env", "IS_SANDBOX=1",
                                     "--", "--dangerously-skip-permissions", timeout=120)
    assert result.returncode != 0
    assert "bypass-permissions" in result.stderr, result.stderr
    agent = _agent(agent_user, "daring")
    assert (agent["state"], agent["waiting_reason"]) == ("WAITING", "bypass-permissions")


@BOTH
def test_wait_for_waiting_returns_once_the_agents_turn_is_over(agent_user: AgentUser, agent_type: str) -> None:
    _create(agent_user, "worker", agent_type)
    text = "STANDIN-SLOW: 3 take your time"
    _message(agent_user, "worker", text)  # the model answers only 3 s after it hears this
    result = agent_user.sandbox.mngr("wait", "worker", "--for", "waiting", "--timeout", "2m", timeout=150)
    assert result.returncode == 0, _with_screen(agent_user, "worker", result.stderr)
    assert result.stdout == "worker on local: WAITING (input)\n"
    # The turn the message started was over when the wait returned: its answer is in the
    # agent's own log already.
    shown = json.loads(agent_user.sandbox.mngr("transcript", "worker", "--format", "json").stdout)
    assert ("assistant", "heard: " + text) in [(entry["role"], entry["text"]) for entry in shown["entries"]]
