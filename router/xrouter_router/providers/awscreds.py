"""The AWS credentials a ``bedrock`` provider signs with, from the sources of the
standard chain: static keys (a mounted Secret), a web identity (IRSA:
AssumeRoleWithWebIdentity), EKS Pod Identity (the container credentials endpoint) or
the instance role (IMDSv2). Temporary credentials are cached and fetched again ten
minutes before they expire (botocore's mandatory-refresh window)."""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from ..config import AwsAuth
from ..secrets import read_secret
from .refreshing import CredentialError, Refreshing
from .sigv4 import Credentials

_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_TIMEOUT = httpx.Timeout(5.0)


def _expiry(text: Any) -> float:
    if not isinstance(text, str):
        raise CredentialError("the credentials carry no Expiration")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _from_json(data: Any, what: str) -> Credentials:
    try:
        return Credentials(
            str(data["AccessKeyId"]),
            str(data["SecretAccessKey"]),
            str(data["Token"]),
            _expiry(data["Expiration"]),
        )
    except (KeyError, TypeError, ValueError):
        raise CredentialError(f"{what} answered without credentials") from None


CredentialSource = Refreshing[Credentials]


def web_identity(
    role_arn: str, token_file: str, region: str, http: Callable[[], httpx.AsyncClient]
) -> CredentialSource:
    sts = os.environ.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com"

    async def fetch() -> Credentials:
        token = Path(token_file).read_text().strip()  # re-read: the kubelet rotates it
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": f"xrouter-{uuid.uuid4().hex[:16]}",
            "WebIdentityToken": token,
        }
        resp = await http().post(sts.rstrip("/") + "/", data=form, timeout=_TIMEOUT)
        if resp.status_code != 200:
            raise CredentialError(f"STS AssumeRoleWithWebIdentity answered {resp.status_code}")
        try:
            node = ET.fromstring(resp.content).find(
                f"{_STS_NS}AssumeRoleWithWebIdentityResult/{_STS_NS}Credentials"
            )
        except ET.ParseError:
            node = None
        if node is None:
            raise CredentialError("STS answered without credentials")
        fields = {child.tag.removeprefix(_STS_NS): child.text for child in node}
        return _from_json({**fields, "Token": fields.get("SessionToken")}, "STS")

    return Refreshing(f"web identity {role_arn}", fetch)


def pod_identity(uri: str, token_file: str | None, http: Callable[[], httpx.AsyncClient]) -> CredentialSource:
    async def fetch() -> Credentials:
        headers = {"authorization": Path(token_file).read_text().strip()} if token_file else {}
        resp = await http().get(uri, headers=headers, timeout=_TIMEOUT)
        if resp.status_code != 200:
            raise CredentialError(f"the container credentials endpoint answered {resp.status_code}")
        return _from_json(orjson.loads(resp.content), "the container credentials endpoint")

    return Refreshing("EKS Pod Identity", fetch)


def instance_role(http: Callable[[], httpx.AsyncClient]) -> CredentialSource:
    base = (os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254").rstrip("/")

    async def fetch() -> Credentials:
        client = http()
        resp = await client.put(
            base + "/latest/api/token",
            headers={"x-aws-ec2-metadata-token-ttl-seconds": "21600"},
            timeout=_TIMEOUT,
        )
        if resp.status_code != 200:
            raise CredentialError(f"IMDS token request answered {resp.status_code}")
        auth = {"x-aws-ec2-metadata-token": resp.text}
        path = base + "/latest/meta-data/iam/security-credentials/"
        roles = await client.get(path, headers=auth, timeout=_TIMEOUT)
        role = roles.text.strip().splitlines()[0] if roles.status_code == 200 and roles.text.strip() else ""
        if not role:
            raise CredentialError("the instance has no role")
        resp = await client.get(path + role, headers=auth, timeout=_TIMEOUT)
        if resp.status_code != 200:
            raise CredentialError(f"IMDS credentials request answered {resp.status_code}")
        return _from_json(orjson.loads(resp.content), "IMDS")

    return Refreshing("instance role", fetch)


def credential_source(
    name: str, auth: AwsAuth | None, region: str, http: Callable[[], httpx.AsyncClient]
) -> CredentialSource:
    """The first source of the chain that is configured. Static keys are read here (a
    missing file raises ``SecretError`` at start-up, naming the field)."""
    auth = auth or AwsAuth()
    what = f"providers[{name}].aws"
    if auth.access_key_id is not None and auth.secret_access_key is not None:
        token = read_secret(auth.session_token, f"{what}.sessionToken") if auth.session_token else None
        creds = Credentials(
            read_secret(auth.access_key_id, f"{what}.accessKeyId"),
            read_secret(auth.secret_access_key, f"{what}.secretAccessKey"),
            token,
        )
        return Refreshing("static keys", static=creds)
    role = auth.role_arn or os.environ.get("AWS_ROLE_ARN")
    token_file = auth.web_identity_token_file or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if role and token_file:
        return web_identity(role, token_file, region, http)
    uri = os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if uri:
        return pod_identity(uri, os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), http)
    return instance_role(http)
