"""The standard covoiturage routes against the standard's own OpenAPI file, on a real server over the fixture trips.

The spec is read from ``$TRIPSEARCH_STANDARD_SPEC`` when it is set, else from
``../shared/specs/standard-covoiturage/openapi.yaml`` beside the repository
(a checkout under /work), else from the machine's shared copy under
``/work/shared`` (a fresh clone elsewhere, such as CI's in /tmp, finds it
there). When it is not found the tests fail, saying where they looked:
they never skip.
"""

from __future__ import annotations

import datetime as dt
import doctest
import importlib
import os
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import httpx
import jsonschema_rs
import numpy as np
import orjson
import pytest
import yaml

import tripsearch
from api.app import create_app
from api.routes.standard_search import JourneySearch, journey_queries
from api.settings import Settings, SettingsError
from tripsearch.client import AsyncTripSearchClient, TripSearchClient
from tripsearch.errors import InvalidQuery
from tripsearch.geo import great_circle_km

from .conftest import FIXTURE, ROOT, InProcess, Server

SPEC_RELATIVE = Path("specs/standard-covoiturage/openapi.yaml")
MACHINE_SHARED = Path("/work/shared")
PREFIX = "/standard/v1"
PARIS = ZoneInfo("Europe/Paris")
TRIPS = [orjson.loads(line) for line in FIXTURE.read_bytes().splitlines()]
# Statuses the routes may answer beyond those the spec lists, and why.
BEYOND_SPEC = {
    503: "the backend is loading or unreachable (Retry-After)",
    501: "passenger routes: tripsearch holds driver offers only",
    404: "no such route under /standard/v1/",
}
# Statuses the spec lists that tripsearch never answers, and why.
NEVER_ANSWERED = {429: "tripsearch has no rate limiting"}
API_KEY = "standard-test-key-0123456789"


def spec_path() -> Path:
    """Return the spec file, or fail naming every place looked at."""
    configured = os.environ.get("TRIPSEARCH_STANDARD_SPEC")
    candidates = [Path(configured)] if configured else [ROOT.parent / "shared" / SPEC_RELATIVE, MACHINE_SHARED / SPEC_RELATIVE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.fail(f"the standard covoiturage spec is not at {' nor '.join(map(str, candidates))}; set TRIPSEARCH_STANDARD_SPEC to its openapi.yaml")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(spec_path().read_text())
    return loaded


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _partial_time(value: str) -> bool:
    try:
        dt.time.fromisoformat(value)
    except ValueError:
        return False
    return len(value) >= 8


def spec_errors(spec: dict[str, Any], schema: dict[str, Any], body: Any) -> list[str]:
    """Return how ``body`` breaks a schema of the spec (its ``$ref`` resolved in the spec's components)."""
    validator = jsonschema_rs.Draft4Validator({**schema, "components": spec["components"]}, formats={"partial-time": _partial_time}, validate_formats=True)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(body)]


def check_answer(spec: dict[str, Any], route: str, response: httpx.Response) -> Any:
    """Check an answer of ``route`` against the spec: a listed status, its media type and its schema; return the body."""
    operation = spec["paths"][route]["get"]
    listed = {int(status): _resolve(spec, answer) for status, answer in operation["responses"].items()}
    status = response.status_code
    assert status in listed or status in BEYOND_SPEC, f"{route} answered {status}, which the spec does not list: {response.text[:300]}"
    body = response.json() if response.content else None
    if status >= 400:
        assert isinstance(body, dict) and isinstance(body["error"], str) and body["error"], f"an error without the standard's error member: {response.text[:300]}"
        assert body["error"] == body["detail"] and body["status"] == status
    content = listed.get(status, {}).get("content")
    if content:
        (media_type, declared), = content.items()
        assert response.headers["content-type"].split(";")[0] == media_type
        errors = spec_errors(spec, declared["schema"], body)
        assert not errors, f"{route} {status} breaks the spec: {errors[:5]}"
    elif status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    return body


# -- the parameters, one by one, against the spec --------------------------------


@pytest.fixture(scope="module")
def our_paths() -> dict[str, Any]:
    paths: dict[str, Any] = create_app(Settings()).openapi()["paths"]
    return paths


ROUTES = ["/driver_journeys", "/driver_regular_trips", "/passenger_journeys", "/passenger_regular_trips", "/status"]
UNITS = {"departureRadius": "kilometers", "arrivalRadius": "kilometers", "timeDelta": "seconds", "departureDate": "UNIX UTC timestamp in seconds",
         "minDepartureDate": "UNIX UTC timestamp in seconds", "maxDepartureDate": "UNIX UTC timestamp in seconds", "departureTimeOfDay": "partial-time"}  # fmt: skip


@pytest.mark.parametrize("route", ["/driver_journeys", "/driver_regular_trips"])
def test_parameters_match_the_spec_one_by_one(spec: dict[str, Any], our_paths: dict[str, Any], route: str) -> None:
    theirs = [_resolve(spec, p) for p in spec["paths"][route]["get"]["parameters"]]
    ours = our_paths[PREFIX + route]["get"]["parameters"]
    assert [p["name"] for p in ours] == [p["name"] for p in theirs]
    for mine, their in zip(ours, theirs):
        name = their["name"]
        assert mine["in"] == their["in"] == "query", name
        assert mine["required"] == their.get("required", False), name
        assert mine["schema"]["type"] == their["schema"]["type"], name
        assert mine["schema"].get("default") == their["schema"].get("default"), f"{name}: default {mine['schema'].get('default')!r}, spec {their['schema'].get('default')!r}"
        assert mine["schema"].get("format") == their["schema"].get("format"), name
        assert (mine.get("style"), mine.get("explode")) == (their.get("style"), their.get("explode")), name
        if name in UNITS:
            assert UNITS[name] in their["description"] + str(their["schema"]), f"the spec no longer says {name} is in {UNITS[name]}"
            assert UNITS[name] in mine["description"] + str(mine["schema"]), f"{name}: our description does not say it is in {UNITS[name]}"


def test_every_route_of_the_spec_search_tag_is_served(spec: dict[str, Any], our_paths: dict[str, Any]) -> None:
    searched = {path for path, item in spec["paths"].items() if "get" in item and item["get"].get("tags") in (["Search"], ["status"])}
    assert searched == set(ROUTES)
    assert {PREFIX + route for route in ROUTES} <= set(our_paths)


def test_the_spec_lists_no_error_status_left_untested(spec: dict[str, Any]) -> None:
    listed = {int(s) for s in spec["paths"]["/driver_journeys"]["get"]["responses"] if int(s) >= 400}
    assert listed == {400, 401, 500} | set(NEVER_ANSWERED), "a status was added to the spec: test it below"


# -- the engine queries (no server) ---------------------------------------------------


def _unix(local: str, tz: ZoneInfo = PARIS) -> int:
    return int(dt.datetime.fromisoformat(local).replace(tzinfo=tz).timestamp())


@pytest.mark.parametrize(
    ("local", "delta", "windows"),
    [
        ("2026-12-10T08:00:00", 900, [("2026-12-10", "07:45", "08:15")]),
        ("2026-12-10T08:00:30", 0, [("2026-12-10", "08:00", "08:00")]),
        ("2026-12-10T23:50:00", 1200, [("2026-12-10", "23:30", "23:59"), ("2026-12-11", "00:00", "00:10")]),
        ("2026-12-10T00:05:00", 600, [("2026-12-09", "23:55", "23:59"), ("2026-12-10", "00:00", "00:15")]),
        ("2026-12-10T12:00:00", 86400, [("2026-12-09", "12:00", "23:59"), ("2026-12-10", "00:00", "23:59"), ("2026-12-11", "00:00", "12:00")]),
        # summer time (UTC+2) is read on the Paris wall clock too, and the day clocks go forward and back
        ("2026-07-01T12:00:00", 900, [("2026-07-01", "11:45", "12:15")]),
        ("2026-03-29T03:30:00", 3600, [("2026-03-29", "02:30", "04:30")]),
        ("2026-10-25T02:30:00", 900, [("2026-10-25", "02:15", "02:45")]),
    ],
)
def test_the_window_becomes_one_query_per_local_day(local: str, delta: int, windows: list[tuple[str, str, str]]) -> None:
    search = JourneySearch((48.85, 2.35), (45.76, 4.83), _unix(local), time_delta=delta, departure_radius=2.5, arrival_radius=3.0)
    queries = journey_queries(search, PARIS)
    assert [(q["date"], q["time_from"], q["time_to"]) for q in queries] == windows
    assert queries[0] == {
        "from": [48.85, 2.35], "to": [45.76, 4.83], "date": windows[0][0], "time_from": windows[0][1], "time_to": windows[0][2],
        "from_radius_km": 2.5, "to_radius_km": 3.0, "sort": "departure", "limit": 100, "facets": [],
    }  # fmt: skip


def test_departure_date_is_read_in_the_operators_time_zone() -> None:
    search = JourneySearch((48.85, 2.35), (45.76, 4.83), _unix("2026-12-10T08:00:00", ZoneInfo("UTC")), time_delta=0)
    assert journey_queries(search, PARIS)[0]["time_from"] == "09:00"
    assert journey_queries(search, ZoneInfo("UTC"))[0]["time_from"] == "08:00"
    assert journey_queries(search, ZoneInfo("Asia/Tokyo"))[0]["time_from"] == "17:00"


def test_settings_of_the_standard_routes() -> None:
    settings = Settings.from_env({"TRIPSEARCH_STANDARD_TIMEZONE": "America/Montreal", "TRIPSEARCH_STANDARD_API_KEYS": f"{API_KEY}, {API_KEY[::-1]}"})
    assert settings.standard_timezone == "America/Montreal" and settings.standard_api_keys == (API_KEY, API_KEY[::-1])
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(SettingsError, match="TRIPSEARCH_STANDARD_TIMEZONE must be an IANA time zone"):
        Settings(standard_timezone="Mars/Olympus_Mons")
    with pytest.raises(SettingsError, match="TRIPSEARCH_STANDARD_API_KEYS: every key must be at least 16 characters"):
        Settings(standard_api_keys=("short",))


@pytest.mark.parametrize("module", ["api.routes.standard_search", "api.routes.standard_responses"])
def test_doctests(module: str) -> None:
    # pytest collects doctests under tripsearch/ only; these modules' examples run here
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- random queries over the fixture trips ------------------------------------------------


def _route(trip: dict[str, Any]) -> list[tuple[float, float]]:
    return [(lat, lon) for lon, lat in trip["route"]["coordinates"]]


def _random_query(rng: np.random.Generator) -> dict[str, Any]:
    """Return standard parameters near a random fixture trip (its route's points, about its departure), or far from any."""
    trip = TRIPS[int(rng.integers(len(TRIPS)))]
    route = _route(trip)
    i = int(rng.integers(0, max(1, len(route) // 2)))
    j = int(rng.integers(len(route) // 2, len(route)))
    jitter = rng.normal(0.0, 0.002, size=4)
    start, end = (dt.datetime.fromisoformat(trip["stops"][k]["time"]).replace(tzinfo=None) for k in (0, -1))
    about_at_i = start + (end - start) * (i / len(route))  # roughly when the trip passes route[i]
    wall = about_at_i + dt.timedelta(seconds=int(rng.integers(-1800, 1800)))
    params: dict[str, Any] = {
        "departureLat": round(route[i][0] + jitter[0], 5),
        "departureLng": round(route[i][1] + jitter[1], 5),
        "arrivalLat": round(route[j][0] + jitter[2], 5),
        "arrivalLng": round(route[j][1] + jitter[3], 5),
        "departureDate": int(wall.replace(tzinfo=PARIS).timestamp()),
    }
    if rng.random() < 0.15:  # nowhere near a trip: the empty answer
        params["departureLat"], params["arrivalLat"] = -60.0 + rng.random(), -61.0 + rng.random()
    for name, choices in (("timeDelta", [0, 300, 900, 3600, 7200, 86400]), ("departureRadius", [0.5, 1.0, 3.0, 10.0, 30.0]), ("arrivalRadius", [0.5, 1.0, 3.0, 10.0, 30.0]), ("count", [0, 1, 3, 10, 1000])):
        if rng.random() < 0.6:
            params[name] = choices[int(rng.integers(len(choices)))]
    return params


def _search_pages(http: httpx.Client, params: dict[str, str]) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        page = http.get("/v1/search", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        data = page.json()
        yield from data["trips"]
        cursor = data["next_cursor"]
        if cursor is None:
            return


def expected_journeys(http: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the /v1/search hits the standard's window selects: each day the window touches, whole, then cut to the second."""
    delta = dt.timedelta(seconds=params.get("timeDelta", 900))
    centre = dt.datetime.fromtimestamp(params["departureDate"], PARIS).replace(tzinfo=None)
    hits: dict[str, tuple[dt.timedelta, dt.datetime, dict[str, Any]]] = {}
    day = (centre - delta).date()
    while day <= (centre + delta).date():
        query = {
            "from": f"{params['departureLat']},{params['departureLng']}",
            "to": f"{params['arrivalLat']},{params['arrivalLng']}",
            "date": day.isoformat(),
            "from_radius_km": str(params.get("departureRadius", 1.0)),
            "to_radius_km": str(params.get("arrivalRadius", 1.0)),
            "sort": "departure",
            "limit": "100",
            "facets": "",
        }
        for hit in _search_pages(http, query):
            wall = dt.datetime.fromisoformat(hit["pickup"]["time"]).replace(tzinfo=None)
            if abs(wall - centre) <= delta:
                hits[journey_id(hit)] = (abs(wall - centre), wall, hit)
        day += dt.timedelta(days=1)
    ranked = [hit for _, _, hit in sorted(hits.values(), key=lambda item: (item[0], item[1], item[2]["id"], item[2].get("occurrence", "")))]
    return ranked[: params.get("count", 1000)]


def journey_id(hit: dict[str, Any]) -> str:
    """Return the standard journey id of a /v1/search hit: the trip id, with ``/date`` for a regular trip's occurrence."""
    return f"{hit['id']}/{hit['occurrence']}" if "occurrence" in hit else str(hit["id"])


def decode_polyline(text: str) -> list[tuple[float, float]]:
    points, values, shift, result = [], [], 0, 0
    for char in text:
        byte = ord(char) - 63
        result |= (byte & 0x1F) << shift
        shift += 5
        if byte < 0x20:
            values.append(~(result >> 1) if result & 1 else result >> 1)
            shift = result = 0
    lat = lon = 0
    for dlat, dlon in zip(values[::2], values[1::2]):
        lat, lon = lat + dlat, lon + dlon
        points.append((lat / 1e5, lon / 1e5))
    return points


def check_journey(journey: dict[str, Any], hit: dict[str, Any], base_url: str) -> None:
    """Check a DriverJourney against the /v1/search hit it stands for."""
    trip = hit["trip"]
    pickup_at, dropoff_at = (dt.datetime.fromisoformat(hit[end]["time"]) for end in ("pickup", "dropoff"))
    assert journey["id"] == journey_id(hit) and journey["type"] == "PLANNED"
    assert (journey["passengerPickupLat"], journey["passengerPickupLng"]) == (hit["pickup"]["lat"], hit["pickup"]["lon"])
    assert (journey["passengerDropLat"], journey["passengerDropLng"]) == (hit["dropoff"]["lat"], hit["dropoff"]["lon"])
    assert journey["passengerPickupDate"] == int(pickup_at.timestamp())
    assert journey["driverDepartureDate"] == int(dt.datetime.fromisoformat(trip["departure_time"]).timestamp())
    assert journey["duration"] == int((dropoff_at - pickup_at).total_seconds())
    assert journey["availableSeats"] == trip["seats_available"]
    assert journey["price"] == {"type": "PAYING" if trip["price"]["amount"] > 0 else "FREE", "amount": trip["price"]["amount"], "currency": trip["price"]["currency"]}
    assert journey["driver"]["alias"] == trip["driver"]["id"] and journey["driver"]["operator"] == journey["operator"] == "127.0.0.1"
    if trip["driver"].get("rating") is not None:
        assert journey["driver"]["grade"] == min(5, max(1, round(trip["driver"]["rating"])))
    line = decode_polyline(journey["journeyPolyline"])
    assert great_circle_km(*line[0], hit["pickup"]["lat"], hit["pickup"]["lon"]) < 0.01
    assert great_circle_km(*line[-1], hit["dropoff"]["lat"], hit["dropoff"]["lon"]) < 0.01
    along = sum(float(great_circle_km(*a, *b)) for a, b in zip(line, line[1:]))
    assert abs(along * 1000 - journey["distance"]) <= 2 + 0.002 * journey["distance"]
    assert journey["webUrl"].startswith(base_url.rstrip("/") + "/?") and f"date={pickup_at.date().isoformat()}" in journey["webUrl"]


def test_random_queries_answer_what_v1_search_gives_and_validate(api: Server, http: httpx.Client, spec: dict[str, Any]) -> None:
    rng = np.random.default_rng(22)
    answered = empty = 0
    for _ in range(150):
        params = _random_query(rng)
        response = http.get(f"{PREFIX}/driver_journeys", params=params)
        journeys = check_answer(spec, "/driver_journeys", response)
        expected = expected_journeys(http, params)
        assert [j["id"] for j in journeys] == [journey_id(h) for h in expected], params
        for journey, hit in zip(journeys, expected):
            check_journey(journey, hit, api.url)
        answered += bool(journeys)
        empty += not journeys
    assert answered >= 40 and empty >= 20, (answered, empty)  # both kinds of answer were seen


def test_the_validation_catches_an_answer_that_breaks_the_spec(http: httpx.Client, spec: dict[str, Any]) -> None:
    params, _ = _first_hit(http, PUBLISHED[0])
    journey = check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params=params))[0]
    schema = spec["paths"]["/driver_journeys"]["get"]["responses"][200]["content"]["application/json"]["schema"]
    assert spec_errors(spec, schema, [journey]) == []
    broken = [
        {k: v for k, v in journey.items() if k != "operator"},
        {**journey, "driver": {**journey["driver"], "grade": 0}},
        {**journey, "price": {**journey["price"], "type": "CHEAP"}},
        {**journey, "distance": 12.5},
        {**journey, "type": "SOMETIMES"},
    ]
    for bad in broken:
        assert spec_errors(spec, schema, [bad]), bad
    regular = spec["paths"]["/driver_regular_trips"]["get"]["responses"][200]["content"]["application/json"]["schema"]
    trip = {k: v for k, v in journey.items() if k in ("operator", "passengerPickupLat", "passengerPickupLng", "passengerDropLat", "passengerDropLng", "duration", "driver")}
    assert spec_errors(spec, regular, [{**trip, "schedules": [{"passengerPickupDay": "MON", "passengerPickupTimeOfDay": "07:30:00"}]}]) == []
    assert spec_errors(spec, regular, [{**trip, "schedules": [{"passengerPickupDay": "MON", "passengerPickupTimeOfDay": "7h30"}]}])


def _first_hit(http: httpx.Client, trip: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return standard parameters from a trip's first stop to its last at its departure time, and the trip's /v1/search hit."""
    first, last = trip["stops"][0], trip["stops"][-1]
    wall = dt.datetime.fromisoformat(trip["departure_time"]).replace(tzinfo=None)
    params = {"departureLat": first["lat"], "departureLng": first["lon"], "arrivalLat": last["lat"], "arrivalLng": last["lon"], "departureDate": int(wall.replace(tzinfo=PARIS).timestamp())}
    hits = [h for h in _search_pages(http, {"from": f"{first['lat']},{first['lon']}", "to": f"{last['lat']},{last['lon']}", "date": wall.date().isoformat(), "from_radius_km": "1", "to_radius_km": "1", "facets": "", "limit": "100"}) if h["id"] == trip["id"]]
    return params, hits[0]


PUBLISHED = [t for t in TRIPS if t["status"] == "published" and t["seats_available"] > 0]


def test_defaults_are_900_seconds_and_1_km(http: httpx.Client) -> None:
    params, _ = _first_hit(http, PUBLISHED[0])
    bare = http.get(f"{PREFIX}/driver_journeys", params=params).json()
    explicit = http.get(f"{PREFIX}/driver_journeys", params={**params, "timeDelta": 900, "departureRadius": 1.0, "arrivalRadius": 1.0}).json()
    assert bare == explicit and PUBLISHED[0]["id"] in [j["id"] for j in bare]


def test_units_time_delta_in_seconds_and_radii_in_km(http: httpx.Client) -> None:
    trip = PUBLISHED[1]
    params, hit = _first_hit(http, trip)

    def ids(**more: Any) -> list[str]:
        return [j["id"] for j in http.get(f"{PREFIX}/driver_journeys", params={**params, **more}).json()]

    # asked 100 s after the pickup (on the Paris wall clock): in with timeDelta=100, out with 99
    pickup_wall = dt.datetime.fromisoformat(hit["pickup"]["time"]).replace(tzinfo=None)
    later = int((pickup_wall + dt.timedelta(seconds=100)).replace(tzinfo=PARIS).timestamp())
    assert trip["id"] in ids(departureDate=later, timeDelta=100) and trip["id"] not in ids(departureDate=later, timeDelta=99)
    # from a point about 500 m north, the pickup is `distance` km away: in with 10 m more radius, out with 10 m less
    north = params["departureLat"] + 0.0045
    moved = http.get("/v1/search", params={"from": f"{north},{params['departureLng']}", "to": f"{params['arrivalLat']},{params['arrivalLng']}", "date": hit["pickup"]["time"][:10], "facets": "", "limit": "100"}).json()
    distance = next(h["pickup"]["distance_km"] for h in moved["trips"] if h["id"] == trip["id"])
    assert distance > 0.1
    assert trip["id"] in ids(departureLat=north, departureRadius=distance + 0.01) and trip["id"] not in ids(departureLat=north, departureRadius=distance - 0.01)


def test_a_window_across_midnight_finds_the_next_days_trips(http: httpx.Client, spec: dict[str, Any]) -> None:
    trip = next(t for t in PUBLISHED if dt.datetime.fromisoformat(t["departure_time"]).time() < dt.time(0, 30))
    params, hit = _first_hit(http, trip)
    pickup_wall = dt.datetime.fromisoformat(hit["pickup"]["time"]).replace(tzinfo=None)
    evening = pickup_wall - dt.timedelta(minutes=40)  # the day before, on the Paris wall clock
    assert evening.date() < pickup_wall.date()
    asked = {**params, "departureDate": int(evening.replace(tzinfo=PARIS).timestamp())}
    for delta, found in ((2400, True), (2399, False)):
        journeys = check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params={**asked, "timeDelta": delta}))
        assert (trip["id"] in [j["id"] for j in journeys]) is found, delta


def test_count_cuts_the_closest_in_time_first(http: httpx.Client, spec: dict[str, Any]) -> None:
    # London to Reading, where the fixtures have several trips a day
    wide = {"departureLat": 51.5074, "departureLng": -0.1278, "arrivalLat": 51.4543, "arrivalLng": -0.9781, "departureDate": _unix("2026-12-13T12:00:00"), "departureRadius": 20, "arrivalRadius": 20, "timeDelta": 86400}
    every = check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params=wide))
    assert len(every) >= 3
    assert [j["id"] for j in check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params={**wide, "count": 2}))] == [j["id"] for j in every[:2]]
    assert check_answer(spec, "/driver_journeys", http.get(f"{PREFIX}/driver_journeys", params={**wide, "count": 0})) == []


def test_regular_trips_are_empty_where_none_run(http: httpx.Client, spec: dict[str, Any]) -> None:
    params: dict[str, Any] = {"departureLat": 48.85, "departureLng": 2.35, "arrivalLat": 45.76, "arrivalLng": 4.83, "departureTimeOfDay": "07:30:00"}
    variants: list[dict[str, Any]] = [{}, {"departureWeekdays": "MON,FRI", "minDepartureDate": 1796000000, "maxDepartureDate": 1797000000, "timeDelta": 600, "count": 5}]
    for more in variants:
        assert check_answer(spec, "/driver_regular_trips", http.get(f"{PREFIX}/driver_regular_trips", params={**params, **more})) == []


def test_status(http: httpx.Client, spec: dict[str, Any]) -> None:
    response = http.get(f"{PREFIX}/status")
    assert response.status_code == 200
    check_answer(spec, "/status", response)


# -- errors ----------------------------------------------------------------------------------

JOURNEY = {"departureLat": "48.85", "departureLng": "2.35", "arrivalLat": "45.76", "arrivalLng": "4.83", "departureDate": "1796900000"}
REGULAR = {**{k: v for k, v in JOURNEY.items() if k != "departureDate"}, "departureTimeOfDay": "07:30:00"}
BAD = [
    ("/driver_journeys", {**JOURNEY, "departureLat": None}, "departureLat", "is required"),
    ("/driver_journeys", {**JOURNEY, "departureLat": "north"}, "departureLat", "must be a number"),
    ("/driver_journeys", {**JOURNEY, "arrivalLng": "181"}, "arrivalLng", "from -180 to 180"),
    ("/driver_journeys", {**JOURNEY, "departureDate": None}, "departureDate", "is required"),
    ("/driver_journeys", {**JOURNEY, "departureDate": "1796900000.5"}, "departureDate", "must be an integer"),
    ("/driver_journeys", {**JOURNEY, "departureDate": "2026-12-10"}, "departureDate", "must be an integer"),
    ("/driver_journeys", {**JOURNEY, "departureDate": "99999999999999"}, "departureDate", "Unix seconds"),
    ("/driver_journeys", {**JOURNEY, "timeDelta": "-1"}, "timeDelta", "from 0 to 86400"),
    ("/driver_journeys", {**JOURNEY, "timeDelta": "15m"}, "timeDelta", "must be an integer (seconds)"),
    ("/driver_journeys", {**JOURNEY, "departureRadius": "101"}, "departureRadius", "from 0 to 100 (km)"),
    ("/driver_journeys", {**JOURNEY, "arrivalRadius": "nan"}, "arrivalRadius", "from 0 to 100"),
    ("/driver_journeys", {**JOURNEY, "count": "1001"}, "count", "from 0 to 1000"),
    ("/driver_journeys", [*JOURNEY.items(), ("departureLat", "1")], "departureLat", "more than once"),
    ("/driver_regular_trips", {**REGULAR, "departureTimeOfDay": None}, "departureTimeOfDay", "is required"),
    ("/driver_regular_trips", {**REGULAR, "departureTimeOfDay": "7:30"}, "departureTimeOfDay", "partial-time"),
    ("/driver_regular_trips", {**REGULAR, "departureTimeOfDay": "24:00:00"}, "departureTimeOfDay", "partial-time"),
    ("/driver_regular_trips", {**REGULAR, "departureWeekdays": "MON,FUNDAY"}, "departureWeekdays", "'FUNDAY'"),
    ("/driver_regular_trips", {**REGULAR, "minDepartureDate": "1797000000", "maxDepartureDate": "1796000000"}, "maxDepartureDate", "before minDepartureDate"),
    ("/driver_regular_trips", {**REGULAR, "count": "-1"}, "count", "from 0 to 1000"),
]


@pytest.mark.parametrize(("route", "params", "name", "reason"), BAD, ids=[f"{r}-{n}-{why}" for r, _, n, why in BAD])
def test_bad_parameters_are_400_in_the_standards_shape(http: httpx.Client, spec: dict[str, Any], route: str, params: Any, name: str, reason: str) -> None:
    items = params.items() if isinstance(params, dict) else params
    response = http.get(PREFIX + route, params=[(k, v) for k, v in items if v is not None])
    assert response.status_code == 400
    body = check_answer(spec, route, response)
    assert body["error"].startswith(f"{name}: ") and reason in body["error"] and body["field"] == name


def test_passenger_routes_are_501_with_a_clear_message(http: httpx.Client) -> None:
    for route in ("/passenger_journeys", "/passenger_regular_trips"):
        response = http.get(PREFIX + route, params=JOURNEY)
        assert response.status_code == 501 and response.headers["content-type"] == "application/problem+json"
        assert "driver offers only" in response.json()["error"]


def test_other_routes_keep_plain_problems(http: httpx.Client) -> None:
    response = http.get("/v1/search", params={"from": "x"})
    assert response.status_code == 400 and "error" not in response.json()
    missing = http.get(f"{PREFIX}/nothing_here")
    assert missing.status_code == 404 and missing.json()["error"].startswith("no such endpoint")


@pytest.mark.anyio
async def test_an_api_key_setting_closes_the_search_routes_with_401(in_process: InProcess, spec: dict[str, Any]) -> None:
    async with in_process(standard_api_keys=(API_KEY,), standard_operator="trips.example.org", standard_web_url="https://trips.example.org/search") as client:
        for headers in ({}, {"X-API-Key": "not-the-key-0123456789"}):
            response = await client.get(f"{PREFIX}/driver_journeys", params=JOURNEY, headers=headers)
            assert response.status_code == 401 and "X-API-Key" in response.json()["error"]
            check_answer(spec, "/driver_journeys", response)
        assert (await client.get(f"{PREFIX}/status")).status_code == 200  # the spec lists no 401 for /status
        allowed = await client.get(f"{PREFIX}/driver_journeys", params=JOURNEY, headers={"X-API-Key": API_KEY})
        assert check_answer(spec, "/driver_journeys", allowed) == []
        trip = PUBLISHED[0]
        first, last = trip["stops"][0], trip["stops"][-1]
        at = int(dt.datetime.fromisoformat(trip["departure_time"]).replace(tzinfo=None).replace(tzinfo=PARIS).timestamp())
        found = await client.get(f"{PREFIX}/driver_journeys", params={"departureLat": first["lat"], "departureLng": first["lon"], "arrivalLat": last["lat"], "arrivalLng": last["lon"], "departureDate": at}, headers={"X-API-Key": API_KEY})
        journey = next(j for j in check_answer(spec, "/driver_journeys", found) if j["id"] == trip["id"])
        assert journey["operator"] == journey["driver"]["operator"] == "trips.example.org"
        assert journey["webUrl"].startswith("https://trips.example.org/search/?")


@pytest.mark.anyio
async def test_search_that_is_not_public_closes_the_standard_routes_without_keys(in_process: InProcess, spec: dict[str, Any]) -> None:
    async with in_process(public_search=False, wait_ready=False) as client:
        response = await client.get(f"{PREFIX}/driver_journeys", params=JOURNEY)
        assert response.status_code == 401 and "TRIPSEARCH_STANDARD_API_KEYS" in response.json()["error"]
        check_answer(spec, "/driver_journeys", response)


class _FailingSearch:
    """The fixture engine, whose search fails as no backend should (the fault a 500 answers)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def search(self, query: Any) -> Any:
        raise RuntimeError("secret internals /srv/trips.sqlite")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.mark.anyio
async def test_an_unexpected_failure_is_a_500_in_the_standards_shape(in_process: InProcess, spec: dict[str, Any]) -> None:
    async with in_process(opener=lambda target, **options: _FailingSearch(tripsearch.open(target, **options))) as client:
        response = await client.get(f"{PREFIX}/driver_journeys", params=JOURNEY)
        assert response.status_code == 500 and "secret" not in response.text
        check_answer(spec, "/driver_journeys", response)


@pytest.mark.anyio
async def test_loading_is_a_503_with_retry_after(in_process: InProcess, spec: dict[str, Any]) -> None:
    def never_opens(target: str, **options: Any) -> Any:
        raise OSError("the disk is not mounted yet")

    async with in_process(opener=never_opens, wait_ready=False) as client:
        for route, params in (("/driver_journeys", JOURNEY), ("/status", {})):
            response = await client.get(PREFIX + route, params=params)
            assert response.status_code == 503 and response.headers["retry-after"]
            check_answer(spec, route, response)


# -- the Python client ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_clients_call_the_standard_routes(api: Server, http: httpx.Client) -> None:
    params, _ = _first_hit(http, PUBLISHED[0])
    direct = http.get(f"{PREFIX}/driver_journeys", params={**params, "timeDelta": 1800, "count": 5}).json()
    departure, arrival = (params["departureLat"], params["departureLng"]), (params["arrivalLat"], params["arrivalLng"])
    when = dt.datetime.fromtimestamp(params["departureDate"], PARIS)
    with TripSearchClient(api.url) as client:
        assert client.driver_journeys(departure, arrival, params["departureDate"], time_delta=1800, count=5) == direct
        assert client.driver_journeys(departure, arrival, when, time_delta=1800, count=5) == direct
        assert client.driver_regular_trips(departure, arrival, dt.time(7, 30), departure_weekdays=["MON", "TUE"]) == []
        with pytest.raises(InvalidQuery) as bad:
            client.driver_journeys(departure, arrival, params["departureDate"], time_delta=-5)
        assert bad.value.field == "timeDelta"
    async with AsyncTripSearchClient(api.url) as aclient:
        assert await aclient.driver_journeys(departure, arrival, params["departureDate"], time_delta=1800, count=5) == direct
        assert await aclient.driver_regular_trips(departure, arrival, "07:30:00") == []
