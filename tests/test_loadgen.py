"""The load generator's closed loop opens its connections one after another, so a multi-worker server gets them evenly."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tripsearch.capacity.loadgen import LoadSpec, run_load_here


class _LoggingServer(socketserver.ThreadingTCPServer):
    """A small keep-alive HTTP server on loopback that answers every request after a pause and logs what happened, in order."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []  # ("accept", conn) or ("answer", conn), in the order they happened
        self.connections = 0

    def note(self, what: str, conn: int) -> None:
        with self.lock:
            self.log.append((what, conn))


class _Handler(socketserver.StreamRequestHandler):
    server: _LoggingServer

    def handle(self) -> None:
        with self.server.lock:
            conn = self.server.connections
            self.server.connections += 1
        self.server.note("accept", conn)
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                chunk = self.rfile.readline()
                if not chunk:
                    return
                head += chunk
            time.sleep(0.005)  # a worker busy with the request
            self.server.note("answer", conn)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]")
            self.wfile.flush()


@pytest.fixture
def recorder() -> Iterator[_LoggingServer]:
    server = _LoggingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_closed_loop_opens_each_connection_after_the_one_before_was_answered(recorder: _LoggingServer) -> None:
    port = recorder.server_address[1]
    result = run_load_here(LoadSpec(f"http://127.0.0.1:{port}", [("places", "/v1/places?q=Pa", False)], concurrency=4, duration_s=0.3, warmup_s=0.2))
    assert result.errors == 0 and result.requests > 0
    log = list(recorder.log)
    accepted = [conn for what, conn in log if what == "accept"]
    assert accepted == [0, 1, 2, 3]
    # Opened all at once, the four connections would all be accepted before any answer (each takes 5 ms).
    for conn in range(1, 4):
        first_answer_before = log.index(("answer", conn - 1))
        assert first_answer_before < log.index(("accept", conn)), log[:12]
