"""A fake Amazon Bedrock Runtime on loopback, for tests, built from the published API
reference: Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream
(Anthropic models, ``anthropic_version: bedrock-2023-05-31``). Every request's SigV4
signature is checked with botocore's signer, and Converse bodies with botocore's
validator against the service model, so a wrong wire format is refused as AWS would
refuse it. Streams use AWS's binary event-stream framing. It also serves STS
(``AssumeRoleWithWebIdentity``) and IMDSv2, which hand out short-lived keys.

The answer echoes the last user text. The model id picks other behaviours:
``throttle`` (429 ThrottlingException), ``streamthrottle`` (a stream that opens with a
throttlingException), ``guardrail`` (stopReason guardrail_intervened), ``badframe``
(a stream frame with a wrong CRC). A request with tools, whose last message holds no
tool result, is answered with a call of the first tool (``{"city": "Paris"}``).

``GET /_stats`` counts requests per model and issued credentials; ``GET /_last`` is the
last request (path, body, access key); ``POST /_reset`` clears them.

Run: ``python -m xrouter_dev.fake_bedrock --port 9100 --access-key AKID --secret-key S``.
"""

from __future__ import annotations

import argparse
import base64
import json
from typing import Any

import botocore.session
from aiohttp import web
from botocore.validate import ParamValidator

from xrouter_dev.fake_aws import Identity, add_imds, error, event, exception, frame, sts_handler
from xrouter_dev.fake_provider import LAST, STATS, add_inspection, messages_problem

Json = dict[str, Any]
_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _last_text(messages: list[Json], key: str) -> tuple[str, bool]:
    """The last message's text, and whether it holds a tool result."""
    content = messages[-1].get("content") if messages else []
    if isinstance(content, str):
        return content, False
    texts, result = [], False
    for block in content or []:
        if key == "converse":
            texts += [block["text"]] if "text" in block else []
            result = result or "toolResult" in block
        else:
            texts += [block["text"]] if block.get("type") == "text" else []
            result = result or block.get("type") == "tool_result"
    return " ".join(texts), result


async def send_frames(
    request: web.Request, frames: list[bytes], ctype: str = "application/vnd.amazon.eventstream"
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": ctype})
    await resp.prepare(request)
    for f in frames:
        await resp.write(f)
    await resp.write_eof()
    return resp


def _converse_frames(text: str, tool: Json | None, stop: str, usage: Json) -> list[bytes]:
    def ev(name: str, data: Json) -> bytes:
        # Bedrock pads each event with "p" (random letters, hiding the payload's length).
        return event(name, json.dumps({**data, "p": "abcdefgh"}).encode())

    frames = [ev("messageStart", {"role": "assistant"})]
    for i, word in enumerate(text.split(" ")):
        frames.append(
            ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": (" " if i else "") + word}})
        )
    frames.append(ev("contentBlockStop", {"contentBlockIndex": 0}))
    if tool is not None:
        start = {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}}
        frames.append(ev("contentBlockStart", {"contentBlockIndex": 1, "start": start}))
        for part in ('{"city": ', '"Paris"}'):
            frames.append(
                ev("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": part}}})
            )
        frames.append(ev("contentBlockStop", {"contentBlockIndex": 1}))
    frames.append(ev("messageStop", {"stopReason": stop}))
    frames.append(ev("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
    return frames


def _schema_problem(body: Json) -> str | None:
    """outputConfig.textFormat's schema is a string (the service model says so) holding
    a JSON Schema: an object."""
    fmt = (body.get("outputConfig") or {}).get("textFormat")
    if fmt is None:
        return None
    try:
        schema = json.loads(fmt["structure"]["jsonSchema"]["schema"])
    except (KeyError, TypeError, ValueError):
        return "outputConfig.textFormat.structure.jsonSchema.schema is not valid JSON"
    return None if isinstance(schema, dict) else "the JSON schema must be an object"


async def converse(request: web.Request) -> web.StreamResponse:
    model, action = request.match_info["model"], request.match_info["action"]
    raw = await request.read()
    identity: Identity = request.app["identity"]
    denied = identity.verify(request, raw)
    if denied is not None:
        return denied
    STATS[model] += 1
    try:
        body = json.loads(raw)
    except ValueError:
        return error(400, "SerializationException", "invalid JSON")
    LAST.clear()
    LAST.update(path=request.path, body=body, key=identity.used[-1] if identity.used else None)
    if action in ("invoke", "invoke-with-response-stream"):
        return await _invoke(request, model, body, action.endswith("stream"))
    op = "ConverseStream" if action == "converse-stream" else "Converse"
    report = ParamValidator().validate({**body, "modelId": model}, _MODEL.operation_model(op).input_shape)
    if report.has_errors():
        return error(400, "ValidationException", report.generate_report())
    problem = _schema_problem(body)
    if problem is not None:
        return error(400, "ValidationException", problem)
    if "throttle" in model and not model.startswith("stream"):
        return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    text, had_result = _last_text(body["messages"], "converse")
    tools = (body.get("toolConfig") or {}).get("tools") or []
    tool = None
    if tools and not had_result:
        tool = {
            "toolUseId": "tooluse_fake1",
            "name": tools[0]["toolSpec"]["name"],
            "input": {"city": "Paris"},
        }
    stop = "tool_use" if tool else ("guardrail_intervened" if model == "guardrail" else "end_turn")
    n_in = _words(json.dumps(body["messages"]))
    usage = {
        "inputTokens": n_in,
        "outputTokens": _words(text),
        "totalTokens": n_in + _words(text),
        "cacheReadInputTokens": 2,
        "cacheWriteInputTokens": 0,
    }
    if action == "converse":
        content: list[Json] = [{"text": text}] + ([{"toolUse": tool}] if tool else [])
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": usage,
                "metrics": {"latencyMs": 12},
            }
        )
    if model == "streamthrottle":
        return await send_frames(request, [exception("throttlingException", "Too many requests")])
    frames = _converse_frames(text, tool, stop, usage)
    if model == "badframe":
        frames[1] = frames[1][:-1] + bytes([frames[1][-1] ^ 0xFF])
    return await send_frames(request, frames)


def anthropic_events(model: str, text: str, tool: Json | None) -> list[Json]:
    usage = {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 4}
    msg: Json = {
        "id": "msg_bdrk_fake1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "usage": usage,
    }
    events: list[Json] = [
        {"type": "message_start", "message": msg},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for i, w in enumerate(text.split(" ")):
        events.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": (" " if i else "") + w},
            }
        )
    events.append({"type": "content_block_stop", "index": 0})
    if tool is not None:
        events.append({"type": "content_block_start", "index": 1, "content_block": {**tool, "input": {}}})
        events.append(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
            }
        )
        events.append({"type": "content_block_stop", "index": 1})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if tool else "end_turn"},
            "usage": {"output_tokens": _words(text)},
        }
    )
    metrics = {
        "inputTokenCount": 10,
        "outputTokenCount": _words(text),
        "invocationLatency": 12,
        "firstByteLatency": 5,
    }
    events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
    return events


async def _invoke(request: web.Request, model: str, body: Json, stream: bool) -> web.StreamResponse:
    if "anthropic." not in model:
        return error(400, "ValidationException", "Malformed input request")
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        return error(400, "ValidationException", "invalid anthropic_version")
    extra = sorted(set(body) & {"model", "stream"})
    if extra:
        return error(400, "ValidationException", f"extraneous key [{extra[0]}] is not permitted")
    if not isinstance(body.get("max_tokens"), int) or not isinstance(body.get("messages"), list):
        return error(400, "ValidationException", "max_tokens and messages are required")
    problem = messages_problem(body)
    if problem is not None:
        return error(400, "ValidationException", f"Malformed input request: {problem}")
    text, had_result = _last_text(body["messages"], "anthropic")
    tools = body.get("tools") or []
    tool = None
    if tools and not had_result:
        tool = {
            "type": "tool_use",
            "id": "toolu_bdrk_1",
            "name": tools[0]["name"],
            "input": {"city": "Paris"},
        }
    events = anthropic_events(model, text, tool)
    if not stream:
        content = [{"type": "text", "text": text}] + ([tool] if tool else [])
        usage = {"input_tokens": 10, "output_tokens": _words(text), "cache_read_input_tokens": 4}
        answer = {
            **events[0]["message"],
            "content": content,
            "usage": usage,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
        }
        return web.json_response(answer)
    frames = [
        frame(
            {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
            json.dumps({"bytes": base64.b64encode(json.dumps(e).encode()).decode()}).encode(),
        )
        for e in events
    ]
    return await send_frames(request, frames)


async def stats(request: web.Request) -> web.Response:
    return web.json_response({**STATS, "_issued": request.app["identity"].issued})


def make_app(identity: Identity) -> web.Application:
    app = web.Application()
    app["identity"] = identity
    app.router.add_post(
        "/model/{model}/{action:converse|converse-stream|invoke|invoke-with-response-stream}", converse
    )
    app.router.add_post("/", sts_handler(identity))
    add_imds(app, identity)
    add_inspection(app, stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--access-key", default="AKIAFAKEEXAMPLE")
    parser.add_argument("--secret-key", default="fake/secret/key")
    parser.add_argument("--api-key", default=None, help="a Bedrock API key accepted as a bearer token")
    parser.add_argument("--web-identity-token", default=None)
    parser.add_argument("--ttl", type=float, default=3600.0, help="lifetime of issued credentials (s)")
    args = parser.parse_args()
    identity = Identity(
        args.region,
        {args.access_key: (args.secret_key, None, None)},
        args.api_key,
        args.web_identity_token,
        args.ttl,
    )
    web.run_app(make_app(identity), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
