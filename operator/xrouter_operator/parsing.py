"""Parsing an XRouter object through the models, and pydantic errors as one line per
field (camelCase path), for status, events and the CLI."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .models import XRouter


class RenderError(ValueError):
    """The spec cannot be parsed or rendered; the message names the field."""


def format_validation_error(e: ValidationError, prefix: str = "") -> str:
    """One line per error, each naming the field (camelCase path)."""
    out = []
    for err in e.errors(include_url=False, include_input=False):
        loc = prefix
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    return "; ".join(out)


def parse(body: dict[str, Any]) -> XRouter:
    """Parse an XRouter object (a dict) through the models. Raises RenderError naming the field."""
    try:
        return XRouter.model_validate(body)
    except ValidationError as e:
        raise RenderError(format_validation_error(e)) from None
