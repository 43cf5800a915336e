"""``providers/mock.py``: the echo answers ``n`` choices, streamed or not, and refuses
what an echo cannot answer (log probabilities, audio), naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from .conftest import StartRouter, base_config, client
from .servers import FakeProvider

MSG: Any = [{"role": "user", "content": "hello there"}]


def test_n_choices_and_what_an_echo_cannot_answer(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    c = client(start_router(base_config(provider.url, tmp_path)))
    out = c.chat.completions.create(model="echo", messages=MSG, n=2)
    assert [(ch.index, ch.message.content) for ch in out.choices] == [(0, "hello there"), (1, "hello there")]
    texts = ["", ""]
    for chunk in c.chat.completions.create(model="echo", messages=MSG, n=2, stream=True):
        for ch in chunk.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts == ["hello there", "hello there"]
    for fields in ({"logprobs": True}, {"modalities": ["text", "audio"]}):
        with pytest.raises(openai.BadRequestError) as refused:
            c.chat.completions.create(model="echo", messages=MSG, **fields)
        assert refused.value.param == next(iter(fields))
