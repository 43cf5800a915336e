"""The routing half of the API: providers, models (routes), keys, Redis and PostgreSQL.

Provider, Route, Target and Limits are the router config's own models with bounds added
(name lengths, list sizes) so that the CRD's CEL rules stay within the API server's cost
budget. Their types, defaults and checks (ProviderType, Strategy, "baseUrl is required")
come from ``xrouter_router.config``; only the secret fields differ, because the XRouter
names Secrets where the router config names files or env vars.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from xrouter_router import config as rc

from .models_telemetry import Peer
from .schema import DNS_LABEL, HTTP_URL, MODEL_NAME_MAX, ApiModel, cel

_HTTP_URL = re.compile(HTTP_URL)


def check_http_url(url: str, field: str = "") -> int:
    """The TCP port of an http(s) URL (default 80/443); ValueError naming ``field`` otherwise.
    The message never repeats the URL: it may carry user:password@."""
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:
        port = -1
    problem = ""
    if port in (-1, 0):
        problem = "the port must be in 1-65535"
    elif not _HTTP_URL.match(url):
        problem = "must be an http(s) URL with a host, e.g. http://vllm.ml.svc:8000/v1"
    if problem:
        raise ValueError(f"{field}: {problem}" if field else problem)
    return port or (80 if u.scheme == "http" else 443)


class SecretKeyRef(ApiModel):
    """A key in a Secret in the XRouter's namespace (or, when ``name`` is
    spec.secretProviderClass's, an object that SecretProviderClass mounts)."""

    name: str = Field(
        min_length=1, max_length=253, description="Name of the Secret (or of spec.secretProviderClass)."
    )
    key: str = Field(
        min_length=1, max_length=253, description="Key in the Secret's data (or the object's file name)."
    )


# A file name the Secrets Store CSI driver writes an object to (its objectName or
# objectAlias), as a Secret's key: no directories, so it cannot leave the mount.
OBJECT_NAME = r"^[-._a-zA-Z0-9]+$"


class SecretProviderClassRef(ApiModel):
    """A SecretProviderClass (Secrets Store CSI driver: Vault, AWS, Azure, GCP providers) in
    the XRouter's namespace, mounted into the router pods."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Provider(rc.Provider):
    model_config = cel(
        (
            "self.type in ['mock', 'bedrock', 'gemini', 'vertex'] || has(self.baseUrl)",
            "spec.providers[].baseUrl is required unless type is mock, bedrock, gemini or vertex",
            ".baseUrl",
        ),
        (
            "!(self.type in ['bedrock', 'vertex']) || has(self.region)",
            "spec.providers[].region is required for types bedrock and vertex",
            ".region",
        ),
        (
            "self.type != 'vertex' || has(self.project)",
            "spec.providers[].project is required for type vertex",
            ".project",
        ),
        (
            "has(self.awsAccessKeyIdSecretRef) == has(self.awsSecretAccessKeySecretRef)",
            "spec.providers[]: set both awsAccessKeyIdSecretRef and awsSecretAccessKeySecretRef, or neither",
            ".awsAccessKeyIdSecretRef",
        ),
        (
            "self.type != 'azure-openai' || has(self.apiVersion)",
            "spec.providers[].apiVersion is required for type azure-openai",
            ".apiVersion",
        ),
    )

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    # The pattern is for the CRD (admission); the validator says the same with a clearer message.
    base_url: str | None = Field(default=None, max_length=2048, json_schema_extra={"pattern": HTTP_URL})
    api_version: str | None = Field(default=None, description="Required for azure-openai.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The port the provider's pods listen on, for the NetworkPolicy egress rule. Unset: "
        "the target ports of the Service a cluster baseUrl names (http://NAME.NAMESPACE.svc), else the "
        "baseUrl's port.",
    )
    # The router config's apiKey (a file or env var) is rendered from this reference.
    api_key: SkipJsonSchema[None] = Field(default=None, exclude=True)
    api_key_secret_ref: SecretKeyRef | None = None
    # bedrock: static keys from a Secret; without them the router uses the pod's web
    # identity (IRSA: annotate its ServiceAccount), EKS Pod Identity or the node's role.
    aws: SkipJsonSchema[None] = Field(default=None, exclude=True)
    aws_access_key_id_secret_ref: SecretKeyRef | None = Field(
        default=None, description="bedrock: the AWS access key id (with awsSecretAccessKeySecretRef)."
    )
    aws_secret_access_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="bedrock: the AWS secret access key."
    )
    # vertex: a service-account key; without it, the metadata server (GKE Workload Identity).
    google_credentials: SkipJsonSchema[None] = Field(default=None, exclude=True)
    google_credentials_secret_ref: SecretKeyRef | None = Field(
        default=None, description="vertex: a service-account key (JSON)."
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            check_http_url(v)
        return v

    def url_port(self) -> int | None:
        """The baseUrl's TCP port (80/443 by scheme when it names none)."""
        if self.base_url is None:
            return None
        return check_http_url(self.base_url, f"spec.providers[{self.name}].baseUrl")


class Target(rc.Target):
    provider: str = Field(min_length=1, max_length=40, description="Name of a provider in spec.providers.")
    model: str = Field(min_length=1, max_length=256, description="Upstream model (or Azure deployment).")
    weight: int = Field(default=1, ge=0, le=1_000_000)


class Route(rc.Route):
    """A public model name and how requests for it are routed."""

    model_config = cel(
        (
            "self.targets.exists(t, !has(t.weight) || t.weight > 0)",
            "spec.models[].targets: at least one target needs weight > 0",
            ".targets",
        ),
        (
            "!has(self.fallbacks) || !self.fallbacks.exists(f, f == self.name)",
            "spec.models[].fallbacks must not name the model itself",
            ".fallbacks",
        ),
        (
            "!has(self.contextWindowFallbacks) || !self.contextWindowFallbacks.exists(f, f == self.name)",
            "spec.models[].contextWindowFallbacks must not name the model itself",
            ".contextWindowFallbacks",
        ),
    )

    name: str = Field(min_length=1, max_length=MODEL_NAME_MAX, description="The public model name.")
    targets: list[Target] = Field(min_length=1, max_length=8)  # type: ignore[assignment]
    fallbacks: list[Annotated[str, Field(max_length=MODEL_NAME_MAX)]] = Field(
        default=[], max_length=4, description="Other public model names, tried in order."
    )
    context_window_fallbacks: list[Annotated[str, Field(max_length=MODEL_NAME_MAX)]] = Field(
        default=[],
        max_length=4,
        description="Other public model names (larger context windows), tried in order when an upstream "
        "answers that the prompt is too long.",
    )


BUDGET_PERIOD_NEEDS_BUDGET = "limits.budgetPeriod daily, weekly or monthly needs limits.budgetUsd"


class Limits(rc.Limits):
    """Limits for an API key. Unset means unlimited."""

    model_config = cel(
        (
            "!has(self.budgetPeriod) || self.budgetPeriod == 'none' || has(self.budgetUsd)",
            BUDGET_PERIOD_NEEDS_BUDGET,
            ".budgetPeriod",
        ),
    )

    allowed_models: list[Annotated[str, Field(max_length=MODEL_NAME_MAX)]] | None = Field(
        default=None, max_length=16
    )

    @model_validator(mode="after")
    def _period_needs_budget(self) -> Limits:
        # A period without a budget limits nothing: refused rather than silently ignored.
        if self.budget_period != "none" and self.budget_usd is None:
            raise ValueError(BUDGET_PERIOD_NEEDS_BUDGET)
        return self


class Key(ApiModel):
    """An API key declared as code: the raw key lives in a Secret."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    secret_key_ref: SecretKeyRef
    limits: Limits | None = Field(default=None, description="Unset: spec.defaultLimits.")


PEERS_DESCRIPTION = (
    "Where it runs, as NetworkPolicy egress peers (its URL is in a Secret the operator does not read). "
    "Empty: any destination on port."
)


# host:port, the host a DNS name, an IPv4 address or a bracketed IPv6 address.
HOST_PORT = r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$"


class RedisSentinel(ApiModel):
    """Redis behind Sentinel: the router asks these sentinels where the master is."""

    master_name: str = Field(min_length=1, max_length=253, description="As the sentinels monitor it.")
    addresses: list[Annotated[str, Field(pattern=HOST_PORT, max_length=261)]] = Field(
        min_length=1, max_length=9, description="The sentinels, as host:port."
    )
    username: str | None = Field(default=None, min_length=1, max_length=253, description="The master's user.")
    password_secret_ref: SecretKeyRef | None = Field(default=None, description="The master's password.")
    db: int = Field(default=0, ge=0, le=1000)
    sentinel_username: str | None = Field(default=None, min_length=1, max_length=253)
    sentinel_password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="The sentinels' own password, if they require one."
    )

    def ports(self) -> list[int]:
        return sorted({int(a.rpartition(":")[2]) for a in self.addresses})


class Redis(ApiModel):
    model_config = cel(
        ("has(self.urlSecretRef) != has(self.sentinel)", "spec.redis: set either urlSecretRef or sentinel"),
        (
            "!has(self.sentinel) || !has(self.cluster) || !self.cluster",
            "spec.redis: cluster excludes sentinel",
        ),
    )

    url_secret_ref: SecretKeyRef | None = Field(
        default=None, description="A redis:// URL; with cluster, of any node of the Redis Cluster."
    )
    cluster: bool = Field(default=False, description="urlSecretRef names a node of a Redis Cluster.")
    sentinel: RedisSentinel | None = None
    fail_mode: Literal["open", "closed"] = "open"
    port: int = Field(
        default=6379, ge=1, le=65535, description="For the NetworkPolicy egress rule (the Redis servers)."
    )
    peers: list[Peer] = Field(default=[], max_length=8, description=PEERS_DESCRIPTION)

    @model_validator(mode="after")
    def _one_topology(self) -> Redis:
        if (self.url_secret_ref is None) == (self.sentinel is None):
            raise ValueError("spec.redis: set either urlSecretRef or sentinel")
        if self.sentinel is not None and self.cluster:
            raise ValueError("spec.redis: cluster excludes sentinel")
        return self

    def egress_ports(self) -> list[int]:
        """The ports the pods must reach: the servers', and the sentinels' too."""
        return sorted({self.port, *(self.sentinel.ports() if self.sentinel else [])})


class Cnpg(ApiModel):
    """A CloudNativePG Cluster in the XRouter's namespace."""

    cluster: str = Field(pattern=DNS_LABEL, max_length=50, description="The Cluster's metadata.name.")


class Database(ApiModel):
    model_config = cel(
        ("has(self.urlSecretRef) != has(self.cnpg)", "spec.database: set either urlSecretRef or cnpg"),
    )

    url_secret_ref: SecretKeyRef | None = Field(default=None, description="A postgresql:// URL.")
    cnpg: Cnpg | None = Field(
        default=None,
        description="Use this CloudNativePG Cluster: the uri in its NAME-app Secret, which names its NAME-rw "
        "Service (always the primary).",
    )
    port: int = Field(default=5432, ge=1, le=65535, description="For the NetworkPolicy egress rule.")
    peers: list[Peer] = Field(default=[], max_length=8, description=PEERS_DESCRIPTION)

    @model_validator(mode="after")
    def _one_source(self) -> Database:
        if (self.url_secret_ref is None) == (self.cnpg is None):
            raise ValueError("spec.database: set either urlSecretRef or cnpg")
        return self

    def secret_ref(self) -> SecretKeyRef:
        """Where the URL is: urlSecretRef, or the ``uri`` key of CloudNativePG's ``NAME-app``
        Secret (postgresql://USER:PASSWORD@NAME-rw.NAMESPACE:5432/DBNAME)."""
        if self.cnpg is not None:
            return SecretKeyRef(name=f"{self.cnpg.cluster}-app", key="uri")
        assert self.url_secret_ref is not None
        return self.url_secret_ref
