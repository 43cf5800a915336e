"""The chat completions fields a translation to another API (the Messages API, Converse,
``generateContent``) must account for, so that none is ignored silently: each field a
translation does not map is dropped with notice (the request's ``Notes``, answered in
``x-xrouter-dropped``), or refused with a 400 naming it where the answer would lack a
part the client asked for and reads (a second choice, log probabilities, audio)."""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from ..notes import notes
from .base import Json

# Read by every translation (``to_anthropic`` and those built on it), or the router's own
# (``stream_options.include_usage`` is answered by the stream writers).
COMMON = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature"}
    | {"top_p", "stop", "tools", "tool_choice", "response_format", "user"}
)
# Values that ask for nothing beyond the API's default: nothing is lost without them.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "parallel_tool_calls": (True,),
    "store": (False,),
    "logit_bias": ({},),
    "metadata": ({},),
    "modalities": (["text"],),
    "service_tier": ("auto", "default"),
}
# Dropping these would leave out a part of the answer the client asked for and reads.
_REFUSED = {
    "n": "this provider answers one choice per request",
    "logprobs": "this provider's API returns no log probabilities",
    "modalities": "this provider answers in text only",
    "audio": "this provider answers in text only",
    "functions": "send them as tools (this provider takes no legacy functions)",
    "function_call": "send it as tool_choice (this provider takes no legacy functions)",
}


# OpenAI's processing tiers that Converse (serviceTier.type) and generateContent
# (serviceTier) name alike: cheaper and slower, or dearer and faster.
_TIERS = frozenset({"flex", "priority"})


def service_tier(payload: Json) -> str | None:
    """``service_tier`` when the APIs with processing tiers have the same one, else None
    (``account`` then drops it with notice; ``auto`` and ``default`` ask for nothing)."""
    tier = payload.get("service_tier")
    return tier if tier in _TIERS else None


def _asks(payload: Json, name: str) -> bool:
    value = payload.get(name)
    return value is not None and value not in _NEUTRAL.get(name, ())


def refuse(payload: Json, answered: frozenset[str] = frozenset()) -> None:
    """A 400 naming the first field asking for an answer part this provider cannot give
    (``answered``: the ones it can)."""
    for name, why in _REFUSED.items():
        if name not in answered and _asks(payload, name):
            raise bad_request(f"'{name}' cannot be served here: {why}", name)


def account(payload: Json, translated: frozenset[str] = frozenset()) -> None:
    """Refuse (``refuse``) or drop with notice every field of ``payload`` that neither
    ``COMMON`` nor ``translated`` (the fields this translation maps besides) covers."""
    refuse(payload, translated)
    for name in payload:
        if name not in COMMON and name not in translated and _asks(payload, name):
            notes().drop(name)
