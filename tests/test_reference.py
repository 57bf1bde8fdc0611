"""The engine against the brute-force reference, on randomized awkward data: results, totals, order, pages, facets."""

from __future__ import annotations

import math
import zlib
from typing import Any

import pytest

from tests import reference
from tests.geometry import REGIONS, dst_trips, random_queries, random_trips, regular_trips, time_queries

QUERIES_PER_REGION = 400
TIME_QUERIES = 200  # per data set and backend: 500 each ran exact too; 200 keeps the CI time down
REGULAR_QUERIES = 600  # per kind of query and backend: with regular trips, across daylight-saving changes and exception dates


def latest_versions(trips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for t in trips:
        if t["id"] not in best or t["version"] > best[t["id"]]["version"]:
            best[t["id"]] = t
    return list(best.values())


def all_pages(engine, q: dict[str, Any]) -> tuple[list[Any], int]:
    hits, cursor, total = [], None, None
    for _ in range(1000):
        page = engine.search({**q, "facets": [], **({"cursor": cursor} if cursor else {})})
        total = page.total if total is None else total
        assert page.total == total
        hits.extend(page.trips)
        cursor = page.next_cursor
        if cursor is None:
            return hits, total
    raise AssertionError("pagination did not end")


def engine_facets(result) -> dict[str, Any]:
    f = result.facets
    return {
        "departure_hour": [b["count"] for b in f["departure_hour"]],
        "time_of_day": {b["key"]: b["count"] for b in f["time_of_day"]},
        "price": {
            c["currency"]: {"count": c["count"], "min": c["min"], "max": c["max"], "avg": c["avg"], "buckets": {round(b["from"] / f["price"]["interval"]): b["count"] for b in c["buckets"]}}
            for c in f["price"]["currencies"]
        },
        "options": f["options"],
        "seats_available": {b["seats"]: b["count"] for b in f["seats_available"]},
        "driver_rating": [b["count"] for b in f["driver_rating"]],
        "dates": [b["count"] for b in f["dates"]],
        "pickup_cells": {c["cell"]: c["count"] for c in f["pickup_cells"]},
        "dropoff_cells": {c["cell"]: c["count"] for c in f["dropoff_cells"]},
    }


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_engine_equals_brute_force(make_engine, region: str) -> None:
    trips = random_trips(region, 150, seed=zlib.crc32(region.encode()) % 1000)
    engine = make_engine(trips)
    matched_queries = check_against_reference(engine, trips, random_queries(trips, QUERIES_PER_REGION, seed=7))
    # the queries are built around routes: most must match something, or the test proves little
    assert matched_queries > QUERIES_PER_REGION * 0.15


@pytest.mark.parametrize("trips", ["offsets", "dst"])
def test_engine_equals_brute_force_around_a_time(make_engine, trips: str) -> None:
    """Searches around a time (departure_time, time_delta, sort=time_distance) and over days, on far-from-UTC offsets and across DST changes."""
    data = random_trips("europe", 150, seed=5) if trips == "offsets" else dst_trips("europe", 150, seed=6)
    engine = make_engine(data)
    matched_queries = check_against_reference(engine, data, time_queries(data, TIME_QUERIES, seed=11))
    assert matched_queries > TIME_QUERIES * 0.1


@pytest.mark.parametrize("queries", ["days", "around_a_time"])
def test_engine_equals_brute_force_with_regular_trips(make_engine, queries: str) -> None:
    """Regular trips among punctual ones: every occurrence a result of its own, across daylight-saving changes and exception dates."""
    data = random_trips("europe", 60, seed=8) + regular_trips("europe", 60, seed=9)
    engine = make_engine(data)
    occurrences = [occ for t in latest_versions(data) for occ in reference.occurrence_docs(t)]
    made = random_queries(occurrences, REGULAR_QUERIES, seed=12) if queries == "days" else time_queries(occurrences, REGULAR_QUERIES, seed=13)
    matched_queries = check_against_reference(engine, data, made)
    assert matched_queries > REGULAR_QUERIES * 0.1


def hit_key(hit) -> str:
    """The index key of a hit: its trip id, and a regular trip's occurrence date."""
    return hit.id if hit.occurrence is None else f"{hit.id}\x1f{hit.occurrence}"


def check_against_reference(engine, trips: list[dict[str, Any]], queries: list[dict[str, Any]]) -> int:
    """Assert the engine answers every query as the reference does (results, totals, pages, facets); return how many matched something."""
    refs = [ref for t in latest_versions(trips) for ref in reference.make_refs(engine.get(t["id"]))]
    matched_queries = 0
    for q in queries:
        expected, evaluated = reference.search(refs, q)
        result = engine.search(q)
        assert result.total == len(expected), q
        got = [hit_key(h) for h in result.trips]
        assert got == [h.id for h in expected[: q["limit"]]], q
        for hit, ref in zip(result.trips, expected):
            assert math.isclose(hit.pickup.distance_km, ref.pickup_km, abs_tol=1e-3)
            assert math.isclose(hit.dropoff.distance_km, ref.dropoff_km, abs_tol=1e-3)
        assert engine_facets(result) == reference.facets(evaluated, q), q
        matched_queries += bool(expected)
        if len(expected) > q["limit"]:
            hits, total = all_pages(engine, q)
            assert [hit_key(h) for h in hits] == [h.id for h in expected]
    return matched_queries
