"""The search fast path (api/fastpath.py) answers exactly as the full FastAPI route does.

Two real servers over copies of the same data, one with
``TRIPSEARCH_SEARCH_FAST_PATH=false``, get the same requests: good and bad
queries, with and without gzip, ``If-None-Match`` current and stale, a GET
with a body. Status, headers (less the date and the engine's time) and body
must be equal, and the metrics must count the searches either way.
"""

from __future__ import annotations

from typing import Iterator

import httpx
import orjson
import pytest

from tripsearch.query.params import query_to_params
from tripsearch.capacity.workload import build_workload

from .conftest import FIXTURE, Server
from .support import LONDON_READING

# Headers that differ between two answers of the same content.
_VARYING = {"date", "server-timing"}


@pytest.fixture(scope="module")
def servers(start_api) -> Iterator[tuple[Server, Server]]:
    yield start_api(), start_api(TRIPSEARCH_SEARCH_FAST_PATH="false")


def _requests() -> list[tuple[str, dict[str, str]]]:
    """(query string, headers): a workload of real searches, then the awkward cases."""
    trips = [orjson.loads(line) for line in FIXTURE.read_bytes().splitlines()]
    work = build_workload(trips, 60, seed=7, facets="all")
    out = [(str(httpx.QueryParams(query_to_params(q))), {}) for q in work.searches]
    base = str(httpx.QueryParams(query_to_params(LONDON_READING)))
    out += [
        (base, {"Accept-Encoding": "gzip"}),
        (base, {"Accept-Encoding": "br, gzip;q=0.5"}),
        (base, {"Accept-Encoding": "identity"}),  # over the gzip threshold, not compressed: Vary all the same
        (base + "&limit=1&facets=", {"Accept-Encoding": "gzip"}),  # a body under the gzip threshold
        (base + "&facets=dates&options=pets&options=smoking", {}),
        (base + "&limit=1000", {}),  # too large: 400
        (base.replace("from=", "from=91,"), {}),  # bad coordinates: 400
        (base + "&sort=nope", {"Accept-Encoding": "gzip"}),
        (base + "&cursor=garbage", {}),
        (base + "&date=2026-12-01&date=2026-12-02", {}),  # repeated field: 400
        ("", {}),
        (base, {"If-None-Match": '"stale"'}),
        (base, {"Content-Length": "5"}),  # a GET with a body goes to the full app
    ]
    return out


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in _VARYING]
    return response.status_code, headers, response.content


def test_fast_path_answers_as_the_full_route(servers: tuple[Server, Server]) -> None:
    fast, full = servers
    with httpx.Client(base_url=fast.url, timeout=30) as a, httpx.Client(base_url=full.url, timeout=30) as b:
        for query, headers in _requests():
            content = b"hello" if headers.get("Content-Length") else None
            got = a.build_request("GET", f"/v1/search?{query}", headers=headers, content=content)
            want = b.build_request("GET", f"/v1/search?{query}", headers=headers, content=content)
            ra, rb = a.send(got), b.send(want)
            # httpx decodes gzip in .content; compare what went over the wire, too.
            assert _comparable(ra) == _comparable(rb), (query, headers)
            assert ra.headers.get("content-encoding") == rb.headers.get("content-encoding")
            if ra.status_code == 200:
                tag = ra.headers["etag"]
                again = a.get(f"/v1/search?{query}", headers={"If-None-Match": tag})
                assert _comparable(again) == _comparable(b.get(f"/v1/search?{query}", headers={"If-None-Match": tag}))
                assert again.status_code == 304


def test_fast_path_searches_are_counted_in_the_metrics(servers: tuple[Server, Server]) -> None:
    fast, _ = servers
    with fast.client() as http:
        before = _search_count(http)
        for _ in range(3):
            assert http.get("/v1/search", params=query_to_params(LONDON_READING)).status_code == 200
        assert http.get("/v1/search", params={**query_to_params(LONDON_READING), "limit": "1000"}).status_code == 400
        after = _search_count(http)
    assert after.get("200", 0) - before.get("200", 0) == 3
    assert after.get("400", 0) - before.get("400", 0) == 1


def _search_count(http: httpx.Client) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("tripsearch_http_requests_total{") and 'route="/v1/search"' in line and 'method="GET"' in line:
            status = line.split('status="')[1].split('"')[0]
            counts[status] = counts.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return counts
