"""Reading the conversation out of Claude Code and Codex session logs."""

from __future__ import annotations

import json

from mngr.controller.session_logs import Entry, session_entries


def _lines(*records: dict) -> list[bytes]:
    return [json.dumps(record).encode() for record in records]


def test_claude_turns_in_time_order_without_thinking_tools_or_side_chains() -> None:
    lines = _lines(
        {"type": "summary", "summary": "ignored"},
        {"type": "assistant", "timestamp": "2026-01-01T00:00:02Z", "message": {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Why did the agent idle?"}]}},
        # Claude sometimes writes the user's record after the reply to it.
        {"type": "user", "timestamp": "2026-01-01T00:00:01Z", "message": {"role": "user", "content": "Tell me a joke"}},
        {"type": "user", "timestamp": "2026-01-01T00:00:03Z",
         "message": {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}},
        {"type": "user", "isSidechain": True, "timestamp": "2026-01-01T00:00:04Z",
         "message": {"role": "user", "content": "a sub-agent's prompt"}},
        {"type": "queue-operation", "operation": "enqueue", "content": "not a turn yet"},
    )
    assert session_entries([b"not json", *lines]) == [
        Entry("user", "Tell me a joke", "2026-01-01T00:00:01Z"),
        Entry("assistant", "Why did the agent idle?", "2026-01-01T00:00:02Z"),
    ]


def test_codex_turns_are_its_user_and_agent_messages_not_the_context_it_injects() -> None:
    lines = _lines(
        {"timestamp": "t0", "type": "session_meta", "payload": {"id": "x", "cwd": "/w"}},
        {"timestamp": "t1", "type": "response_item", "payload": {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>...</environment_context>"}]}},
        {"timestamp": "t2", "type": "event_msg", "payload": {"type": "item_completed", "item": {
            "type": "UserMessage", "content": [{"type": "text", "text": "fix it", "text_elements": []}]}}},
        {"timestamp": "t3", "type": "event_msg", "payload": {"type": "item_completed", "item": {
            "type": "CommandExecution", "command": ["ls"]}}},
        {"timestamp": "t4", "type": "event_msg", "payload": {"type": "item_completed", "item": {
            "type": "AgentMessage", "content": [{"type": "Text", "text": "fixed"}]}}},
    )
    assert session_entries(lines) == [Entry("user", "fix it", "t2"), Entry("assistant", "fixed", "t4")]
