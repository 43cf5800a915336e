"""``gemini`` and ``vertex`` end to end: the openai and anthropic SDKs through the
router to the fake Gemini API and Vertex AI, which checks Gemini bodies with the
google-genai SDK's models and service-account JWTs with google-auth. The fake is
first checked with the google-genai SDK (Gemini) and the anthropic SDK's Vertex
client (Claude), so it speaks the services' wire formats."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .conftest import KEY, StartRouter, client
from .fakegoogle import API_KEY, CLAUDE, GEMINI, PROJECT, FakeGoogle, google_config
from .test_anthropic import TOOLS
from .toolturns import PNG, tool_round_trip

HELLO: Any = [{"role": "user", "content": "hello gemini"}]


@pytest.fixture(scope="module")
def fake_google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGoogle]:
    fake = FakeGoogle(tmp_path_factory.mktemp("google"))
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def google(fake_google: FakeGoogle) -> FakeGoogle:
    fake_google.reset()
    return fake_google


def test_the_fake_speaks_gemini_to_the_sdks(google: FakeGoogle) -> None:
    sdk = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=google.url))
    answer = sdk.models.generate_content(model=GEMINI, contents="hello there")
    assert answer.text == "hello there"
    assert answer.usage_metadata is not None and answer.usage_metadata.cached_content_token_count == 3
    weather = types.FunctionDeclaration(name="weather", parameters=types.Schema(type=types.Type.OBJECT))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])])
    chunks = list(sdk.models.generate_content_stream(model=GEMINI, contents="rain?", config=config))
    assert chunks[-1].function_calls is not None and chunks[-1].function_calls[0].args == {"city": "Paris"}
    assert (
        chunks[-1].candidates is not None
        and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    )
    blocked = sdk.models.generate_content(model="blocked", contents="bad")
    assert blocked.prompt_feedback is not None and blocked.prompt_feedback.block_reason == "SAFETY"
    with pytest.raises(genai_errors.ClientError) as exhausted:
        sdk.models.generate_content(model="exhausted", contents="x")
    assert exhausted.value.code == 429 and exhausted.value.status == "RESOURCE_EXHAUSTED"
    # Claude on Vertex, with a token from the fake metadata server.
    token = httpx.get(
        google.url + "/computeMetadata/v1/instance/service-accounts/default/token",
        headers={"Metadata-Flavor": "Google"},
    ).json()["access_token"]
    vertex = anthropic.AnthropicVertex(
        region="us-east5", project_id=PROJECT, access_token=token, base_url=google.url + "/v1", max_retries=0
    )
    msg = vertex.messages.create(
        model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "hi vertex"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "hi vertex"
    with vertex.messages.stream(
        model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "streamed"}]
    ) as s:
        assert s.get_final_text() == "streamed"


def test_openai_chat_through_gemini(google: FakeGoogle, start_router: StartRouter, tmp_path: Path) -> None:
    router = start_router(google_config(google, tmp_path))
    out = client(router).chat.completions.create(
        model="gemini",
        max_tokens=50,
        temperature=0.1,
        messages=[{"role": "system", "content": "be brief"}, *HELLO],
    )
    assert out.choices[0].message.content == "hello gemini" and out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 3
    last = google.last()
    assert last["path"] == f"/v1beta/models/{GEMINI}:generateContent"
    assert last["body"]["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert last["body"]["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.1}


def test_stream_tools_and_tool_results_through_gemini(
    google: FakeGoogle, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(google_config(google, tmp_path))
    chunks = list(
        client(router).chat.completions.create(
            model="gemini", stream=True, stream_options={"include_usage": True}, tools=TOOLS, messages=HELLO
        )
    )
    assert google.last()["query"] == "alt=sse"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert text == "hello gemini"
    assert calls[0].function is not None and calls[0].function.name == "weather"
    assert json.loads(calls[1].function.arguments or "") == {"city": "Paris"}  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    # The call's answer goes back as a functionResponse named after the call.
    out = client(router).chat.completions.create(
        model="gemini",
        tools=TOOLS,
        messages=tool_round_trip(calls[0].id or "", '{"city":"Paris"}', '{"sky": "clear"}'),
    )
    assert out.choices[0].finish_reason == "stop" and out.choices[0].message.tool_calls is None
    contents = google.last()["body"]["contents"]
    assert contents[0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}],
    }
    assert contents[2]["parts"] == [{"functionResponse": {"name": "weather", "response": {"sky": "clear"}}}]


def test_safety_blocks_are_clear(google: FakeGoogle, start_router: StartRouter, tmp_path: Path) -> None:
    router = start_router(google_config(google, tmp_path))
    with pytest.raises(openai.BadRequestError, match=r"blocked the prompt \(SAFETY\)") as blocked:
        client(router).chat.completions.create(model="blocked", messages=HELLO)
    assert blocked.value.code == "content_filter"
    with pytest.raises(openai.APIError, match="blocked the prompt"):
        list(client(router).chat.completions.create(model="blocked", messages=HELLO, stream=True))
    out = client(router).chat.completions.create(model="unsafe", messages=HELLO)
    assert out.choices[0].finish_reason == "content_filter"


def test_resource_exhausted_fails_over(google: FakeGoogle, start_router: StartRouter, tmp_path: Path) -> None:
    router = start_router(google_config(google, tmp_path))
    out = client(router).chat.completions.create(model="exhausted", messages=HELLO)
    assert out.choices[0].message.content == "hello gemini"
    assert (
        google.last()["path"]
        == f"/v1/projects/{PROJECT}/locations/us-east5/publishers/google/models/{GEMINI}:generateContent"
    )


def test_vertex_token_from_the_service_account_is_refreshed(
    tmp_path: Path, start_router: StartRouter
) -> None:
    fake = FakeGoogle(tmp_path, ttl=301)  # inside the router's 300 s refresh window a second later
    fake.start()
    try:
        router = start_router(google_config(fake, tmp_path))
        client(router).chat.completions.create(model="vgemini", messages=HELLO)
        assert fake.stats()["_issued"] == 1
        client(router).chat.completions.create(model="vgemini", messages=HELLO)
        assert fake.stats()["_issued"] == 1  # cached
        time.sleep(1.2)
        client(router).chat.completions.create(model="vgemini", messages=HELLO)
        assert fake.stats()["_issued"] == 2
        assert "PRIVATE KEY" not in router.log()
    finally:
        fake.stop()


def test_vertex_token_from_the_metadata_server(
    google: FakeGoogle, start_router: StartRouter, tmp_path: Path
) -> None:
    env = {"GCE_METADATA_HOST": google.url.removeprefix("http://")}
    router = start_router(google_config(google, tmp_path, vertex={"googleCredentials": None}), env=env)
    out = client(router).chat.completions.create(model="vgemini", messages=HELLO)
    assert out.choices[0].message.content == "hello gemini"


def test_claude_on_vertex(google: FakeGoogle, start_router: StartRouter, tmp_path: Path) -> None:
    router = start_router(google_config(google, tmp_path))
    claude = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0)
    msg = claude.messages.create(
        model="vclaude", max_tokens=50, messages=[{"role": "user", "content": "hi claude"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "hi claude"
    last = google.last()
    assert last["path"].endswith(f"/publishers/anthropic/models/{CLAUDE}:rawPredict")
    assert last["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in last["body"]
    tools: Any = [{"name": "weather", "input_schema": {"type": "object"}}]
    with claude.messages.stream(
        model="vclaude", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[1].type == "tool_use"
    assert google.last()["path"].endswith(":streamRawPredict")
    chat = client(router).chat.completions.create(
        model="vclaude", messages=[{"role": "user", "content": "via chat"}]
    )
    assert chat.choices[0].message.content == "via chat"
    # Gemini on Vertex takes /v1/messages through generateContent.
    other = claude.messages.create(
        model="vgemini", max_tokens=5, messages=[{"role": "user", "content": "to gemini"}]
    )
    assert other.content[0].type == "text" and other.content[0].text == "to gemini"
    assert google.last()["path"].endswith(f"/publishers/google/models/{GEMINI}:generateContent")


def test_anthropic_sdk_and_responses_through_gemini(
    google: FakeGoogle, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(google_config(google, tmp_path))
    claude = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0)
    msg = claude.messages.create(
        model="gemini", max_tokens=50, messages=[{"role": "user", "content": "via messages"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "via messages"
    assert google.last()["body"]["generationConfig"]["maxOutputTokens"] == 50
    tools: Any = [{"name": "weather", "input_schema": {"type": "object"}}]
    with claude.messages.stream(
        model="gemini", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[-1].type == "tool_use"
    out = client(router).responses.create(model="vgemini", input="via responses")
    assert out.output_text == "via responses"


def test_candidates_and_penalties_through_gemini(
    google: FakeGoogle, start_router: StartRouter, tmp_path: Path
) -> None:
    """``n`` is ``candidateCount``, each candidate a choice; the penalties and the seed
    are generationConfig's, the priority tier the request's serviceTier; ``logprobs`` is
    ``responseLogprobs``, and each chosen token comes back with its top candidates. What
    the stream writer cannot carry (several candidates, log probabilities) is refused in
    a stream, naming the field."""
    router = start_router(google_config(google, tmp_path))
    out = client(router).chat.completions.create(
        model="gemini",
        n=2,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.25,
        service_tier="priority",
        messages=HELLO,
    )
    assert [c.index for c in out.choices] == [0, 1]
    assert {c.message.content for c in out.choices} == {"hello gemini"}
    assert google.last()["body"]["serviceTier"] == "priority"
    config = google.last()["body"]["generationConfig"]
    assert config == {"candidateCount": 2, "seed": 7, "frequencyPenalty": 0.5, "presencePenalty": 0.25}
    out = client(router).chat.completions.create(
        model="gemini", logprobs=True, top_logprobs=2, messages=HELLO
    )
    logprobs = out.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [(t.token, t.logprob) for t in logprobs.content] == [("hello", -0.1), (" gemini", -0.1)]
    assert [t.token for t in logprobs.content[1].top_logprobs] == [" gemini", "alt1"]
    assert logprobs.content[1].bytes == list(b" gemini")
    assert google.last()["body"]["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    for fields in ({"n": 2, "stream": True}, {"logprobs": True, "stream": True}, {"top_logprobs": 2}):
        with pytest.raises(openai.BadRequestError) as refused:
            client(router).chat.completions.create(model="gemini", messages=HELLO, **fields)
        assert refused.value.param == next(iter(fields))
