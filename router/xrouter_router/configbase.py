"""The wire conventions of the router's config (``config.py``), shared with the
operator's XRouter API: camelCase models, and where a secret comes from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """The wire conventions shared by the router config and the operator's XRouter API:
    camelCase on the wire, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class SecretSource(CamelModel):
    """Where a secret value comes from: an env var or a file. Exactly one is set."""

    env: str | None = Field(default=None, min_length=1)
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of 'env' or 'file'")
        return self
