"""The OpenAI-compatible endpoints, driven by the real ``openai`` SDK."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import KEY, KEY2, StartRouter, base_config, client
from .servers import FakeProvider, Router


@pytest.fixture
def router(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> Router:
    return start_router(base_config(provider.url, tmp_path))


MSG: Any = [{"role": "user", "content": "hello there world"}]


def test_chat_non_stream(router: Router, provider: FakeProvider) -> None:
    raw = client(router).chat.completions.with_raw_response.create(model="gpt", messages=MSG)
    out = raw.parse()
    assert out.choices[0].message.content == "hello there world"
    assert out.usage is not None and out.usage.completion_tokens == 3
    assert len(raw.headers["x-request-id"]) == 32
    assert 0 <= float(raw.headers["x-xrouter-overhead-ms"]) < 50
    last = provider.last()
    assert last["body"]["model"] == "gpt-up"
    assert last["headers"]["authorization"] == "Bearer sk-upstream-secret"


def test_chat_stream_with_usage(router: Router) -> None:
    chunks = list(
        client(router).chat.completions.create(
            model="gpt", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there world"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_stream_without_usage_hides_the_usage_chunk(router: Router, provider: FakeProvider) -> None:
    chunks = list(client(router).chat.completions.create(model="gpt", messages=MSG, stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # ...but the router asked for usage upstream, so it can still account for it.
    assert provider.last()["body"]["stream_options"] == {"include_usage": True}
    assert router.metric("xrouter_tokens_total", model="gpt", kind="completion") == 3


def test_stream_is_incremental(router: Router) -> None:
    # slowstream-400: the fake waits 400 ms before each of its 6 events (2.4 s in all).
    began = time.monotonic()
    stream = client(router).chat.completions.create(
        model="slowstream", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    first = None
    for _chunk in stream:
        if first is None:
            first = time.monotonic() - began
    total = time.monotonic() - began
    assert first is not None and total > 2.0
    assert first < 1.2, f"first chunk after {first:.2f}s of {total:.2f}s: the stream was buffered"


def test_stream_broken_midway_ends_with_error(router: Router, provider: FakeProvider) -> None:
    with httpx.stream(
        "POST",
        router.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "breakstream", "messages": MSG, "stream": True},
    ) as resp:
        assert resp.status_code == 200
        body = b"".join(resp.iter_raw())
    assert b"upstream stream ended early" in body
    assert provider.stats()["breakstream"] == 1  # never retried after bytes went out


def test_completions_and_embeddings(router: Router) -> None:
    c = client(router)
    assert c.completions.create(model="gpt", prompt="say this").choices[0].text == "say this"
    emb = c.embeddings.create(model="gpt", input=["a", "b c"])
    assert len(emb.data) == 2


def test_mock_provider(router: Router) -> None:
    c = client(router)
    assert (
        c.chat.completions.create(model="echo", messages=MSG).choices[0].message.content
        == "hello there world"
    )
    text = "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="echo", messages=MSG, stream=True)
        if ch.choices
    )
    assert text == "hello there world"


def test_azure_uses_deployment_url(router: Router, provider: FakeProvider) -> None:
    out = client(router).chat.completions.create(model="azure", messages=MSG)
    assert out.choices[0].message.content == "hello there world"
    last = provider.last()
    assert last["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert last["query"] == {"api-version": "2024-06-01"}
    assert last["headers"]["api-key"] == "sk-upstream-secret"


def test_models_lists_only_allowed(router: Router) -> None:
    assert {m.id for m in client(router).models.list()} == {
        "gpt",
        "claude",
        "azure",
        "echo",
        "slowstream",
        "slow",
        "breakstream",
    }
    assert [m.id for m in client(router, KEY2).models.list()] == ["echo"]


def test_errors(router: Router) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(router, "sk-wrong").chat.completions.create(model="gpt", messages=MSG)
    with pytest.raises(openai.PermissionDeniedError):
        client(router, KEY2).chat.completions.create(model="gpt", messages=MSG)
    with pytest.raises(openai.NotFoundError) as e:
        client(router).chat.completions.create(model="nope", messages=MSG)
    assert e.value.body["param"] == "model"  # type: ignore[index]
    # An unknown model never becomes a label value.
    assert 'model="nope"' not in router.metrics()


def test_client_disconnect_cancels_upstream(router: Router, provider: FakeProvider) -> None:
    def go() -> None:
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(
                router.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {KEY}"},
                json={"model": "slow", "messages": MSG},
                timeout=0.5,
            )

    t = threading.Thread(target=go)
    t.start()
    t.join()
    time.sleep(0.5)  # well before the upstream's 3 s answer
    assert router.metric("xrouter_requests_total", model="slow", status="499") == 1
    assert router.metric("xrouter_inflight_requests", model="slow") == 0
