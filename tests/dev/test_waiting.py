"""The shared wait real-pod tests use before their first request through a Service, against real
servers on loopback: it returns once the path answers, and names what it waited for when it does not."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from xrouter_dev.waiting import answers, until_answers


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def late_server() -> Iterator[int]:
    """A port on which an HTTP server starts listening only 1 s from now: connections are refused
    until then, as they are to a ClusterIP whose endpoints kube-proxy has not programmed yet."""
    port = _free_port()
    servers: list[http.server.HTTPServer] = []

    def serve_later() -> None:
        time.sleep(1)
        server = http.server.HTTPServer(("127.0.0.1", port), _NotFound)
        servers.append(server)
        server.serve_forever()

    threading.Thread(target=serve_later, daemon=True).start()
    yield port
    for server in servers:
        server.shutdown()
        server.server_close()


def test_waits_until_the_path_answers_several_times(late_server: int) -> None:
    url = f"http://127.0.0.1:{late_server}/health"
    with pytest.raises(OSError):
        answers(url)  # refused: nothing listens yet
    took = until_answers("the late server", url, timeout=10)
    assert 0.5 < took < 8
    assert answers(url)  # a 404 is an answer: the path reaches a server


def test_a_path_that_never_answers_fails_naming_it() -> None:
    url = f"http://127.0.0.1:{_free_port()}/health"
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"service/x to answer at http://127.*/health .*refused"):
        until_answers("service/x", url, timeout=1)
    assert time.monotonic() - t0 < 5
