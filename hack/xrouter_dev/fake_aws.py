"""The AWS plumbing of the fake Bedrock (``fake_bedrock.py``), from AWS's published
references: SigV4 verification done by botocore's own signer (so the router's signing
is checked by code we did not write), the binary event-stream framing, JSON error
answers as ``rest-json`` services send them, the STS ``AssumeRoleWithWebIdentity``
endpoint and the instance metadata service (IMDSv2)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,"
    r" ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]{64})"
)


def error(status: int, code: str, message: str) -> web.Response:
    """A rest-json error: the type in ``x-amzn-ErrorType``, ``{"message"}`` in the body."""
    return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": code})


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message; every header a string (value type 7)."""
    hb = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(hb) + len(payload) + 4, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + hb + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, payload: bytes) -> bytes:
    return frame(
        {":event-type": name, ":content-type": "application/json", ":message-type": "event"}, payload
    )


def exception(name: str, message: str) -> bytes:
    return frame(
        {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
        b'{"message":"' + message.encode() + b'"}',
    )


@dataclass
class Identity:
    """The credentials the fake accepts: static keys, and those it has issued (STS,
    IMDS) with their expiry."""

    region: str
    keys: dict[str, tuple[str, str | None, float | None]] = field(default_factory=dict)
    api_key: str | None = None
    web_identity_token: str | None = None
    ttl: float = 3600.0
    issued: int = 0
    used: list[str] = field(default_factory=list)  # access key ids, in order

    def issue(self) -> dict[str, str]:
        self.issued += 1
        key_id = f"ASIAFAKE{self.issued:08d}"
        secret, token, expires = secrets.token_hex(20), secrets.token_hex(32), time.time() + self.ttl
        self.keys[key_id] = (secret, token, expires)
        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"AccessKeyId": key_id, "SecretAccessKey": secret, "Token": token, "Expiration": stamp}

    def verify(self, request: web.Request, body: bytes) -> web.Response | None:
        """None if the request is authorized, else the error AWS would answer."""
        auth = request.headers.get("authorization", "")
        if self.api_key is not None and auth.startswith("Bearer "):
            if not hmac.compare_digest(auth[7:], self.api_key):
                return error(403, "AccessDeniedException", "Invalid API key")
            self.used.append("bearer")
            return None
        m = _AUTH.fullmatch(auth)
        if m is None:
            return error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        known = self.keys.get(m["key"])
        if known is None:
            return error(403, "UnrecognizedClientException", "The security token included is invalid.")
        secret, token, expires = known
        if expires is not None and expires < time.time():
            return error(
                403, "ExpiredTokenException", "The security token included in the request is expired"
            )
        if m["region"] != self.region or m["service"] != "bedrock":
            return error(
                403, "InvalidSignatureException", f"Credential should be scoped to {self.region}/bedrock"
            )
        signed = m["signed"].split(";")
        amz_date = request.headers.get("x-amz-date", "")
        if "host" not in signed or "x-amz-date" not in signed or not amz_date.startswith(m["day"]):
            return error(403, "InvalidSignatureException", "host and x-amz-date must be signed")
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if abs(when - time.time()) > 300:
            return error(403, "InvalidSignatureException", "Signature expired")
        if token is not None and request.headers.get("x-amz-security-token") != token:
            return error(403, "UnrecognizedClientException", "The security token included is invalid.")
        sha = request.headers.get("x-amz-content-sha256")
        if sha is not None and sha != hashlib.sha256(body).hexdigest():
            return error(400, "XAmzContentSHA256Mismatch", "The provided x-amz-content-sha256 does not match")
        headers = {name: request.headers.get(name, "") for name in signed}
        url = f"http://{request.host}{request.raw_path}"
        areq = AWSRequest(method=request.method, url=url, data=body, headers=headers)
        areq.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(m["key"], secret, token), "bedrock", self.region)
        canonical = signer.canonical_request(areq)
        expected = signer.signature(signer.string_to_sign(areq, canonical), areq)
        if signer.signed_headers(signer.headers_to_sign(areq)) != m["signed"] or not hmac.compare_digest(
            expected, m["sig"]
        ):
            return error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        self.used.append(m["key"])
        return None


def sts_handler(identity: Identity) -> Any:
    """``POST /`` ``Action=AssumeRoleWithWebIdentity``: the STS query API, XML answers."""

    async def handler(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("Version") != "2011-06-15":
            return web.Response(
                status=400, text="<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>"
            )
        if not form.get("RoleArn") or not form.get("RoleSessionName"):
            return web.Response(
                status=400, text="<ErrorResponse><Error><Code>MissingParameter</Code></Error></ErrorResponse>"
            )
        if form.get("WebIdentityToken") != identity.web_identity_token:
            return web.Response(
                status=400,
                text="<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>",
            )
        c = identity.issue()
        xml = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<SessionToken>{c['Token']}</SessionToken><SecretAccessKey>{c['SecretAccessKey']}</SecretAccessKey>"
            f"<Expiration>{c['Expiration']}</Expiration><AccessKeyId>{c['AccessKeyId']}</AccessKeyId>"
            f"</Credentials><AssumedRoleUser><Arn>{form.get('RoleArn')!s}</Arn></AssumedRoleUser>"
            "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        )
        return web.Response(text=xml, content_type="text/xml")

    return handler


def add_imds(app: web.Application, identity: Identity, role: str = "xrouter-node") -> None:
    """IMDSv2 (a session token first, then the role and its credentials) and the EKS
    Pod Identity agent's credentials endpoint."""
    tokens: set[str] = set()

    async def token(request: web.Request) -> web.Response:
        if not request.headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
            return web.Response(status=400)
        value = secrets.token_hex(16)
        tokens.add(value)
        return web.Response(text=value)

    async def creds(request: web.Request) -> web.Response:
        if request.headers.get("x-aws-ec2-metadata-token") not in tokens:
            return web.Response(status=401)
        name = request.match_info.get("role", "")
        if not name:
            return web.Response(text=role)
        if name != role:
            return web.Response(status=404)
        return web.json_response({"Code": "Success", "Type": "AWS-HMAC", **identity.issue()})

    async def pod_identity(request: web.Request) -> web.Response:
        # The EKS Pod Identity agent: the pod's projected token as the Authorization header.
        if request.headers.get("authorization") != identity.web_identity_token:
            return web.json_response({"message": "invalid token"}, status=401)
        return web.json_response(identity.issue())

    app.router.add_get("/v1/credentials", pod_identity)
    app.router.add_put("/latest/api/token", token)
    app.router.add_get("/latest/meta-data/iam/security-credentials/", creds)
    app.router.add_get("/latest/meta-data/iam/security-credentials/{role}", creds)
