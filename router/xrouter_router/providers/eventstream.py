"""Decoding the AWS event-stream framing (``application/vnd.amazon.eventstream``) in
which Bedrock streams its answers, incrementally: bytes in, whole messages out.

A message is: total length (4 bytes, big-endian), headers length (4), a CRC-32 of
those 8 bytes, the headers, the payload, and a CRC-32 of everything before it. A
header is a 1-byte name length, the name, a 1-byte value type, and the value."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_PRELUDE = struct.Struct(">III")
# Value sizes of the fixed-width header types: bool true/false, byte, short, int,
# long, timestamp, uuid. Types 6 (bytes) and 7 (string) carry a 2-byte length.
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
# The service's limit on one message: a longer prefix is corruption, not a big event.
MAX_MESSAGE = 24 * 1024 * 1024


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad length or CRC)."""


@dataclass(slots=True)
class Message:
    headers: dict[str, str]
    payload: bytes

    @property
    def kind(self) -> str:
        """``:message-type``: event, exception or error."""
        return self.headers.get(":message-type", "event")

    @property
    def name(self) -> str:
        """The event's or exception's type (``:event-type``/``:exception-type``/``:error-code``)."""
        h = self.headers
        return h.get(":event-type") or h.get(":exception-type") or h.get(":error-code") or ""


def _headers(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        n = data[i]
        name = data[i + 1 : i + 1 + n].decode("utf-8")
        i += 1 + n
        kind = data[i]
        i += 1
        if kind in (6, 7):
            (size,) = struct.unpack_from(">H", data, i)
            value = data[i + 2 : i + 2 + size]
            i += 2 + size
            if kind == 7:
                out[name] = value.decode("utf-8")
        elif kind in _FIXED:
            i += _FIXED[kind]  # no header Bedrock sends that we read is of these types
        else:
            raise EventStreamError(f"unknown header value type {kind}")
        if i > len(data):
            raise EventStreamError("truncated header")
    return out


class EventStreamDecoder:
    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[Message]:
        self._buf += chunk
        out: list[Message] = []
        buf = self._buf
        while len(buf) >= 12:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf)
            if zlib.crc32(bytes(buf[:8])) != prelude_crc:
                raise EventStreamError("prelude CRC mismatch")
            if total < 16 + headers_len or total > MAX_MESSAGE:
                raise EventStreamError(f"bad message length {total}")
            if len(buf) < total:
                break
            frame = bytes(buf[:total])
            del buf[:total]
            (crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != crc:
                raise EventStreamError("message CRC mismatch")
            out.append(Message(_headers(frame[12 : 12 + headers_len]), frame[12 + headers_len : -4]))
        return out

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished message are held (the stream ended mid-message)."""
        return bool(self._buf)
