"""mngr ask: questions from the PRODUCT brief's examples, answered offline from the docs."""

from __future__ import annotations

import json

import pytest

QUESTIONS = [
    ("How do I create a container on modal with custom packages installed by default?",
     ["mngr create", "--in modal", '--build-arg "--dockerfile'], "mngr bootstrap"),
    ("How do I launch an agent on modal that cannot access the network?",
     ["mngr create", "--in modal", '--build-arg "--block-network"'], None),
    ("How do I pull changes from an agent to my local machine?", ["mngr pull"], None),
    ("How do I sync changes with an agent continuously?", ["mngr pair"], None),
    ("How do I run an agent every hour on a schedule?", ["mngr schedule", "--cron"], None),
    ("How do I send a message to an agent?", ["mngr message"], None),
    ("How do I stop the agents of a host after 30 idle minutes?", ["--idle-timeout"], None),
]


# How people ask without the docs' words: "run", "launch", "spin up" mean create; "delete"
# means destroy; a command named outright is answered from its own page.
EVERYDAY = [
    ("how do I run an agent on modal", ["mngr create", "--in modal"]),
    ("how do I launch claude on a remote machine", ["mngr create", "--in ssh"]),
    ("spin up an agent in docker", ["mngr create", "--in docker"]),
    ("how do I run a command in my agent", ["mngr exec"]),
    ("how do I delete an agent", ["mngr destroy"]),
    ("how do I upload files to an agent", ["mngr push"]),
    ("how can I list all my agents", ["mngr list"]),
    ("how do I start a stopped agent", ["mngr start"]),
    ("run a schedule by hand", ["mngr schedule run"]),
]


def test_everyday_phrasings_get_the_right_command(sandbox) -> None:
    for question, expected in EVERYDAY:
        asked = sandbox.mngr("ask", "--offline", "--format", "json", question)
        assert asked.returncode == 0, asked.stderr
        command = json.loads(asked.stdout)["command"]
        assert all(part in command for part in expected) and "|" not in command, (question, command)


@pytest.mark.parametrize(("question", "expected", "also"), QUESTIONS, ids=[q[0][:40] for q in QUESTIONS])
def test_questions_from_the_brief_get_the_right_command(sandbox, question: str, expected: list[str],
                                                        also: str | None) -> None:
    asked = sandbox.mngr("ask", "--offline", "--format", "json", question)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert all(part in answer["command"] for part in expected), answer
    assert answer["source"]["path"].startswith("docs/")
    if also:
        assert also in answer["also"]
    human = sandbox.mngr("ask", "--offline", question)
    assert human.stdout.startswith("Run:\n    " + answer["command"])


def test_a_question_the_docs_do_not_answer_says_so(sandbox) -> None:
    asked = sandbox.mngr("ask", "--offline", "zzz qqq xyzzy")
    assert asked.returncode == 1 and "mngr's docs say nothing about that" in asked.stdout


def test_an_agent_cli_on_path_words_the_answer_from_the_passages(sandbox) -> None:
    # A stand-in for `claude -p`, which needs Anthropic's service: it shows what it was given.
    env = sandbox.program_on_path("claude", '[ "$1" = "-p" ] || exit 2\nprintf "COMPOSED ANSWER\\n%s\\n" "$2" '
                                            '| head -c 100000 > "$0.prompt"\necho "COMPOSED ANSWER: use --dockerfile"\n')
    bin_dir = sandbox.root / "bin"
    asked = sandbox.mngr("ask", "How do I create a container on modal with custom packages?", env=env)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("COMPOSED ANSWER: use --dockerfile\n") and "\nRun:\n" in asked.stdout
    prompt = (bin_dir / "claude.prompt").read_text()
    assert "Question: How do I create a container on modal" in prompt and "[docs/concepts/modal.md" in prompt
    offline = sandbox.mngr("ask", "--offline", "How do I create a container on modal?", env=env)
    assert "COMPOSED" not in offline.stdout
