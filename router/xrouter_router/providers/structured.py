"""Chat completions' ``response_format`` (JSON mode, structured output) on the APIs
that name it otherwise: the Messages API's ``output_config.format``, Converse's
``outputConfig.textFormat`` and ``generateContent``'s ``responseMimeType`` and
``responseJsonSchema``. What an API has no place for is dropped with notice (the
request's ``Notes``), never lost silently. A schema goes to the field the API documents
for it; a model there without structured outputs answers the API's own 400."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import bad_request
from ..notes import notes
from .base import Json

# The JSON Schema keywords generateContent's responseJsonSchema honours (its reference
# lists them; it takes others but ignores them). Those holding sub-schemas are walked.
_GEMINI_KEYWORDS = frozenset(
    {"$id", "$defs", "$ref", "$anchor", "type", "format", "title", "description", "enum", "items"}
    | {"prefixItems", "minItems", "maxItems", "minimum", "maximum", "anyOf", "oneOf", "properties"}
    | {"additionalProperties", "required", "propertyOrdering"}
)
# Say which dialect, or comment: nothing for the model to keep to, so nothing is lost.
_NOTES_ONLY = frozenset({"$schema", "$comment"})
_SUB_MAPS = ("properties", "$defs")  # name → sub-schema
_SUB_LISTS = ("prefixItems", "anyOf", "oneOf")
_SUB_ONE = ("items", "additionalProperties")


def response_format(payload: Json) -> tuple[str, Json | None] | None:
    """``("json_object", None)`` or ``("json_schema", schema or None)`` when the request
    asks for JSON, else None (plain text)."""
    fmt = payload.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return kind, None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is not None and not isinstance(schema, dict):
            raise bad_request("json_schema.schema must be an object", "response_format.json_schema.schema")
        return kind, schema
    raise bad_request("response_format.type must be text, json_object or json_schema", "response_format.type")


def _schema_only(payload: Json) -> Json | None:
    """The schema of a ``json_schema`` response_format, for the APIs that take JSON with
    a schema only: JSON without one is dropped with notice."""
    asked = response_format(payload)
    if asked is not None and asked[1] is None:
        notes().drop("response_format")
    return None if asked is None else asked[1]


def messages_format(payload: Json) -> Json | None:
    """The Messages API's ``output_config`` (structured outputs)."""
    schema = _schema_only(payload)
    return None if schema is None else {"format": {"type": "json_schema", "schema": schema}}


def converse_format(payload: Json) -> Json | None:
    """Converse's ``outputConfig`` (its ``textFormat`` takes the schema as a string)."""
    schema = _schema_only(payload)
    if schema is None:
        return None
    spec = payload["response_format"].get("json_schema")
    out: Json = {"schema": orjson.dumps(schema).decode()}
    for key in ("name", "description"):
        if isinstance(spec.get(key), str) and spec[key]:
            out[key] = spec[key]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": out}}}


def gemini_format(payload: Json) -> Json:
    """``generationConfig``'s JSON mode: ``responseMimeType``, and the schema as
    ``responseJsonSchema`` without the keywords it does not honour (each dropped with
    notice, as ``response_format(<keyword>)``)."""
    asked = response_format(payload)
    if asked is None:
        return {}
    config: Json = {"responseMimeType": "application/json"}
    if asked[1] is not None:
        ignored: set[str] = set()
        config["responseJsonSchema"] = _gemini_schema(asked[1], ignored)
        for keyword in sorted(ignored):
            notes().drop(f"response_format({keyword})")
    return config


def _gemini_schema(schema: Any, ignored: set[str]) -> Any:
    if not isinstance(schema, dict):
        return schema  # true/false, or a value Google judges
    out: Json = {}
    for key, value in schema.items():
        if key in _NOTES_ONLY:
            continue
        if key not in _GEMINI_KEYWORDS:
            ignored.add(key)
        elif key in _SUB_MAPS and isinstance(value, dict):
            out[key] = {name: _gemini_schema(sub, ignored) for name, sub in value.items()}
        elif key in _SUB_LISTS and isinstance(value, list):
            out[key] = [_gemini_schema(sub, ignored) for sub in value]
        elif key in _SUB_ONE:
            out[key] = _gemini_schema(value, ignored)
        else:
            out[key] = value
    return out
