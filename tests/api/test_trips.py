"""Writes and reads of trips against a real server: versions, bulk line results, refresh, limits."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx
import orjson
import pytest

from .conftest import Server
from .support import REFRESH_INTERVAL_S, iceland_query, make_token, make_trip

AUTH = {"Authorization": f"Bearer {make_token()}"}


def _id() -> str:
    return f"api-{uuid.uuid4().hex[:12]}"


def _found(http: httpx.Client, trip_id: str, day: dt.date = dt.date(2027, 3, 1)) -> bool:
    trips = http.get("/v1/search", params=iceland_query(day)).json()["trips"]
    return trip_id in {hit["id"] for hit in trips}


def test_put_get_delete(http: httpx.Client) -> None:
    trip_id = _id()
    trip = make_trip(trip_id)
    stored = http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH, params={"refresh": "true"})
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"id": trip_id, "result": "stored", "version": 1}
    assert http.get(f"/v1/trips/{trip_id}").json() == trip
    assert _found(http, trip_id)

    same = http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH)
    assert same.json()["result"] == "unchanged"
    newer = http.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id, version=2, price=20.0), headers=AUTH)
    assert newer.json() == {"id": trip_id, "result": "stored", "version": 2}
    assert http.get(f"/v1/trips/{trip_id}").json()["price"]["amount"] == 20.0

    deleted = http.delete(f"/v1/trips/{trip_id}", headers=AUTH, params={"refresh": "true"})
    assert deleted.json() == {"id": trip_id, "result": "deleted"}
    assert not _found(http, trip_id)
    gone = http.get(f"/v1/trips/{trip_id}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert http.delete(f"/v1/trips/{trip_id}", headers=AUTH).status_code == 404
    # The tombstone keeps version 2: a late version 1 cannot bring the trip back.
    assert http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH).json()["result"] == "unchanged"


def test_put_takes_the_id_from_the_path(http: httpx.Client) -> None:
    trip_id = _id()
    trip = make_trip(trip_id)
    del trip["id"]
    assert http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH).json()["result"] == "stored"
    assert http.get(f"/v1/trips/{trip_id}").json()["id"] == trip_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "another-id"}, "id"),
        ({"seats_available": 9}, "seats_available"),
        ({"price": {"amount": -1, "currency": "EUR"}}, "price.amount"),
        ({"version": "one"}, "version"),
        ({"colour": "red"}, "colour"),
        ({"stops": []}, "stops"),
    ],
)
def test_invalid_trips_are_422_naming_the_field(http: httpx.Client, change: dict[str, object], field: str) -> None:
    trip_id = _id()
    response = http.put(f"/v1/trips/{trip_id}", json={**make_trip(trip_id), **change}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_trip"
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: ")


@pytest.mark.parametrize(("body", "status", "code"), [(b"{", 400, "invalid_json"), (b"[]", 422, "invalid_trip"), (b'{"a":' * 50 + b"1" + b"}" * 50, 422, "too_deep")])
def test_malformed_put_bodies(http: httpx.Client, body: bytes, status: int, code: str) -> None:
    response = http.put(f"/v1/trips/{_id()}", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["code"] == code


def test_bulk_reports_every_line(http: httpx.Client) -> None:
    a, b = _id(), _id()
    lines = [
        orjson.dumps(make_trip(a)),
        b"",  # blank lines are skipped but counted
        orjson.dumps({**make_trip(b), "seats_total": 0}),
        b"{not json",
        orjson.dumps(make_trip(a)),  # same version again
        orjson.dumps(make_trip(b, version=3)),
    ]
    response = http.post("/v1/trips/_bulk", content=b"\n".join(lines) + b"\n", headers={**AUTH, "Content-Type": "application/x-ndjson"}, params={"refresh": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["unchanged"], body["rejected"]) == (2, 1, 2)
    items = body["items"]
    assert [(i["line"], i["result"]) for i in items] == [(1, "stored"), (3, "rejected"), (4, "rejected"), (5, "unchanged"), (6, "stored")]
    assert items[0] == {"line": 1, "id": a, "result": "stored", "version": 1}
    assert items[1]["field"] == "seats_total" and items[1]["id"] == b and items[1]["reason"]
    assert "JSON" in items[2]["reason"]
    assert _found(http, a) and _found(http, b)


def test_empty_bulk_is_fine(http: httpx.Client) -> None:
    response = http.post("/v1/trips/_bulk", content=b"", headers=AUTH)
    assert response.json() == {"stored": 0, "unchanged": 0, "rejected": 0, "items": []}


def test_bulk_line_limit_is_413_naming_it(http: httpx.Client) -> None:
    body = b"{}\n" * 10_001
    response = http.post("/v1/trips/_bulk", content=body, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["code"] == "too_many_lines"
    assert "10000" in response.json()["detail"]


@pytest.mark.parametrize(("path", "method", "limit"), [("/v1/trips/_bulk", "POST", 10 * 1024 * 1024), ("/v1/trips/x", "PUT", 1024 * 1024)])
def test_bodies_over_the_limit_are_413(http: httpx.Client, path: str, method: str, limit: int) -> None:
    response = http.request(method, path, content=b" " * (limit + 1), headers=AUTH)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert str(limit) in response.json()["detail"]


def test_chunked_bodies_over_the_limit_are_413(http: httpx.Client) -> None:
    def chunks() -> object:
        for _ in range(12):
            yield b" " * (1024 * 1024)

    response = http.post("/v1/trips/_bulk", content=chunks(), headers=AUTH)  # type: ignore[arg-type]
    assert response.status_code == 413


def test_versioned_deletes_are_events_in_any_order(http: httpx.Client) -> None:
    # a delete event that arrives before its trip leaves a tombstone at its version
    early = _id()
    first = http.delete(f"/v1/trips/{early}", headers=AUTH, params={"version": "2"})
    assert first.status_code == 200, first.text
    assert first.json() == {"id": early, "result": "not_found", "version": 2}
    assert http.put(f"/v1/trips/{early}", json=make_trip(early, version=1), headers=AUTH).json()["result"] == "unchanged"
    assert http.get(f"/v1/trips/{early}").status_code == 404
    # a late delete event of a lower version leaves the newer trip alone
    late = _id()
    http.put(f"/v1/trips/{late}", json=make_trip(late, version=3), headers=AUTH)
    assert http.delete(f"/v1/trips/{late}", headers=AUTH, params={"version": "2"}).json()["result"] == "not_found"
    assert http.get(f"/v1/trips/{late}").json()["version"] == 3
    assert http.delete(f"/v1/trips/{late}", headers=AUTH, params={"version": "4"}).json() == {"id": late, "result": "deleted", "version": 4}
    assert http.put(f"/v1/trips/{late}", json=make_trip(late, version=4), headers=AUTH).json()["result"] == "unchanged"


@pytest.mark.parametrize("value", ["-1", "1.5", "x", "9223372036854775808", ""])
def test_bad_delete_versions_are_400_naming_it(http: httpx.Client, value: str) -> None:
    response = http.delete(f"/v1/trips/{_id()}", headers=AUTH, params={"version": value})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "version"


@pytest.mark.parametrize("value", ["yes", "wait"])
def test_unknown_refresh_is_400(http: httpx.Client, value: str) -> None:
    response = http.put(f"/v1/trips/{_id()}", json=make_trip("x"), headers=AUTH, params={"refresh": value})
    assert response.status_code == 400
    assert response.json()["field"] == "refresh"


def test_wait_for_write_is_found_when_the_answer_comes(http: httpx.Client) -> None:
    """Through every worker: tests/api/test_workers.py checks it on two."""
    trip_id = _id()
    response = http.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id), headers=AUTH, params={"refresh": "wait_for"})
    assert response.status_code == 200
    assert _found(http, trip_id)


def test_without_refresh_a_write_is_searchable_within_the_interval(http: httpx.Client) -> None:
    trip_id = _id()
    http.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id), headers=AUTH)
    deadline = time.monotonic() + 3 * REFRESH_INTERVAL_S + 1
    while not _found(http, trip_id):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_trip_ids_are_url_decoded(http: httpx.Client, api: Server) -> None:
    trip_id = f"id with spaces é {uuid.uuid4().hex[:6]}"
    path = "/v1/trips/" + httpx.URL(trip_id).raw_path.decode()
    assert http.put(path, json=make_trip(trip_id), headers=AUTH).json()["id"] == trip_id
    assert http.get(path).json()["id"] == trip_id
