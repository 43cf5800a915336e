"""Our SigV4 signatures, checked with botocore's signer: the same canonical request and
the same signature for the requests the router makes (a model id's ":" and an ARN's
"/" in the path, a query string, temporary credentials)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from xrouter_router.providers.sigv4 import Credentials, sign

NOW = datetime(2026, 12, 5, 6, 30, 0, tzinfo=UTC)


def _botocore_signature(
    url: httpx.URL, headers: dict[str, str], body: bytes, creds: Credentials
) -> tuple[str, str]:
    areq = AWSRequest(method="POST", url=str(url), data=body, headers=headers)
    areq.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(
        BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
        "bedrock",
        "eu-west-3",
    )
    canonical = signer.canonical_request(areq)
    return signer.signature(signer.string_to_sign(areq, canonical), areq), signer.signed_headers(
        signer.headers_to_sign(areq)
    )


@pytest.mark.parametrize(
    "path",
    [
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        "/model/arn:aws:bedrock:eu-west-3:123456789012:inference-profile%2Feu.anthropic.claude-v1:0/invoke",
        "/model/amazon.titan?x=1&a=b%20c",
    ],
)
@pytest.mark.parametrize("token", [None, "session/token+value="])
def test_signature_matches_botocore(path: str, token: str | None) -> None:
    url = httpx.URL("https://bedrock-runtime.eu-west-3.amazonaws.com" + path)
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    headers = {"host": "bedrock-runtime.eu-west-3.amazonaws.com", "content-type": "application/json"}
    body = b'{"messages": []}'
    added = sign("POST", url, headers, body, creds, "eu-west-3", "bedrock", now=NOW)
    assert added["x-amz-date"] == "20261205T063000Z"
    assert ("x-amz-security-token" in added) == (token is not None)
    ours = added.pop("authorization")
    signature, signed = _botocore_signature(url, {**headers, **added}, body, creds)
    assert ours.startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/eu-west-3/bedrock/aws4_request, "
    )
    assert f"SignedHeaders={signed}," in ours
    assert ours.endswith(f"Signature={signature}")


def test_a_changed_body_changes_the_signature() -> None:
    url = httpx.URL("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse")
    creds = Credentials("AKID", "secret")
    one = sign("POST", url, {"host": url.host}, b"{}", creds, "us-east-1", "bedrock", now=NOW)
    two = sign("POST", url, {"host": url.host}, b"{ }", creds, "us-east-1", "bedrock", now=NOW)
    assert one["authorization"] != two["authorization"]


def test_credentials_never_show_the_secret() -> None:
    creds = Credentials("AKID", "very-secret-value", "token-value")
    assert "very-secret-value" not in repr(creds) and "token-value" not in repr(creds)
