"""A router in front of every fake at once (the fake provider for the OpenAI, Azure and
Anthropic types, the fake Bedrock, the fake Gemini API and Vertex AI), one route per
(provider type, upstream model): what the conformance table and the translation tests
send requests through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import ENV, base_config
from .fakeaws import FakeBedrock, bedrock_config
from .fakegoogle import FakeGoogle, google_config
from .servers import FakeProvider, Router

_FAKE = {"openai": 0, "openai-compatible": 0, "azure-openai": 0, "anthropic": 0, "bedrock": 1}


class Fakes:
    """The three fake processes; ``of(type)`` is the one a provider type reaches."""

    def __init__(self, tmp: Path) -> None:
        self.all: list[FakeProvider] = [FakeProvider(), FakeBedrock(), FakeGoogle(tmp)]

    def of(self, provider_type: str) -> FakeProvider | None:
        return None if provider_type == "mock" else self.all[_FAKE.get(provider_type, 2)]


@contextmanager
def all_fakes(tmp: Path, routes: dict[str, list[tuple[str, str]]]) -> Iterator[tuple[Router, Fakes]]:
    """A router whose routes (name → its targets, in order: (provider type, upstream
    model)) reach the first provider of each type on its fake. The targets after a
    route's first are for failover only (weight 0)."""
    fakes = Fakes(tmp)
    bedrock, google = fakes.all[1], fakes.all[2]
    assert isinstance(bedrock, FakeBedrock) and isinstance(google, FakeGoogle)
    for fake in fakes.all:
        fake.start()
    config = base_config(fakes.all[0].url, tmp)
    config["providers"] = [
        *config["providers"],
        *bedrock_config(bedrock, tmp)["providers"],
        *google_config(google, tmp)["providers"],
    ]
    named = {p["type"]: p["name"] for p in reversed(config["providers"])}  # the first of each type
    named["openai-compatible"] = "fake"
    config["models"] = [
        {
            "name": name,
            "targets": [
                {"provider": named[kind], "model": model, "weight": 0 if i else 1}
                for i, (kind, model) in enumerate(targets)
            ],
        }
        for name, targets in routes.items()
    ]
    config["keys"] = config["keys"][:1]
    router = Router(config, ENV, workdir=tmp)
    router.start()
    try:
        yield router, fakes
    finally:
        router.stop(timeout=10)
        for fake in fakes.all:
            fake.stop()
