"""Property-based tests: out-of-order and duplicate events, and inputs that either work or fail clearly."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tripsearch
from tripsearch.errors import InvalidQuery, InvalidTrip, NotFound

from .test_engine import QUERY, paris_lyon

IDS = ["a", "b", "c", "d"]

# An event: (trip id, version, kind). Versions are unique per trip, as a producer numbers its events.
events = st.lists(
    st.tuples(st.sampled_from(IDS), st.integers(1, 40), st.sampled_from(["publish", "publish", "cancel", "full", "delete"])),
    min_size=1,
    max_size=30,
    unique_by=lambda e: (e[0], e[1]),
)


def expected_state(evts: list[tuple[str, int, str]]) -> dict[str, tuple[int, str]]:
    latest: dict[str, tuple[int, str]] = {}
    for tid, version, kind in evts:
        if tid not in latest or version > latest[tid][0]:
            latest[tid] = (version, kind)
    return latest


def event_trip(tid: str, version: int, kind: str) -> dict[str, Any]:
    status = {"publish": "published", "cancel": "cancelled", "full": "full"}[kind]
    return paris_lyon(tid, version=version, status=status, seats_available=0 if kind == "full" else 3)


def apply_events(engine: tripsearch.Backend, stream: list[tuple[str, int, str]], batch: int) -> None:
    for i in range(0, len(stream), batch):
        chunk = stream[i : i + batch]
        upserts = [event_trip(*e) for e in chunk if e[2] != "delete"]
        deletes = [(e[0], e[1]) for e in chunk if e[2] == "delete"]
        if upserts:
            engine.upsert(upserts)
        if deletes:
            engine.delete(deletes)
    engine.refresh()


def check_state(engine: tripsearch.Backend, evts: list[tuple[str, int, str]]) -> None:
    expected = expected_state(evts)
    for tid in IDS:
        if tid not in expected or expected[tid][1] == "delete":
            try:
                engine.get(tid)
            except NotFound:
                pass
            else:
                raise AssertionError(f"{tid} should be absent, latest event {expected.get(tid)}")
        else:
            doc = engine.get(tid)
            assert doc["version"] == expected[tid][0]
    searchable = sorted(tid for tid, (_, kind) in expected.items() if kind == "publish")
    assert sorted(h.id for h in engine.search({**QUERY, "limit": 100}).trips) == searchable


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evts=events, data=st.data())
def test_highest_version_wins_whatever_the_order(make_engine, evts: list[tuple[str, int, str]], data: st.DataObject) -> None:
    # the stream as a queue delivers it: shuffled, with duplicates, in batches of any size
    duplicated = evts + data.draw(st.lists(st.sampled_from(evts), max_size=10))
    stream = data.draw(st.permutations(duplicated))
    engine = make_engine()
    apply_events(engine, stream, data.draw(st.integers(1, 8)))
    check_state(engine, evts)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
query_fields = ["from", "to", "date", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "options", "min_rating", "sort", "limit", "cursor", "facets", "price_interval", "cell_resolution", "date_from", "date_to", "departure_time", "time_delta"]
plausible = {
    "from": st.sampled_from(["48.85,2.35", [48.85, 2.35], [90, 180], [-90, -180], [89.9999, 179.9999], "0,0"]),
    "to": st.sampled_from(["45.76,4.84", [45.76, 4.84], [-89.9, -179.9], [0.0, 180.0]]),
    "date": st.sampled_from(["2026-12-01", "1970-01-02", "2149-12-30", "9999-12-31", "2026-02-29", "2024-02-29"]),
    "from_radius_km": st.sampled_from([0, 0.0, 100, 100.0001, -1, 1e308]),
    "limit": st.sampled_from([1, 100, 101, 10**9, 0]),
    "facets": st.sampled_from(["all", [], ["dates"], "dates,price", ["nope"]]),
    "options": st.sampled_from(["pets", ["pets", "smoking"], [], "pets,,", ["💥"]]),
    "date_from": st.sampled_from(["2026-11-28", "2026-12-01", "1970-01-02", "2149-12-30", "2026-12-09", None]),
    "date_to": st.sampled_from(["2026-12-01", "2026-12-07", "2026-12-08", "2149-12-30", "2026-11-30", ""]),
    "departure_time": st.sampled_from(["00:00", "23:59", "7:05", "24:00", "12:60", None]),
    "time_delta": st.sampled_from([0, 900, "900", 43200, 43201, -1, 1.5, None]),
    "sort": st.sampled_from(["time_distance", "departure", "nope"]),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_query_works_or_fails_clearly(make_engine, data: st.DataObject) -> None:
    engine = make_engine([paris_lyon()])
    query: dict[str, Any] = dict(QUERY)
    for name in data.draw(st.lists(st.sampled_from(query_fields + ["bogus"]), max_size=5, unique=True)):
        query[name] = data.draw(plausible.get(name, json_values))
    try:
        result = engine.search(query)
    except InvalidQuery as exc:
        assert exc.field is not None and exc.reason
    else:
        assert result.total >= len(result.trips)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_trip_is_stored_or_rejected_clearly(data: st.DataObject) -> None:
    trip = paris_lyon()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(["id", "version", "departure_time", "stops", "seats_total", "seats_available", "price", "options", "driver", "status", "route", "stops.0.lat", "stops.1.time", "stops.2.lon", "price.amount", "extra"]))
        value = data.draw(json_values | st.sampled_from([90.0000001, -180.0, 1e308, "2026-12-01T08:30:00+14:00", "ünïcødé 🚗" * 30, [], {}]))
        target = trip
        parts = path.split(".")
        try:
            for part in parts[:-1]:
                target = target[int(part)] if part.isdigit() else target[part]
            target[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced the container this path goes through
    for form in (copy.deepcopy(trip), orjson.dumps(trip, option=orjson.OPT_NON_STR_KEYS) if _dumpable(trip) else None):
        if form is None:
            continue
        try:
            tripsearch.parse_trip(form)
        except InvalidTrip as exc:
            assert exc.reason


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def test_broken_ndjson_lines_are_rejected_and_good_ones_kept(make_engine) -> None:
    engine = make_engine()
    deep = b"[" * 100_000 + b"]" * 100_000
    lines = [b"", b"{", b"null", b"[]", b'"a string"', deep, b'{"id": "\xff\xfe"}', orjson.dumps(paris_lyon("ok"))]
    report = engine.upsert(lines, refresh=True)
    assert [i.result for i in report.items] == ["rejected"] * 7 + ["stored"]
    assert all(i.reason for i in report.items[:7])
    assert engine.search(QUERY).total == 1
