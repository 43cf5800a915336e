"""A fake Gemini API and Vertex AI on loopback, for tests, built from the published
references: ``generateContent`` and ``streamGenerateContent?alt=sse`` (Gemini API
with ``x-goog-api-key``; Vertex with a bearer token), Vertex's ``rawPredict`` and
``streamRawPredict`` for Claude (``anthropic_version: vertex-2023-10-16``), Google's
OAuth token endpoint (a service-account JWT, checked with google-auth) and the
metadata server's token. Gemini bodies are checked with the google-genai SDK's own
models, which refuse unknown fields.

The answer echoes the last user text. The model id picks other behaviours:
``blocked`` (the prompt is blocked: promptFeedback.blockReason SAFETY), ``unsafe``
(finishReason SAFETY), ``exhausted`` (429 RESOURCE_EXHAUSTED). With tools, and no
function response in the last turn, the answer calls the first function.

Run: ``python -m xrouter_dev.fake_google --port 9200 --api-key K --sa-email E --sa-public-key PEM_FILE``.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import google.auth.jwt
from aiohttp import web
from google.genai import types
from pydantic import BaseModel, ValidationError

from xrouter_dev.fake_bedrock import anthropic_events, send_frames
from xrouter_dev.fake_provider import LAST, STATS, add_inspection, messages_problem, messages_refusal

Json = dict[str, Any]
_SSE = "text/event-stream"
_FIELDS: dict[str, type[BaseModel]] = {
    "contents": types.Content,
    "systemInstruction": types.Content,
    "toolConfig": types.ToolConfig,
    "generationConfig": types.GenerationConfig,
}


def _error(status: int, state: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": state}}, status=status)


def _check(body: Json) -> str | None:
    unknown = set(body) - {*_FIELDS, "tools", "safetySettings", "cachedContent", "labels", "serviceTier"}
    if unknown:
        return f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}"
    if "serviceTier" in body and str(body["serviceTier"]).lower() not in {t.value for t in types.ServiceTier}:
        return f"Invalid value at 'service_tier': {body['serviceTier']!r}"
    try:
        for c in body.get("contents") or []:
            types.Content.model_validate(c)
        for t in body.get("tools") or []:
            types.Tool.model_validate(t)
        for name in ("systemInstruction", "toolConfig", "generationConfig"):
            if name in body:
                _FIELDS[name].model_validate(body[name])
    except ValidationError as exc:
        return f"Invalid JSON payload received. {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
    config = body.get("generationConfig") or {}
    schemas = [k for k in ("responseSchema", "responseJsonSchema") if k in config]
    if len(schemas) > 1:
        return "responseSchema and responseJsonSchema cannot both be set"
    if schemas and config.get("responseMimeType") != "application/json":
        return f"{schemas[0]} needs responseMimeType application/json"
    return None if body.get("contents") else "contents is not specified"


def _gemini_answer(model: str, body: Json) -> list[Json]:
    """The answer as stream chunks (the last one with finishReason and usage)."""
    if model == "blocked":
        return [{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "modelVersion": model}]
    last_turn = body["contents"][-1]["parts"]
    text = " ".join(p["text"] for p in last_turn if "text" in p)
    decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    call = decls and not any("functionResponse" in p for p in last_turn)
    words = text.split(" ")
    chunks: list[Json] = [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": (" " if i else "") + w}]}, "index": 0}
            ]
        }
        for i, w in enumerate(words)
    ]
    final: Json = {"content": {"role": "model", "parts": []}, "index": 0, "finishReason": "STOP"}
    if call:
        final["content"]["parts"] = [{"functionCall": {"name": decls[0]["name"], "args": {"city": "Paris"}}}]
    if model == "unsafe":
        final["finishReason"] = "SAFETY"
        final["safetyRatings"] = [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ]
    n_in = max(1, len(json.dumps(body["contents"]).split()))
    usage = {
        "promptTokenCount": n_in,
        "candidatesTokenCount": len(words),
        "totalTokenCount": n_in + len(words),
        "cachedContentTokenCount": 3,
    }
    chunks.append(
        {"candidates": [final], "usageMetadata": usage, "modelVersion": model, "responseId": "resp-fake"}
    )
    return chunks


def _logprobs(chunks: list[Json], config: Json) -> Json:
    """``logprobsResult`` when ``responseLogprobs`` asks: each word a token, chosen with
    log probability -0.1 per step, and ``logprobs`` alternatives per step (the chosen first)."""
    if not config.get("responseLogprobs"):
        return {}
    words = [p["text"] for c in chunks[:-1] for p in c["candidates"][0]["content"]["parts"] if "text" in p]
    chosen = [{"token": w, "tokenId": i, "logProbability": -0.1} for i, w in enumerate(words)]
    n = config.get("logprobs") or 0
    alternatives = [{"token": f"alt{k}", "tokenId": 900 + k, "logProbability": -3.0} for k in range(1, n)]
    top = [{"candidates": [c, *alternatives]} for c in chosen] if n else []
    result = {"chosenCandidates": chosen, "logProbabilitySum": -0.1 * len(chosen)}
    return {"logprobsResult": {**result, **({"topCandidates": top} if top else {})}, "avgLogprobs": -0.1}


def _merge(chunks: list[Json]) -> Json:
    """The non-streamed answer: the chunks' parts joined (text parts merged)."""
    final = chunks[-1]
    if "candidates" not in final:
        return final
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"] if "text" in p)
    calls = [p for p in final["candidates"][0]["content"]["parts"] if "functionCall" in p]
    candidate = {**final["candidates"][0], "content": {"role": "model", "parts": [{"text": text}, *calls]}}
    return {**final, "candidates": [candidate]}


async def generate(request: web.Request, model: str, action: str, body: Json) -> web.StreamResponse:
    problem = _check(body)
    if problem is not None:
        return _error(400, "INVALID_ARGUMENT", problem)
    if model == "exhausted":
        return _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
    chunks = _gemini_answer(model, body)
    if action == "generateContent":
        answer = _merge(chunks)
        config = body.get("generationConfig") or {}
        if "candidates" in answer:  # candidateCount answers: as many, each with its index
            first = {**answer["candidates"][0], **_logprobs(chunks, config)}
            answer["candidates"] = [{**first, "index": i} for i in range(config.get("candidateCount") or 1)]
        return web.json_response(answer)
    config = body.get("generationConfig") or {}
    if (config.get("candidateCount") or 1) > 1 or config.get("responseLogprobs"):
        # This fake streams one candidate, without log probabilities; the router never asks.
        return _error(400, "INVALID_ARGUMENT", "this fake streams one candidate, without logprobs")
    if action != "streamGenerateContent" or request.query.get("alt") != "sse":
        return _error(400, "INVALID_ARGUMENT", "this fake streams with alt=sse only")
    return await send_frames(
        request, [b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks], _SSE
    )


async def claude(request: web.Request, model: str, action: str, body: Json) -> web.StreamResponse:
    # The documented vertex-2023-10-16, or an API version date (what newer anthropic SDKs send).
    version = str(body.get("anthropic_version"))
    if not (version == "vertex-2023-10-16" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", version)) or "model" in body:
        return _error(400, "INVALID_ARGUMENT", "anthropic_version must be vertex-2023-10-16; no model")
    problem = messages_problem(body)
    if problem is not None:
        return messages_refusal(problem)
    blocks = body["messages"][-1]["content"]
    blocks = [{"type": "text", "text": blocks}] if isinstance(blocks, str) else blocks
    text = " ".join(b["text"] for b in blocks if b.get("type") == "text")
    tools = body.get("tools") or []
    tool = None
    if tools and not any(b.get("type") == "tool_result" for b in blocks):
        tool = {
            "type": "tool_use",
            "id": "toolu_vrtx_1",
            "name": tools[0]["name"],
            "input": {"city": "Paris"},
        }
    events = anthropic_events(model, text, tool)
    if action == "rawPredict":
        content = [{"type": "text", "text": text}] + ([tool] if tool else [])
        usage = {"input_tokens": 10, "output_tokens": len(text.split()), "cache_read_input_tokens": 4}
        return web.json_response(
            {
                **events[0]["message"],
                "content": content,
                "usage": usage,
                "stop_reason": "tool_use" if tool else "end_turn",
                "stop_sequence": None,
            }
        )
    if not body.get("stream"):
        return _error(400, "INVALID_ARGUMENT", "streamRawPredict needs stream: true")
    return await send_frames(
        request, [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events], _SSE
    )


def _authorized(request: web.Request, vertex: bool) -> bool:
    app = request.app
    if vertex:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return bool(app["tokens"].get(token, 0) > time.time())
    return app["api_key"] is not None and request.headers.get("x-goog-api-key") == app["api_key"]


async def model_call(request: web.Request) -> web.StreamResponse:
    vertex = "publisher" in request.match_info
    if not _authorized(request, vertex):
        return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    model, _, action = request.match_info["tail"].partition(":")
    STATS[model] += 1
    body = await request.json()
    LAST.clear()
    LAST.update(path=request.path, query=request.query_string, body=body)
    if request.match_info.get("publisher") == "anthropic":
        return await claude(request, model, action, body)
    return await generate(request, model, action, body)


def _issue(app: web.Application) -> Json:
    token = "ya29.fake-" + secrets.token_hex(16)
    app["tokens"][token] = time.time() + app["ttl"]
    app["issued"] += 1
    return {"access_token": token, "expires_in": int(app["ttl"]), "token_type": "Bearer"}


async def oauth_token(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
    audience = f"http://{request.host}/token"
    try:
        claims = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
            str(form.get("assertion")), certs=request.app["certs"], audience=audience
        )
    except ValueError as exc:
        return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
    if claims.get("iss") != request.app["email"] or "cloud-platform" not in str(claims.get("scope")):
        return web.json_response({"error": "invalid_scope"}, status=400)
    if claims["exp"] - claims["iat"] > 3600:
        return web.json_response(
            {"error": "invalid_grant", "error_description": "lifetime over 1 h"}, status=400
        )
    return web.json_response(_issue(request.app))


async def metadata_token(request: web.Request) -> web.Response:
    if request.headers.get("metadata-flavor") != "Google":
        return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
    return web.json_response(_issue(request.app))


async def stats(request: web.Request) -> web.Response:
    return web.json_response({**STATS, "_issued": request.app["issued"]})


def make_app(api_key: str | None, email: str, certs: dict[str, str], ttl: float) -> web.Application:
    app = web.Application()
    app.update(api_key=api_key, email=email, certs=certs, ttl=ttl, tokens={}, issued=0)
    app.router.add_post("/v1beta/models/{tail}", model_call)
    app.router.add_post("/v1/models/{tail}", model_call)
    app.router.add_post(
        "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{tail}", model_call
    )
    app.router.add_post("/token", oauth_token)
    app.router.add_get("/computeMetadata/v1/instance/service-accounts/default/token", metadata_token)
    add_inspection(app, stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--sa-email", default="router@fake-project.iam.gserviceaccount.com")
    parser.add_argument("--sa-key-id", default="fake-key-1")
    parser.add_argument("--sa-public-key", default=None, help="PEM file of the service account's public key")
    parser.add_argument("--ttl", type=float, default=3600.0, help="lifetime of issued tokens (s)")
    args = parser.parse_args()
    certs = {args.sa_key_id: Path(args.sa_public_key).read_text()} if args.sa_public_key else {}
    app = make_app(args.api_key, args.sa_email, certs, args.ttl)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
