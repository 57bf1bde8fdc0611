"""Regular trips over HTTP, on a real server: writes and their errors, the schedule read back, occurrences in search, and the seats of one occurrence."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import orjson
import pytest

import api.occurrence_seats
import tripsearch
from tripsearch.backend import ItemResult, UpsertReport
from tripsearch.client import AsyncTripSearchClient, OccurrenceNotFound, TripSearchClient
from tripsearch.errors import InvalidTrip, NotFound

from .conftest import InProcess, Server
from .support import make_regular_trip, make_token, make_trip, north_query

AUTH = {"Authorization": f"Bearer {make_token()}"}


def _id() -> str:
    return f"reg-{uuid.uuid4().hex[:12]}"


def _hits(http: httpx.Client, trip_id: str, day: dt.date) -> list[dict[str, Any]]:
    response = http.get("/v1/search", params=north_query(day))
    assert response.status_code == 200, response.text
    return [hit for hit in response.json()["trips"] if hit["id"] == trip_id]


def test_a_regular_trip_is_stored_read_back_and_found_on_its_dates(http: httpx.Client) -> None:
    trip_id = _id()
    trip = make_regular_trip(trip_id, exceptions=[{"date": "2027-01-08", "skip": True}, {"date": "2027-01-11", "time": "08:15"}])
    stored = http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH, params={"refresh": "true"})
    assert stored.json() == {"id": trip_id, "result": "stored", "version": 1}, stored.text
    assert http.get(f"/v1/trips/{trip_id}").json()["schedule"] == trip["schedule"]

    (monday,) = _hits(http, trip_id, dt.date(2027, 1, 4))
    assert monday["occurrence"] == monday["trip"]["occurrence"] == "2027-01-04"
    assert monday["pickup"]["time"] == "2027-01-04T07:45:00+01:00" and monday["trip"]["schedule"] == trip["schedule"]
    assert _hits(http, trip_id, dt.date(2027, 1, 8)) == []  # skipped
    assert [h["pickup"]["time"] for h in _hits(http, trip_id, dt.date(2027, 1, 11))] == ["2027-01-11T08:15:00+01:00"]  # moved
    assert [h["pickup"]["time"] for h in _hits(http, trip_id, dt.date(2027, 1, 9))] == ["2027-01-09T09:00:00+01:00"]  # Saturday
    assert _hits(http, trip_id, dt.date(2027, 1, 10)) == []  # no Sunday time
    # wall-clock times across the spring change: 07:45 stays 07:45, at +02:00
    assert [h["pickup"]["time"] for h in _hits(http, trip_id, dt.date(2027, 3, 29))] == ["2027-03-29T07:45:00+02:00"]
    # a one-off trip's hit has no occurrence
    plain = http.get("/v1/search", params={**north_query(dt.date(2027, 1, 4)), "from": "64.1466,-21.9426", "to": "63.9331,-20.9971"}).json()
    assert all("occurrence" not in hit for hit in plain["trips"])


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"times": {"MOX": "07:45"}}, "schedule.times.MOX"),
        ({"times": {"MON": "7h45"}}, "schedule.times.MON"),
        ({"timezone": "Europe/Lutetia"}, "schedule.timezone"),
        ({"valid_to": "2028-06-30"}, "schedule.valid_to"),
        ({"exceptions": [{"date": "2026-12-31", "skip": True}]}, "schedule.exceptions[0].date"),
        ({"exceptions": [{"date": "2027-01-11", "seats_available": 7}]}, "schedule.exceptions[0].seats_available"),
        ({"exceptions": [{"date": "2027-01-11", "skip": True, "time": "08:00"}]}, "schedule.exceptions[0]"),
        ({"colour": "red"}, "schedule.colour"),
    ],
)
def test_a_bad_schedule_is_422_naming_the_field(http: httpx.Client, schedule: dict[str, Any], field: str) -> None:
    trip_id = _id()
    trip = make_regular_trip(trip_id)
    trip["schedule"] = {**trip["schedule"], **schedule}
    response = http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("invalid_trip", field) and problem["detail"].startswith(f"{field}: ")
    bulk = http.post("/v1/trips/_bulk", content=orjson.dumps(trip) + b"\n", headers={**AUTH, "Content-Type": "application/x-ndjson"}).json()
    assert bulk["items"][0]["result"] == "rejected" and bulk["items"][0]["field"] == field


def test_a_seat_change_on_one_occurrence_shows_on_that_date_only(http: httpx.Client) -> None:
    trip_id = _id()
    trip = make_regular_trip(trip_id, exceptions=[{"date": "2027-01-11", "time": "08:15"}])
    http.put(f"/v1/trips/{trip_id}", json=trip, headers=AUTH).raise_for_status()
    changed = http.patch(f"/v1/trips/{trip_id}/occurrences/2027-01-11", json={"seats_available": 1}, headers=AUTH, params={"refresh": "wait_for"})
    assert changed.status_code == 200, changed.text
    occurrence = changed.json()
    assert (occurrence["id"], occurrence["occurrence"], occurrence["version"], occurrence["seats_available"]) == (trip_id, "2027-01-11", 2, 1)
    assert occurrence["departure_time"] == "2027-01-11T08:15:00+01:00"  # the moved time is kept
    assert [h["trip"]["seats_available"] for h in _hits(http, trip_id, dt.date(2027, 1, 11))] == [1]
    for other in (dt.date(2027, 1, 4), dt.date(2027, 1, 12), dt.date(2027, 1, 18)):
        assert [h["trip"]["seats_available"] for h in _hits(http, trip_id, other)] == [3], other
    # a search that needs two seats no longer finds that date
    assert trip_id not in [h["id"] for h in http.get("/v1/search", params={**north_query(dt.date(2027, 1, 11)), "seats": "2"}).json()["trips"]]
    stored = http.get(f"/v1/trips/{trip_id}").json()
    assert stored["version"] == 2 and stored["schedule"]["exceptions"] == [{"date": "2027-01-11", "time": "08:15", "seats_available": 1}]
    # a plain weekday gets an exception of its own, and the next version
    again = http.patch(f"/v1/trips/{trip_id}/occurrences/2027-01-12", json={"seats_available": 0}, headers=AUTH, params={"refresh": "true"})
    assert again.json()["version"] == 3 and again.json()["seats_available"] == 0


def test_occurrence_patch_errors(http: httpx.Client) -> None:
    trip_id, plain_id = _id(), _id()
    http.put(f"/v1/trips/{trip_id}", json=make_regular_trip(trip_id, exceptions=[{"date": "2027-01-08", "skip": True}]), headers=AUTH).raise_for_status()
    http.put(f"/v1/trips/{plain_id}", json=make_trip(plain_id), headers=AUTH).raise_for_status()
    url = f"/v1/trips/{trip_id}/occurrences"
    cases: list[tuple[str, Any, int, str | None, str | None]] = [
        (f"/v1/trips/{_id()}/occurrences/2027-01-04", {"seats_available": 1}, 404, "not_found", None),
        (f"{url}/2027-01-08", {"seats_available": 1}, 404, "occurrence_not_found", "date"),  # skipped
        (f"{url}/2027-01-10", {"seats_available": 1}, 404, "occurrence_not_found", "date"),  # a Sunday
        (f"{url}/2027-07-05", {"seats_available": 1}, 404, "occurrence_not_found", "date"),  # after valid_to
        (f"/v1/trips/{plain_id}/occurrences/2027-03-01", {"seats_available": 1}, 404, "occurrence_not_found", "date"),  # a one-off trip
        (f"{url}/2027-13-01", {"seats_available": 1}, 422, "invalid_trip", "date"),
        (f"{url}/04-01-2027", {"seats_available": 1}, 422, "invalid_trip", "date"),
        (f"{url}/2027-01-04", {"seats_available": 4}, 422, "invalid_trip", "seats_available"),
        (f"{url}/2027-01-04", {"seats_available": -1}, 422, "invalid_trip", "seats_available"),
        (f"{url}/2027-01-04", {"seats_available": "1"}, 422, "invalid_trip", "seats_available"),
        (f"{url}/2027-01-04", {}, 422, "invalid_trip", "seats_available"),
        (f"{url}/2027-01-04", {"seats_available": 1, "time": "09:00"}, 422, "invalid_trip", "time"),
    ]
    for path, body, status, code, field in cases:
        response = http.patch(path, json=body, headers=AUTH)
        assert response.status_code == status, (path, body, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json" and problem["code"] == code, problem
        assert problem.get("field") == field, problem
    assert http.patch(f"{url}/2027-01-04", json={"seats_available": 1}).status_code == 401
    assert http.patch(f"{url}/2027-01-04", json={"seats_available": 1}, headers={"Authorization": f"Bearer {make_token('trips:read')}"}).status_code == 403
    assert http.patch(f"{url}/2027-01-04", json={"seats_available": 1}, headers=AUTH, params={"refresh": "soon"}).status_code == 400
    assert http.get(f"/v1/trips/{trip_id}").json()["version"] == 1  # nothing above was written


class _AlwaysBehind:
    """The fixture engine, where another writer always stores the next version first."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.writes = 0

    def upsert(self, trips: Any, refresh: Any = False) -> UpsertReport:
        self.writes += 1
        (doc,) = trips
        return UpsertReport((ItemResult(1, doc["id"], "unchanged", doc["version"]),))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.mark.anyio
async def test_concurrent_writes_that_keep_winning_get_a_409(in_process: InProcess) -> None:
    engines: list[_AlwaysBehind] = []

    def opener(target: str, **options: Any) -> Any:
        engine = tripsearch.open(target, **options)
        engine.upsert([make_regular_trip("reg-conflict")], refresh=True)
        engines.append(_AlwaysBehind(engine))
        return engines[-1]

    async with in_process(opener=opener) as client:
        response = await client.patch("/v1/trips/reg-conflict/occurrences/2027-01-04", json={"seats_available": 1}, headers=AUTH)
        assert response.status_code == 409 and response.json()["code"] == "conflict" and "retry" in response.json()["detail"]
        assert engines[0].writes == api.occurrence_seats.ATTEMPTS



@pytest.mark.anyio
async def test_the_clients_read_occurrences_and_set_an_occurrences_seats(api: Server) -> None:
    trip_id = _id()
    token = make_token()
    with TripSearchClient(api.url, token=token) as client:
        client.upsert(make_regular_trip(trip_id), refresh="wait_for")
        query = {**north_query(dt.date(2027, 1, 5)), "facets": []}
        (hit,) = [h for h in client.search(query).trips if h.id == trip_id]
        assert hit.occurrence == "2027-01-05" and hit.trip["seats_available"] == 3 and hit.to_dict()["occurrence"] == "2027-01-05"
        doc = client.set_occurrence_seats(trip_id, dt.date(2027, 1, 5), 2, refresh="wait_for")
        assert (doc["occurrence"], doc["seats_available"], doc["version"]) == ("2027-01-05", 2, 2)
        assert [h.trip["seats_available"] for h in client.search(query).trips if h.id == trip_id] == [2]
        with pytest.raises(OccurrenceNotFound) as missing:
            client.set_occurrence_seats(trip_id, "2027-01-10", 1)
        assert missing.value.date == "2027-01-10" and "does not run on 2027-01-10" in str(missing.value)
        with pytest.raises(NotFound):
            client.set_occurrence_seats(_id(), "2027-01-05", 1)
        with pytest.raises(InvalidTrip) as bad:
            client.set_occurrence_seats(trip_id, "2027-01-05", 9)
        assert bad.value.field == "seats_available"
    async with AsyncTripSearchClient(api.url, token=token) as aclient:
        doc = await aclient.set_occurrence_seats(trip_id, "2027-01-06", 0, refresh=True)
        assert (doc["occurrence"], doc["seats_available"], doc["version"]) == ("2027-01-06", 0, 3)
        hits = (await aclient.search({**north_query(dt.date(2027, 1, 6)), "facets": []})).trips
        assert trip_id not in [h.id for h in hits]  # no seat left that day
        with pytest.raises(OccurrenceNotFound):
            await aclient.set_occurrence_seats(trip_id, "2027-07-05", 1)
