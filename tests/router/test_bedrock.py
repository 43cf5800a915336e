"""``bedrock`` end to end: the openai and anthropic SDKs through the router to the fake
Bedrock, which checks every SigV4 signature with botocore's signer and every Converse
body with botocore's validator. The fake itself is first checked with botocore's own
Bedrock client, so it speaks the service's wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import botocore.config
import botocore.session
import openai
import pytest
from botocore.exceptions import ClientError, EventStreamError

from .conftest import KEY, StartRouter, client
from .fakeaws import ACCESS_KEY, API_KEY, CLAUDE, LLAMA, SECRET_KEY, FakeBedrock, bedrock_config
from .test_anthropic import TOOLS
from .toolturns import PNG, tool_round_trip


@pytest.fixture(scope="module")
def fake_bedrock() -> Iterator[FakeBedrock]:
    fake = FakeBedrock()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def bedrock(fake_bedrock: FakeBedrock) -> FakeBedrock:
    fake_bedrock.reset()
    return fake_bedrock


def _boto(fake: FakeBedrock, secret: str = SECRET_KEY) -> Any:
    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 0}),
    )


def test_the_fake_speaks_bedrock_to_botocore(bedrock: FakeBedrock) -> None:
    aws = _boto(bedrock)
    hello = [{"role": "user", "content": [{"text": "hello there"}]}]
    answer = aws.converse(modelId=CLAUDE, messages=hello)
    assert answer["output"]["message"]["content"] == [{"text": "hello there"}]
    assert answer["stopReason"] == "end_turn" and answer["usage"]["cacheReadInputTokens"] == 2
    tools = {"tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object"}}}}]}
    events = list(aws.converse_stream(modelId=LLAMA, messages=hello, toolConfig=tools)["stream"])
    assert [next(iter(e)) for e in events][:2] == ["messageStart", "contentBlockDelta"]
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    chunks = aws.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))["body"]
    kinds = [json.loads(c["chunk"]["bytes"])["type"] for c in chunks]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    with pytest.raises(ClientError) as throttled:
        aws.converse(modelId="throttle", messages=hello)
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    with pytest.raises(EventStreamError, match="throttlingException"):
        list(aws.converse_stream(modelId="streamthrottle", messages=hello)["stream"])
    # The verifier refuses what a wrong key signs, and a body the API does not define.
    with pytest.raises(ClientError) as forged:
        _boto(bedrock, secret="not-the-secret").converse(modelId=CLAUDE, messages=hello)
    assert forged.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_openai_chat_through_bedrock(bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    out = client(router).chat.completions.create(
        model="claude",
        max_tokens=64,
        temperature=0.5,
        stop=["END"],
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello from openai"},
        ],
    )
    assert out.choices[0].message.content == "hello from openai"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 2  # cacheReadInputTokens
    last = bedrock.last()
    assert last["path"] == f"/model/{CLAUDE}/converse" and last["key"] == ACCESS_KEY
    assert last["body"]["system"] == [{"text": "be brief"}]
    assert last["body"]["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.5, "stopSequences": ["END"]}


def test_openai_stream_with_tools_through_bedrock(
    bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    stream = client(router).chat.completions.create(
        model="llama",
        stream=True,
        stream_options={"include_usage": True},
        tools=TOOLS,
        tool_choice="required",
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    names = [
        tc.function.name
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    ]
    assert text == "weather in Paris?"
    assert json.loads(args) == {"city": "Paris"} and "weather" in names
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    body = bedrock.last()["body"]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "weather"


def test_tool_results_and_images_reach_converse(
    bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    turns = tool_round_trip("tooluse_1", '{"city":"Oslo"}', "sunny", "what is this?")
    out = client(router).chat.completions.create(
        model="claude", tools=TOOLS, messages=[*turns, {"role": "user", "content": "thanks"}]
    )
    assert out.choices[0].message.content == "thanks" and out.choices[0].message.tool_calls is None
    messages = bedrock.last()["body"]["messages"]
    assert messages[0]["content"][1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert messages[1]["content"] == [
        {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Oslo"}}}
    ]
    assert messages[2]["content"][0] == {
        "toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}
    }
    with pytest.raises(openai.BadRequestError, match="inline"):
        client(router).chat.completions.create(
            model="claude",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
            ],
        )


def test_anthropic_sdk_through_bedrock(
    bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    claude = anthropic.Anthropic(base_url=router.url, api_key=KEY, max_retries=0)
    msg = claude.messages.create(
        model="claude", max_tokens=50, messages=[{"role": "user", "content": "hi claude"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "hi claude"
    assert msg.usage.cache_read_input_tokens == 4
    last = bedrock.last()
    assert last["path"] == f"/model/{CLAUDE}/invoke"
    assert last["body"]["anthropic_version"] == "bedrock-2023-05-31" and "model" not in last["body"]
    tools: Any = [{"name": "weather", "input_schema": {"type": "object"}}]
    with claude.messages.stream(
        model="claude", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].type == "tool_use" and final.content[1].input == {"city": "Paris"}
    assert bedrock.last()["path"] == f"/model/{CLAUDE}/invoke-with-response-stream"
    # The client's anthropic-beta header rides in the body, where Bedrock takes it.
    claude.beta.messages.create(
        model="claude",
        max_tokens=5,
        betas=["token-efficient-tools-2025-02-19"],
        messages=[{"role": "user", "content": "b"}],
    )
    assert bedrock.last()["body"]["anthropic_beta"] == ["token-efficient-tools-2025-02-19"]
    # Other models take /v1/messages through Converse.
    other = claude.messages.create(
        model="llama", max_tokens=5, messages=[{"role": "user", "content": "to llama"}]
    )
    assert other.content[0].type == "text" and other.content[0].text == "to llama"
    assert bedrock.last()["path"] == f"/model/{LLAMA}/converse"


def test_throttling_is_a_429_that_fails_over(
    bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    hello: Any = [{"role": "user", "content": "fall over"}]
    out = client(router).chat.completions.create(model="throttled", messages=hello)
    assert out.choices[0].message.content == "fall over"
    with pytest.raises(openai.RateLimitError):
        client(router).chat.completions.create(model="throttled-only", messages=hello)
    # A stream whose first message is a throttlingException fails over too: nothing was sent yet.
    chunks = list(client(router).chat.completions.create(model="streamthrottle", messages=hello, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fall over"
    stats = bedrock.stats()
    assert stats["throttle"] >= 2 and stats["streamthrottle"] >= 1 and stats[LLAMA] == 2


def test_guardrail_and_broken_frames(bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    hello: Any = [{"role": "user", "content": "something blocked"}]
    out = client(router).chat.completions.create(model="guardrail", messages=hello)
    assert out.choices[0].finish_reason == "content_filter"
    with pytest.raises(openai.APIError):
        list(client(router).chat.completions.create(model="badframe", messages=hello, stream=True))


def test_bedrock_api_key(bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path) -> None:
    (tmp_path / "bk").write_text(API_KEY)
    router = start_router(bedrock_config(bedrock, tmp_path, aws={}, apiKey={"file": str(tmp_path / "bk")}))
    out = client(router).chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "bearer"}]
    )
    assert out.choices[0].message.content == "bearer" and bedrock.last()["key"] == "bearer"


def test_responses_api_through_bedrock(
    bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    router = start_router(bedrock_config(bedrock, tmp_path))
    out = client(router).responses.create(model="llama", input="responses to converse")
    assert out.output_text == "responses to converse"
    assert bedrock.last()["path"] == f"/model/{LLAMA}/converse"
    events = list(client(router).responses.create(model="claude", input="streamed", stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "streamed"


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({}, "region is required for type bedrock"),
        (
            {"region": "us-east-1", "aws": {"accessKeyId": {"env": "X"}}},
            "set both accessKeyId and secretAccessKey",
        ),
        ({"region": "us-east-1", "aws": {"roleArn": "not-an-arn"}}, "roleArn"),
        ({"region": "Mars"}, "region"),
    ],
)
def test_bad_bedrock_config_is_named(provider: dict[str, Any], message: str) -> None:
    from xrouter_router.config import RouterConfig

    config = {
        "providers": [{"name": "b", "type": "bedrock", **provider}],
        "models": [{"name": "m", "targets": [{"provider": "b", "model": LLAMA}]}],
    }
    with pytest.raises(ValueError, match=message):
        RouterConfig.model_validate(config)


def test_fields_converse_has_not_are_dropped_or_refused(
    bedrock: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    """Converse's inferenceConfig has no seed, penalties or logit bias: dropped with
    notice; the flex tier is its serviceTier; one choice and no log probabilities come
    back: ``n`` and ``logprobs`` are refused, naming the field."""
    router = start_router(bedrock_config(bedrock, tmp_path))
    raw = client(router).chat.completions.with_raw_response.create(
        model="claude",
        seed=7,
        frequency_penalty=0.5,
        logit_bias={"50256": -100},
        logprobs=False,  # the default: nothing to say about it
        service_tier="flex",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert raw.parse().choices[0].message.content == "hello"
    assert set(raw.headers["x-xrouter-dropped"].split(", ")) == {"seed", "frequency_penalty", "logit_bias"}
    assert set(bedrock.last()["body"]) == {"messages", "serviceTier"}
    assert bedrock.last()["body"]["serviceTier"] == {"type": "flex"}  # Converse's own tiers
    for fields in ({"n": 3}, {"logprobs": True, "top_logprobs": 2}):
        with pytest.raises(openai.BadRequestError) as refused:
            client(router).chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "x"}], **fields
            )
        assert refused.value.param == next(iter(fields))
