"""The model stand-in the agent CLI tests talk to speaks the two APIs as their clients read them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.model_standin import ModelStandin


@pytest.fixture
def standin() -> Iterator[ModelStandin]:
    server = ModelStandin()
    try:
        yield server
    finally:
        server.close()


def _post(standin: ModelStandin, path: str, body: dict) -> tuple[int, str, bytes]:
    request = urllib.request.Request(standin.base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _events(data: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in data.decode().strip().split("\n\n"):
        name, payload = block.split("\n", 1)
        events.append((name.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return events


def test_anthropic_plain_json_and_streamed_replies(standin: ModelStandin) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]}
    status, kind, data = _post(standin, "/v1/messages?beta=true", body)
    assert (status, kind) == (200, "application/json")
    assert json.loads(data)["content"] == [{"type": "text", "text": "heard: hi there"}]
    status, kind, data = _post(standin, "/v1/messages", {**body, "stream": True})
    events = _events(data)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "content_block_delta",
                                            "content_block_stop", "message_delta", "message_stop"]
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "heard: hi there"}
    assert standin.received("hi there") and standin.times_sent("hi there") == 2


def test_anthropic_tool_call_then_its_result(standin: ModelStandin) -> None:
    ask = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "STANDIN-TOOL: echo hi"}]}
    events = _events(_post(standin, "/v1/messages", ask)[2])
    tool = events[1][1]["content_block"]
    assert (tool["type"], tool["name"]) == ("tool_use", "Bash")
    assert json.loads(events[2][1]["delta"]["partial_json"])["command"] == "echo hi"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    result = {**ask, "messages": [*ask["messages"], {"role": "assistant", "content": [tool]},
                                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"]}]}]}
    assert _events(_post(standin, "/v1/messages", result)[2])[2][1]["delta"]["text"] == "tool done"


def test_openai_responses_stream_and_tool_call(standin: ModelStandin) -> None:
    body = {"model": "m", "stream": True, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "STANDIN-TOOL: ls"}]}]}
    events = _events(_post(standin, "/v1/responses", body)[2])
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    (call,) = events[-1][1]["response"]["output"]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == ("function_call", "exec_command", {"cmd": "ls"})
    body["input"].append({"type": "function_call_output", "call_id": call["call_id"], "output": "x"})
    (message,) = _events(_post(standin, "/v1/responses", body)[2])[-1][1]["response"]["output"]
    assert message["content"][0]["text"] == "tool done"


def test_failure_on_demand(standin: ModelStandin) -> None:
    status, _, data = _post(standin, "/v1/messages", {"messages": [{"role": "user", "content": "STANDIN-FAIL"}]})
    assert status == 500 and json.loads(data)["error"]["type"] == "api_error"
