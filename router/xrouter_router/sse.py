"""Incremental server-sent-events parsing: bytes in, whole events out, as soon as
each one is complete (never buffering the stream)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    event: str | None
    data: bytes
    raw: bytes


class SSEParser:
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        events: list[Event] = []
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            block, buf = buf[:end], buf[end + 2 :]
            ev = parse_block(block)
            if ev is not None:
                events.append(ev)
        self._buf = buf
        return events


def parse_block(block: bytes) -> Event | None:
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return Event(name, b"\n".join(data), block + b"\n\n")


def encode(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"
