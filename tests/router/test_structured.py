"""``providers/structured.py`` and the end-user id, end to end: a chat completion's
``response_format`` and ``user`` through the router to the fakes of the Messages API,
Converse and generateContent, which refuse what the real APIs refuse. Each either
arrives in the field the provider documents or is named in ``x-xrouter-dropped``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .allfakes import Fakes, all_fakes
from .conftest import KEY
from .fakegoogle import API_KEY
from .servers import Router

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": SCHEMA, "strict": True}}
ROUTES = {
    "anthropic": [("anthropic", "claude-up")],
    "converse": [("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")],
    "gemini": [("gemini", "gemini-2.0-flash-001")],
    "vertex-gemini": [("vertex", "gemini-2.0-flash-001")],
    "vertex-claude": [("vertex", "claude-sonnet-4@20250514")],
    # The Gemini API answers 429 (quota): the request fails over to Anthropic.
    "exhausted-then-anthropic": [("gemini", "exhausted"), ("anthropic", "claude-up")],
}
TYPE = {name: targets[-1][0] for name, targets in ROUTES.items()}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Router, Fakes]]:
    with all_fakes(tmp_path_factory.mktemp("structured"), ROUTES) as pair:
        yield pair


def _send(rig: tuple[Router, Fakes], route: str, path: str = "/v1/chat/completions", **fields: Any) -> Any:
    """(the answer, the body the route's fake got)."""
    router, fakes = rig
    fake = fakes.of(TYPE[route])
    assert fake is not None
    fake.reset()
    request: dict[str, Any] = {"model": route, "messages": [{"role": "user", "content": "weather"}], **fields}
    resp = httpx.post(router.url + path, json=request, headers={"authorization": f"Bearer {KEY}"}, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp, fake.last().get("body") or {}


def test_a_json_schema_reaches_each_api_in_the_field_it_documents(rig: tuple[Router, Fakes]) -> None:
    resp, body = _send(rig, "anthropic", response_format=JSON_SCHEMA)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "response_format" not in body and "x-xrouter-dropped" not in resp.headers

    resp, body = _send(rig, "converse", response_format=JSON_SCHEMA)
    fmt = body["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema" and fmt["structure"]["jsonSchema"]["name"] == "forecast"
    assert json.loads(fmt["structure"]["jsonSchema"]["schema"]) == SCHEMA  # Converse takes it as a string
    assert "x-xrouter-dropped" not in resp.headers

    for route in ("gemini", "vertex-gemini"):
        resp, body = _send(rig, route, response_format=JSON_SCHEMA)
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == SCHEMA
        assert "x-xrouter-dropped" not in resp.headers


def test_json_mode_without_a_schema(rig: tuple[Router, Fakes]) -> None:
    """generateContent has it; the Messages API and Converse take a schema only."""
    resp, body = _send(rig, "gemini", response_format={"type": "json_object"})
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseJsonSchema" not in config
    assert "x-xrouter-dropped" not in resp.headers
    for route in ("anthropic", "converse", "vertex-claude"):
        resp, body = _send(rig, route, response_format={"type": "json_object"})
        assert resp.headers["x-xrouter-dropped"] == "response_format", route
        assert not {"output_config", "outputConfig", "response_format"} & set(body), route


def test_claude_on_vertex_drops_a_schema_with_notice(rig: tuple[Router, Fakes]) -> None:
    resp, body = _send(rig, "vertex-claude", response_format=JSON_SCHEMA)
    assert resp.headers["x-xrouter-dropped"] == "response_format"
    assert "output_config" not in body


def test_schema_keywords_gemini_ignores_are_dropped_with_notice(rig: tuple[Router, Fakes]) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",  # names the dialect: nothing lost
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$", "minLength": 3}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    resp, body = _send(rig, "gemini", response_format=fmt)
    assert resp.headers["x-xrouter-dropped"] == "response_format(minLength), response_format(pattern)"
    sent = body["generationConfig"]["responseJsonSchema"]
    assert sent == {"type": "object", "properties": {"code": {"type": "string"}}}
    # Through /v1/responses the drop names the client's field.
    router = rig[0]
    text = {"format": {"type": "json_schema", "name": "c", "schema": schema}}
    resp = httpx.post(
        router.url + "/v1/responses",
        json={"model": "gemini", "input": "hi", "text": text},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    assert resp.status_code == 200 and resp.headers["x-xrouter-dropped"] == (
        "text.format(minLength), text.format(pattern)"
    )


def test_the_end_user_id_is_kept_or_dropped_with_notice(rig: tuple[Router, Fakes]) -> None:
    resp, body = _send(rig, "anthropic", user="u-42")
    assert body["metadata"] == {"user_id": "u-42"} and "x-xrouter-dropped" not in resp.headers
    for route in ("converse", "gemini", "vertex-gemini"):
        resp, body = _send(rig, route, user="u-42")
        assert resp.headers["x-xrouter-dropped"] == "user", route
        assert "u-42" not in json.dumps(body), route
    # /v1/messages: the header names the field the client sent.
    resp, _ = _send(rig, "gemini", "/v1/messages", max_tokens=20, metadata={"user_id": "u-42"})
    assert resp.headers["x-xrouter-dropped"] == "metadata.user_id"


def test_a_drop_on_a_failed_target_is_not_reported_for_the_next(rig: tuple[Router, Fakes]) -> None:
    """The Gemini API (no end-user field) answers 429; Anthropic, which keeps the user,
    answers: nothing was dropped in what answered."""
    resp, body = _send(rig, "exhausted-then-anthropic", user="u-42")
    assert body["metadata"] == {"user_id": "u-42"}
    assert "x-xrouter-dropped" not in resp.headers


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format:"),
        ({"output_config": {"format": {"type": "json"}}}, "output_config.format"),
        ({"metadata": {"user": "u"}}, "metadata.user:"),
    ],
)
def test_the_anthropic_fake_refuses_what_the_messages_api_refuses(
    rig: tuple[Router, Fakes], body: dict[str, Any], refusal: str
) -> None:
    fake = rig[1].of("anthropic")
    assert fake is not None
    request = {"model": "claude-up", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **body}
    resp = httpx.post(fake.url + "/v1/messages", json=request)
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    assert refusal in resp.json()["error"]["message"]


def test_the_gemini_fake_wants_the_mime_type_with_a_schema(rig: tuple[Router, Fakes]) -> None:
    fake = rig[1].of("gemini")
    assert fake is not None
    config = {"responseJsonSchema": SCHEMA}
    resp = httpx.post(
        fake.url + "/v1beta/models/gemini-2.0-flash-001:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": config},
        headers={"x-goog-api-key": API_KEY},
    )
    assert resp.status_code == 400 and "responseMimeType" in resp.json()["error"]["message"]


def test_one_call_at_a_time_is_named_as_the_client_sent_it(rig: tuple[Router, Fakes]) -> None:
    """generateContent cannot keep a model to one call: on /v1/messages the drop names
    the Messages API's field, and the Messages API itself gets it as it came."""
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    resp, _ = _send(rig, "gemini", "/v1/messages", max_tokens=20, tools=tools, tool_choice=choice)
    assert resp.headers["x-xrouter-dropped"] == "tool_choice.disable_parallel_tool_use"
    chat_tools = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    resp, body = _send(rig, "anthropic", tools=chat_tools, tool_choice="required", parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "x-xrouter-dropped" not in resp.headers


def test_a_drop_on_chat_completions_is_logged(rig: tuple[Router, Fakes]) -> None:
    """The log says what the header says, on /v1/chat/completions too, once."""
    resp, _ = _send(rig, "converse", seed=1234567)
    assert resp.headers["x-xrouter-dropped"] == "seed"
    lines = [
        line for line in rig[0].log().splitlines() if "dropped in translation" in line and "seed" in line
    ]
    assert len(lines) == 1 and '"kind": "chat"' in lines[0].replace('":"', '": "'), lines
