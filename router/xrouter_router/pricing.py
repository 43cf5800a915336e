"""The price catalogue: public list prices of common models (``pricedata.json``, dated,
its sources named), under the config's ``prices``. Each target's upstream model is
looked up by its own name and then by the names it is a variant of (a Bedrock inference
profile or ARN, a Vertex ``@`` version, a dated snapshot); a geographic Bedrock profile
of a model marked ``regionalPremium`` costs the catalogue's ``regionalProfiles`` multiple
of its list price. A model priced nowhere is
reported at start-up (a warning and a gauge) and flagged on its usage rows: never a
silent $0.

``python -m xrouter_router.pricing [FILE]`` (``make prices``) checks the format."""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .config import Price, ProviderType, RouterConfig

log = logging.getLogger("xrouter.prices")

_FIELDS = {"input", "output", "cachedInput", "cacheWrite"}
_PROVIDERS = {"openai", "anthropic", "bedrock", "gemini"}
_TOP = {"asOf", "currency", "unit", "note", "sources", "models", "regionalProfiles"}
_ARN = re.compile(r"^.*:(inference-profile|foundation-model)/")
_GEOGRAPHIES = frozenset({"us", "eu", "apac", "jp", "au", "ca", "us-gov"})
# A cross-region inference profile: a geography's, or ``global.`` (the list price).
_PROFILE = re.compile(rf"^({'|'.join(sorted(_GEOGRAPHIES | {'global'}))})\.")
# Variants, tried in order, each on the previous one's result.
_VARIANTS = (
    (_ARN, ""),  # a Bedrock ARN
    (_PROFILE, ""),
    (re.compile(r"^(anthropic|meta|mistral|cohere|ai21)\."), ""),  # Bedrock's vendor prefix
    (re.compile(r"-v\d+(:\d+)?$"), ""),  # Bedrock's version suffix
    (re.compile(r"@"), "-"),  # Vertex: claude-sonnet-4@20250514
    (re.compile(r"^models/"), ""),  # Gemini's resource name
    (re.compile(r"-\d{3}$"), ""),  # Gemini's stable version: gemini-2.0-flash-001
    (re.compile(r"-\d{4}-\d{2}-\d{2}$"), ""),  # OpenAI's dated snapshot: gpt-4o-2024-08-06
    (re.compile(r"-20\d{6}$"), ""),  # Anthropic's dated snapshot: claude-sonnet-4-5-20250929
)


@dataclass(frozen=True)
class Catalogue:
    as_of: str
    prices: dict[str, Price]
    # Bedrock prices a geographic cross-region inference profile (``us.``, ``eu.``, …) of
    # some models above the model's list price (which the ``global.`` profile costs):
    # geography → multiple, and the models (``regionalPremium``) it applies to.
    regional: dict[str, float] = field(default_factory=dict)
    premium: frozenset[str] = frozenset()


def check(data: Any) -> list[str]:
    """The format errors of a catalogue (empty when it is well-formed)."""
    if not isinstance(data, dict):
        return ["the catalogue must be a JSON object"]
    errors = [f"unknown top-level field {k!r}" for k in sorted(set(data) - _TOP)]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(data.get("asOf"))):
        errors.append("asOf must be the date the prices were taken (YYYY-MM-DD)")
    if data.get("currency") != "USD" or data.get("unit") != "per million tokens":
        errors.append('currency must be "USD" and unit "per million tokens"')
    sources = data.get("sources")
    if not isinstance(sources, dict) or not all(str(u).startswith("https://") for u in sources.values()):
        errors.append("sources must map each provider to the https URL of its pricing page")
        sources = {}
    regional = data.get("regionalProfiles", {})
    if not isinstance(regional, dict) or not all(
        k in _GEOGRAPHIES and isinstance(v, int | float) and 1 <= v <= 2 for k, v in regional.items()
    ):
        errors.append(
            f"regionalProfiles must map geographic profile prefixes ({', '.join(sorted(_GEOGRAPHIES))})"
            " to a price multiple between 1 and 2"
        )
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        return [*errors, "models must be a non-empty object"]
    if list(models) != sorted(models):
        errors.append("models must be sorted by name (one diff line per price change)")
    for name, entry in models.items():
        where = f"models[{name!r}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} must be an object")
            continue
        if entry.get("provider") not in _PROVIDERS or entry.get("provider") not in sources:
            errors.append(f"{where}.provider must be one of {sorted(_PROVIDERS)} with a source")
        for key in sorted(set(entry) - _FIELDS - {"provider", "regionalPremium"}):
            errors.append(f"{where}: unknown field {key!r}")
        if not isinstance(entry.get("regionalPremium", False), bool):
            errors.append(f"{where}.regionalPremium must be true or false")
        for key in sorted(_FIELDS & set(entry) | {"input", "output"}):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                errors.append(f"{where}.{key} must be a number >= 0 (USD per million tokens)")
            elif value and not _LEAST <= value <= _MOST:
                errors.append(f"{where}.{key} is {value} USD per million tokens: {_unit_error(value)}")
        cached, base = entry.get("cachedInput"), entry.get("input")
        if isinstance(cached, int | float) and isinstance(base, int | float) and cached > base:
            errors.append(f"{where}.cachedInput costs more than its input: a cache read is never dearer")
    return errors


# No list price per million tokens is below a tenth of a cent or above $1,000: outside
# those, the figure was surely copied per token, per thousand or per billion.
_LEAST, _MOST = 0.001, 1000.0


def _unit_error(value: float) -> str:
    if value < _LEAST:
        return f"below {_LEAST}, surely a price per token or per thousand tokens, not per million"
    return f"above {_MOST:g}, surely not a price per million tokens"


def _price(entry: dict[str, Any]) -> Price:
    # The catalogue's ``cacheWrite`` is the 5-minute write rate config calls
    # ``cacheWriteInput``; other fields this Price does not know are left out.
    known = {f.alias or n for n, f in Price.model_fields.items()}
    renamed = {"cacheWriteInput" if k == "cacheWrite" else k: v for k, v in entry.items()}
    return Price.model_validate({k: v for k, v in renamed.items() if k in known})


def load(text: str | None = None) -> Catalogue:
    """The shipped catalogue (or ``text``). Raises ValueError listing format errors."""
    if text is None:
        text = resources.files(__package__).joinpath("pricedata.json").read_text()
    data = json.loads(text)
    errors = check(data)
    if errors:
        raise ValueError("price catalogue: " + "; ".join(errors))
    models = data["models"]
    return Catalogue(
        data["asOf"],
        {name: _price(e) for name, e in models.items()},
        {k: float(v) for k, v in data.get("regionalProfiles", {}).items()},
        frozenset(name for name, e in models.items() if e.get("regionalPremium")),
    )


_SHIPPED: list[Catalogue] = []


def shipped() -> Catalogue:
    """The catalogue in the package, read once."""
    if not _SHIPPED:
        _SHIPPED.append(load())
    return _SHIPPED[0]


def variants(model: str) -> list[str]:
    """``model`` and the names it is a variant of, most specific first."""
    out = [model]
    for pattern, repl in _VARIANTS:
        name = pattern.sub(repl, out[-1])
        if name and name != out[-1]:
            out.append(name)
    return out


def lookup(model: str, configured: dict[str, Price], catalogue: Catalogue) -> Price | None:
    for name in variants(model):
        if name in configured:
            return configured[name]
    for name in variants(model):
        if name in catalogue.prices:
            price = catalogue.prices[name]
            profile = _PROFILE.match(_ARN.sub("", model))
            factor = catalogue.regional.get(profile.group(1), 1.0) if profile else 1.0
            return _scaled(price, factor) if name in catalogue.premium and factor != 1.0 else price
    return None


def _scaled(price: Price, factor: float) -> Price:
    def times(v: float | None) -> float | None:
        return None if v is None else round(v * factor, 9)  # 3.3, not 3.3000000000000003

    return price.model_copy(
        update={
            "input": times(price.input),
            "output": times(price.output),
            "cached_input": times(price.cached_input),
            "cache_write_input": times(price.cache_write_input),
            "cache_write_1h_input": times(price.cache_write_1h_input),
        }
    )


def price_table(config: RouterConfig, catalogue: Catalogue) -> tuple[dict[str, Price], frozenset[str]]:
    """Prices by upstream model for every target of the config, and the upstream models
    priced nowhere (warned about here). The mock's answers cost nothing."""
    prices = dict(config.prices)
    missing: set[str] = set()
    kinds = {p.name: p.type for p in config.providers}
    for route in config.models:
        for target in route.targets:
            model = target.model
            if model in prices or model in missing:
                continue
            if kinds[target.provider] is ProviderType.MOCK:
                prices[model] = Price()
                continue
            price = lookup(model, config.prices, catalogue)
            if price is None:
                missing.add(model)
                log.warning(
                    "no price for upstream model %r (provider %s) in config prices or the catalogue of %s:"
                    " its usage rows are flagged unpriced and cost nothing until it is added to prices",
                    model,
                    target.provider,
                    catalogue.as_of,
                )
            else:
                prices[model] = price
    return prices, frozenset(missing)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = open(args[0]).read() if args else None  # noqa: SIM115 (a one-shot CLI)
    try:
        catalogue = load(text)
    except (ValueError, json.JSONDecodeError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"price catalogue of {catalogue.as_of}: {len(catalogue.prices)} models, format ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
