"""Answering questions about mngr from its own docs, offline.

The docs (``docs/`` of the repository, shipped in the package as ``mngr/docs``) are cut into
passages, one per section (a heading and what follows it, up to the next heading). A question
is matched against them with BM25 (words lower-cased, lightly stemmed, common words dropped;
a section's heading and page title count twice). The answer is the command, among the
``mngr ...`` lines of the best passages, whose words and comment best match the question,
then the passage it came from.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "get", "have", "how",
    "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "so", "that", "the", "their",
    "them", "there", "this", "to", "up", "use", "using", "want", "what", "when", "where", "which", "who", "why",
    "will", "with", "you", "your", "mngr",
])
# A few words users say that the docs say otherwise.
_ALSO = {
    "package": ("dockerfile", "image"), "packages": ("dockerfile", "image"), "installed": ("dockerfile", "image"),
    "container": ("docker", "sandbox"), "periodically": ("cron", "schedule"), "hourly": ("cron", "schedule"),
    "daily": ("cron", "schedule"), "every": ("cron",), "sync": ("push", "pull", "pair"),
    "continuously": ("pair",), "internet": ("network",), "offline": ("network",), "firewall": ("network",),
    "shut": ("idle", "stop"), "shutdown": ("idle",), "cost": ("idle",), "delete": ("destroy",),
    "remove": ("destroy",), "kill": ("destroy", "stop"), "attach": ("connect",), "tell": ("message",),
    "send": ("message",), "copy": ("clone",), "move": ("migrate",), "backup": ("snapshot",),
    "screen": ("capture",), "see": ("list", "capture"), "logs": ("transcript",), "output": ("transcript",),
    "run": ("create",), "launch": ("create",), "spin": ("create",), "spawn": ("create",),
    "upload": ("push",), "download": ("pull",), "execute": ("exec",), "shell": ("exec",), "command": ("exec",),
    "remote": ("ssh",), "server": ("ssh",), "machine": ("host",),
}
K1, B = 1.2, 0.75


def words(text: str) -> list[str]:
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOP]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def query_words(question: str) -> list[str]:
    found = words(question)
    for word in _WORD.findall(question.lower()):
        found += [_stem(extra) for extra in _ALSO.get(word, ())]
    return found


_GRAMMAR = re.compile(r"\[[^\]\s]*\]|\[-|\.\.\.")


@dataclass
class Passage:
    path: str  # relative to the docs dir
    title: str
    heading: str
    text: str
    terms: Counter[str] = field(default_factory=Counter)

    def commands(self) -> list[tuple[str, str, bool]]:
        """(command, its comment, whether it is an example) for every ``mngr ...`` line of
        its code blocks (examples), and every one quoted inline in its prose."""
        found: list[tuple[str, str, bool]] = []
        in_code = False
        for line in self.text.splitlines():
            if line.strip().startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                stripped = line.strip()
                # A synopsis line ([--format human|json], [NAME]...) is a command's grammar,
                # not a command to run.
                if (stripped.startswith("mngr ") or stripped == "mngr") and not _GRAMMAR.search(stripped):
                    command, _, comment = stripped.partition("  #")
                    found.append((command.strip(), comment.strip(" #"), True))
                continue
            for span in re.findall(r"`(mngr [^`]+)`", line):
                found.append((span.strip(), line, False))
        return found


def docs_dir() -> str:
    """The docs: ``docs/`` beside the packages (a checkout, or the installed ``mngr/docs``)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def passages(root: str | None = None) -> list[Passage]:
    root = root or docs_dir()
    found = []
    for directory, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            if not name.endswith(".md"):
                continue
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as handle:
                found += _split(os.path.relpath(path, root), handle.read())
    return found


def _split(path: str, text: str) -> list[Passage]:
    title = ""
    sections: list[Passage] = []
    heading = ""
    lines: list[str] = []
    in_code = False

    def close() -> None:
        body = "\n".join(lines).strip()
        if body:
            passage = Passage(path, title, heading, body)
            passage.terms = Counter(words(body) + 2 * words(f"{title} {heading}"))
            sections.append(passage)

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            close()
            heading = line.lstrip("#").strip()
            lines = []
            if line.startswith("# "):
                title = heading
            continue
        lines.append(line)
    close()
    return sections


@dataclass
class Answer:
    command: str
    comment: str
    passage: Passage
    also: list[tuple[str, str]]  # (command, comment): other commands the question matches
    score: float


def answer(question: str, found: list[Passage] | None = None, top: int = 6) -> Answer | None:
    """The best command for ``question`` from the docs, with where it came from; None if
    nothing in the docs matches."""
    corpus = found if found is not None else passages()
    query = query_words(question)
    if not query or not corpus:
        return None
    everything = _rank(query, corpus)
    if not everything or everything[0][0] <= 0:
        return None
    wanted = set(query)
    commands = {_command_page(passage.path) for passage in corpus}
    # The commands the question asks for, by name or through _ALSO ("delete" is destroy).
    asked_for = wanted & commands
    # A command named outright has its own page's examples among the candidates, however
    # that passage ranks.
    named = set(words(question)) & commands
    ranked = everything[:top] + [(score, passage) for score, passage in everything[top:]
                                 if passage.heading == "Examples" and _command_page(passage.path) in named]
    best_passage_score = everything[0][0]
    candidates: list[tuple[float, float, str, str, bool, Passage]] = []
    for passage_score, passage in ranked:
        for command, comment, example in passage.commands():
            if _subcommand(command) == "ask" and "ask" not in wanted:
                continue  # the ask page's examples are questions, not answers to them
            own = set(words(f"{command} {comment}"))
            overlap = sum(1 for word in wanted if word in own) / len(wanted)
            # Examples over commands quoted in prose; the passage counts, the line more.
            score = (passage_score / best_passage_score + 2.0 * overlap + (0.5 if example else 0.0)
                     + (1.5 if _subcommand(command) in asked_for else 0.0))
            candidates.append((score, overlap, command, comment if example else "", example, passage))
    if not candidates:
        return None
    candidates.sort(key=lambda item: -item[0])
    score, _, command, comment, _, passage = candidates[0]
    subcommands = {_subcommand(command)}
    also: list[tuple[str, str]] = []
    for _, overlap, other, other_comment, example, _ in candidates[1:]:
        if example and overlap > 0 and _subcommand(other) not in subcommands and len(also) < 2:
            subcommands.add(_subcommand(other))
            also.append((other, other_comment))
    return Answer(command, comment, passage, also, score)


def _command_page(path: str) -> str:
    """The command a docs page is about (``commands/stop.md``: stop); "" for other pages."""
    directory, name = os.path.split(path)
    return name.removesuffix(".md") if directory == "commands" and name != "README.md" else ""


def _subcommand(command: str) -> str:
    parts = command.split()
    return parts[1] if len(parts) > 1 else ""


def ranked_passages(question: str, corpus: list[Passage], count: int) -> list[Passage]:
    return [passage for score, passage in _rank(query_words(question), corpus)[:count] if score > 0]


def _rank(query: Iterable[str], corpus: list[Passage]) -> list[tuple[float, Passage]]:
    count = len(corpus)
    average = sum(sum(passage.terms.values()) for passage in corpus) / count
    frequency: Counter[str] = Counter()
    for passage in corpus:
        frequency.update(set(passage.terms))
    scored = []
    for passage in corpus:
        length = sum(passage.terms.values())
        score = 0.0
        for word in set(query):
            occurrences = passage.terms.get(word, 0)
            if not occurrences:
                continue
            idf = math.log(1 + (count - frequency[word] + 0.5) / (frequency[word] + 0.5))
            score += idf * occurrences * (K1 + 1) / (occurrences + K1 * (1 - B + B * length / average))
        scored.append((score, passage))
    scored.sort(key=lambda item: -item[0])
    return scored


def excerpt(passage: Passage, lines: int = 14) -> str:
    kept = passage.text.splitlines()
    text = "\n".join(kept[:lines]).rstrip()
    return text + ("\n..." if len(kept) > lines else "")
