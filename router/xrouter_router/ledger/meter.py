"""What a request used when it did not end with the upstream's own final count: a
client that hung up, a stream that stalled past ``streamIdle`` or ran out of
``total``, an upstream that broke or failed mid-stream, a translator that choked.

The upstream's counts are used wherever it sent them (Anthropic's prompt count in
``message_start``, partial output counts in ``message_delta``, a failed Responses
stream's ``usage``). What is missing is estimated: the prompt from the size of the
request body, the completion from the answer text streamed so far, at
``CHARS_PER_TOKEN`` characters a token, the usual figure for English text with
OpenAI's and Anthropic's tokenizers. Such a row is marked ``estimated``.

The router does not keep reading the upstream after the client hangs up. Closing
the upstream connection is how a client cancels a generation with OpenAI and
Anthropic: reading on would have the upstream produce (and bill) the whole answer
for nobody, and hold a connection and a task for up to ``total``. The estimate of
what was streamed is the better figure for what the cancelled generation cost.
"""

from __future__ import annotations

import dataclasses

from ..call import Call
from ..providers import Usage

CHARS_PER_TOKEN = 4
_CUT = frozenset({499, 504})  # the client left, or the upstream was too slow: it may have billed


def tokens(chars: int) -> int:
    """The estimated token count of ``chars`` characters of text or JSON."""
    return -(-chars // CHARS_PER_TOKEN)


def prompt_estimate(body_bytes: int) -> int:
    """The prompt's tokens, estimated from the request body's size. The body's JSON
    framing and parameters make this an over-estimate of the text, as it should be for
    a budget's reservation."""
    return tokens(body_bytes)


def complete(call: Call) -> None:
    """Fill in ``call.usage`` for how the request ended (after the attempt is over)."""
    t = call.meter
    if t is None:
        # Nothing was streamed. A client that hung up, or a timeout, after the request
        # reached an upstream: the upstream has read (and bills) the prompt at least.
        reached = call.provider != "none" and call.cache_status != "cache_hit"
        if call.status in _CUT and reached and not (call.usage.prompt or call.usage.completion):
            call.usage = Usage(prompt_estimate(call.body_bytes))
            call.estimated = True
        return
    usage = dataclasses.replace(t.usage)  # a copy: the estimate below must not change the translator's
    call.usage = usage
    if t.done and not t.failed and call.status == 200 and (usage.prompt or usage.completion):
        return  # the stream ended with the upstream's own count
    if not usage.prompt:
        usage.prompt = prompt_estimate(call.body_bytes)
        call.estimated = True
    streamed = tokens(t.chars)
    if streamed > usage.completion:
        usage.completion = streamed
        call.estimated = True
