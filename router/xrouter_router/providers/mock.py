"""``mock``: answers in-process by echoing the last user message. No account, no
network; for ``make up``, demos and tests."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from .. import sse
from .base import Adapter, Json
from .chatfields import refuse


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for v in value.values())
    return 0


def _last_user_text(payload: Json) -> str:
    for msg in reversed(payload.get("messages") or []):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _choices(payload: Json) -> int:
    n = payload.get("n")
    return n if isinstance(n, int) and n > 1 else 1


class MockAdapter(Adapter):
    """Answers in this process: ``open`` builds the response instead of sending a
    request, and everything after it (reading, streaming, accounting) is the same
    code path as for a real provider."""

    async def open(self, kind: str, payload: Json, upstream_model: str, stream: bool) -> httpx.Response:
        if kind == "chat":
            # The echo ignores every setting, but a part of the answer the client asked
            # for and reads cannot be left out: n choices, or a 400 naming the field.
            refuse(payload, frozenset({"n"}))
        if stream:
            return httpx.Response(200, content=self.stream(payload, upstream_model))
        return httpx.Response(200, content=self.answer(kind, payload, upstream_model))

    def answer(self, kind: str, payload: Json, upstream_model: str) -> bytes:
        now = int(time.time())
        if kind == "embeddings":
            inputs = payload.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            data = []
            for i, item in enumerate(items):
                digest = hashlib.sha256(str(item).encode()).digest()
                data.append({"object": "embedding", "index": i, "embedding": [b / 255 for b in digest[:8]]})
            n = _words(items)
            usage = {"prompt_tokens": n, "total_tokens": n}
            return orjson.dumps({"object": "list", "data": data, "model": upstream_model, "usage": usage})
        if kind == "completions":
            text = str(payload.get("prompt", ""))
            n = _words(text)
            return orjson.dumps(
                {
                    "id": f"cmpl-{uuid.uuid4().hex}",
                    "object": "text_completion",
                    "created": now,
                    "model": upstream_model,
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": n, "completion_tokens": n, "total_tokens": 2 * n},
                }
            )
        text = _last_user_text(payload)
        n = _choices(payload)
        prompt, completion = _words(payload.get("messages")), n * _words(text)
        message = {"role": "assistant", "content": text}
        return orjson.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": now,
                "model": upstream_model,
                "choices": [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    async def stream(self, payload: Json, upstream_model: str) -> AsyncIterator[bytes]:
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        now = int(time.time())

        def chunk(delta: Json, finish: str | None = None, usage: Json | None = None, index: int = 0) -> bytes:
            choices = [{"index": index, "delta": delta, "finish_reason": finish}] if usage is None else []
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": upstream_model,
                "choices": choices,
                "usage": usage,
            }
            return sse.encode(orjson.dumps(body))

        text = _last_user_text(payload)
        words = text.split(" ")
        n = _choices(payload)
        for c in range(n):  # each choice in turn, told apart by its index
            yield chunk({"role": "assistant", "content": ""}, index=c)
            for i, word in enumerate(words):
                yield chunk({"content": word if i == 0 else " " + word}, index=c)
            yield chunk({}, "stop", index=c)
        prompt, completion = _words(payload.get("messages")), n * _words(text)
        yield chunk(
            {},
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        )
        yield sse.DONE
