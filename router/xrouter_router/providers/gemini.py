"""Gemini's ``generateContent`` ↔ OpenAI chat completions (the Gemini API and Vertex
AI speak the same body): contents and system instruction, inline images, function
declarations, calls and responses, generation settings, finish reasons and safety
blocks, usage with cached tokens, and the ``alt=sse`` stream."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from .. import sse
from ..errors import APIError, bad_request, error_body
from ..notes import notes
from .anthropic import to_anthropic
from .base import ChunkWriter, Json, Usage, usage_json
from .chatfields import account, service_tier
from .structured import gemini_format

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# The chat fields generateContent takes besides chatfields.COMMON, each in generationConfig.
_GENERATION = {
    "seed": "seed",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
    "top_k": "topK",
}
# JSON Schema keywords Gemini's OpenAPI-subset ``parameters`` refuses.
_UNSUPPORTED = frozenset({"$schema", "additionalProperties", "$id", "$defs", "definitions"})


def _schema(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _schema(v) for k, v in value.items() if k not in _UNSUPPORTED}
    if isinstance(value, list):
        return [_schema(v) for v in value]
    return value


def _part(block: Json, names: dict[str, str], param: str) -> Json:
    kind = block["type"]
    if kind == "text":
        return {"text": block["text"]}
    if kind == "image":
        source = block["source"]
        if source.get("type") != "base64":
            raise bad_request("Gemini takes images inline only: send a data: URL (base64)", param)
        return {"inlineData": {"mimeType": source["media_type"], "data": source["data"]}}
    if kind == "tool_use":
        return {"functionCall": {"name": block["name"], "args": block["input"]}}
    name = names.get(block["tool_use_id"])  # tool_result: Gemini answers a call by name
    if name is None:
        raise bad_request("a tool message answers no earlier tool call", param)
    try:
        result = orjson.loads(block["content"])
    except orjson.JSONDecodeError:
        result = None
    return {
        "functionResponse": {
            "name": name,
            "response": result if isinstance(result, dict) else {"content": block["content"]},
        }
    }


def to_gemini(payload: Json) -> Json:
    """An OpenAI chat completion request as a ``generateContent`` body."""
    a = to_anthropic(payload, "", False)
    names = {b["id"]: b["name"] for m in a["messages"] for b in m["content"] if b["type"] == "tool_use"}
    contents = []
    for i, msg in enumerate(a["messages"]):
        parts = [_part(b, names, f"messages[{i}].content") for b in msg["content"]]
        parts = [p for p in parts if p.get("text") != ""]
        if parts:
            contents.append({"role": "model" if msg["role"] == "assistant" else "user", "parts": parts})
    body: Json = {"contents": contents}
    if "system" in a:
        body["systemInstruction"] = {"parts": [{"text": a["system"]}]}
    config: Json = {}
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("stop_sequences", "stopSequences"),
    ):
        if ours in a:
            config[theirs] = a[ours]
    for ours, theirs in _GENERATION.items():
        if payload.get(ours) is not None:
            config[theirs] = payload[ours]
    config.update(gemini_format(payload))
    if payload.get("user") is not None:
        notes().drop("user")  # generateContent has no end-user field
    n = payload.get("n")
    if isinstance(n, int) and n > 1:
        if payload.get("stream"):
            # The stream writer follows one candidate: the others would be lost.
            raise bad_request(
                "Gemini's answers with n above 1 cannot be streamed here: send stream false", "n"
            )
        config["candidateCount"] = n
    config.update(_logprobs_config(payload))
    tier = service_tier(payload)
    if tier is not None:
        body["serviceTier"] = tier
    translated = {*_GENERATION, "n", "logprobs", "top_logprobs", *(("service_tier",) if tier else ())}
    account(payload, frozenset(translated))
    if config:
        body["generationConfig"] = config
    if a.get("tools"):
        decls = []
        for t in a["tools"]:
            decl = {"name": t["name"], "parameters": _schema(t["input_schema"])}
            if t.get("description"):
                decl["description"] = t["description"]
            decls.append(decl)
        body["tools"] = [{"functionDeclarations": decls}]
        choice = a.get("tool_choice", {})
        mode = {"auto": "AUTO", "any": "ANY", "tool": "ANY", "none": "NONE"}.get(choice.get("type"))
        if mode:
            calling: Json = {"mode": mode}
            if choice.get("type") == "tool":
                calling["allowedFunctionNames"] = [choice["name"]]
            body["toolConfig"] = {"functionCallingConfig": calling}
    return body


def _logprobs_config(payload: Json) -> Json:
    """``logprobs``/``top_logprobs`` as ``responseLogprobs``/``logprobs``: the chosen
    tokens' log probabilities and as many alternatives per step."""
    top = payload.get("top_logprobs")
    if payload.get("logprobs") is not True:
        if top:  # as OpenAI answers it
            raise bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        return {}
    if payload.get("stream"):
        # The stream writer carries no log probabilities: they would be lost.
        raise bad_request("Gemini's log probabilities cannot be streamed here: send stream false", "logprobs")
    return {"responseLogprobs": True, **({"logprobs": top} if top else {})}


def _token(candidate: Any) -> Json:
    token = str(candidate.get("token", "")) if isinstance(candidate, dict) else ""
    logprob = candidate.get("logProbability", 0.0) if isinstance(candidate, dict) else 0.0
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def _logprobs(result: Any) -> Json | None:
    """``logprobsResult`` as ``choices[].logprobs``: a chosen token per decoding step,
    with that step's top candidates as its ``top_logprobs``."""
    if not isinstance(result, dict):
        return None
    tops = result.get("topCandidates") or []
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or []):
        top = (tops[i].get("candidates") if i < len(tops) and isinstance(tops[i], dict) else None) or []
        content.append({**_token(chosen), "top_logprobs": [_token(t) for t in top]})
    return {"content": content, "refusal": None}


def usage(data: Any) -> Usage:
    u = data.get("usageMetadata") if isinstance(data, dict) else None
    if not isinstance(u, dict):
        return Usage()

    def n(key: str) -> int:
        v = u.get(key)
        return v if isinstance(v, int) and v >= 0 else 0

    # Thinking tokens are billed as output.
    return Usage(
        n("promptTokenCount"),
        n("candidatesTokenCount") + n("thoughtsTokenCount"),
        n("cachedContentTokenCount"),
    )


def blocked(data: Json) -> APIError | None:
    """A prompt Gemini refused to answer (``promptFeedback.blockReason``, no candidates)."""
    reason = (data.get("promptFeedback") or {}).get("blockReason")
    if reason and not data.get("candidates"):
        return APIError(400, f"Gemini blocked the prompt ({reason})", code="content_filter")
    return None


def _calls(parts: list[Json]) -> list[Json]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": p["functionCall"]["name"],
                "arguments": orjson.dumps(p["functionCall"].get("args") or {}).decode(),
            },
        }
        for p in parts
        if "functionCall" in p
    ]


def _choice(candidate: Json, i: int) -> Json:
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))
    calls = _calls(parts)
    message: Json = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else FINISH.get(str(candidate.get("finishReason")), "stop")
    index = candidate.get("index")
    return {
        "index": index if isinstance(index, int) else i,
        "message": message,
        "logprobs": _logprobs(candidate.get("logprobsResult")),
        "finish_reason": finish,
    }


def from_gemini(data: Json, model: str) -> tuple[Json, Usage]:
    """A ``generateContent`` answer as an OpenAI chat completion: each candidate a
    choice (``candidateCount``, from ``n``)."""
    err = blocked(data)
    if err is not None:
        raise err
    choices = [_choice(c, i) for i, c in enumerate(data["candidates"])]
    if not choices:
        raise KeyError("candidates")
    u = usage(data)
    body = {
        "id": f"chatcmpl-{data.get('responseId') or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": sorted(choices, key=lambda c: c["index"]),
        "usage": usage_json(u),
    }
    return body, u


class GeminiStream(ChunkWriter):
    """``streamGenerateContent?alt=sse`` events (each a partial answer) → OpenAI
    chunks. The chunk with a ``finishReason`` is the last one; it carries the usage."""

    def __init__(self, include_usage: bool, public_model: str) -> None:
        super().__init__(include_usage, public_model, f"chatcmpl-{uuid.uuid4().hex}")
        self.started = False
        self.calls = 0

    def feed(self, event: str | None, data: bytes, raw: bytes) -> bytes:
        ev = orjson.loads(data)
        if isinstance(ev.get("error"), dict):  # an error after the 200: Google's error shape
            self.done = True
            return self._end_error(str(ev["error"].get("message", "upstream error")))
        out = []
        if not self.started:
            self.started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if blocked(ev) is not None:
            self.done = True
            reason = ev["promptFeedback"]["blockReason"]
            return b"".join(out) + self._end_error(f"Gemini blocked the prompt ({reason})", blocked=True)
        candidate = (ev.get("candidates") or [{}])[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        for p in parts:
            if isinstance(p.get("text"), str) and p["text"] and not p.get("thought"):
                out.append(self._chunk({"content": p["text"]}))
        for call in _calls(parts):
            out.append(self._tool_start(self.calls, call["id"], call["function"]["name"]))
            out.append(self._tool_args(self.calls, call["function"]["arguments"]))
            self.calls += 1
        if "usageMetadata" in ev:
            self.usage = usage(ev)
        reason = candidate.get("finishReason")
        if reason:
            finish = "tool_calls" if self.calls else FINISH.get(str(reason), "stop")
            out.append(self._chunk({}, finish))
            out.append(self._end())
        return b"".join(out)

    def _end_error(self, message: str, blocked: bool = False) -> bytes:
        status, code = (400, "content_filter") if blocked else (502, "upstream_error")
        return sse.encode(error_body(status, message, code=code))
