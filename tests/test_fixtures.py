"""Tests of tripsearch.data.fixtures: determinism, the wire-format rules, plausibility.

The rules are checked here directly (not through the engine's validator), so
the generator is held to the contract even when the model changes.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import math
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from tripsearch.data.fixtures import MAX_DETOUR, MAX_TRIP_KM, MIN_TRIP_KM, corridor_trips, generate_ndjson, generate_trips, pair_share, write_ndjson
from tripsearch.data.places import load_places
from tripsearch.model import parse_trip

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
R = 6371.0088
START = dt.date(2026, 12, 1)
KEYS = [
    "id", "version", "departure_time", "stops", "route", "seats_total", "seats_available",
    "price", "options", "driver", "status",
]
OPTIONS = ["instant_booking", "pets", "smoking", "women_only", "max_two_back"]


def km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * R * math.asin(min(1.0, math.sqrt(h)))


def ndjson(n: int, seed: int, start: dt.date = START, days: int = 14) -> bytes:
    out = io.BytesIO()
    assert write_ndjson(generate_trips(n, seed, start, days), out) == n
    return out.getvalue()


@pytest.fixture(scope="module")
def trips() -> list[dict[str, Any]]:
    """Trips over winter, the spring DST switch and the autumn one."""
    return [
        *generate_trips(1200, 11, START, 30),
        *generate_trips(500, 12, dt.date(2026, 3, 24), 10),
        *generate_trips(500, 13, dt.date(2026, 10, 20), 10),
    ]


def test_same_seed_same_bytes() -> None:
    a = ndjson(300, 5)
    assert a == ndjson(300, 5)
    assert a.count(b"\n") == 300 and a.endswith(b"\n")
    assert a != ndjson(300, 6)
    assert a != ndjson(300, 5, days=7)


def test_text_stream_gets_the_same_lines() -> None:
    text = io.StringIO()
    assert write_ndjson(generate_trips(50, 3, START), text) == 50
    binary = io.BytesIO()
    write_ndjson(generate_trips(50, 3, START), binary)
    assert text.getvalue().encode() == binary.getvalue()


def test_degenerate_arguments() -> None:
    assert list(generate_trips(0, 1, START)) == []
    assert write_ndjson([], io.BytesIO()) == 0
    with pytest.raises(ValueError):
        generate_trips(-1, 1, START)
    with pytest.raises(ValueError):
        generate_trips(1, -1, START)
    with pytest.raises(ValueError):
        generate_trips(1, 1, START, days=0)


def check_trip(t: dict[str, Any], start: dt.date, days: int, id_prefix: str = "t-") -> None:
    """Assert every rule the engine validates, and the generator's own promises."""
    assert list(t) == KEYS
    assert isinstance(t["id"], str) and t["id"].startswith(id_prefix)
    assert isinstance(t["version"], int) and t["version"] >= 1
    stops = t["stops"]
    assert 2 <= len(stops) <= 5
    times = [dt.datetime.fromisoformat(s["time"]) for s in stops]
    dep = dt.datetime.fromisoformat(t["departure_time"])
    assert dep.tzinfo is not None and t["departure_time"] == stops[0]["time"]
    assert all(a <= b for a, b in zip(times, times[1:])), "times never decrease"
    assert all(x.utcoffset() == dep.utcoffset() for x in times), "stop times carry the departure's offset"
    assert start <= dep.date() < start + dt.timedelta(days=days)
    assert dep.second == 0 and dep.minute % 5 == 0
    for s in stops:
        assert list(s) == ["name", "lat", "lon", "time"]
        assert s["name"].strip()
        assert -90 <= s["lat"] <= 90 and -180 <= s["lon"] <= 180
        assert round(s["lat"], 5) == s["lat"] and round(s["lon"], 5) == s["lon"]

    route = t["route"]
    assert route["type"] == "LineString"
    coords = route["coordinates"]
    assert len(coords) >= 2
    assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in coords)
    assert all(round(lon, 5) == lon and round(lat, 5) == lat for lon, lat in coords)
    # GeoJSON order, exactly through the ends and through every stop, in order.
    assert coords[0] == [stops[0]["lon"], stops[0]["lat"]]
    assert coords[-1] == [stops[-1]["lon"], stops[-1]["lat"]]
    where = [coords.index([s["lon"], s["lat"]]) for s in stops]
    assert where == sorted(where) and where[0] == 0 and where[-1] == len(coords) - 1
    segments = [km(a[1], a[0], b[1], b[0]) for a, b in zip(coords, coords[1:])]
    assert max(segments) < 10.0
    assert min(segments) > 0.2

    direct = km(stops[0]["lat"], stops[0]["lon"], stops[-1]["lat"], stops[-1]["lon"])
    assert MIN_TRIP_KM - 0.5 <= direct <= MAX_TRIP_KM + 0.5
    via = sum(km(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in zip(stops, stops[1:]))
    assert via <= (1 + MAX_DETOUR) * direct + 0.5, "stopovers lie near the way"
    length = sum(segments)
    assert direct <= length <= 2.0 * direct
    # 65-100 km/h along the route, plus 10-20 minutes per stopover.
    hours = (times[-1] - times[0]).total_seconds() / 3600
    stopovers = len(stops) - 2
    assert length / 100 - 0.02 <= hours - stopovers * 10 / 60 + 0.01
    assert hours - stopovers * 20 / 60 <= length / 65 + 0.02

    assert 1 <= t["seats_total"] <= 4
    assert 0 <= t["seats_available"] <= t["seats_total"]
    assert t["status"] in ("published", "full", "cancelled")
    if t["status"] == "full":
        assert t["seats_available"] == 0
    if t["status"] == "published":
        assert t["seats_available"] >= 1
    price = t["price"]
    assert list(price) == ["amount", "currency"]
    assert price["amount"] >= 0 and round(price["amount"], 2) == price["amount"]
    assert len(price["currency"]) == 3 and price["currency"].isupper()
    assert list(t["options"]) == OPTIONS and all(isinstance(v, bool) for v in t["options"].values())
    driver = t["driver"]
    assert list(driver) == ["id", "rating", "verified"]
    assert driver["id"].startswith("u-")
    assert 1.0 <= driver["rating"] <= 5.0 and round(driver["rating"], 1) == driver["rating"]
    assert isinstance(driver["verified"], bool)


def test_every_trip_follows_the_rules(trips: list[dict[str, Any]]) -> None:
    for t in trips[:1200]:
        check_trip(t, START, 30)
    for t in trips[1200:1700]:
        check_trip(t, dt.date(2026, 3, 24), 10)
    for t in trips[1700:]:
        check_trip(t, dt.date(2026, 10, 20), 10)
    assert len({t["id"] for t in trips}) == len(trips)
    assert [t["id"] for t in trips[:3]] == ["t-11-0", "t-11-1", "t-11-2"]


def test_times_are_local_to_the_origin_and_dst_aware(trips: list[dict[str, Any]]) -> None:
    zones = {(p.name, round(p.lat, 5), round(p.lon, 5)): p.timezone for p in load_places()}
    offsets: collections.Counter[tuple[int, dt.timedelta | None]] = collections.Counter()
    for t in trips:
        first = t["stops"][0]
        dep = dt.datetime.fromisoformat(t["departure_time"])
        zone = ZoneInfo(zones[(first["name"], first["lat"], first["lon"])])
        assert dep.utcoffset() == dep.astimezone(zone).utcoffset()
        offsets[(dep.month, dep.utcoffset())] += 1
    # Central Europe is on +01:00 in winter and +02:00 in summer time.
    assert offsets[(12, dt.timedelta(hours=1))] > 0
    assert offsets[(3, dt.timedelta(hours=2))] > 0 and offsets[(3, dt.timedelta(hours=1))] > 0
    assert offsets[(10, dt.timedelta(hours=2))] > 0 and offsets[(10, dt.timedelta(hours=1))] > 0


def test_the_mix_is_plausible(trips: list[dict[str, Any]]) -> None:
    n = len(trips)
    stopovers = collections.Counter(len(t["stops"]) - 2 for t in trips)
    assert stopovers[0] > 0.4 * n and stopovers[1] > 0.1 * n and stopovers[2] > 0 and stopovers[3] > 0
    status = collections.Counter(t["status"] for t in trips)
    assert 0.02 < status["full"] / n < 0.11 and 0.005 < status["cancelled"] / n < 0.07
    assert any(t["version"] > 1 for t in trips)
    shares = {k: sum(t["options"][k] for t in trips) / n for k in OPTIONS}
    assert 0.5 < shares["instant_booking"] < 0.7 and 0.4 < shares["max_two_back"] < 0.6
    assert 0.1 < shares["pets"] < 0.3 and shares["smoking"] < 0.1 and shares["women_only"] < 0.1
    seats = collections.Counter(t["seats_total"] for t in trips)
    assert seats[3] + seats[4] > 0.7 * n
    ratings = [t["driver"]["rating"] for t in trips]
    assert sum(4.0 <= r <= 5.0 for r in ratings) > 0.85 * n
    drivers = collections.Counter(t["driver"]["id"] for t in trips)
    assert drivers.most_common(1)[0][1] > 1, "drivers repeat"
    currencies = collections.Counter(t["price"]["currency"] for t in trips)
    assert currencies.most_common(1)[0][0] == "EUR" and len(currencies) > 3
    overnight = sum(t["stops"][0]["time"][:10] != t["stops"][-1]["time"][:10] for t in trips)
    assert overnight > 0, "some trips cross midnight"
    hours = collections.Counter(int(t["departure_time"][11:13]) for t in trips)
    assert hours[8] + hours[17] > hours[2] + hours[3] + hours[4] + 50
    country = {(p.name, round(p.lat, 5), round(p.lon, 5)): p.country for p in load_places()}
    cross = sum(
        country[(t["stops"][0]["name"], t["stops"][0]["lat"], t["stops"][0]["lon"])]
        != country[(t["stops"][-1]["name"], t["stops"][-1]["lat"], t["stops"][-1]["lon"])]
        for t in trips
    )
    assert 0.02 * n < cross < 0.3 * n, "mostly domestic, some cross-border"


def test_other_markets() -> None:
    us = list(generate_trips(30, 1, START, 7, countries=["US"]))
    assert {t["price"]["currency"] for t in us} == {"USD"}
    for t in us:
        check_trip(t, START, 7)


def test_engine_accepts_the_trips(trips: list[dict[str, Any]]) -> None:
    for t in trips[:300]:
        parse_trip(orjson.dumps(t))


@pytest.mark.parametrize(("name", "n", "seed"), [("trips-1000.ndjson", 1000, 1), ("trips-200.ndjson", 200, 2)])
def test_ready_made_files_are_current(name: str, n: int, seed: int) -> None:
    path = ROOT / "fixtures" / name
    assert path.read_bytes() == ndjson(n, seed), f"regenerate {path} (see its generator arguments in this test)"


def corridor_ndjson(per_day: int, seed: int, days: int = 3, route_points: int = 200) -> bytes:
    out = io.BytesIO()
    write_ndjson(corridor_trips("Paris", "Lyon", per_day, START, days, seed, route_points=route_points), out)
    return out.getvalue()


def test_corridor_same_seed_same_bytes() -> None:
    a = corridor_ndjson(20, 3)
    assert a == corridor_ndjson(20, 3)
    assert a != corridor_ndjson(20, 4)
    assert a.count(b"\n") == 20 * 2 * 3


def test_corridor_counts_routes_and_rules() -> None:
    paris = next(p for p in load_places() if p.name == "Paris" and p.country == "FR")
    lyon = ("Lyon", 45.764, 4.8357)  # any (name, lat, lon) will do
    trips = list(corridor_trips(paris, lyon, 40, START, 4, seed=9))
    per_day_and_way = collections.Counter((t["departure_time"][:10], t["stops"][0]["name"]) for t in trips)
    assert per_day_and_way == {(str(START + dt.timedelta(days=d)), name): 40 for d in range(4) for name in ("Paris", "Lyon")}
    assert len({t["id"] for t in trips}) == len(trips)
    assert trips[0]["id"] == "paris-lyon-9-0" and trips[40]["id"] == "lyon-paris-9-0"
    ends = {(round(paris.lat, 5), round(paris.lon, 5)), (45.764, 4.8357)}
    for t in trips:
        check_trip(t, START, 4, id_prefix="paris-lyon-" if t["stops"][0]["name"] == "Paris" else "lyon-paris-")
        assert {(s["lat"], s["lon"]) for s in t["stops"]} == ends and t["version"] == 1
        parse_trip(orjson.dumps(t))
    points = [len(t["route"]["coordinates"]) for t in trips]
    assert 190 <= sum(points) / len(points) <= 210 and 150 <= min(points) and max(points) <= 250
    hours = collections.Counter(int(t["departure_time"][11:13]) for t in trips)
    assert hours[8] + hours[17] > hours[2] + hours[3] + hours[4], "the day's hour profile"
    assert collections.Counter(t["status"] for t in trips).most_common(1)[0][0] == "published"
    assert {t["price"]["currency"] for t in trips} == {"EUR"}


@pytest.mark.parametrize("route_points", [20, 1000])
def test_corridor_route_points(route_points: int) -> None:
    trips = list(corridor_trips("Lyon", "Marseille", 10, START, 1, seed=1, route_points=route_points))
    mean = sum(len(t["route"]["coordinates"]) for t in trips) / len(trips)
    assert 0.9 * route_points <= mean <= 1.1 * route_points


def test_corridor_bad_arguments() -> None:
    with pytest.raises(ValueError, match="too close"):
        corridor_trips("Paris", ("Paris centre", 48.8566, 2.3522), 1, START)
    with pytest.raises(ValueError, match="no city"):
        corridor_trips("Atlantis", "Lyon", 1, START)
    with pytest.raises(ValueError):
        corridor_trips("Paris", "Lyon", -1, START)
    with pytest.raises(ValueError):
        corridor_trips("Paris", "Lyon", 1, START, route_points=1)
    assert list(corridor_trips("Paris", "Lyon", 0, START)) == []


def test_chunked_ndjson_does_not_depend_on_the_number_of_processes() -> None:
    one = b"".join(generate_ndjson(230, 4, START, 5, chunk_trips=50, jobs=1))
    assert b"".join(generate_ndjson(230, 4, START, 5, chunk_trips=50, jobs=3)) == one
    # a caller with threads running gets spawned processes instead of forked ones: same bytes
    stop = threading.Event()
    waiter = threading.Thread(target=stop.wait)
    waiter.start()
    try:
        assert b"".join(generate_ndjson(230, 4, START, 5, chunk_trips=50, jobs=2)) == one
    finally:
        stop.set()
        waiter.join()
    lines = one.splitlines()
    assert len(lines) == 230 and [orjson.loads(line)["id"] for line in lines] == [f"t-4-{i}" for i in range(230)]
    assert b"".join(generate_ndjson(230, 5, START, 5, chunk_trips=50)) != one
    # chunks draw from their own seeds: the chunk size is part of what is drawn
    assert b"".join(generate_ndjson(230, 4, START, 5, chunk_trips=60)) != one
    for line in lines:
        check_trip(orjson.loads(line), START, 5, id_prefix="t-4-")
    assert list(generate_ndjson(0, 1, START)) == []
    with pytest.raises(ValueError):
        generate_ndjson(10, 1, START, popularity="uniform")
    with pytest.raises(ValueError):
        generate_ndjson(10, 1, START, jobs=0)


def test_network_popularity_puts_many_trips_on_big_city_pairs() -> None:
    """Paris-Lyon is a hot corridor at the network popularity: its share as drawn matches pair_share, far above gravity's."""
    network, gravity = pair_share("Paris", "Lyon"), pair_share("Paris", "Lyon", "gravity")
    assert network > 10 * gravity and network * 10_000_000 / 30 > 200, "hundreds a day at 10M trips over 30 days"
    trips = [orjson.loads(line) for chunk in generate_ndjson(12_000, 8, START, 30) for line in chunk.splitlines()]
    pairs = collections.Counter((t["stops"][0]["name"], t["stops"][-1]["name"]) for t in trips)
    expected = network * len(trips)
    assert 0.4 * expected <= pairs["Paris", "Lyon"] <= 2.0 * expected + 3, (pairs["Paris", "Lyon"], expected)
    # big pairs lead: the most common pairs join cities of a million people or more (urban area)
    top = [pair for pair, _ in pairs.most_common(5)]
    assert ("Paris", "Lyon") in pairs and sum(count for _, count in pairs.most_common(20)) > 0.02 * len(trips)
    assert any("Paris" in pair or "London" in pair or "Madrid" in pair for pair in top), top
    lengths = [km(t["stops"][0]["lat"], t["stops"][0]["lon"], t["stops"][-1]["lat"], t["stops"][-1]["lon"]) for t in trips]
    assert 250 < sum(lengths) / len(lengths) < 450, "a carpooling network's trips are a few hundred km long"


def test_commuter_trips_are_valid_regular_trips_on_weekday_mornings() -> None:
    from tripsearch.data.fixtures import commuter_trips
    from tripsearch.model import parse_trip
    from tripsearch.occurrences import occurrences

    start = dt.date(2027, 3, 22)  # over the spring daylight-saving change of 2027-03-28
    trips = list(commuter_trips(50, seed=3, start_date=start, days=14))
    assert trips == list(commuter_trips(50, seed=3, start_date=start, days=14))
    assert len({t["id"] for t in trips}) == 50
    for doc in trips:
        made = occurrences(parse_trip(doc))
        assert made, doc["id"]
        zone = ZoneInfo(doc["schedule"]["timezone"])
        for occ in made:
            local = occ.departure_time.astimezone(zone)
            assert start <= local.date() < start + dt.timedelta(days=14)
            assert local.weekday() < 6 and 6 <= local.hour <= 10, (doc["id"], local)
            assert local.strftime("%H:%M") == doc["schedule"]["times"].get(("MON", "TUE", "WED", "THU", "FRI", "SAT")[local.weekday()], local.strftime("%H:%M"))
