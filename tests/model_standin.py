"""A stand-in for the model APIs the real agent CLIs talk to, on 127.0.0.1, standard library only.

It speaks enough of the Anthropic Messages API (``POST /v1/messages``, streamed as SSE or
plain JSON) for Claude Code, and of the OpenAI Responses API (``POST /v1/responses``,
streamed) for Codex, to hold a conversation. Every request is kept, so a test can assert
what the model really received.

What the model answers is chosen by the newest user text:

- ``STANDIN-TOOL: <shell command>`` asks the agent to run the command (Claude's Bash tool,
  Codex's exec_command tool); once the result comes back the model says ``tool done``.
- ``STANDIN-SLOW: <seconds>`` holds the reply that long (a busy agent).
- ``STANDIN-FAIL`` answers with an HTTP 500 error.
- anything else is answered ``heard: <the text's first 40 characters>``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOOL = re.compile(r"STANDIN-TOOL: (.+)")
_SLOW = re.compile(r"STANDIN-SLOW: ([0-9.]+)")


@dataclass
class Exchange:
    """One request a CLI made: which API, its path and its decoded JSON body."""

    api: str  # "anthropic", "openai" or "other"
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    api_key: str = ""  # the key it authenticated with (x-api-key, or a bearer token)

    def user_texts(self) -> list[str]:
        """Every text the user part of this request carries, in order."""
        if self.api == "anthropic":
            return [text for message in self.body.get("messages", []) if message.get("role") == "user"
                    for text in _anthropic_texts(message.get("content"))]
        if self.api == "openai":
            items = self.body.get("input", [])
            return [text for item in items if isinstance(item, dict) and item.get("role") == "user"
                    for text in _openai_texts(item.get("content"))]
        return []


def _anthropic_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(part.get("text", ""))
    return texts


def _openai_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [part.get("text", "") for part in content or []
            if isinstance(part, dict) and part.get("type") in ("input_text", "text")]


class ModelStandin:
    """The server, running in a thread of the test process until ``close``."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def conversation_requests(self) -> list[Exchange]:
        """Requests that carried a conversation (not title or quota side requests)."""
        with self._lock:
            exchanges = list(self.exchanges)
        return [exchange for exchange in exchanges if exchange.api != "other" and exchange.user_texts()]

    def received(self, text: str) -> bool:
        """Whether some request carried ``text``, byte for byte, as one user text."""
        return any(text == user_text for exchange in self.conversation_requests()
                   for user_text in exchange.user_texts())

    def times_sent(self, text: str) -> int:
        """How many requests ended with ``text`` as their newest user text (one per turn it began)."""
        return sum(1 for exchange in self.conversation_requests()
                   if exchange.user_texts()[-1:] == [text] and not _has_tool_result(exchange))

    def received_texts(self) -> list[str]:
        return [text for exchange in self.conversation_requests() for text in exchange.user_texts()]


def _newest_user_text(exchange: Exchange) -> str:
    texts = exchange.user_texts()
    return texts[-1] if texts else ""


def _has_tool_result(exchange: Exchange) -> bool:
    if exchange.api == "anthropic":
        messages = exchange.body.get("messages", [])
        last = messages[-1] if messages else {}
        content = last.get("content")
        return isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") == "tool_result" for part in content)
    items = exchange.body.get("input", [])
    return bool(items) and isinstance(items[-1], dict) and items[-1].get("type") == "function_call_output"


def _reply_for(exchange: Exchange) -> tuple[str, str | None]:
    """(text to say, shell command to ask for or None)."""
    if _has_tool_result(exchange):
        return "tool done", None
    text = _newest_user_text(exchange)
    # Claude wraps context around the user's words; the user's own text is the last part.
    tool = _TOOL.search(text)
    if tool:
        return "", tool.group(1).strip()
    return "heard: " + text[:40].replace("\n", " "), None


def _handler_for(standin: ModelStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            standin.record(Exchange("other", self.path))
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"data": [], "object": "list", "models": []})
            else:
                self._json(404, {"error": {"type": "not_found_error", "message": "not here"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            path = self.path.split("?", 1)[0]
            key = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
            if path.endswith("/messages"):
                exchange = Exchange("anthropic", path, body, key)
            elif path.endswith("/responses"):
                exchange = Exchange("openai", path, body, key)
            else:
                exchange = Exchange("other", path, body, key)
            standin.record(exchange)
            if exchange.api == "other":
                if path.endswith("/count_tokens"):
                    self._json(200, {"input_tokens": 10})
                else:
                    self._json(404, {"error": {"type": "not_found_error", "message": "not here"}})
                return
            newest = _newest_user_text(exchange)
            if "STANDIN-FAIL" in newest and not _has_tool_result(exchange):
                self._json(500, {"type": "error", "error": {"type": "api_error", "message": "stand-in failure"}})
                return
            slow = _SLOW.search(newest)
            if slow and not _has_tool_result(exchange):
                time.sleep(float(slow.group(1)))
            text, command = _reply_for(exchange)
            if exchange.api == "anthropic":
                self._anthropic(body, text, command)
            else:
                self._openai(body, text, command)

        def _json(self, status: int, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        def _event(self, name: str, data: dict[str, Any]) -> None:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        def _anthropic(self, body: dict[str, Any], text: str, command: str | None) -> None:
            message_id = "msg_" + uuid.uuid4().hex[:20]
            model = body.get("model", "claude-standin")
            usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 0}
            blocks: list[dict[str, Any]] = []
            if text:
                blocks.append({"type": "text", "text": text})
            if command is not None:
                blocks.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "Bash",
                               "input": {"command": command, "description": "run the requested command"}})
            stop_reason = "tool_use" if command is not None else "end_turn"
            if not body.get("stream"):
                self._json(200, {"id": message_id, "type": "message", "role": "assistant", "model": model,
                                 "content": blocks, "stop_reason": stop_reason, "stop_sequence": None,
                                 "usage": usage})
                return
            self._start_stream()
            self._event("message_start", {"type": "message_start", "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
            for index, block in enumerate(blocks):
                if block["type"] == "text":
                    self._event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": {"type": "text", "text": ""}})
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "text_delta", "text": block["text"]}})
                else:
                    self._event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": {**block, "input": {}}})
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                        "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
                self._event("content_block_stop", {"type": "content_block_stop", "index": index})
            self._event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                          "usage": {"output_tokens": 5}})
            self._event("message_stop", {"type": "message_stop"})

        def _openai(self, body: dict[str, Any], text: str, command: str | None) -> None:
            response_id = "resp_" + uuid.uuid4().hex[:20]
            model = body.get("model", "gpt-standin")
            items: list[dict[str, Any]] = []
            if text:
                items.append({"type": "message", "id": "msg_" + uuid.uuid4().hex[:16], "role": "assistant",
                              "status": "completed",
                              "content": [{"type": "output_text", "text": text, "annotations": []}]})
            if command is not None:
                items.append({"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:16], "status": "completed",
                              "call_id": "call_" + uuid.uuid4().hex[:16], "name": "exec_command",
                              "arguments": json.dumps({"cmd": command})})
            response = {"id": response_id, "object": "response", "created_at": int(time.time()), "model": model,
                        "status": "in_progress", "output": []}
            self._start_stream()
            self._event("response.created", {"type": "response.created", "response": response})
            for index, item in enumerate(items):
                self._event("response.output_item.added", {"type": "response.output_item.added",
                                                           "output_index": index, "item": item})
                if item["type"] == "message":
                    self._event("response.output_text.delta", {
                        "type": "response.output_text.delta", "item_id": item["id"], "output_index": index,
                        "content_index": 0, "delta": text})
                self._event("response.output_item.done", {"type": "response.output_item.done",
                                                          "output_index": index, "item": item})
            usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                     "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}
            self._event("response.completed", {"type": "response.completed", "response": {
                **response, "status": "completed", "output": items, "usage": usage}})

    return Handler
