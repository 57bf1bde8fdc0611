"""Health, readiness, metrics, the OpenAPI document, and errors that are never stack traces."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx
import pytest

import tripsearch
from tripsearch.errors import StoreReadOnly

from .conftest import InProcess, Server
from .support import LONDON_READING, make_token, make_trip


def test_health_and_ready(http: httpx.Client, api: Server) -> None:
    health = http.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "pid": health.json()["pid"]}
    ready = http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["backend"] == "embedded"
    assert ready.json()["trips"] >= 1000


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_per_route_template(http: httpx.Client) -> None:
    before = http.get("/metrics").text
    for _ in range(3):
        http.get("/v1/search", params=LONDON_READING)
    http.get("/v1/trips/t-1-0")
    http.get("/v1/trips/no-such-trip")
    http.get("/no/such/path")
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    search = {"method": "GET", "route": "/v1/search", "status": "200"}
    assert _metric(text, "tripsearch_http_requests_total", **search) - _metric(before, "tripsearch_http_requests_total", **search) == 3
    assert _metric(text, "tripsearch_http_requests_total", route="/v1/trips/{trip_id}", status="404") >= 1
    assert _metric(text, "tripsearch_http_requests_total", route="unmatched", status="404") >= 1
    assert "no-such-trip" not in text and "/no/such/path" not in text
    assert _metric(text, "tripsearch_http_request_duration_seconds_count", method="GET", route="/v1/search") >= 3
    assert 'tripsearch_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/search"}' in text
    assert _metric(text, "tripsearch_index_trips") >= 1000
    assert _metric(text, "tripsearch_index_refresh_lag_seconds") >= 0
    assert _metric(text, "tripsearch_index_loaded") == 1


def test_openapi_and_docs(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/v1/search", "/v1/places", "/v1/trips/{trip_id}", "/v1/trips/_bulk", "/health", "/ready", "/metrics"} <= set(paths)
    parameters = {p["name"] for p in paths["/v1/search"]["get"]["parameters"]}
    assert {"from", "to", "date", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "options", "min_rating", "sort", "limit", "cursor", "facets", "price_interval", "cell_resolution"} <= parameters
    assert paths["/v1/search"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SearchRequest"}
    assert {"SearchRequest", "Trip", "ProblemDetails", "SearchResponse"} <= set(schema["components"]["schemas"])
    assert paths["/v1/trips/{trip_id}"]["put"]["responses"]["401"]["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nowhere", 404), ("POST", "/health", 405), ("PATCH", "/v1/trips/x", 405)])
def test_routing_errors_are_problems(http: httpx.Client, method: str, path: str, status: int) -> None:
    response = http.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


def test_bad_content_length_is_400(api: Server) -> None:
    import socket

    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")


class _Broken:
    """A backend whose search fails as no backend should, and whose writes hit a read-only disk."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.search_fails = True

    def search(self, query: Any) -> Any:
        if self.search_fails:
            raise RuntimeError("secret internals /srv/trips.sqlite line 42")
        return self.engine.search(query)

    def upsert(self, trips: Any, refresh: bool = False) -> Any:
        raise StoreReadOnly("cannot write trips: the data directory refuses writes (disk full)", retry_after=7.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.mark.anyio
async def test_unexpected_errors_are_500_problems_without_internals(in_process: InProcess) -> None:
    async with in_process(opener=lambda target, **options: _Broken(tripsearch.open(target, **options))) as client:
        response = await client.get("/v1/search", params=LONDON_READING)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert "secret" not in response.text and "Traceback" not in response.text and "RuntimeError" not in response.text

        write = await client.put("/v1/trips/ro-1", json=make_trip("ro-1"), headers={"Authorization": f"Bearer {make_token()}"})
        assert write.status_code == 503
        assert write.headers["retry-after"] == "7"
        assert write.json()["code"] == "store_read_only"


@pytest.mark.anyio
async def test_not_ready_until_the_backend_opens(in_process: InProcess) -> None:
    gate = threading.Event()

    def slow_open(target: str, **options: Any) -> Any:
        gate.wait(30)
        return tripsearch.open(target, **options)

    async with in_process(opener=slow_open, wait_ready=False) as client:
        assert (await client.get("/health")).status_code == 200
        for path in ("/ready", "/v1/search?" + str(httpx.QueryParams(LONDON_READING))):
            response = await client.get(path)
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
            assert "loading" in response.json()["detail"]
        gate.set()


@pytest.mark.anyio
async def test_cors_when_configured(in_process: InProcess) -> None:
    async with in_process(cors_origins=("https://www.example.com",)) as client:
        preflight = await client.options(
            "/v1/search", headers={"Origin": "https://www.example.com", "Access-Control-Request-Method": "GET"}
        )
        assert preflight.headers["access-control-allow-origin"] == "https://www.example.com"
        response = await client.get("/v1/search", params=LONDON_READING, headers={"Origin": "https://www.example.com"})
        assert response.headers["access-control-allow-origin"] == "https://www.example.com"
        assert "etag" in response.headers["access-control-expose-headers"].lower()
        other = await client.get("/v1/search", params=LONDON_READING, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_server_header(http: httpx.Client) -> None:
    assert "server" not in http.get("/health").headers
    assert re.match(r"^\d+$", http.get("/health").headers["content-length"])
