"""``providers/chatfields.py``: a chat field a translation does not map is dropped with
notice or refused naming it, never ignored; a default value asks for nothing."""

from __future__ import annotations

import pytest
from xrouter_router.errors import APIError
from xrouter_router.notes import NOTES, Notes
from xrouter_router.providers.chatfields import account

CHAT = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True, "user": "u"}


def _dropped(payload: dict[str, object], translated: frozenset[str] = frozenset()) -> list[str]:
    notes = Notes()
    token = NOTES.set(notes)
    try:
        account(payload, translated)
    finally:
        NOTES.reset(token)
    return notes.dropped


def test_defaults_and_mapped_fields_are_not_reported() -> None:
    defaults = {"n": 1, "logprobs": False, "presence_penalty": 0, "parallel_tool_calls": True, "store": False}
    assert _dropped({**CHAT, **defaults, "seed": None}) == []
    assert _dropped({**CHAT, "seed": 7}, frozenset({"seed"})) == []


def test_unmapped_fields_are_dropped_with_notice() -> None:
    payload = {**CHAT, "seed": 7, "logit_bias": {"1": 5}, "reasoning_effort": "low", "some_new_field": 1}
    assert _dropped(payload) == ["seed", "logit_bias", "reasoning_effort", "some_new_field"]


@pytest.mark.parametrize(
    "fields",
    [{"n": 2}, {"logprobs": True}, {"modalities": ["text", "audio"]}, {"functions": [{"name": "f"}]}],
)
def test_a_missing_answer_part_is_refused_naming_the_field(fields: dict[str, object]) -> None:
    with pytest.raises(APIError) as refused:
        _dropped({**CHAT, **fields})
    assert refused.value.status == 400 and refused.value.param == next(iter(fields))
