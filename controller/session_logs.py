"""The conversation in an agent CLI's own session log: user and assistant turns, in order.

Claude Code writes one JSON record a line (``type`` user/assistant, ``message.content``,
``timestamp``), not always in the order of the conversation: a user record can follow the
reply to it, so turns are ordered by their timestamps. Codex writes a rollout whose
``event_msg``/``item_completed`` items are the user's messages and the agent's replies
exactly (its ``response_item`` records also carry the context Codex itself injects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Entry:
    role: str  # "user" or "assistant" for a session log; "output" for a line of recorded output
    text: str
    time: str | None = None


def session_entries(lines: list[bytes]) -> list[Entry]:
    """The turns in these log lines (other records skipped), in conversation order."""
    entries = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        entry = _claude_entry(record) if "payload" not in record else _codex_entry(record)
        if entry is not None and entry.text.strip():
            entries.append(entry)
    # Stable: records without a time, and records of one instant, keep their file order.
    return sorted(entries, key=lambda entry: entry.time or "")


def _texts(parts: Any, kinds: tuple[str, ...]) -> str:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    return "\n".join(part.get("text", "") for part in parts
                     if isinstance(part, dict) and part.get("type") in kinds and isinstance(part.get("text"), str))


def _claude_entry(record: dict[str, Any]) -> Entry | None:
    if record.get("type") not in ("user", "assistant") or record.get("isSidechain") or record.get("isMeta"):
        return None
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    return Entry(record["type"], _texts(message.get("content"), ("text",)), record.get("timestamp"))


def _codex_entry(record: dict[str, Any]) -> Entry | None:
    payload = record.get("payload")
    if record.get("type") != "event_msg" or not isinstance(payload, dict) or payload.get("type") != "item_completed":
        return None
    item = payload.get("item")
    if not isinstance(item, dict):
        return None
    role = {"UserMessage": "user", "AgentMessage": "assistant"}.get(str(item.get("type")))
    if role is None:
        return None
    return Entry(role, _texts(item.get("content"), ("text", "Text")), record.get("timestamp"))
