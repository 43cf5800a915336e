"""A streamed answer kept for the cache as the very bytes the client got, to be
replayed to a later stream request unchanged.

Nothing is rebuilt: an answer reassembled from its chunks would keep only the fields
the reassembly knows (it used to drop logprobs, ``reasoning_content`` and
annotations, and choked on a chunk without ``index``), and a stream request is only
ever answered from a stream (``stream`` and ``stream_options`` are in the cache key).
The events are parsed only to see that the stream ended with ``[DONE]`` and carried
no error event."""

from __future__ import annotations

from . import sse


class StreamRecorder:
    """Keeps a chat stream's bytes. ``result`` is None unless the stream ended with
    ``[DONE]``, without an error event, within ``limit`` bytes."""

    __slots__ = ("done", "failed", "limit", "parser", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parser = sse.SSEParser()
        self.parts: list[bytes] = []
        self.done = False
        self.failed = False

    def feed(self, chunk: bytes) -> None:
        if self.failed or not chunk:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.failed, self.parts = True, []
            return
        self.parts.append(bytes(chunk))
        for ev in self.parser.feed(chunk):
            if ev.data == b"[DONE]":
                self.done = True
            elif ev.event == "error" or ev.data.lstrip().startswith(b'{"error"'):
                self.failed, self.parts = True, []  # the router's or the upstream's error event
                return

    def result(self) -> bytes | None:
        if self.failed or not self.done:
            return None
        return b"".join(self.parts)
