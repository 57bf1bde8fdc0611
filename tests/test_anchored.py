"""Searches between two anchors read the segment's anchor entries: the same answers as the postings path and the brute-force reference."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tripsearch
from tripsearch.core.columns import SECONDS_PER_DAY, STATUS_CODES, TripColumns
from tripsearch.core.kernels import closest_both_in_ranges
from tripsearch.index.anchors import ANCHOR_KM, Anchors, anchor_entries
from tripsearch.index.embedded import EmbeddedBackend
from tripsearch.index.embedded import segments as segment_format
from tripsearch.model import parse_trip
from tripsearch.occurrences import index_trips
from tripsearch.query.matching import Ends

from . import reference
from .geometry import REGIONS, destination, random_trips, regular_trips, vary_time
from .test_reference import check_against_reference, latest_versions
from .test_segments import full_result

RADII = [1.0, 2.0, 5.0, 7.5, 10.0, 10.0, 15.0, 20.0, 25.0, 25.0]


def anchors_near(trips: list[dict[str, Any]], n: int, seed: int) -> Anchors:
    """Return ``n`` anchors a few km from random points of the trips' routes (so that many trips pass two of them)."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        trip = trips[int(rng.integers(0, len(trips)))]
        coords = trip["route"]["coordinates"] if "route" in trip else [[s["lon"], s["lat"]] for s in trip["stops"]]
        lon, lat = coords[int(rng.integers(0, len(coords)))]
        lat, lon = destination(lat, lon, float(rng.uniform(0, 360)), float(rng.exponential(6)))
        points.append((round(lat, 5), round(lon, 5)))
    return Anchors.of(points)


def anchored_queries(trips: list[dict[str, Any]], anchors: Anchors, n: int, seed: int) -> list[dict[str, Any]]:
    """Return ``n`` searches between two anchors that some trip passes in that order, with random radii (up to ANCHOR_KM), dates, times, filters, sorts, limits, all facets."""
    rng = np.random.default_rng(seed)
    parsed, _ = index_trips([parse_trip(t) for t in trips])
    cols = TripColumns.from_trips(parsed)
    e = anchor_entries(cols, anchors)
    bounds = np.searchsorted(e.rows, np.arange(len(cols) + 1))
    pairs = [(i, t) for r in range(len(cols)) for i in range(bounds[r], bounds[r + 1]) for t in range(bounds[r], bounds[r + 1]) if i != t and e.along[i] < e.drop_along[t]]
    published = [(i, t) for i, t in pairs if cols.status[e.rows[i]] == STATUS_CODES["published"]]
    assert len(published) > 50, "the anchors are drawn near the routes: many trips must pass two"
    queries = []
    for _ in range(n):
        some = published if rng.random() < 0.9 else pairs
        i, t = some[int(rng.integers(0, len(some)))]
        local = int(e.pickup_time[i]) + int(cols.offset_s[e.rows[i]])
        day = dt.date(1970, 1, 1) + dt.timedelta(days=local // SECONDS_PER_DAY + int(rng.choice([0, 0, 0, 0, 0, 1, -1])))
        q: dict[str, Any] = {
            "from": [float(anchors.lat[e.places[i]]), float(anchors.lon[e.places[i]])],
            "to": [float(anchors.lat[e.places[t]]), float(anchors.lon[e.places[t]])],
            "date": day.isoformat(),
            "from_radius_km": radius(rng, float(e.km[i])),
            "to_radius_km": radius(rng, float(e.km[t])),
            "sort": str(rng.choice(["relevance", "departure", "price", "pickup_distance"])),
            "limit": int(rng.choice([1, 3, 7, 20, 100])),
            "facets": "all",
        }
        if rng.random() < 0.15:
            q["seats"] = int(rng.integers(1, 4))
        if rng.random() < 0.15:
            a, b = sorted(rng.integers(0, 24 * 60, size=2).tolist())
            if rng.random() < 0.2:
                a, b = b, a  # across midnight
            q["time_from"], q["time_to"] = f"{a // 60:02d}:{a % 60:02d}", f"{b // 60:02d}:{b % 60:02d}"
        if rng.random() < 0.15:
            q["max_price"] = round(float(rng.uniform(0, 80)), 2)
        if rng.random() < 0.1:
            q["options"] = ["instant_booking"]
        if rng.random() < 0.1:
            q["min_rating"] = float(rng.choice([3.0, 4.0, 4.5]))
        if rng.random() < 0.3:
            q = vary_time(q, rng, local % SECONDS_PER_DAY // 60)
        queries.append(q)
    return queries


def radius(rng: np.random.Generator, km: float) -> float:
    """Return a radius up to ANCHOR_KM: most often one the trip's entry is within, so that it matches."""
    if rng.random() < 0.7:
        return float(rng.choice([r for r in RADII if r >= km] + [float(rng.uniform(km, ANCHOR_KM))]))
    return float(rng.choice(RADII + [float(rng.uniform(0, ANCHOR_KM))]))


def open_engine(path: Path, anchors: Anchors, **options: Any) -> EmbeddedBackend:
    return EmbeddedBackend(path, refresh_interval=0, anchors=anchors, merge_min_rows=10**9, **options)


def with_delta(engine: EmbeddedBackend, trips: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Write after the segment: new versions (moved in time, price or seats), new trips, deletes; return the live trips."""
    rng = np.random.default_rng(seed)
    changed = [dict(t, version=t["version"] + 1, price={"amount": float(rng.integers(5, 60)), "currency": t["price"]["currency"]}, seats_available=0 if rng.random() < 0.2 else t["seats_available"]) for t in trips if rng.random() < 0.25]
    fresh = [dict(t, id=f"new-{t['id']}") for t in trips if rng.random() < 0.15]
    engine.upsert(changed + fresh, refresh=True)
    deleted = {t["id"] for t in trips if rng.random() < 0.05}
    engine.delete(sorted(deleted), refresh=True)
    assert engine.stats()["delta_rows"] > 10
    return [t for t in latest_versions(trips + changed + fresh) if t["id"] not in deleted]


@contextmanager
def segment_and_delta(path: Path, trips: list[dict[str, Any]], seed: int) -> Iterator[tuple[EmbeddedBackend, Anchors, list[dict[str, Any]]]]:
    """Yield an engine with ``trips`` in a segment and a delta after it (:func:`with_delta`), anchors near the trips' occurrences, and the live trips."""
    occurrences = [occ for t in trips for occ in reference.occurrence_docs(t)]
    anchors = anchors_near(occurrences, 30, seed=seed)
    engine = open_engine(path, anchors)
    try:
        engine.upsert(trips, refresh=True)
        engine.snapshot()
        yield engine, anchors, with_delta(engine, trips, seed=seed + 1)
    finally:
        engine.close()


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_searches_between_anchors_equal_the_reference_with_a_segment_and_a_delta(tmp_path: Path, region: str) -> None:
    """The segment's entries answer (the delta by its postings), exactly as the brute force; every page; the same after a merge."""
    trips = random_trips(region, 150, seed=zlib.crc32(region.encode()) % 1000)
    anchors = anchors_near(trips, 30, seed=1)
    engine = open_engine(tmp_path / "data", anchors)
    try:
        engine.upsert(trips, refresh=True)
        engine.snapshot()
        queries = anchored_queries(trips, anchors, 150, seed=2)
        assert check_against_reference(engine, trips, queries[:75]) > 20
        assert engine.stats()["anchored"] >= 75 and engine.stats()["anchor_entries"] > 0
        live = with_delta(engine, trips, seed=3)
        assert check_against_reference(engine, live, queries) > 40
        engine.snapshot()  # the merge copies the segment's entries and computes the delta's
        assert engine.stats()["delta_rows"] == 0
        assert check_against_reference(engine, live, queries[75:]) > 20
    finally:
        engine.close()


def test_searches_between_anchors_equal_the_reference_with_regular_trips(tmp_path: Path) -> None:
    trips = random_trips("europe", 60, seed=8) + regular_trips("europe", 60, seed=9)
    with segment_and_delta(tmp_path / "data", trips, seed=4) as (engine, anchors, live):
        assert check_against_reference(engine, live, anchored_queries(trips, anchors, 200, seed=6)) > 40


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_the_entries_answer_as_the_postings_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """The same engine with the anchor path and forced to the postings path: every page, total, facet and cursor, bit for bit (sort keys hold the distances)."""
    both: list[int] = []  # searches whose candidates came from the segment's entries and the delta's postings both
    concat = Ends.concat

    def counted(parts: list[Ends]) -> Ends:
        both.append(1)
        return concat(parts)

    monkeypatch.setattr(Ends, "concat", staticmethod(counted))
    trips = random_trips(region, 150, seed=21) + regular_trips(region, 30, seed=22)
    with segment_and_delta(tmp_path / "data", trips, seed=23) as (engine, anchors, _):
        queries = anchored_queries(trips, anchors, 200, seed=25)
        anchored = [full_result(engine, q) for q in queries]
        assert engine.stats()["anchored"] >= 200 and len(both) > 10
        engine.anchored = False
        before = engine.stats()["anchored"]
        assert [full_result(engine, q) for q in queries] == anchored
        assert engine.stats()["anchored"] == before
        assert sum(r[0][2] > 0 for r in anchored) > 50 and sum(len(r) > 1 for r in anchored) >= 2


@pytest.mark.parametrize("written", ["without anchors", "another anchor set"])
def test_a_segment_without_these_entries_is_searched_by_its_postings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str) -> None:
    """A segment written without entries (as an earlier version writes it) or for other anchors gives exact answers the postings way (but between its own anchors); the next merge writes this process's entries."""
    trips = random_trips("europe", 150, seed=31)
    anchors = anchors_near(trips, 30, seed=32)
    other = anchors_near(trips, 30, seed=33)
    queries = anchored_queries(trips, anchors, 120, seed=34)
    with monkeypatch.context() as patch:
        if written == "without anchors":
            patch.setattr(segment_format, "MAX_PLACES", -1)  # no anchor arrays, no "anchors" in the header
        first = open_engine(tmp_path / "data", other)
        first.upsert(trips, refresh=True)
        first.snapshot()
        first.close()
    engine = open_engine(tmp_path / "data", anchors, verify="open")
    try:
        assert (engine.stats()["anchor_entries"] > 0) == (written == "another anchor set")
        assert check_against_reference(engine, trips, queries) > 30
        assert engine.stats()["anchored"] == 0
        if written == "another anchor set":  # the segment's entries answer between its own anchors, whatever this process's set
            assert check_against_reference(engine, trips, anchored_queries(trips, other, 60, seed=36)) > 10
            assert engine.stats()["anchored"] >= 60
        before = engine.stats()["anchored"]
        live = with_delta(engine, trips, seed=35)
        engine.snapshot()  # a merge writes this set's entries for every row
        assert engine.stats()["anchor_entries"] > 0
        assert check_against_reference(engine, live, queries) > 20
        assert engine.stats()["anchored"] - before >= len(queries)  # and the pages after the first
    finally:
        engine.close()


def test_only_searches_between_two_anchors_within_their_radius_read_the_entries(tmp_path: Path) -> None:
    trips = random_trips("europe", 60, seed=41)
    anchors = anchors_near(trips, 10, seed=42)
    engine = open_engine(tmp_path / "data", anchors)
    try:
        engine.upsert(trips, refresh=True)
        engine.snapshot()
        a, b = [float(anchors.lat[0]), float(anchors.lon[0])], [float(anchors.lat[1]), float(anchors.lon[1])]
        base: dict[str, Any] = {"from": a, "to": b, "date": "2026-12-01"}
        for q in [dict(base, from_radius_km=25.5), dict(base, to_radius_km=30.0), dict(base, to=a), dict(base, to=[b[0] + 1e-5, b[1]])]:
            engine.search(q)
        assert engine.stats()["anchored"] == 0
        engine.search(dict(base, from_radius_km=25.0, to_radius_km=0.0))
        assert engine.stats()["anchored"] == 1
    finally:
        engine.close()


def test_a_search_joins_trips_that_pass_to_days_away_from_their_pickup(tmp_path: Path) -> None:
    """The ``to`` entries are read over the days a trip can reach: one that arrives days after its pickup, and a loop that passes ``to`` first a day before."""
    a, b = (45.0, 5.0), (45.3, 5.0)

    def trip(tid: str, points: list[tuple[float, float]], times: list[str]) -> dict[str, Any]:
        return {
            "id": tid, "version": 1, "departure_time": times[0],
            "stops": [{"name": f"stop {k}", "lat": lat, "lon": lon, "time": t} for k, ((lat, lon), t) in enumerate(zip(points, times))],
            "seats_total": 3, "seats_available": 2, "price": {"amount": 10.0}, "status": "published",
        }  # fmt: skip

    trips = [
        trip("slow", [a, b], ["2026-12-01T22:00:00+00:00", "2026-12-05T04:00:00+00:00"]),
        trip("loop", [b, a, b], ["2026-11-29T23:30:00+00:00", "2026-12-01T00:30:00+00:00", "2026-12-01T01:30:00+00:00"]),
        trip("other-day", [a, b], ["2026-12-02T08:00:00+00:00", "2026-12-02T09:00:00+00:00"]),
    ]
    engine = open_engine(tmp_path / "data", Anchors.of([a, b]))
    try:
        engine.upsert(trips, refresh=True)
        engine.snapshot()
        query = {"from": list(a), "to": list(b), "date": "2026-12-01", "from_radius_km": 5.0, "to_radius_km": 5.0, "limit": 20, "facets": []}
        assert sorted(h.id for h in engine.search(query).trips) == ["loop", "slow"]
        assert engine.stats()["anchored"] == 1
        dates = ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02", "2026-12-05"]
        assert check_against_reference(engine, trips, [dict(query, date=d, facets="all") for d in dates]) == 2
    finally:
        engine.close()


def test_the_metres_of_the_order_never_exceed_the_distance() -> None:
    """``anchor_order_m`` prefilters the radius: it must keep every entry within it, whatever the rounding."""
    from tripsearch.index.embedded.anchored import _metres_below

    rng = np.random.default_rng(7)
    km = np.concatenate([rng.uniform(0, ANCHOR_KM, 100_000), np.arange(0, 25_001) / 1000.0, np.nextafter(np.arange(1, 25_001) / 1000.0, 0.0), [0.0, ANCHOR_KM]])
    metres = _metres_below(km)
    assert (metres.astype(np.float64) <= km * 1000.0).all()
    assert (km * 1000.0 - metres < 2.0 + 1e-9).all()


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_the_entries_measured_on_the_parts_of_a_route_near_a_place_equal_those_of_the_whole_route(region: str) -> None:
    """anchor_entries measures a (route, place) pair only on the route's parts that may come within ANCHOR_KM: bit for bit what the whole route gives, places on the border included."""
    trips = random_trips(region, 120, seed=41) + regular_trips(region, 20, seed=42)
    parsed, _ = index_trips([parse_trip(t) for t in trips])
    cols = TripColumns.from_trips(parsed)
    rng = np.random.default_rng(43)
    close = anchors_near(trips, 60, seed=44)
    points = list(zip(close.lat.tolist(), close.lon.tolist()))
    for _ in range(60):  # around the border of ANCHOR_KM from a vertex
        trip = trips[int(rng.integers(0, len(trips)))]
        coords = trip["route"]["coordinates"] if "route" in trip else [[s["lon"], s["lat"]] for s in trip["stops"]]
        lon, lat = coords[int(rng.integers(0, len(coords)))]
        points.append(destination(lat, lon, float(rng.uniform(0, 360)), float(rng.uniform(ANCHOR_KM - 1, ANCHOR_KM + 1))))
    anchors = Anchors.of(points)
    got = anchor_entries(cols, anchors)
    rows = np.repeat(np.arange(len(cols), dtype=np.int64), len(anchors))
    places = np.tile(np.arange(len(anchors), dtype=np.int64), len(cols))
    whole = closest_both_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, cols.vert_start[rows], cols.vert_start[rows + 1] - 1, anchors.lat[places], anchors.lon[places], ANCHOR_KM)
    near = whole[0] <= ANCHOR_KM
    assert near.sum() > 500 and (np.abs(whole[0][near] - ANCHOR_KM) < 0.5).sum() > 5
    assert np.array_equal(got.rows, rows[near]) and np.array_equal(got.places, places[near])
    for name, want in zip(("km", "along", "pickup_lat", "pickup_lon", "drop_along", "dropoff_lat", "dropoff_lon"), whole):
        assert np.array_equal(getattr(got, name), want[near]), name
