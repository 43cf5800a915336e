"""The telemetry part of the API: where the router exports OpenTelemetry traces.

The router reads its exporter settings from the standard ``OTEL_*`` environment variables
(``workload.telemetry_env``); only ``captureContent`` goes into the router config. The
collector's port (from the endpoint) and location (``collector``) feed the NetworkPolicy's
egress rule, as ``redis.port`` and ``egress.providerCidrs`` do for Redis and the providers.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from .schema import ApiModel, Json, cel

ENDPOINT_MESSAGE = (
    "spec.telemetry.endpoint must be an http(s) URL with a host, e.g. http://otel-collector:4318"
)
PEER_MESSAGE = "a NetworkPolicy peer takes either ipBlock or podSelector/namespaceSelector, not both"


class IpBlock(ApiModel):
    cidr: str = Field(min_length=1, max_length=64)
    except_: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=16, alias="except"
    )


class Peer(ApiModel):
    """A NetworkPolicy peer: pods (podSelector and/or namespaceSelector) or addresses (ipBlock)."""

    model_config = cel(
        (
            "!has(self.ipBlock) || !(has(self.podSelector) || has(self.namespaceSelector))",
            PEER_MESSAGE,
        ),
    )

    pod_selector: Json | None = None
    namespace_selector: Json | None = None
    ip_block: IpBlock | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Peer:
        if self.ip_block is not None and (
            self.pod_selector is not None or self.namespace_selector is not None
        ):
            raise ValueError(PEER_MESSAGE)
        return self

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


# Where the collector runs; unset: the Service the endpoint names, else anywhere on its port.
CollectorPeer = Peer


class Telemetry(ApiModel):
    """OpenTelemetry traces over OTLP/HTTP. Unset: no OTEL_* variables, tracing off."""

    model_config = cel(
        (
            "isURL(self.endpoint) && url(self.endpoint).getScheme() in ['http', 'https'] "
            "&& url(self.endpoint).getHostname() != ''",
            ENDPOINT_MESSAGE,
            ".endpoint",
        ),
    )

    # No userinfo (user:password@) in the authority: the endpoint is plain env on the
    # Deployment, so credentials go in OTEL_EXPORTER_OTLP_HEADERS from a Secret instead.
    endpoint: str = Field(
        pattern=r"^https?://[^/?#@]+([/?#].*)?$",
        max_length=2048,
        description="The collector's OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); the router "
        "appends /v1/traces. Port default: 4318 for http, 443 for https.",
    )
    sampling_ratio: float = Field(
        default=1.0, ge=0, le=1, description="Share of new traces sampled; a caller's sampled flag is kept."
    )
    service_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="OTEL_SERVICE_NAME; unset: xrouter-router."
    )
    capture_content: bool = Field(
        default=False, description="Put prompts and completions in spans. They are user data."
    )
    collector: CollectorPeer | None = None

    @model_validator(mode="after")
    def _endpoint(self) -> Telemetry:
        self.port()
        return self

    def port(self) -> int:
        """The collector's TCP port, from the endpoint (raises ValueError naming the field)."""
        u = urlsplit(self.endpoint)
        try:
            port = u.port
        except ValueError:
            raise ValueError(ENDPOINT_MESSAGE) from None
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(ENDPOINT_MESSAGE)
        return port or (4318 if u.scheme == "http" else 443)
