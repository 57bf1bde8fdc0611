"""Regular trips on the standard covoiturage routes, on a real server: random regular trips, answers checked against the spec and a reference.

The trips run between towns of the Faroe Islands, where no other test
writes; each goes from one town to another with no route, so a search from
town to town picks up at the first stop and drops off at the last, and the
expected answer follows from the documents alone (their occurrences, as
:func:`tripsearch.occurrences.occurrences` makes them).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from api.routes.standard_search import DEFAULT_REGULAR_WINDOW_DAYS
from tripsearch.client import AsyncTripSearchClient, TripSearchClient
from tripsearch.model import WEEKDAYS, parse_trip
from tripsearch.occurrences import occurrences, split_key

from .conftest import Server
from .support import make_token
from .test_standard import PREFIX, REGULAR, check_answer, check_journey, expected_journeys, journey_id, spec  # noqa: F401  # spec is a fixture

AUTH = {"Authorization": f"Bearer {make_token()}"}
TOWNS = {"torshavn": (62.0107, -6.7741), "klaksvik": (62.2266, -6.5890), "runavik": (62.1086, -6.7222), "vagur": (61.4733, -6.8097)}
PAIRS = [("torshavn", "klaksvik"), ("klaksvik", "torshavn"), ("torshavn", "vagur"), ("runavik", "torshavn")]
ZONES = ["Europe/Paris", "Atlantic/Faroe", "America/New_York", "UTC"]
YEAR_START = dt.date(2027, 1, 1)


def _random_trip(rng: np.random.Generator, n: int) -> dict[str, Any]:
    origin, destination = PAIRS[int(rng.integers(len(PAIRS)))]
    zone = ZONES[int(rng.integers(len(ZONES)))]
    valid_from = YEAR_START + dt.timedelta(days=int(rng.integers(0, 150)))
    valid_to = valid_from + dt.timedelta(days=int(rng.integers(7, 120)))
    base = int(rng.integers(5 * 60, 10 * 60)) // 5 * 5
    days = [d for d in WEEKDAYS if rng.random() < 0.6] or ["MON"]
    times = {d: f"{(base + int(rng.choice([0, 0, 0, 20, -35]))) // 60:02d}:{(base + int(rng.choice([0, 0, 20]))) % 60:02d}" for d in days}
    exceptions: list[dict[str, Any]] = []
    for date in sorted({valid_from + dt.timedelta(days=int(k)) for k in rng.integers(0, (valid_to - valid_from).days + 1, size=int(rng.integers(0, 5)))}):
        kind = int(rng.integers(3))
        if kind == 0:
            exceptions.append({"date": date.isoformat(), "skip": True})
        elif kind == 1:
            exceptions.append({"date": date.isoformat(), "time": f"{int(rng.integers(5, 11)):02d}:{int(rng.integers(0, 60)):02d}"})
        elif WEEKDAYS[date.weekday()] in times:
            exceptions.append({"date": date.isoformat(), "seats_available": int(rng.integers(0, 3))})
    leave = dt.datetime.combine(valid_from, dt.time(8, 0), tzinfo=dt.timezone.utc)
    arrive = leave + dt.timedelta(minutes=int(rng.integers(20, 90)))
    (lat0, lon0), (lat1, lon1) = TOWNS[origin], TOWNS[destination]
    return {
        "id": f"faroe-{n}", "version": 1, "departure_time": leave.isoformat(),
        "stops": [{"name": origin, "lat": lat0, "lon": lon0, "time": leave.isoformat()}, {"name": destination, "lat": lat1, "lon": lon1, "time": arrive.isoformat()}],
        "seats_total": 2, "seats_available": 2, "price": {"amount": float(rng.integers(0, 12)), "currency": "DKK"},
        "driver": {"id": f"driver-{n}", "rating": round(float(rng.uniform(1, 5)), 1)} if rng.random() < 0.8 else {"id": f"driver-{n}"},
        "schedule": {"timezone": zone, "valid_from": valid_from.isoformat(), "valid_to": valid_to.isoformat(), "times": times, "exceptions": exceptions},
    }  # fmt: skip


def _today_trip(n: int) -> dict[str, Any]:
    """A trip that runs every day from today for 60 days at 12:00 UTC: for the default window (now .. four weeks)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    leave = dt.datetime.combine(today, dt.time(12, 0), tzinfo=dt.timezone.utc)
    (lat0, lon0), (lat1, lon1) = TOWNS["vagur"], TOWNS["runavik"]
    return {
        "id": f"faroe-{n}", "version": 1, "departure_time": leave.isoformat(),
        "stops": [{"name": "vagur", "lat": lat0, "lon": lon0, "time": leave.isoformat()}, {"name": "runavik", "lat": lat1, "lon": lon1, "time": (leave + dt.timedelta(hours=2)).isoformat()}],
        "seats_total": 3, "seats_available": 3, "price": {"amount": 5.0, "currency": "DKK"},
        "schedule": {"timezone": "UTC", "valid_from": today.isoformat(), "valid_to": (today + dt.timedelta(days=60)).isoformat(), "times": {d: "12:00" for d in WEEKDAYS}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def faroe(api: Server) -> list[dict[str, Any]]:
    """Write random regular trips (and one that runs from today) to the shared server; return them."""
    rng = np.random.default_rng(2207)
    trips = [_random_trip(rng, n) for n in range(24)] + [_today_trip(99)]
    with api.client() as http:
        body = b"".join(orjson.dumps(t) + b"\n" for t in trips)
        answer = http.post("/v1/trips/_bulk", content=body, headers={**AUTH, "Content-Type": "application/x-ndjson"}, params={"refresh": "wait_for"}).json()
    assert answer["stored"] == len(trips), answer
    return trips


def _unix(day: dt.date, hour: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(hour), tzinfo=dt.timezone.utc).timestamp())


def expected_regular(trips: list[dict[str, Any]], params: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Return what driver_regular_trips should answer, from the documents: (trip id, [(weekday, pickup time, journey id)]) in order."""
    origin = (params["departureLat"], params["departureLng"])
    destination = (params["arrivalLat"], params["arrivalLng"])
    asked = dt.time.fromisoformat(params["departureTimeOfDay"])
    asked_s = asked.hour * 3600 + asked.minute * 60 + asked.second
    delta = params.get("timeDelta", 900)
    days = set(params.get("departureWeekdays", ",".join(WEEKDAYS)).split(","))
    found = []
    for doc in trips:
        if ((doc["stops"][0]["lat"], doc["stops"][0]["lon"]), (doc["stops"][-1]["lat"], doc["stops"][-1]["lon"])) != (origin, destination):
            continue
        matches = []
        for occurrence in occurrences(parse_trip(doc)):
            at = occurrence.departure_time
            gap = abs(at.hour * 3600 + at.minute * 60 + at.second - asked_s)
            gap = min(gap, 86400 - gap)
            if occurrence.seats_available >= 1 and WEEKDAYS[at.weekday()] in days and gap <= delta and params["minDepartureDate"] <= at.timestamp() <= params["maxDepartureDate"]:
                matches.append((gap, at, occurrence))
        if matches:
            found.append((min(m[0] for m in matches), min(m[1].timestamp() for m in matches), doc["id"], sorted(matches, key=lambda m: m[1].timestamp())))
    found.sort(key=lambda f: f[:3])
    out = []
    for _, _, trip_id, matches in found[: params.get("count", 1000)]:
        out.append((trip_id, sorted((WEEKDAYS[at.weekday()], at.strftime("%H:%M:%S"), "/".join(split_key(o.id))) for _, at, o in matches)))  # type: ignore[arg-type]
    return out


def _answered(trips: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    out = []
    for trip in trips:
        trip_id = trip["schedules"][0]["journeySchedules"][0]["id"].split("/")[0]
        rows = sorted((s["passengerPickupDay"], s["passengerPickupTimeOfDay"], j["id"]) for s in trip["schedules"] for j in s["journeySchedules"])
        out.append((trip_id, rows))
    return out


def _random_params(rng: np.random.Generator, trips: list[dict[str, Any]]) -> dict[str, Any]:
    doc = trips[int(rng.integers(len(trips) - 1))]
    first, last = doc["stops"][0], doc["stops"][-1]
    some_time = next(iter(doc["schedule"]["times"].values()))
    minutes = int(some_time[:2]) * 60 + int(some_time[3:5]) + int(rng.integers(-40, 40))
    start = YEAR_START + dt.timedelta(days=int(rng.integers(0, 200)))
    params: dict[str, Any] = {
        "departureLat": first["lat"], "departureLng": first["lon"], "arrivalLat": last["lat"], "arrivalLng": last["lon"],
        "departureTimeOfDay": f"{minutes % 1440 // 60:02d}:{minutes % 60:02d}:{int(rng.integers(60)):02d}",
        "minDepartureDate": _unix(start, int(rng.integers(24))), "maxDepartureDate": _unix(start + dt.timedelta(days=int(rng.integers(1, 90))), int(rng.integers(24))),
    }  # fmt: skip
    if rng.random() < 0.5:
        params["departureWeekdays"] = ",".join(d for d in WEEKDAYS if rng.random() < 0.5) or "SUN"
    for name, choices in (("timeDelta", [0, 600, 900, 1800, 3600, 43200]), ("count", [0, 1, 2, 1000])):
        if rng.random() < 0.5:
            params[name] = choices[int(rng.integers(len(choices)))]
    return params


def test_random_regular_trip_searches_answer_the_reference_and_validate(http: httpx.Client, faroe: list[dict[str, Any]], spec: dict[str, Any]) -> None:  # noqa: F811
    rng = np.random.default_rng(22)
    answered = empty = 0
    for _ in range(60):
        params = _random_params(rng, faroe)
        trips = check_answer(spec, "/driver_regular_trips", http.get(f"{PREFIX}/driver_regular_trips", params=params))
        assert _answered(trips) == expected_regular(faroe, params), params
        for trip in trips:
            assert trip["operator"] == trip["driver"]["operator"] and trip["duration"] > 0 and trip["webUrl"].startswith("http")
            for schedule in trip["schedules"]:
                for journey in schedule["journeySchedules"]:
                    assert journey["type"] == "PLANNED" and f"date={journey['id'].split('/')[1]}" in journey["webUrl"]
                    assert params["minDepartureDate"] <= journey["passengerPickupDate"] <= params["maxDepartureDate"], params
        answered += bool(trips)
        empty += not trips
    assert answered >= 15 and empty >= 5, (answered, empty)


def test_each_occurrence_is_a_driver_journey_with_its_own_id(http: httpx.Client, faroe: list[dict[str, Any]], spec: dict[str, Any]) -> None:  # noqa: F811
    # two occurrences of one trip on consecutive days, both with a free seat: one window of +/- a day holds both
    doc, first, second = next(
        (doc, a, b)
        for doc in faroe
        for a, b in zip(occurrences(parse_trip(doc)), occurrences(parse_trip(doc))[1:])
        if b.departure_time - a.departure_time <= dt.timedelta(hours=30) and a.seats_available and b.seats_available
    )
    first_stop, last_stop = doc["stops"][0], doc["stops"][-1]
    middle = first.departure_time + (second.departure_time - first.departure_time) / 2
    params = {"departureLat": first_stop["lat"], "departureLng": first_stop["lon"], "arrivalLat": last_stop["lat"], "arrivalLng": last_stop["lon"], "departureDate": int(middle.timestamp()), "timeDelta": 86400}
    journeys = check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params=params))
    ids = [j["id"] for j in journeys]
    assert len(ids) == len(set(ids))
    for occurrence in (first, second):
        trip_id, date = split_key(occurrence.id)
        journey = next(j for j in journeys if j["id"] == f"{trip_id}/{date}")
        assert journey["passengerPickupDate"] == int(occurrence.departure_time.timestamp())
        assert journey["availableSeats"] == occurrence.seats_available and f"date={occurrence.departure_time.date()}" in journey["webUrl"]


def test_random_journey_searches_answer_what_v1_search_gives_with_occurrences(api: Server, http: httpx.Client, faroe: list[dict[str, Any]], spec: dict[str, Any]) -> None:  # noqa: F811
    rng = np.random.default_rng(23)
    seen = 0
    for _ in range(30):
        doc = faroe[int(rng.integers(len(faroe) - 1))]
        made = occurrences(parse_trip(doc))
        at = made[int(rng.integers(len(made)))].departure_time + dt.timedelta(seconds=int(rng.integers(-7200, 7200)))
        first, last = doc["stops"][0], doc["stops"][-1]
        params: dict[str, Any] = {"departureLat": first["lat"], "departureLng": first["lon"], "arrivalLat": last["lat"], "arrivalLng": last["lon"], "departureDate": int(at.timestamp())}
        params["timeDelta"] = [900, 3600, 7200, 86400][int(rng.integers(4))]
        journeys = check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params=params))
        expected = expected_journeys(http, params)
        assert [j["id"] for j in journeys] == [journey_id(h) for h in expected], params
        for journey, hit in zip(journeys, expected):
            check_journey(journey, hit, api.url)
        seen += sum("/" in j["id"] for j in journeys)
    assert seen >= 20


def test_without_dates_the_coming_four_weeks(http: httpx.Client, faroe: list[dict[str, Any]], spec: dict[str, Any]) -> None:  # noqa: F811
    doc = faroe[-1]
    params = {"departureLat": doc["stops"][0]["lat"], "departureLng": doc["stops"][0]["lon"], "arrivalLat": doc["stops"][-1]["lat"], "arrivalLng": doc["stops"][-1]["lon"], "departureTimeOfDay": "12:00:00"}
    before = time.time()
    (trip,) = check_answer(spec, "/driver_regular_trips", http.get(f"{PREFIX}/driver_regular_trips", params=params))
    after = time.time()
    pickups = sorted(j["passengerPickupDate"] for s in trip["schedules"] for j in s["journeySchedules"])
    assert before - 1 <= pickups[0] and pickups[-1] <= after + DEFAULT_REGULAR_WINDOW_DAYS * 86400
    assert DEFAULT_REGULAR_WINDOW_DAYS - 1 <= len(pickups) <= DEFAULT_REGULAR_WINDOW_DAYS + 1
    assert [s["passengerPickupDay"] for s in trip["schedules"]] == list(WEEKDAYS) and {s["passengerPickupTimeOfDay"] for s in trip["schedules"]} == {"12:00:00"}


@pytest.mark.parametrize(
    ("more", "name", "reason"),
    [
        ({"minDepartureDate": "1798761600", "maxDepartureDate": "1830470400"}, "maxDepartureDate", "at most 366 days"),
        ({"minDepartureDate": "soon"}, "minDepartureDate", "must be an integer"),
        ({"departureWeekdays": "MON,Tuesday"}, "departureWeekdays", "'Tuesday'"),
    ],
)
def test_bad_windows_are_400(http: httpx.Client, spec: dict[str, Any], more: dict[str, str], name: str, reason: str) -> None:  # noqa: F811
    response = http.get(f"{PREFIX}/driver_regular_trips", params={**REGULAR, **more})
    assert response.status_code == 400
    body = check_answer(spec, "/driver_regular_trips", response)
    assert body["field"] == name and reason in body["error"]


@pytest.mark.anyio
async def test_the_clients_find_regular_trips(api: Server, faroe: list[dict[str, Any]]) -> None:
    doc = faroe[-1]
    departure, arrival = (doc["stops"][0]["lat"], doc["stops"][0]["lon"]), (doc["stops"][-1]["lat"], doc["stops"][-1]["lon"])
    with TripSearchClient(api.url) as client:
        (trip,) = client.driver_regular_trips(departure, arrival, dt.time(12, 0), departure_weekdays=["MON", "TUE"], time_delta=60)
        assert [s["passengerPickupDay"] for s in trip["schedules"]] == ["MON", "TUE"]
    async with AsyncTripSearchClient(api.url) as aclient:
        assert await aclient.driver_regular_trips(departure, arrival, "12:00:00", departure_weekdays=["MON", "TUE"], time_delta=60) == [trip]
