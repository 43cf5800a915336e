"""A fake LLM provider on loopback, for tests, the benchmark and ``make up``.

OpenAI-style (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``),
Azure-style (``/openai/deployments/{name}/...``) and Anthropic-style (``/v1/messages``)
endpoints. The requested model name picks the behaviour:

- anything else: answer at once, echoing the last user message;
- ``slow-<ms>``: wait before answering;
- ``fail``: 500; ``flaky-<n>``: 500 for the first n requests, then normal;
- ``ratelimit-<n>``: 429 with ``Retry-After: 1`` for the first n requests;
- ``breakstream``: a stream that sends two chunks and then drops the connection;
- ``slowstream-<ms>``: a stream with a pause before each chunk;
- ``stall-<n>``: a stream that sends <n> events and then falls silent, connection open;
- ``midfail``: an Anthropic stream ending in an ``error`` event after the text, or a
  Responses stream ending in ``response.failed``;
- ``toolcall``: chat completions with ``tools`` answer with a call of the first tool
  (``{"city": "Paris"}``) unless the last message is a tool result.

``POST /v1/responses`` (and Azure's ``/openai/responses``) answers in the Responses
API's shape, streaming or not, and keeps each response for ``GET /v1/responses/{id}``
and for ``previous_response_id`` (an unknown one is a 400 naming the field). With
``background: true`` (not streamed) the create answers ``queued`` without usage; the
response reads ``in_progress`` until 0.3 s later, then ``completed`` with its usage;
``POST /v1/responses/{id}/cancel`` cancels one still running (``cancelled``, no usage).

``POST /v1/messages`` reports 100 prompt-cache write tokens when a block of the
request carries ``cache_control`` (split by its ``ttl``, as Anthropic does).

``GET /_stats`` counts requests per model; ``GET /_last`` is the last request
(path, selected headers, body); ``POST /_reset`` clears both.

Run: ``python -m xrouter_dev.fake_provider --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

from aiohttp import web

Json = dict[str, Any]
STATS: Counter[str] = Counter()
LAST: Json = {}
RESPONSES: dict[str, Json] = {}
RUNNING: dict[str, float] = {}  # background responses: id -> when they complete (monotonic)


def _last_user(messages: list[Json]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(str(p.get("text", p.get("content", ""))) for p in c if isinstance(p, dict))
    return ""


def _param(model: str, prefix: str) -> int | None:
    if model.startswith(prefix + "-"):
        try:
            return int(model[len(prefix) + 1 :])
        except ValueError:
            return None
    return None


async def _gate(model: str) -> web.Response | None:
    """Apply the model's failure mode; a response to send instead, or None."""
    n = STATS[model]
    if model == "fail" or (_param(model, "flaky") or 0) >= n:
        return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
    if (_param(model, "ratelimit") or 0) >= n:
        return web.json_response(
            {"error": {"message": "slow down", "type": "rate_limit"}},
            status=429,
            headers={"Retry-After": "1"},
        )
    delay = _param(model, "slow")
    if delay:
        await asyncio.sleep(delay / 1000)
    return None


async def _read(request: web.Request) -> Json:
    body: Json = await request.json()
    LAST.clear()
    LAST.update(
        path=request.path,
        query=dict(request.query),
        headers={
            k.lower(): v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "api-key", "x-api-key", "anthropic-version", "anthropic-beta")
        },
        body=body,
    )
    return body


async def _sse(request: web.Request, model: str, events: list[bytes]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    pause = (_param(model, "slowstream") or 0) / 1000
    stall = _param(model, "stall")
    for i, event in enumerate(events):
        if model == "breakstream" and i == 2:
            assert request.transport is not None
            request.transport.close()
            return resp
        if stall is not None and i == stall:
            await asyncio.sleep(3600)  # silent, connection open: a stuck generation
        if pause:
            await asyncio.sleep(pause)
        await resp.write(event)
    await resp.write_eof()
    return resp


def _data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def openai_chat(request: web.Request) -> web.StreamResponse:
    body = await _read(request)
    model = str(body.get("model", ""))
    STATS[model] += 1
    gated = await _gate(model)
    if gated is not None:
        return gated
    text = _last_user(body.get("messages", []))
    prompt, completion = len(json.dumps(body.get("messages", [])).split()), len(text.split())
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    cid, now = f"chatcmpl-fake{STATS.total()}", int(time.time())
    msgs = body.get("messages", [])
    if model == "toolcall" and body.get("tools") and not (msgs and msgs[-1].get("role") == "tool"):
        return await _chat_tool_call(request, body, cid, now, usage)
    if not body.get("stream"):
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": now,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        )
    include = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        return _data(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **({"usage": None} if include else {}),
            }
        )

    words = text.split(" ")
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    events.append(chunk({}, "stop"))
    if include:
        events.append(
            _data(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": now,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return await _sse(request, model, events)


async def _chat_tool_call(
    request: web.Request, body: Json, cid: str, now: int, usage: Json
) -> web.StreamResponse:
    name = body["tools"][0]["function"]["name"]
    call = {
        "id": "call_fake1",
        "type": "function",
        "function": {"name": name, "arguments": '{"city": "Paris"}'},
    }
    base = {"id": cid, "created": now, "model": body["model"]}
    if not body.get("stream"):
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _data({**base, "object": "chat.completion.chunk", "choices": [choice]})

    first = {**call, "index": 0, "function": {"name": name, "arguments": ""}}
    events = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
    for part in ('{"city": ', '"Paris"}'):
        events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    events.append(chunk({}, "tool_calls"))
    events.append(_data({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return await _sse(request, str(body["model"]), events)


def _input_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))
    return ""


async def openai_responses(request: web.Request) -> web.StreamResponse:
    """The Responses API: echoes the last user input; keeps what it answered."""
    body = await _read(request)
    model = str(body.get("model", ""))
    STATS[model] += 1
    gated = await _gate(model)
    if gated is not None:
        return gated
    previous = body.get("previous_response_id")
    if previous is not None and previous not in RESPONSES:
        error = {
            "message": f"Previous response with id '{previous}' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
        return web.json_response({"error": error}, status=400)
    text = _input_text(body.get("input"))
    n_in, n_out = len(json.dumps(body.get("input")).split()), len(text.split())
    rid, mid = f"resp_fake{STATS.total()}", f"msg_fake{STATS.total()}"
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"type": "message", "id": mid, "status": "completed", "role": "assistant", "content": [part]}
    usage = {
        "input_tokens": n_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": n_in + n_out,
    }
    done = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [item],
        "previous_response_id": previous,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }
    RESPONSES[rid] = done
    if body.get("background") and not body.get("stream"):
        RUNNING[rid] = time.monotonic() + 0.3
        done["background"] = True
        return web.json_response({**done, "status": "queued", "output": [], "usage": None})
    if not body.get("stream"):
        return web.json_response(done)
    seq = iter(range(1000))

    def ev(name: str, **data: Any) -> bytes:
        return f"event: {name}\n".encode() + _data({"type": name, "sequence_number": next(seq), **data})

    started = {**done, "status": "in_progress", "output": [], "usage": None}
    events = [ev("response.created", response=started), ev("response.in_progress", response=started)]
    events.append(
        ev(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        )
    )
    events.append(
        ev(
            "response.content_part.added",
            item_id=mid,
            output_index=0,
            content_index=0,
            part={**part, "text": ""},
        )
    )
    for i, w in enumerate(text.split(" ")):
        delta = w if i == 0 else " " + w
        events.append(
            ev("response.output_text.delta", item_id=mid, output_index=0, content_index=0, delta=delta)
        )
    if model == "midfail":  # generation failed after some text: response.failed ends the stream
        error = {"code": "server_error", "message": "The model failed to generate a response."}
        failed = {**started, "status": "failed", "error": error, "usage": usage}
        events.append(ev("response.failed", response=failed))
        return await _sse(request, model, events)
    events.append(ev("response.output_text.done", item_id=mid, output_index=0, content_index=0, text=text))
    events.append(ev("response.content_part.done", item_id=mid, output_index=0, content_index=0, part=part))
    events.append(ev("response.output_item.done", output_index=0, item=item))
    events.append(ev("response.completed", response=done))
    return await _sse(request, model, events)


async def openai_response_get(request: web.Request) -> web.Response:
    LAST.clear()
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in ("authorization", "api-key")}
    LAST.update(path=request.path, query=dict(request.query), headers=headers, body=None)
    rid = request.match_info["id"]
    found = RESPONSES.get(rid)
    if found is None:
        error = {"message": "No response found", "type": "invalid_request_error", "code": "not_found"}
        return web.json_response({"error": error}, status=404)
    if request.method == "DELETE":
        del RESPONSES[rid]
        return web.json_response({"id": rid, "object": "response.deleted", "deleted": True})
    if request.path.endswith("/input_items"):
        item = {"type": "message", "id": "msg_in", "role": "user", "status": "completed", "content": []}
        return web.json_response({"object": "list", "data": [item], "has_more": False})
    running = RUNNING.get(rid, 0) > time.monotonic()
    if request.path.endswith("/cancel"):
        if not found.get("background"):
            error = {
                "message": "Only background responses can be cancelled.",
                "type": "invalid_request_error",
            }
            return web.json_response({"error": error}, status=400)
        if running:
            RUNNING.pop(rid)
            found.update(status="cancelled", output=[], usage=None)
        return web.json_response(found)
    if running:
        return web.json_response({**found, "status": "in_progress", "output": [], "usage": None})
    return web.json_response(found)


async def openai_completions(request: web.Request) -> web.Response:
    body = await _read(request)
    model = str(body.get("model", ""))
    STATS[model] += 1
    gated = await _gate(model)
    if gated is not None:
        return gated
    text = str(body.get("prompt", ""))
    n = len(text.split())
    return web.json_response(
        {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": n, "completion_tokens": n, "total_tokens": 2 * n},
        }
    )


async def openai_embeddings(request: web.Request) -> web.Response:
    body = await _read(request)
    model = str(body.get("model", ""))
    STATS[model] += 1
    items = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
    data = [
        {"object": "embedding", "index": i, "embedding": [0.1, 0.2, float(len(str(x)))]}
        for i, x in enumerate(items)
    ]
    n = sum(len(str(x).split()) for x in items)
    return web.json_response(
        {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": n, "total_tokens": n}}
    )


def _cache_writes(body: Json) -> Json:
    """Anthropic's cache-write usage: 100 tokens written when a block asks for
    ``cache_control``, for an hour if any asks ``ttl: 1h``."""
    blocks = (
        [b for b in body.get("system") or [] if isinstance(b, dict)]
        if isinstance(body.get("system"), list)
        else []
    )
    for m in body.get("messages") or []:
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            blocks += [b for b in m["content"] if isinstance(b, dict)]
    ttls = [b["cache_control"].get("ttl", "5m") for b in blocks if isinstance(b.get("cache_control"), dict)]
    if not ttls:
        return {}
    hour = "1h" in ttls
    split = {"ephemeral_5m_input_tokens": 0 if hour else 100, "ephemeral_1h_input_tokens": 100 if hour else 0}
    return {"cache_creation_input_tokens": 100, "cache_creation": split}


# The Messages API's request fields (the anthropic SDK's MessageCreateParams, with the
# sampling settings its reference documents for the models that take them, and the
# Bedrock and Vertex bodies' version and beta fields): it refuses every other field
# ("Extra inputs are not permitted"), e.g. a chat completions field left in by mistake.
_MESSAGES_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "tools"}
    | {"tool_choice", "thinking", "output_config", "service_tier", "container", "cache_control"}
    | {"temperature", "top_p", "top_k", "mcp_servers", "context_management", "inference_geo", "speed"}
    | {"diagnostics", "user_profile_id", "workspace_id", "anthropic_version", "anthropic_beta"}
)
_TOOL_CHOICE = {"auto": {"disable_parallel_tool_use"}, "any": {"disable_parallel_tool_use"}, "none": set()}


def messages_problem(body: Json) -> str | None:
    """Why the Messages API would refuse the body (400 invalid_request_error), or None:
    a field it does not know, ``metadata`` beyond ``user_id``, a ``tool_choice`` with a
    field its type has not, or an ``output_config`` whose ``format`` is not
    ``{"type": "json_schema", "schema": {...}}``."""
    extra = sorted(set(body) - _MESSAGES_FIELDS) + [
        f"metadata.{k}" for k in sorted(set(body.get("metadata") or {}) - {"user_id"})
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        allowed = _TOOL_CHOICE.get(str(choice.get("type")), {"name", "disable_parallel_tool_use"})
        extra += [f"tool_choice.{k}" for k in sorted(set(choice) - allowed - {"type"})]
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict) or set(config) - {"effort", "format"}:
            return "output_config: Extra inputs are not permitted"
        fmt = config.get("format")
        if fmt is not None and (
            not isinstance(fmt, dict)
            or set(fmt) != {"type", "schema"}
            or fmt["type"] != "json_schema"
            or not isinstance(fmt["schema"], dict)
        ):
            return "output_config.format: must be {type: json_schema, schema: {...}}"
    return None


def messages_refusal(message: str) -> web.Response:
    error = {"type": "invalid_request_error", "message": message}
    return web.json_response({"type": "error", "error": error}, status=400)


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    body = await _read(request)
    problem = messages_problem(body)
    if problem is not None:
        return messages_refusal(problem)
    model = str(body.get("model", ""))
    STATS[model] += 1
    gated = await _gate(model)
    if gated is not None:
        return gated
    msgs = body.get("messages", [])
    last = msgs[-1] if msgs else {}
    blocks: list[Any] = last["content"] if isinstance(last.get("content"), list) else []
    text = " ".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    use_tool = bool(body.get("tools")) and not any(b.get("type") == "tool_result" for b in blocks)
    usage = {"input_tokens": 10, "output_tokens": max(1, len(text.split())), "cache_read_input_tokens": 4}
    usage.update(_cache_writes(body))
    mid = f"msg_fake{STATS.total()}"
    tool = (
        {"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"], "input": {"city": "Paris"}}
        if use_tool
        else None
    )
    if not body.get("stream"):
        content: list[Json] = [{"type": "text", "text": text}]
        if tool:
            content.append(tool)
        return web.json_response(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": "tool_use" if tool else "end_turn",
                "usage": usage,
            }
        )

    def ev(name: str, data: Json) -> bytes:
        return f"event: {name}\n".encode() + _data({"type": name, **data})

    start_usage = {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_read_input_tokens": 4,
        **_cache_writes(body),
    }
    events = [
        ev(
            "message_start",
            {
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "usage": start_usage,
                }
            },
        ),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        b'event: ping\ndata: {"type": "ping"}\n\n',
    ]
    for i, w in enumerate(text.split(" ")):
        events.append(
            ev(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": w if i == 0 else " " + w}},
            )
        )
    if model == "midfail":  # the API's documented mid-stream error event, after the text
        events.append(ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
        return await _sse(request, model, events)
    events.append(ev("content_block_stop", {"index": 0}))
    if tool:
        events.append(ev("content_block_start", {"index": 1, "content_block": {**tool, "input": {}}}))
        for part in ('{"city": ', '"Paris"}'):
            events.append(
                ev(
                    "content_block_delta",
                    {"index": 1, "delta": {"type": "input_json_delta", "partial_json": part}},
                )
            )
        events.append(ev("content_block_stop", {"index": 1}))
    events.append(
        ev(
            "message_delta",
            {
                "delta": {"stop_reason": "tool_use" if tool else "end_turn"},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(ev("message_stop", {}))
    return await _sse(request, model, events)


async def anthropic_count_tokens(request: web.Request) -> web.Response:
    body = await _read(request)
    return web.json_response({"input_tokens": len(json.dumps(body.get("messages", [])).split())})


async def azure_chat(request: web.Request) -> web.StreamResponse:
    return await openai_chat(request)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(dict(STATS))


async def last(request: web.Request) -> web.Response:
    return web.json_response(LAST)


async def reset(request: web.Request) -> web.Response:
    STATS.clear()
    LAST.clear()
    RESPONSES.clear()
    RUNNING.clear()
    return web.json_response({})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/v1/completions", openai_completions)
    app.router.add_post("/v1/embeddings", openai_embeddings)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_post("/v1/messages/count_tokens", anthropic_count_tokens)
    app.router.add_post("/v1/responses", openai_responses)
    app.router.add_get("/v1/responses/{id}", openai_response_get)
    app.router.add_delete("/v1/responses/{id}", openai_response_get)
    app.router.add_get("/v1/responses/{id}/input_items", openai_response_get)
    app.router.add_post("/v1/responses/{id}/cancel", openai_response_get)
    app.router.add_post("/openai/responses", openai_responses)
    app.router.add_get("/openai/responses/{id}", openai_response_get)
    app.router.add_post("/openai/deployments/{name}/chat/completions", azure_chat)
    add_inspection(app, stats)
    return app


def add_inspection(app: web.Application, stats_handler: Any) -> None:
    """``GET /_stats``, ``GET /_last`` and ``POST /_reset``: what the tests read (the
    other fakes share ``STATS`` and ``LAST``)."""
    app.router.add_get("/_stats", stats_handler)
    app.router.add_get("/_last", last)
    app.router.add_post("/_reset", reset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
