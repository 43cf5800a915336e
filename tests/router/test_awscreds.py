"""Where a ``bedrock`` provider's AWS credentials come from, end to end through the
router to the fake Bedrock, which also plays STS and the instance metadata service
and refuses expired keys: a web identity (IRSA) fetched again before it expires, the
instance role, and clear failures that never show a secret."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .conftest import StartRouter, client
from .fakeaws import WEB_TOKEN, FakeBedrock, bedrock_config
from .servers import Router

ROLE = "arn:aws:iam::123456789012:role/xrouter"
HELLO: list[dict[str, str]] = [{"role": "user", "content": "hello"}]


@pytest.fixture
def short_lived() -> Iterator[FakeBedrock]:
    """Issues keys valid for 601 s: within the router's 600 s refresh window a second
    after they are issued."""
    fake = FakeBedrock(ttl=601)
    fake.start()
    yield fake
    fake.stop()


def test_web_identity_is_refreshed_before_expiry(
    short_lived: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(WEB_TOKEN)
    env = {"AWS_ENDPOINT_URL_STS": short_lived.url}
    aws = {"roleArn": ROLE, "webIdentityTokenFile": str(token_file)}
    router = start_router(bedrock_config(short_lived, tmp_path, aws=aws), env=env)
    assert client(router).chat.completions.create(model="llama", messages=HELLO).choices[0].message.content
    first = short_lived.last()["key"]
    assert first.startswith("ASIAFAKE") and short_lived.stats()["_issued"] == 1
    time.sleep(1.2)
    client(router).chat.completions.create(model="llama", messages=HELLO)
    assert short_lived.stats()["_issued"] == 2 and short_lived.last()["key"] != first
    # A refresh that fails keeps the keys that still work (here for 10 more minutes).
    token_file.write_text("rotated-but-wrong")
    time.sleep(1.2)
    client(router).chat.completions.create(model="llama", messages=HELLO)
    assert short_lived.stats()["_issued"] == 2
    # With no working keys, a token STS refuses is an auth failure, named, without the
    # token. The file is read at each fetch (the kubelet rotates it).
    fresh = start_router(bedrock_config(short_lived, tmp_path, aws=aws), env=env)
    with pytest.raises(openai.APIStatusError) as failed:
        client(fresh).chat.completions.create(model="llama", messages=HELLO)
    assert failed.value.status_code == 502 and "web identity" in failed.value.message
    assert "rotated-but-wrong" not in fresh.log() and WEB_TOKEN not in fresh.log()
    token_file.write_text(WEB_TOKEN)
    client(fresh).chat.completions.create(model="llama", messages=HELLO)
    assert short_lived.stats()["_issued"] == 3


def test_web_identity_from_the_irsa_environment(
    short_lived: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(WEB_TOKEN)
    env = {
        "AWS_ENDPOINT_URL_STS": short_lived.url,
        "AWS_ROLE_ARN": ROLE,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "token"),
    }
    router = start_router(bedrock_config(short_lived, tmp_path, aws={}), env=env)
    client(router).chat.completions.create(model="llama", messages=HELLO)
    assert short_lived.last()["key"].startswith("ASIAFAKE")


def test_instance_role(short_lived: FakeBedrock, start_router: StartRouter, tmp_path: Path) -> None:
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": short_lived.url}
    router = start_router(bedrock_config(short_lived, tmp_path, aws={}), env=env)
    out = client(router).chat.completions.create(model="claude", messages=HELLO)
    assert out.choices[0].message.content == "hello" and short_lived.stats()["_issued"] == 1


def test_eks_pod_identity(short_lived: FakeBedrock, start_router: StartRouter, tmp_path: Path) -> None:
    (tmp_path / "eks-token").write_text(WEB_TOKEN)
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": short_lived.url + "/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "eks-token"),
    }
    router = start_router(bedrock_config(short_lived, tmp_path, aws={}), env=env)
    client(router).chat.completions.create(model="llama", messages=HELLO)
    assert short_lived.last()["key"].startswith("ASIAFAKE") and short_lived.stats()["_issued"] == 1


def test_missing_key_file_is_named_at_start(short_lived: FakeBedrock, tmp_path: Path) -> None:
    aws = {
        "accessKeyId": {"file": str(tmp_path / "nope")},
        "secretAccessKey": {"file": str(tmp_path / "nope")},
    }
    router = Router(bedrock_config(short_lived, tmp_path, aws=aws), workdir=tmp_path)
    router.start(wait=False)
    assert router.proc is not None and router.proc.wait(timeout=20) != 0
    assert "providers[bedrock].aws.accessKeyId" in router.log()


def test_wrong_static_key_is_an_auth_failure(
    short_lived: FakeBedrock, start_router: StartRouter, tmp_path: Path
) -> None:
    (tmp_path / "ak").write_text("AKIAUNKNOWN")
    (tmp_path / "sk").write_text("the-wrong-secret")
    aws = {"accessKeyId": {"file": str(tmp_path / "ak")}, "secretAccessKey": {"file": str(tmp_path / "sk")}}
    router = start_router(bedrock_config(short_lived, tmp_path, aws=aws))
    with pytest.raises(openai.APIStatusError) as failed:
        client(router).chat.completions.create(model="llama", messages=HELLO)
    assert failed.value.status_code == 502 and "credential" in failed.value.message
    assert "the-wrong-secret" not in router.log()
