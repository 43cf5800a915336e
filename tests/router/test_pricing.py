"""The price catalogue: its format check (``make prices``), how a target's model finds
its price (Bedrock profiles and ARNs, Vertex versions, dated snapshots, config first),
and end to end a model priced nowhere: a start-up warning, a metric and a flagged
usage row, never a silent $0."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from xrouter_router import pricing
from xrouter_router.config import Price

from .conftest import StartRouter, client, db_config
from .servers import FakeProvider, Postgres, Router

SONNET = pricing.shipped().prices["claude-sonnet-4-20250514"]


def _catalogue(**change: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(pricing.__file__).parent / "pricedata.json").read_text())
    data.update(change)
    return data


def test_the_shipped_catalogue_is_well_formed() -> None:
    assert pricing.check(_catalogue()) == []
    assert pricing.main([]) == 0
    assert SONNET.input == 3.0 and SONNET.output == 15.0 and SONNET.cached_input == 0.3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"asOf": "last week"}, "asOf must be the date"),
        ({"sources": {"openai": "http://example.com"}}, "https URL"),
        (
            {
                "models": {
                    "b": {"provider": "openai", "input": 1, "output": 1},
                    "a": {"provider": "openai", "input": 1, "output": 1},
                }
            },
            "sorted",
        ),
        ({"models": {"gpt-x": {"provider": "openai", "input": -1, "output": 1}}}, r"models\['gpt-x'\].input"),
        ({"models": {"gpt-x": {"provider": "openai", "input": 1}}}, r"models\['gpt-x'\].output"),
        (
            {"models": {"gpt-x": {"provider": "openai", "input": 1, "output": 1, "cached": 1}}},
            "unknown field 'cached'",
        ),
        ({"models": {"gpt-x": {"provider": "azure", "input": 1, "output": 1}}}, "provider must be one of"),
        # Unit errors: a per-token price (3e-06) or a per-thousand one read as per million
        # (3000) is off by a factor of a thousand or more.
        (
            {"models": {"gpt-x": {"provider": "openai", "input": 0.000003, "output": 1}}},
            r"models\['gpt-x'\].input is 3e-06 USD per million tokens: .*per token",
        ),
        (
            {"models": {"gpt-x": {"provider": "openai", "input": 1, "output": 15000}}},
            r"models\['gpt-x'\].output is 15000 USD per million tokens: .*above 1000",
        ),
        (
            {"models": {"gpt-x": {"provider": "openai", "input": 1, "output": 2, "cachedInput": 1.5}}},
            r"models\['gpt-x'\].cachedInput .*more than its input",
        ),
    ],
)
def test_format_errors_are_named(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps(_catalogue(**change)))
    with pytest.raises(ValueError, match=message):
        pricing.load(bad.read_text())
    assert pricing.main([str(bad)]) == 1


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-20250514",
        "anthropic.claude-sonnet-4-20250514-v1:0",  # Bedrock
        "us.anthropic.claude-sonnet-4-20250514-v1:0",  # a cross-region inference profile
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0",
        "claude-sonnet-4@20250514",  # Vertex
    ],
)
def test_variants_find_the_list_price(model: str) -> None:
    assert pricing.lookup(model, {}, pricing.shipped()) == SONNET


def test_other_variants_and_config_first() -> None:
    shipped = pricing.shipped()
    assert pricing.lookup("gemini-2.0-flash-001", {}, shipped) == shipped.prices["gemini-2.0-flash"]
    assert pricing.lookup("gpt-4o-2024-08-06", {}, shipped) == shipped.prices["gpt-4o"]
    mine = Price(input=1, output=2)
    assert (
        pricing.lookup(
            "us.anthropic.claude-sonnet-4-20250514-v1:0", {"claude-sonnet-4-20250514": mine}, shipped
        )
        == mine
    )
    assert pricing.lookup("my-azure-deployment", {}, shipped) is None


@pytest.mark.parametrize(
    ("model", "factor"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", 1.0),  # the model id: the list price
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 1.0),  # the global profile: the same
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", 1.1),  # a geographic profile: 10% more
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", 1.1),
        ("apac.anthropic.claude-opus-4-6-v1", 1.1),
        ("jp.anthropic.claude-sonnet-4-6", 1.1),
        ("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-6", 1.1),
        ("us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0", 1.2),  # GovCloud
        ("claude-sonnet-4-5@20250929", 1.0),  # Vertex: no such premium in this catalogue
        ("claude-sonnet-4-5-20250929", 1.0),  # Anthropic's dated id finds its alias
    ],
)
def test_geographic_bedrock_profiles_of_newer_claude_cost_more(model: str, factor: float) -> None:
    """Bedrock prices a geographic cross-region inference profile of Claude Sonnet 4.5
    and later 10% above the global one; dropping the prefix would price it 10% low."""
    shipped = pricing.shipped()
    base = shipped.prices["claude-sonnet-4-6" if "4-6" in model else "claude-sonnet-4-5"]
    if "opus" in model:
        base = shipped.prices["claude-opus-4-6"]
    price = pricing.lookup(model, {}, shipped)
    assert price is not None
    assert price.input == pytest.approx(base.input * factor)
    assert price.output == pytest.approx(base.output * factor)
    assert price.cached_input == pytest.approx((base.cached_input or 0) * factor)
    assert price.cache_write_input == pytest.approx((base.cache_write_input or 0) * factor)


def test_older_models_profiles_cost_the_list_price() -> None:
    shipped = pricing.shipped()
    assert pricing.lookup("us.anthropic.claude-sonnet-4-20250514-v1:0", {}, shipped) == SONNET
    # A price set in config is the price of what it names: no premium on top.
    mine = Price(input=1, output=2)
    configured = {"claude-sonnet-4-5": mine}
    assert pricing.lookup("us.anthropic.claude-sonnet-4-5-20250929-v1:0", configured, shipped) == mine


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"regionalProfiles": {"us": 0.5}}, "regionalProfiles"),
        ({"regionalProfiles": {"mars": 1.1}}, "regionalProfiles"),
        (
            {"models": {"gpt-x": {"provider": "openai", "input": 1, "output": 1, "regionalPremium": "yes"}}},
            r"models\['gpt-x'\].regionalPremium",
        ),
    ],
)
def test_regional_profile_errors_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pricing.load(json.dumps(_catalogue(**change)))


def test_a_model_with_no_price_is_flagged_not_free(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = db_config(provider.url, tmp_path, prices={})
    config["models"] += [
        {"name": "listed", "targets": [{"provider": "fake", "model": "gpt-4o-mini"}]},
        {"name": "unlisted", "targets": [{"provider": "fake", "model": "house-model-7"}]},
    ]
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
    assert "no price for upstream model 'house-model-7'" in router.log()
    assert router.metric("xrouter_unpriced_models", upstream_model="house-model-7") == 1
    assert router.metric("xrouter_unpriced_models", upstream_model="gpt-4o-mini") == 0
    msg: Any = [{"role": "user", "content": "price me"}]
    client(router).chat.completions.create(model="unlisted", messages=msg)
    client(router).chat.completions.create(model="listed", messages=msg)
    assert router.metric("xrouter_unpriced_requests_total", upstream_model="house-model-7") == 1
    rows = _rows(router, pg, name, 2)
    assert rows["house-model-7"] == "t|0"  # flagged: the cost is unknown, not zero
    flag, cost = rows["gpt-4o-mini"].split("|")
    assert flag == "f" and float(cost) > 0  # priced from the catalogue, with no config prices


def _rows(router: Router, pg: Postgres, name: str, n: int) -> dict[str, str]:
    deadline = time.monotonic() + 20
    while True:
        out = pg.sql(
            "SELECT upstream_model, unpriced, cost_usd FROM xrouter_usage ORDER BY upstream_model", name
        )
        lines = [line for line in out.splitlines() if line]
        if len(lines) >= n or time.monotonic() > deadline:
            return {line.split("|", 1)[0]: line.split("|", 1)[1] for line in lines}
        time.sleep(0.2)


def test_a_bedrock_profile_is_priced_from_the_catalogue(
    start_router: StartRouter, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    from .fakeaws import FakeBedrock, bedrock_config

    pg, name = database
    fake = FakeBedrock()
    fake.start()
    try:
        config = bedrock_config(fake, tmp_path)
        config["models"][0]["targets"][0]["model"] = "us.anthropic.claude-sonnet-4-20250514-v1:0"
        config["database"] = {
            "url": {"env": "TEST_DATABASE_URL"},
            "spillDir": str(tmp_path / "spill"),
            "flushIntervalSeconds": 0.2,
        }
        router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
        msg: Any = [{"role": "user", "content": "what does this cost"}]
        out = client(router).chat.completions.create(model="claude", messages=msg)
        assert out.usage is not None
        rows = _rows(router, pg, name, 1)
        flag, cost = rows["us.anthropic.claude-sonnet-4-20250514-v1:0"].split("|")
        u = out.usage
        cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0
        expected = (
            (u.prompt_tokens - (cached or 0)) * 3.0 + (cached or 0) * 0.3 + u.completion_tokens * 15.0
        ) / 1e6
        assert flag == "f" and float(cost) == pytest.approx(expected)
    finally:
        fake.stop()
