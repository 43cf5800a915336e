"""What one request's translation did beyond the mapping itself, kept for the answer:
the request parts dropped because the other side cannot take them (answered in the
``x-xrouter-dropped`` header and logged). Both translation steps write here: a front
door's to chat completions (``fronts/``) and chat completions' to a provider's own API
(``providers/``), so it depends on neither."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(slots=True)
class Notes:
    """The request parts a translation dropped, the tool names it flattened (mapped
    back in the answer), and the prompt's size estimate (for a stream's opening usage).
    ``origin`` names a chat field as the client sent it (``user`` came as
    ``metadata.user_id`` on ``/v1/messages``), so a drop in the provider's translation
    names what the client wrote."""

    dropped: list[str] = field(default_factory=list)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # flat name → (namespace, name)
    prompt_estimate: int = 0
    origin: dict[str, str] = field(default_factory=dict)  # chat field → the client's name for it

    def drop(self, what: str) -> None:
        head, sep, rest = what.partition("(")  # "response_format(pattern)": the field, then a detail
        what = self.origin.get(head, head) + sep + rest
        what = _UNSAFE.sub("?", what)[:80]  # a header value: printable ASCII only
        if what not in self.dropped:
            self.dropped.append(what)

    def reset(self) -> None:
        self.dropped.clear()
        self.names.clear()
        self.origin.clear()
        self.prompt_estimate = 0

    def report(self, kind: str, provider: str) -> None:
        """Log the parts dropped from an answered request (the header's list, after any
        failover), once per request, whichever translation dropped them."""
        if self.dropped:
            fields = {"msg": "dropped in translation", "kind": kind, "provider": provider}
            log.info("dropped in translation", extra={"fields": {**fields, "dropped": self.dropped}})

    def header(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-xrouter-dropped", ", ".join(self.dropped).encode())] if self.dropped else []


log = logging.getLogger("xrouter.translated")
_UNSAFE = re.compile(r"[^\x20-\x7e]|,")
# The request's Notes, set by the endpoint for the request's task (the translation runs
# inside the provider adapter, which is shared by every request).
NOTES: ContextVar[Notes | None] = ContextVar("xrouter_notes", default=None)


def notes() -> Notes:
    """The current request's notes (a throwaway when none were set: unit tests)."""
    return NOTES.get() or Notes()
