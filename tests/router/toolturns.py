"""A conversation that exercises a provider's translation: an inline image, a tool call
and its result, as the openai SDK sends them."""

from __future__ import annotations

import base64
from typing import Any

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def tool_round_trip(call_id: str, args: str, result: str, text: str = "look") -> list[Any]:
    """User text and a PNG; the assistant's call of ``weather`` with ``args``; the tool's ``result``."""
    call = {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": args}}
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]
