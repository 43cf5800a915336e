"""AWS Signature Version 4 for one request (header signing), as the AWS reference
describes it: canonical request → string to sign → HMAC chain. Ours rather than
botocore's, so the router carries no AWS SDK; the tests check every signature with
botocore's signer."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires: float | None = None  # epoch seconds; None: never (static keys)

    def __repr__(self) -> str:  # never the secret, whatever logs a repr
        return f"Credentials(access_key_id={self.access_key_id!r}, expires={self.expires!r})"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


# The derived signing key changes once a day per (secret, region, service): cached so
# a request costs two HMACs for the key, not four.
_KEYS: dict[tuple[str, str, str, str], bytes] = {}


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    cache_key = (secret, day, region, service)
    key = _KEYS.get(cache_key)
    if key is None:
        if len(_KEYS) > 64:
            _KEYS.clear()
        k = _hmac(("AWS4" + secret).encode(), day)
        key = _KEYS[cache_key] = _hmac(_hmac(_hmac(k, region), service), "aws4_request")
    return key


def canonical_uri(raw_path: str) -> str:
    # Every service but S3 encodes the (already encoded) path once more: a model id's
    # ":" is %3A on the wire and %253A in the canonical request.
    return quote(raw_path or "/", safe="/~")


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        pairs.append((quote(name, safe="-_.~%"), quote(value, safe="-_.~%")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def sign(
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    body: bytes,
    creds: Credentials,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add to the request: ``x-amz-date``, ``x-amz-content-sha256``,
    ``x-amz-security-token`` (temporary credentials) and ``authorization``. ``headers``
    are the request's other headers that are signed (lower-case names, ``host`` included)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    added = {"x-amz-date": stamp, "x-amz-content-sha256": payload_hash}
    if creds.session_token:
        added["x-amz-security-token"] = creds.session_token
    signed = {k.lower(): " ".join(v.split()) for k, v in {**headers, **added}.items()}
    names = sorted(signed)
    canonical = "\n".join(
        [
            method.upper(),
            canonical_uri(url.raw_path.split(b"?", 1)[0].decode("ascii")),
            canonical_query(url.query.decode("ascii")),
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(creds.secret_access_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["authorization"] = (
        f"{ALGORITHM} Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return added
