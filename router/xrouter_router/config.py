"""The router's configuration model.

This is the contract between the operator and the router: the operator renders a
``RouterConfig`` into the ConfigMap and validates it with this very model, so it can
never render a config the router would refuse. Field names are camelCase on the wire
(YAML/JSON), snake_case in Python.

Secrets never appear in the config itself: each one is a ``SecretSource`` naming an
environment variable or a file (a mounted Secret) that the router reads at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import Field, model_validator

# Re-exported: the config's one public module names every model of it.
from .configbase import CamelModel as CamelModel
from .configbase import SecretSource as SecretSource
from .storeconfig import DatabaseConfig as DatabaseConfig
from .storeconfig import RedisConfig as RedisConfig
from .storeconfig import RedisSentinel as RedisSentinel


class ProviderType(str, Enum):  # noqa: UP042 (str() of members is part of the contract)
    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai-compatible"
    AZURE_OPENAI = "azure-openai"
    ANTHROPIC = "anthropic"
    BEDROCK = "bedrock"  # Amazon Bedrock: Converse, and InvokeModel for Anthropic models
    GEMINI = "gemini"  # the Gemini API (generativelanguage.googleapis.com), with an API key
    VERTEX = "vertex"  # Google Vertex AI: Gemini (generateContent) and Anthropic (rawPredict)
    MOCK = "mock"  # answers locally (echo); for make up and newcomers


class Timeouts(CamelModel):
    """Upstream timeouts in seconds, per attempt."""

    connect: float = Field(default=5.0, gt=0, description="Opening the connection.")
    first_byte: float = Field(
        default=60.0,
        gt=0,
        description="From sending the request to the answer starting: its headers, and for a stream "
        "its first event.",
    )
    stream_idle: float = Field(
        default=60.0,
        gt=0,
        description="The longest silence allowed once the answer has started (between stream events, "
        "or while reading a body).",
    )
    total: float = Field(default=600.0, gt=0, description="The whole attempt.")


class AwsAuth(CamelModel):
    """Where a ``bedrock`` provider's AWS credentials come from. Unset fields fall back
    to the standard chain: static keys if given, else a web identity (IRSA: roleArn and
    webIdentityTokenFile, or $AWS_ROLE_ARN and $AWS_WEB_IDENTITY_TOKEN_FILE), else EKS
    Pod Identity ($AWS_CONTAINER_CREDENTIALS_FULL_URI), else the instance role (IMDSv2)."""

    access_key_id: SecretSource | None = None
    secret_access_key: SecretSource | None = None
    session_token: SecretSource | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
    web_identity_token_file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _pair(self) -> AwsAuth:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both accessKeyId and secretAccessKey, or neither")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("sessionToken needs accessKeyId and secretAccessKey")
        return self


class Provider(CamelModel):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    type: ProviderType
    base_url: str | None = None
    api_key: SecretSource | None = None
    api_version: str | None = None  # azure-openai
    # bedrock: the AWS region; vertex: the location (us-central1, europe-west4, global)
    region: str | None = Field(default=None, pattern=r"^(global|[a-z]+(-[a-z]+)*-?[0-9]+)$")
    aws: AwsAuth | None = None  # bedrock; None: the standard credential chain
    project: str | None = Field(default=None, pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")  # vertex
    # vertex: a service-account key (JSON); None: the metadata server (workload identity)
    google_credentials: SecretSource | None = None
    timeouts: Timeouts = Timeouts()
    max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _needs_url(self) -> Provider:
        if self.type in (ProviderType.BEDROCK, ProviderType.VERTEX):
            if not self.region:
                raise ValueError(f"provider {self.name!r}: region is required for type {self.type.value}")
            if self.type is ProviderType.VERTEX and not self.project:
                raise ValueError(f"provider {self.name!r}: project is required for type vertex")
        elif self.type not in (ProviderType.MOCK, ProviderType.GEMINI) and not self.base_url:
            raise ValueError(f"provider {self.name!r}: baseUrl is required for type {self.type.value}")
        if self.type is ProviderType.AZURE_OPENAI and not self.api_version:
            raise ValueError(f"provider {self.name!r}: apiVersion is required for azure-openai")
        return self


class Strategy(str, Enum):  # noqa: UP042
    WEIGHTED = "weighted"
    LEAST_INFLIGHT = "least-inflight"
    LATENCY = "latency"
    HASH = "hash"


class Target(CamelModel):
    provider: str
    model: str = Field(min_length=1)  # the upstream model (or azure deployment) name
    weight: int = Field(default=1, ge=0)


class CacheConfig(CamelModel):
    """A route's response cache, in Redis: exact matches on the normalized request."""

    ttl_seconds: int = Field(ge=1, le=30 * 86400, description="How long an answer is kept.")
    scope: Literal["key", "shared"] = Field(
        default="key",
        description="key: each API key sees only answers to its own requests; shared: every key "
        "allowed to use the model shares them.",
    )
    max_entry_bytes: int = Field(
        default=1024 * 1024, ge=1, le=16 * 1024 * 1024, description="Larger answers are not cached."
    )


class Route(CamelModel):
    """A public model name and how requests for it are routed."""

    name: str = Field(min_length=1)
    strategy: Strategy = Strategy.WEIGHTED
    # For strategy=hash: "user" (the request's user field) or "header:<name>".
    hash_key: str = Field(default="user", pattern=r"^(user|header:[A-Za-z0-9-]+)$")
    targets: list[Target] = Field(min_length=1)
    # Other public model names tried in order once every target has failed.
    fallbacks: list[str] = []
    # Public model names (larger context windows) tried in order when an upstream
    # answers that the prompt is too long (400 context_length_exceeded and the like).
    context_window_fallbacks: list[str] = []
    # None: answers are never cached (the default; caching is opt-in per route).
    cache: CacheConfig | None = None


class Limits(CamelModel):
    """Per-key limits. None means unlimited."""

    rpm: int | None = Field(default=None, ge=0, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=0, description="Tokens per minute.")
    max_concurrent: int | None = Field(default=None, ge=0)
    budget_usd: float | None = Field(default=None, ge=0)
    # The calendar window (UTC) budgetUsd applies to; "none": the key's whole lifetime.
    budget_period: Literal["none", "daily", "weekly", "monthly"] = "none"
    # None: every model; otherwise the public model names this key may call.
    allowed_models: list[str] | None = None


class Key(CamelModel):
    """An API key declared in config. The raw key is never in the config: either
    a SecretSource the router reads and hashes at start-up, or its SHA-256 hex."""

    name: str = Field(min_length=1)
    secret: SecretSource | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    limits: Limits | None = None  # None: defaultLimits

    @model_validator(mode="after")
    def _one_source(self) -> Key:
        if (self.secret is None) == (self.sha256 is None):
            raise ValueError(f"key {self.name!r}: set exactly one of 'secret' or 'sha256'")
        return self


class Price(CamelModel):
    """USD per million tokens for one upstream model. The prompt-cache rates default
    to what errs on the dear side: a cache read at the input rate, a cache write at
    Anthropic's published multiples of it (1.25x for the 5-minute cache, 2x for the
    1-hour cache)."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write_input: float | None = Field(default=None, ge=0)
    cache_write_1h_input: float | None = Field(default=None, ge=0, alias="cacheWrite1hInput")


class RetryPolicy(CamelModel):
    base_delay_seconds: float = Field(default=0.1, ge=0)
    max_delay_seconds: float = Field(default=5.0, ge=0)


class BreakerPolicy(CamelModel):
    failure_threshold: int = Field(default=5, ge=1)
    window_seconds: float = Field(default=30.0, gt=0)
    cooldown_seconds: float = Field(default=15.0, gt=0)


class ServerConfig(CamelModel):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    drain_seconds: float = Field(default=30.0, ge=0)
    # Log request and response bodies (logger xrouter.bodies, at debug level), with
    # credentials redacted. Bodies hold prompts and completions: for debugging only.
    log_bodies: bool = False


class TelemetryConfig(CamelModel):
    """OpenTelemetry traces. Export itself (endpoint, sampling, headers) is configured
    by the standard OTEL_* environment variables; with no OTLP endpoint set, it is off."""

    # Put prompts and completions in spans (gen_ai.input.messages/gen_ai.output.messages).
    # They are user data: off unless the trace backend may hold it.
    capture_content: bool = False


class RouterConfig(CamelModel):
    """The whole router config: what the operator renders into the ConfigMap."""

    providers: list[Provider] = Field(min_length=1)
    models: list[Route] = Field(min_length=1)
    keys: list[Key] = []
    default_limits: Limits = Limits()
    prices: dict[str, Price] = {}  # keyed by upstream model name
    admin_key: SecretSource | None = None
    redis: RedisConfig = RedisConfig()
    database: DatabaseConfig = DatabaseConfig()
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    server: ServerConfig = ServerConfig()
    telemetry: TelemetryConfig = TelemetryConfig()

    @model_validator(mode="after")
    def _consistent(self) -> RouterConfig:
        check_references(self.providers, self.models, self.keys, self.default_limits)
        if self.redis.cluster:
            for k in self.keys:
                # Its limit counters are xr:{NAME}...: with "}" first the hash tag is empty,
                # and a cluster would refuse the scripts touching them (CROSSSLOT).
                if k.name.startswith("}"):
                    raise ValueError(f"keys[{k.name}].name: cannot start with '}}' with redis.cluster")
        return self


class _KeyLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def limits(self) -> Limits | None: ...


def check_references(
    providers: Sequence[Provider],
    models: Sequence[Route],
    keys: Sequence[_KeyLike],
    default_limits: Limits,
    prefix: str = "",
) -> None:
    """Unique names, and every cross-reference (target provider, fallback, context-window
    fallback, allowedModels)
    resolves. Shared with the operator's XRouter spec (``prefix="spec."``), so both APIs
    refuse the same configs with the same messages. Raises ValueError naming the field."""
    for kind, names in (
        ("providers", [p.name for p in providers]),
        ("models", [m.name for m in models]),
        ("keys", [k.name for k in keys]),
    ):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{prefix}{kind}: duplicate names {dupes}")
    known = {p.name for p in providers}
    model_names = [m.name for m in models]
    for m in models:
        for t in m.targets:
            if t.provider not in known:
                raise ValueError(f"{prefix}models[{m.name}].targets: unknown provider {t.provider!r}")
        if not any(t.weight > 0 for t in m.targets):
            raise ValueError(f"{prefix}models[{m.name}].targets: at least one target needs weight > 0")
        for f in m.fallbacks:
            if f not in model_names or f == m.name:
                raise ValueError(f"{prefix}models[{m.name}].fallbacks: {f!r} is not another declared model")
        for f in m.context_window_fallbacks:
            if f not in model_names or f == m.name:
                raise ValueError(
                    f"{prefix}models[{m.name}].contextWindowFallbacks: {f!r} is not another declared model"
                )
    for k in keys:
        for name in (k.limits.allowed_models if k.limits else None) or []:
            if name not in model_names:
                raise ValueError(f"{prefix}keys[{k.name}].limits.allowedModels: unknown model {name!r}")
    for name in default_limits.allowed_models or []:
        if name not in model_names:
            raise ValueError(f"{prefix}defaultLimits.allowedModels: unknown model {name!r}")


ConfigText = Annotated[str, "YAML or JSON text"]


def parse_config(text: ConfigText) -> RouterConfig:
    """Parse YAML (a superset of JSON) into a validated RouterConfig.

    Raises ``pydantic.ValidationError`` or ``ValueError`` with a message naming the field.
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"config: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("config: expected a mapping at the top level")
    return RouterConfig.model_validate(data)


def load_config(path: str | Path) -> RouterConfig:
    return parse_config(Path(path).read_text())


def dump_config(config: RouterConfig) -> str:
    """Canonical JSON text (camelCase, defaults left out, sorted keys): stable across
    runs, so its checksum only changes when the config does."""
    data = config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return json.dumps(data, sort_keys=True, indent=2) + "\n"
