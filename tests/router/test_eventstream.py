"""The event-stream decoder, fed the fake Bedrock's frames (which botocore's own parser
reads, so they are AWS's framing) in every possible split."""

from __future__ import annotations

import pytest
from botocore.eventstream import EventStreamBuffer
from xrouter_dev.fake_aws import event, exception, frame
from xrouter_router.providers.eventstream import EventStreamDecoder, EventStreamError

FRAMES = [
    event("messageStart", b'{"role":"assistant"}'),
    event("contentBlockDelta", '{"delta":{"text":"héllo"}}'.encode()),
    exception("throttlingException", "Too many requests"),
]
WIRE = b"".join(FRAMES)


def test_botocore_reads_the_fake_frames() -> None:
    buf = EventStreamBuffer()
    buf.add_data(WIRE)
    messages = list(buf)
    assert [m.headers[":message-type"] for m in messages] == ["event", "event", "exception"]
    assert messages[1].payload == '{"delta":{"text":"héllo"}}'.encode()


@pytest.mark.parametrize("split", range(1, len(WIRE)))
def test_decodes_across_any_split(split: int) -> None:
    decoder = EventStreamDecoder()
    out = decoder.feed(WIRE[:split]) + decoder.feed(WIRE[split:])
    assert [(m.kind, m.name) for m in out] == [
        ("event", "messageStart"),
        ("event", "contentBlockDelta"),
        ("exception", "throttlingException"),
    ]
    assert out[1].payload == '{"delta":{"text":"héllo"}}'.encode()
    assert not decoder.pending


def test_corrupt_frames_are_refused() -> None:
    bad_payload = bytearray(FRAMES[0])
    bad_payload[-6] ^= 0x01  # a payload byte: the message CRC no longer matches
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamDecoder().feed(bytes(bad_payload))
    bad_prelude = bytearray(FRAMES[0])
    bad_prelude[3] ^= 0x01  # the total length: the prelude CRC no longer matches
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(bad_prelude))


def test_a_stream_cut_mid_message_is_pending() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(FRAMES[0] + FRAMES[1][:10])[0].name == "messageStart"
    assert decoder.pending


def test_header_types_other_than_strings_are_skipped() -> None:
    # :date-like int header (type 4) before the string ones, as other AWS streams send.
    raw = frame({":event-type": "x"}, b"{}")
    extra = bytes([3]) + b"seq" + bytes([4]) + (7).to_bytes(4, "big")
    body = raw[12:-4]
    headers_len = int.from_bytes(raw[4:8], "big") + len(extra)
    import struct
    import zlib

    rest = extra + body
    prelude = struct.pack(">II", 12 + len(rest) + 4, headers_len)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + rest
    msg += struct.pack(">I", zlib.crc32(msg))
    [out] = EventStreamDecoder().feed(msg)
    assert out.headers == {":event-type": "x"} and out.payload == b"{}"
