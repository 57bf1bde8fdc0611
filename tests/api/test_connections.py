"""A kept-alive connection is closed after ``TRIPSEARCH_KEEPALIVE_REQUESTS`` requests (api/connections.py), on a real server."""

from __future__ import annotations

import http.client
import socket
from typing import Callable
from urllib.parse import urlsplit

from .conftest import Server

SEARCH = "/v1/search?from=48.8566,2.3522&to=45.764,4.8357&date=2026-12-03&facets=all"


def _address(server: Server) -> tuple[str, int]:
    url = urlsplit(server.url)
    assert url.hostname and url.port
    return url.hostname, url.port


def test_every_nth_response_closes_its_connection(start_api: Callable[..., Server]) -> None:
    server = start_api(TRIPSEARCH_KEEPALIVE_REQUESTS="3")
    conn = http.client.HTTPConnection(*_address(server), timeout=30)
    statuses, closes, ports = [], [], []
    try:
        # the fast path, the full app (a route and a 404) and an error: every request of the connection counts
        for path in [SEARCH, "/health", "/v1/nowhere", "/v1/search?from=91,0&to=1,1&date=2026-12-03", SEARCH, "/v1/places?q=par", SEARCH]:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            closes.append(response.getheader("connection"))
            ports.append(conn.sock.getsockname()[1] if conn.sock else None)
    finally:
        conn.close()
    assert statuses == [200, 200, 404, 400, 200, 200, 200]
    assert closes == [None, None, "close", None, None, "close", None]
    # http.client drops a closed connection; the next request opens another
    assert ports[2] is None and ports[5] is None and ports[3] not in (None, ports[1])


def test_the_server_itself_closes_the_socket(start_api: Callable[..., Server]) -> None:
    server = start_api(TRIPSEARCH_KEEPALIVE_REQUESTS="2")
    host, port = _address(server)
    with socket.create_connection((host, port), timeout=20) as sock:
        request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        sock.sendall(request * 2)  # pipelined: two answers, then the server hangs up
        received = b""
        while chunk := sock.recv(65536):  # a server that kept the connection open would time out here
            received += chunk
    assert received.count(b"HTTP/1.1 200") == 2
    assert received.lower().count(b"connection: close") == 1


def test_default_limit_keeps_short_conversations_open(api: Server) -> None:
    conn = http.client.HTTPConnection(*_address(api), timeout=30)
    try:
        for _ in range(5):
            conn.request("GET", SEARCH)
            response = conn.getresponse()
            response.read()
            assert response.status == 200 and response.getheader("connection") is None
    finally:
        conn.close()
