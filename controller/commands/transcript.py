"""transcript (an agent's history) and capture (its screen right now).

For claude and codex agents the history is the user and assistant turns of the CLI's own
session log; for every other agent, what it printed, as its terminal showed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import MngrError, UsageError
from ..fleet import LocatedAgent
from ..session_logs import Entry, session_entries
from ..terminal_text import TerminalStream
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App

FOLLOW_INTERVAL = 0.3
# Agent types whose CLI logs its conversation where the helper finds it (agents made before
# mngr knew their session are read from their work dir's newest Claude log).
SESSION_LOG_TYPES = ("claude", "codex")
SOURCES = ("auto", "session", "output", "claude")


@dataclass
class TranscriptRequest:
    name: str
    tail: int | None = None  # only the last N entries
    # session: the CLI's own log ("claude" is another name for it); output: what the agent
    # printed; auto: session for SESSION_LOG_TYPES, output for the rest.
    source: str = "auto"


@dataclass
class Transcript:
    name: str
    source: str  # "session" or "output": what was read
    entries: list[Entry]


@dataclass
class CaptureRequest:
    name: str
    full: bool = False  # the scrollback too, not only the visible screen


@dataclass
class Screen:
    name: str
    host: str
    provider: str
    text: str
    state: str
    waiting_reason: str  # what a WAITING agent waits on ("input", or a dialog's kind)
    waiting_detail: str


def transcript(app: App, request: TranscriptRequest) -> Transcript:
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        reading = _Reading(agent, request)
        # A last line without its newline yet (a prompt, say) is shown: it is on the screen.
        entries = reading.entries + _parse_rest(reading.kind, reading.pending, reading.terminal)
    return Transcript(agent.info.name, reading.kind, entries if request.tail is None else entries[-request.tail:])


def follow_transcript(app: App, request: TranscriptRequest, emit: Callable[[list[Entry]], None]) -> None:
    """``emit`` the transcript's entries, then new ones as they come, until Ctrl-C."""
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        reading = _Reading(agent, request)
        emit(reading.entries if request.tail is None else reading.entries[-request.tail:])
        try:
            reading.follow(emit)
        except KeyboardInterrupt:
            return


def capture(app: App, request: CaptureRequest) -> Screen:
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        name = agent.info.name
        if agent.info.state == "STOPPED":
            raise MngrError(f"agent {name!r} is stopped (start it with: mngr start {name})")
        screen = agent.handle.capture(name, request.full)
    info = agent.info
    return Screen(name, agent.host, agent.provider, screen.decode("utf-8", "replace"), info.state,
                  info.waiting_reason or "", info.waiting_detail or "")


class _Reading:
    """An agent's log read up to now: the entries of its complete lines, where it ended,
    and what is left to parse (an unfinished last line)."""

    def __init__(self, agent: LocatedAgent, request: TranscriptRequest) -> None:
        if request.source not in SOURCES:
            raise UsageError(f"unknown transcript source {request.source!r} (known: {', '.join(SOURCES)})")
        if request.tail is not None and request.tail < 1:
            raise UsageError("--tail: at least 1")
        self.agent = agent
        self.name = agent.info.name
        if request.source == "auto":
            self.kind = "session" if agent.info.type in SESSION_LOG_TYPES else "output"
        else:
            self.kind = "session" if request.source == "claude" else request.source
        handle = agent.handle
        if request.tail is None:
            data, self.end, self.file_id = self._read_whole()
        else:
            # Turns span many log lines: fetch generously, then keep the last N turns.
            wanted = request.tail if self.kind == "output" else max(request.tail * 50, 1000)
            chunk, data = handle.read_output(self.name, source=self.kind, tail_lines=wanted)
            self.end, self.file_id = chunk.end, chunk.file_id
            if self.kind == "output" and chunk.start == 0 and data.count(b"\n") < wanted:
                # Not enough since the last rotation: the rest is in the previous part.
                _, older = handle.read_output(self.name, source="output-previous", tail_lines=wanted)
                data = older + data
        self.terminal = TerminalStream()
        self.entries, self.pending = _parse(self.kind, data, self.terminal)

    def _read_whole(self) -> tuple[bytes, int, str]:
        """All of a log (for output, the rotated part first), read in chunks; with its end and id."""
        data = bytearray()
        sources = ["output-previous", "output"] if self.kind == "output" else [self.kind]
        end, file_id = 0, ""
        for source in sources:
            offset = 0
            while True:
                chunk, piece = self.agent.handle.read_output(self.name, source=source, offset=offset)
                data += piece
                if not piece or chunk.start != offset:
                    break
                offset = chunk.end
            end, file_id = offset, chunk.file_id
        return bytes(data), end, file_id

    def follow(self, emit: Callable[[list[Entry]], None]) -> None:
        offset, file_id, pending = self.end, self.file_id, self.pending
        while True:
            time.sleep(FOLLOW_INTERVAL)
            chunk, data = self.agent.handle.read_output(self.name, source=self.kind, offset=offset)
            if chunk.file_id != file_id or chunk.start != offset:
                pending = b""  # the log was rotated or replaced: carry on from its start
            offset, file_id = chunk.end, chunk.file_id
            entries, pending = _parse(self.kind, pending + data, self.terminal)
            emit(entries)


def _parse(kind: str, data: bytes, terminal: TerminalStream) -> tuple[list[Entry], bytes]:
    """Entries from complete lines of ``data``, and the incomplete last line left over.

    For output, the complete lines go through ``terminal``, which keeps the screen from one
    call to the next; the entries are the lines the cursor has left (a program can still
    redraw the line it is on).
    """
    complete, newline, rest = data.rpartition(b"\n")
    if not newline:
        return [], data
    if kind == "session":
        return session_entries(complete.split(b"\n") if complete else []), rest
    terminal.feed((complete + newline).decode("utf-8", "replace"))
    return [Entry("output", line) for line in terminal.take_settled()], rest


def _parse_rest(kind: str, rest: bytes, terminal: TerminalStream) -> list[Entry]:
    """The entries still on the screen at the end: an unfinished last line, what is below the cursor."""
    if kind == "session":
        return session_entries([rest])
    terminal.feed(rest.decode("utf-8", "replace"))
    return [Entry("output", line) for line in terminal.take_all()]
