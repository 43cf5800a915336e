"""Each conformance case (tests/router/conformance.py) on each column, as a real request
through a router to the fakes (the fake provider for the OpenAI, Azure and Anthropic
types, the fake Bedrock and the fake Gemini API / Vertex AI); docs/conformance.md is
rendered from what these runs observe, and must be up to date (``make conformance``
rewrites it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from .allfakes import Fakes, all_fakes
from .conformance import COLUMNS, Case, Column, expected, usual
from .conformance import FRONTS as OTHER_FRONTS
from .conformance_chat import CHAT_FRONT
from .conftest import KEY
from .servers import FakeProvider, Router

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
_LABEL = {
    "passed": "passed through",
    "translated": "translated",
    "dropped": "dropped, with notice",
    "refused": "refused (400)",
    "lost": "translated, but lost without notice:",
    "failed": "fails",
}
FRONTS = {"chat": CHAT_FRONT, **OTHER_FRONTS}
_PATH = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
# Where each front door's answer ends well, and what marks a failure in its stream.
_DONE = {"messages": (b"message_stop", b"error"), "responses": (b"response.completed", b"response.failed")}
# The upstream endpoints that speak each front door's API (OpenAI, Azure; Anthropic,
# Bedrock's InvokeModel, Vertex's rawPredict).
_SPEAKS = {
    "chat": ("/chat/completions",),
    "responses": ("/responses",),
    "messages": (
        "/v1/messages",
        "/invoke",
        "/invoke-with-response-stream",
        ":rawPredict",
        ":streamRawPredict",
    ),
}


@dataclass
class Rig:
    """A router with one route per column, each on its fake; observations are kept, so
    the table renders from the same runs the tests check."""

    router: Router
    fakes: Fakes
    seen: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)

    def fake(self, column: Column) -> FakeProvider | None:
        return self.fakes.of(column.type)

    def observe(self, kind: str, case: Case, column: Column) -> tuple[str, str]:
        at = (kind, case.part, column.key)
        if at not in self.seen:
            self.seen[at] = self._observe(kind, case, column)
        return self.seen[at]

    def _observe(self, kind: str, case: Case, column: Column) -> tuple[str, str]:
        """(outcome, detail): what became of the request, from the router's answer and
        what reached the fake."""
        fake = self.fake(column)
        if fake is not None:
            fake.reset()
        request = {**FRONTS[kind][2](**case.patch), "model": column.route}
        with httpx.Client(timeout=20) as http:
            resp = http.post(
                self.router.url + _PATH[kind], json=request, headers={"authorization": f"Bearer {KEY}"}
            )
        upstream = fake.last() if fake is not None else {}
        if str(upstream.get("path", "")).endswith(_SPEAKS[kind]) and _as_it_came(request, upstream["body"]):
            return "passed", ""
        if (
            fake is None
            and kind in column.native
            and not _failure(kind, resp)
            and not _unanswered(request, resp)
        ):
            return "passed", ""  # the mock answers chat completions in-process, as they came
        if resp.status_code == 400 and not upstream:
            return "refused", _message(resp)
        failure = _failure(kind, resp)
        if failure:
            return "failed", failure
        dropped = resp.headers.get("x-xrouter-dropped")
        if dropped:
            return "dropped", dropped
        sent = _keys(upstream.get("body"))
        lost = [f for f, keys in case.arrives.items() if upstream and sent.isdisjoint(keys)]
        lost += [f for f in _unanswered(request, resp) if f not in lost]
        return ("lost", ", ".join(lost)) if lost else ("translated", "")


def _keys(value: Any) -> set[str]:
    """Every key of a JSON value, at any depth."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def _as_it_came(request: dict[str, Any], body: Any) -> bool:
    """The upstream got every field of the request unchanged (its model is the route's
    to set, and Bedrock's and Vertex's Messages endpoints say streaming by the path)."""
    return isinstance(body, dict) and all(
        body.get(k) == v for k, v in request.items() if k not in ("model", "stream")
    )


def _unanswered(request: dict[str, Any], resp: httpx.Response) -> list[str]:
    """The chat fields whose answer part a (non-streamed) chat completion lacks: as
    many choices as ``n`` asked for, ``choices[].logprobs`` when ``logprobs`` was."""
    if not resp.headers.get("content-type", "").startswith("application/json"):
        return []
    choices = orjson.loads(resp.content).get("choices")
    if not isinstance(choices, list):
        return []
    lost = ["n"] if len(choices) < request.get("n", 1) else []
    if request.get("logprobs") and not all(c.get("logprobs") for c in choices):
        lost.append("logprobs")
    return lost


def _message(resp: httpx.Response) -> str:
    """``<field>: <message>``: OpenAI's error shape has ``param``; the Messages API's
    has none, so the router puts the field before the message."""
    try:
        err = resp.json()["error"]
        message = str(err.get("message", ""))
        return f"{err['param']}: {message}" if err.get("param") else message
    except (ValueError, KeyError, TypeError, AttributeError):
        return resp.text[:120]


def _failure(kind: str, resp: httpx.Response) -> str:
    """Why the answer is not a good one of the front door's kind, or ``""``."""
    if resp.status_code != 200:
        return f"{resp.status_code}: {_message(resp)}"
    streamed = resp.headers.get("content-type", "").startswith("text/event-stream")
    if kind == "chat":
        data_lines = [line[6:].strip() for line in resp.content.splitlines() if line.startswith(b"data: ")]
        if streamed:
            ok = data_lines[-1:] == [b"[DONE]"] and not any(b'"error"' in d for d in data_lines)
            return "" if ok else f"stream ended {data_lines[-2:]}"
        ok = orjson.loads(resp.content).get("object") == "chat.completion"
        return "" if ok else f"answer {resp.text[:120]}"
    done, failed = _DONE[kind]
    if streamed:
        events = [line[7:].strip() for line in resp.content.splitlines() if line.startswith(b"event: ")]
        return "" if done in events and failed not in events else f"stream ended {events[-3:]}"
    data = orjson.loads(resp.content)
    ok = data.get("type") == "message" if kind == "messages" else data.get("object") == "response"
    return "" if ok else f"answer {resp.text[:120]}"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    routes = {c.route: [(c.type, c.model)] for c in COLUMNS}
    with all_fakes(tmp_path_factory.mktemp("conformance"), routes) as (router, fakes):
        yield Rig(router, fakes)


def render(rig: Rig) -> str:
    lines = [
        "# Front-door conformance",
        "",
        "Generated by `make conformance` from tests/router/test_conformance.py, which sends each",
        "request part below through a router to the fake of each provider type (the fakes",
        "implement the providers' published APIs; see [providers.md](providers.md)). *Passed",
        "through*: the provider speaks the front door's API and got the request as it came.",
        "*Translated*: mapped to chat completions and on to the provider's API (the Messages",
        "API for `anthropic` and Claude on Vertex, Converse for Bedrock, `generateContent` for",
        "Gemini), and the answer back. *Dropped, with notice*: it cannot run on the other side;",
        "the answer's `x-xrouter-dropped` header names it (as in the cell) and the router logs",
        '`"dropped in translation"`. *Refused*: dropping it would change the answer; a 400 names',
        "the field (and, where only some providers refuse it, the cell quotes why). *Translated,",
        "but lost without notice*: the answer came, but nothing in what the provider got carries",
        "the named field, and no header says so (a gap in the translation). *Fails*: the",
        "request went through and the provider refused it. `/v1/chat/completions` is native on",
        "`openai`, `openai-compatible` and `azure-openai` (passed through) and on `mock` (answered",
        "in-process by echo, as it came, with `n` choices; it refuses what an echo cannot answer),",
        "and translated straight to the provider's API on the others; there a field is lost also",
        "when the answer lacks its part (fewer choices than `n`, no `choices[].logprobs`).",
        "",
        "Bedrock and Vertex AI have two columns: their Claude models speak the Messages API",
        "(InvokeModel on Bedrock, `rawPredict` on Vertex), so `/v1/messages` reaches them as it",
        "came; their other models get it translated. `/v1/responses` is translated on both, and",
        "`/v1/chat/completions` goes to Converse for every Bedrock model.",
    ]
    heads = [c.key for c in COLUMNS]
    for kind, (title, cases, _) in FRONTS.items():
        lines += ["", f"## {title}", "", "| request part | " + " | ".join(heads) + " | why |"]
        lines.append("|" + "---|" * (len(heads) + 2))
        for case in cases:
            cells = [_cell(kind, case, c, *rig.observe(kind, case, c)) for c in COLUMNS]
            lines.append(f"| {case.part} | " + " | ".join(cells) + f" | {case.reason} |")
    return "\n".join(lines) + "\n"


def _cell(kind: str, case: Case, column: Column, outcome: str, detail: str) -> str:
    text = _LABEL[outcome] + (f" `{detail.split(': ', 1)[0]}`" if detail else "")
    common = "passed" if kind in column.native else usual(case)
    if outcome != common and ": " in detail:  # this column's own exception: say why
        text += ": " + detail.split(": ", 1)[1].replace("|", "\\|")
    return text


CASES = [(kind, case, c) for kind, (_, cases, _) in FRONTS.items() for case in cases for c in COLUMNS]


@pytest.mark.parametrize(
    ("kind", "case", "column"), CASES, ids=lambda v: getattr(v, "part", getattr(v, "key", v))
)
def test_case(rig: Rig, kind: str, case: Case, column: Column) -> None:
    outcome, detail = rig.observe(kind, case, column)
    assert outcome == expected(kind, case, column), detail


def test_doc_is_up_to_date(rig: Rig) -> None:
    text = render(rig)
    if os.environ.get("XROUTER_WRITE_CONFORMANCE") == "1":
        DOC.write_text(text)
    assert DOC.exists() and DOC.read_text() == text, "docs/conformance.md is stale: run `make conformance`"
