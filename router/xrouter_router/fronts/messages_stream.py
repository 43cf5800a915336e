"""Anthropic Messages stream events written from chat completion chunks:
``message_start``, ``content_block_start``/``_delta``/``_stop`` per text or tool-use
block, ``message_delta`` (stop reason and usage) and ``message_stop``."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..providers import StreamTranslator, Usage
from ..providers.base import Json
from .base import ChatChunks, notes

STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: Any, matched: Any, refused: bool) -> str:
    """Anthropic's stop reason for a chat finish reason. A server that names the stop
    string it met (vLLM and SGLang's ``stop_reason``) gives ``stop_sequence``; OpenAI
    does not say, so its stops read as ``end_turn``. A refusal is ``refusal``."""
    if refused:
        return "refusal"
    if finish == "stop" and isinstance(matched, str):
        return "stop_sequence"
    return STOP.get(finish if isinstance(finish, str) else "", "end_turn")


def new_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def message_usage(u: Usage) -> Json:
    """Anthropic counts cache reads and writes apart from the rest of the prompt."""
    return {
        "input_tokens": max(0, u.prompt - u.cached - u.cache_write),
        "output_tokens": u.completion,
        "cache_read_input_tokens": u.cached,
        "cache_creation_input_tokens": u.cache_write,
    }


def event(kind: str, data: Json) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class MessagesStream(ChatChunks):
    def __init__(self, inner: StreamTranslator) -> None:
        super().__init__(inner)
        self.index = -1  # the open content block, -1 for none
        self.block = ""  # its type: "text" or "tool_use"
        self.tools: dict[int, int] = {}  # chat tool-call index → block index
        self.blocks = 0
        self.prompt_estimate = notes().prompt_estimate

    def _start(self, model: str) -> bytes:
        message: Json = {
            "id": new_id(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The upstream counts the prompt only at the end; until then, the estimate
            # (message_delta carries the real count).
            "usage": {"input_tokens": self.prompt_estimate, "output_tokens": 0},
        }
        return event("message_start", {"message": message})

    def _close(self) -> bytes:
        if self.index < 0:
            return b""
        out = event("content_block_stop", {"index": self.index})
        self.index = -1
        return out

    def _open(self, kind: str, block: Json) -> bytes:
        out = self._close()
        self.index, self.block = self.blocks, kind
        self.blocks += 1
        return out + event("content_block_start", {"index": self.index, "content_block": block})

    def _text(self, text: str) -> bytes:
        out = b""
        if self.block != "text" or self.index < 0:
            out = self._open("text", {"type": "text", "text": ""})
        return out + event(
            "content_block_delta", {"index": self.index, "delta": {"type": "text_delta", "text": text}}
        )

    def _tool(self, call: Json) -> bytes:
        out = b""
        n = call.get("index", 0)
        fn = call.get("function") or {}
        if n not in self.tools:
            block: Json = {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": fn.get("name") or "",
                "input": {},
            }
            out = self._open("tool_use", block)
            self.tools[n] = self.index
        piece = fn.get("arguments")
        if isinstance(piece, str) and piece:
            delta = {"type": "input_json_delta", "partial_json": piece}
            out += event("content_block_delta", {"index": self.tools[n], "delta": delta})
        return out

    def finish(self, usage: Usage) -> bytes:
        out = self.begin("")
        out += self._close()
        reason = stop_reason(self.finish_reason, self.stop_match, self.refused)
        delta = {
            "stop_reason": reason,
            "stop_sequence": self.stop_match if reason == "stop_sequence" else None,
        }
        out += event("message_delta", {"delta": delta, "usage": message_usage(usage)})
        return out + event("message_stop", {})

    def error(self, error: Json) -> bytes:
        message = str(error.get("message") or "upstream error")
        return event("error", {"error": {"type": "api_error", "message": message}})
