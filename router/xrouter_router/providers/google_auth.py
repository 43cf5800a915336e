"""OAuth access tokens for Google Cloud (``vertex``): from a service-account key (a
mounted Secret: a JWT signed with its RS256 key, exchanged at its ``token_uri``), or
from the metadata server (GKE Workload Identity, a GCE service account). Tokens are
cached and fetched again five minutes before they expire."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from .refreshing import CredentialError, Refreshing

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_URI = "https://oauth2.googleapis.com/token"
REFRESH_BEFORE = 300.0
_TIMEOUT = httpx.Timeout(5.0)


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires: float | None

    def __repr__(self) -> str:
        return f"Token(expires={self.expires!r})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _token(resp: httpx.Response, what: str) -> Token:
    if resp.status_code != 200:
        raise CredentialError(f"{what} answered {resp.status_code}")
    try:
        data = orjson.loads(resp.content)
        return Token(str(data["access_token"]), time.time() + float(data.get("expires_in", 3600)))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CredentialError(f"{what} answered without an access token") from None


def service_account(key_json: str, what: str, http: Callable[[], httpx.AsyncClient]) -> Refreshing[Token]:
    """Raises ValueError naming ``what`` when the key is not a service-account key."""
    # Imported here: only a vertex provider with a key needs RSA, and cryptography's
    # native library is not loaded into every router process.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        info: Any = orjson.loads(key_json)
        email, pem = str(info["client_email"]), str(info["private_key"]).encode()
        key = serialization.load_pem_private_key(pem, password=None)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ValueError(
            f"{what}: not a service-account key (JSON with client_email and private_key)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{what}: the service-account key is not an RSA key")
    token_uri = str(info.get("token_uri") or TOKEN_URI)
    header = {"alg": "RS256", "typ": "JWT", "kid": str(info.get("private_key_id", ""))}

    async def fetch() -> Token:
        now = int(time.time())
        claims = {"iss": email, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}".encode()
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": signing_input.decode() + "." + _b64(signature),
        }
        resp = await http().post(token_uri, data=form, timeout=_TIMEOUT)
        return _token(resp, "the token endpoint")

    return Refreshing(f"service account {email}", fetch, refresh_before=REFRESH_BEFORE)


def metadata_server(http: Callable[[], httpx.AsyncClient]) -> Refreshing[Token]:
    host = os.environ.get("GCE_METADATA_HOST") or "metadata.google.internal"
    url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"

    async def fetch() -> Token:
        resp = await http().get(url, headers={"metadata-flavor": "Google"}, timeout=_TIMEOUT)
        return _token(resp, "the metadata server")

    return Refreshing("the metadata server", fetch, refresh_before=REFRESH_BEFORE)
