"""Two real uvicorn workers over one data directory: a write through one is found through both."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Callable, Iterator

import httpx
import orjson
import pytest

from tripsearch.testing.server import worker_pids

from .conftest import READY_TIMEOUT_S, Server
from .support import REFRESH_INTERVAL_S, iceland_query, make_token, make_trip

AUTH = {"Authorization": f"Bearer {make_token()}"}
ATTEMPTS = 200


@pytest.fixture(scope="module")
def two_workers(start_api: Callable[..., Server]) -> Server:
    server = start_api(workers=2)
    # start_api waited for one /ready; wait for the other worker too.
    worker_pids(server, 2, timeout_s=READY_TIMEOUT_S, poll_s=0.05)
    return server


def _by_worker(server: Server, path: str, params: dict[str, str] | None = None) -> Iterator[tuple[int, httpx.Response]]:
    """Yield (worker pid, answer) over fresh connections; a connection is served by one worker from start to end."""
    for _ in range(ATTEMPTS):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            pid = client.get("/health").json()["pid"]
            yield pid, client.get(path, params=params)


def _ids(response: httpx.Response) -> set[str]:
    return {hit["id"] for hit in response.json()["trips"]}


def test_wait_for_write_is_found_through_every_worker(two_workers: Server) -> None:
    trip_id = f"w-{uuid.uuid4().hex[:12]}"
    with two_workers.client() as client:
        response = client.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id), headers=AUTH, params={"refresh": "wait_for"})
        assert response.status_code == 200
    found: dict[int, bool] = {}
    for pid, answer in _by_worker(two_workers, "/v1/search", iceland_query()):
        found[pid] = found.get(pid, True) and trip_id in _ids(answer)
        if len(found) == 2:
            break
    assert len(found) == 2, "every connection went to one worker"
    assert all(found.values()), found


def test_any_write_is_found_through_every_worker_within_the_refresh_interval(two_workers: Server) -> None:
    trip_ids = [f"w-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    with two_workers.client() as client:
        written = time.monotonic()
        body = b"".join(orjson.dumps(make_trip(t)) + b"\n" for t in trip_ids)
        assert client.post("/v1/trips/_bulk", content=body, headers=AUTH).json()["stored"] == 3
    time.sleep(REFRESH_INTERVAL_S * 2.5)  # an interval, plus a refresh that started just before the write
    seen: set[int] = set()
    for pid, answer in _by_worker(two_workers, "/v1/search", iceland_query()):
        assert set(trip_ids) <= _ids(answer), f"worker {pid} misses trips {time.monotonic() - written:.2f} s after the write"
        seen.add(pid)
        if len(seen) == 2:
            break
    assert len(seen) == 2


def test_deletes_reach_every_worker(two_workers: Server) -> None:
    trip_id = f"w-{uuid.uuid4().hex[:12]}"
    with two_workers.client() as client:
        client.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id), headers=AUTH, params={"refresh": "wait_for"})
        assert client.delete(f"/v1/trips/{trip_id}", headers=AUTH, params={"refresh": "wait_for"}).status_code == 200
    seen: set[int] = set()
    for pid, answer in _by_worker(two_workers, f"/v1/trips/{trip_id}"):
        assert answer.status_code == 404
        seen.add(pid)
        if len(seen) == 2:
            break
    for pid, answer in _by_worker(two_workers, "/v1/search", iceland_query()):
        assert trip_id not in _ids(answer)
        seen.add(pid)
        if len(seen) == 2:
            break


def test_metrics_add_up_across_workers(two_workers: Server) -> None:
    made: dict[int, int] = {}
    for pid, answer in _by_worker(two_workers, "/v1/places", {"q": "ams"}):
        assert answer.status_code == 200
        made[pid] = made.get(pid, 0) + 1
        if len(made) == 2:
            break
    assert len(made) == 2
    # Whichever worker answers the scrape, it counts the requests of both.
    for _, answer in itertools.islice(_by_worker(two_workers, "/metrics"), 4):
        line = next(line for line in answer.text.splitlines() if line.startswith('tripsearch_http_requests_total{method="GET",route="/v1/places",status="200"}'))
        assert float(line.rsplit(" ", 1)[1]) == sum(made.values())
