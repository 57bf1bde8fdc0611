"""The engine contract: versions, deletes, rejects, get, pagination under writes, refresh across processes, snapshots."""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import logging
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest

import tripsearch
from tripsearch.errors import InvalidQuery, NotFound
from tripsearch.query.model import DEFAULT_TIME_DELTA, parse_query


def paris_lyon(tid: str = "t-1", version: int = 1, **changes: Any) -> dict[str, Any]:
    trip: dict[str, Any] = {
        "id": tid,
        "version": version,
        "departure_time": "2026-12-01T08:30:00+01:00",
        "stops": [
            {"name": "Paris", "lat": 48.8566, "lon": 2.3522, "time": "2026-12-01T08:30:00+01:00"},
            {"name": "Dijon", "lat": 47.322, "lon": 5.041, "time": "2026-12-01T11:20:00+01:00"},
            {"name": "Lyon", "lat": 45.764, "lon": 4.8357, "time": "2026-12-01T13:10:00+01:00"},
        ],
        "seats_total": 4,
        "seats_available": 3,
        "price": {"amount": 25.5, "currency": "EUR"},
        "options": {"instant_booking": True, "pets": False, "smoking": False, "women_only": False, "max_two_back": True},
        "driver": {"id": "u-9", "rating": 4.8, "verified": True},
        "status": "published",
    }
    trip.update(changes)
    return trip


QUERY = {"from": [48.85, 2.35], "to": [45.76, 4.84], "date": "2026-12-01"}


def ids(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.id for h in result.trips]


def test_search_reports_pickup_dropoff_and_times(make_engine) -> None:
    engine = make_engine([paris_lyon()])
    hit = engine.search(QUERY).trips[0]
    assert hit.pickup.time.startswith("2026-12-01T08:3") and hit.pickup.time.endswith("+01:00")
    assert hit.dropoff.time == "2026-12-01T13:10:00+01:00"
    assert hit.pickup.distance_km < 1 and hit.dropoff.distance_km < 1
    assert hit.trip["stops"][1]["name"] == "Dijon"
    # Dijon -> Lyon picks up mid-route, interpolated between the stop times
    mid = engine.search({**QUERY, "from": [47.3, 5.0]}).trips[0]
    assert "11:" in mid.pickup.time[11:14]
    # wrong direction: no match
    assert engine.search({**QUERY, "from": QUERY["to"], "to": QUERY["from"]}).total == 0


def test_versions_only_move_forward(make_engine) -> None:
    engine = make_engine()
    assert engine.upsert([paris_lyon(version=3)], refresh=True).stored == 1
    report = engine.upsert([paris_lyon(version=2, seats_available=1), paris_lyon(version=3, seats_available=1)], refresh=True)
    assert [i.result for i in report.items] == ["unchanged", "unchanged"]
    assert engine.get("t-1")["seats_available"] == 3
    report = engine.upsert([paris_lyon(version=5, seats_available=2), paris_lyon(version=4, seats_available=1)], refresh=True)
    assert [i.result for i in report.items] == ["stored", "unchanged"]
    assert engine.get("t-1")["version"] == 5
    assert engine.search(QUERY).trips[0].trip["seats_available"] == 2


def test_cancel_and_delete_leave_results_and_tombstone_keeps_version(make_engine) -> None:
    engine = make_engine([paris_lyon("a"), paris_lyon("b"), paris_lyon("c")])
    assert engine.search(QUERY).total == 3
    engine.upsert([paris_lyon("a", version=2, status="cancelled"), paris_lyon("b", version=2, status="full", seats_available=0)], refresh=True)
    assert ids(engine.search(QUERY)) == ["c"]
    report = engine.delete(["c", "nope"], refresh=True)
    assert [i.result for i in report.items] == ["deleted", "not_found"]
    assert engine.search(QUERY).total == 0
    with pytest.raises(NotFound):
        engine.get("c")
    # a late, older version does not resurrect a deleted trip; a newer one does
    assert engine.upsert([paris_lyon("c", version=1)], refresh=True).unchanged == 1
    assert engine.search(QUERY).total == 0
    assert engine.upsert([paris_lyon("c", version=2)], refresh=True).stored == 1
    assert ids(engine.search(QUERY)) == ["c"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stops": []}, "stops"),
        ({"seats_available": 9}, "seats_available"),
        ({"status": "draft"}, "status"),
        ({"price": {"amount": -1, "currency": "EUR"}}, "price.amount"),
        ({"version": "three"}, "version"),
        ({"route": {"type": "LineString", "coordinates": [[2.35, 48.85], [9.0, 45.0]]}}, "route"),
        ({"route": {"type": "LineString", "coordinates": [[2.35, 48.85], [4.8357, 95.0]]}}, "route.coordinates[1]"),
    ],
)
def test_bad_trips_are_rejected_with_field_and_reason(make_engine, change: dict[str, Any], field: str) -> None:
    engine = make_engine([paris_lyon("kept")])
    report = engine.upsert([paris_lyon("bad", **change)])
    (item,) = report.items
    assert item.result == "rejected" and item.field == field and item.reason
    assert engine.get("kept")["id"] == "kept"


def test_stop_checks_name_fields() -> None:
    trip = paris_lyon()
    trip["stops"][1]["time"] = "2026-12-01T07:00:00+01:00"
    with pytest.raises(tripsearch.InvalidTrip) as err:
        tripsearch.parse_trip(trip)
    assert err.value.field == "stops[1].time"
    trip = paris_lyon()
    trip["stops"][0]["lat"] = 91
    with pytest.raises(tripsearch.InvalidTrip) as err:
        tripsearch.parse_trip(trip)
    assert err.value.field == "stops[0].lat"


def test_bulk_lines_report_line_numbers(make_engine) -> None:
    engine = make_engine()
    lines = [orjson.dumps(paris_lyon("a")), b"{not json", orjson.dumps(paris_lyon("b", seats_total=0)), orjson.dumps(paris_lyon("c"))]
    report = engine.upsert(lines, refresh=True)
    assert [(i.line, i.result) for i in report.items] == [(1, "stored"), (2, "rejected"), (3, "rejected"), (4, "stored")]
    assert report.items[2].field == "seats_total"
    assert engine.search(QUERY).total == 2


def test_inputs_that_are_no_trip_are_rejected(make_engine) -> None:
    engine = make_engine()
    report = engine.upsert([5, None, [1], MappingProxyType(paris_lyon("m")), paris_lyon("d")], refresh=True)
    assert [i.result for i in report.items] == ["rejected", "rejected", "rejected", "stored", "stored"]
    assert all("JSON object" in (i.reason or "") for i in report.items[:3])
    assert engine.search(QUERY).total == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from": [95, 2]}, "from.lat"),
        ({"date": "2026-02-30"}, "date"),
        ({"from_radius_km": 101}, "from_radius_km"),
        ({"limit": 1000}, "limit"),
        ({"sort": "cheapest"}, "sort"),
        ({"facets": ["colour"]}, "facets"),
        ({"price_interval": 0}, "price_interval"),
        ({"cell_resolution": 16}, "cell_resolution"),
        ({"cursor": "garbage"}, "cursor"),
        ({"time_from": "25:00"}, "time_from"),
        ({"options": ["jacuzzi"]}, "options"),
        ({"radius": 3}, "radius"),
        ({"date_from": "2026-12-01", "date_to": "2026-12-02"}, "date_from"),
        ({"departure_time": "08:00", "time_from": "07:00"}, "time_from"),
        ({"departure_time": "8h"}, "departure_time"),
        ({"departure_time": "08:00", "time_delta": 43201}, "time_delta"),
        ({"time_delta": 900}, "time_delta"),
        ({"sort": "time_distance"}, "sort"),
    ],
)
def test_bad_queries_name_the_field(make_engine, change: dict[str, Any], field: str) -> None:
    engine = make_engine()
    with pytest.raises(InvalidQuery) as err:
        engine.search({**QUERY, **change})
    assert err.value.field == field


@pytest.mark.parametrize(
    ("days", "field"),
    [
        ({}, "date"),
        ({"date_from": "2026-12-01"}, "date_to"),
        ({"date_to": "2026-12-01"}, "date_from"),
        ({"date_from": "2026-12-02", "date_to": "2026-12-01"}, "date_to"),
        ({"date_from": "2026-12-01", "date_to": "2026-12-08"}, "date_to"),
        ({"date_from": "2026-12-01", "date_to": "12/07/2026"}, "date_to"),
    ],
)
def test_bad_date_ranges_name_the_field(days: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        parse_query({**{k: v for k, v in QUERY.items() if k != "date"}, **days})
    assert err.value.field == field


def test_a_range_of_days_and_a_time_delta_have_their_defaults_and_round_trip() -> None:
    base = {k: v for k, v in QUERY.items() if k != "date"}
    q = parse_query({**base, "date_from": "2026-12-01", "date_to": "2026-12-07", "departure_time": "8:30"})
    assert (q.day, q.last_day - q.day, q.departure_time, q.time_delta) == (20788, 6, 510, DEFAULT_TIME_DELTA)
    assert parse_query(q.to_dict()) == q
    one_day = parse_query({**base, "date_from": "2026-12-01", "date_to": "2026-12-01"})
    assert one_day == parse_query(QUERY) and "date_from" not in one_day.to_dict()


def paris_lyon_at(tid: str, departure: str) -> dict[str, Any]:
    """Return :func:`paris_lyon` leaving at ``departure`` (ISO 8601 with its UTC offset), its stops as far apart in time."""
    start = dt.datetime.fromisoformat(departure)
    stops = [{**stop, "time": (start + dt.timedelta(minutes=after)).isoformat()} for stop, after in zip(paris_lyon()["stops"], (0, 170, 280))]
    return paris_lyon(tid, departure_time=stops[0]["time"], stops=stops)


def test_a_departure_time_across_a_dst_change_is_local_time(make_engine) -> None:
    """Paris leaves at 08:00 local on both sides of the change of 25 October 2026 (+02:00, then +01:00); 08:00 UTC is 09:00 there."""
    engine = make_engine([paris_lyon_at("summer", "2026-10-24T08:00:00+02:00"), paris_lyon_at("winter", "2026-10-26T08:00:00+01:00"), paris_lyon_at("utc-8", "2026-10-26T09:00:00+01:00")])
    query = {**QUERY, "date": None, "date_from": "2026-10-24", "date_to": "2026-10-26", "departure_time": "08:00", "time_delta": 0, "sort": "time_distance"}
    assert ids(engine.search(query)) == ["summer", "winter"]


def test_a_departure_time_window_across_midnight_in_unusual_offsets(make_engine) -> None:
    engine = make_engine([
        paris_lyon_at("kathmandu", "2026-12-01T23:50:00+05:45"),
        paris_lyon_at("marquesas", "2026-12-02T00:20:00-09:30"),
        paris_lyon_at("kiritimati", "2026-12-02T00:40:00+14:00"),
    ])  # fmt: skip
    result = engine.search({**QUERY, "departure_time": "23:55", "time_delta": 1800, "sort": "time_distance", "facets": ["dates"]})
    assert ids(result) == ["kathmandu", "marquesas"]  # 5 and 25 minutes from 23:55; 00:40 is 45
    # A pickup at 00:20 on the 2nd belongs to the 1st, whose 23:55 is nearest.
    assert [d["count"] for d in result.facets["dates"]] == [0, 0, 0, 2, 0, 0, 0]


def test_cursor_belongs_to_its_query(make_engine) -> None:
    engine = make_engine([paris_lyon(f"t-{i}") for i in range(3)])
    page = engine.search({**QUERY, "limit": 1})
    assert page.next_cursor
    with pytest.raises(InvalidQuery):
        engine.search({**QUERY, "limit": 1, "sort": "price", "cursor": page.next_cursor})
    around = {**QUERY, "limit": 1, "departure_time": "07:00", "time_delta": 43200, "sort": "time_distance"}
    page = engine.search(around)
    assert page.next_cursor
    for change in ({"time_delta": 1800}, {"departure_time": "07:01"}, {"date": None, "date_from": QUERY["date"], "date_to": "2026-12-02"}):
        with pytest.raises(InvalidQuery):
            engine.search({**around, **change, "cursor": page.next_cursor})


def test_pages_stay_exact_while_trips_are_written(make_engine) -> None:
    trips = []
    for i in range(40):
        t = paris_lyon(f"t-{i:02d}", departure_time=f"2026-12-01T{6 + i % 12:02d}:{i:02d}:00+01:00")
        for s in t["stops"]:
            s["time"] = t["departure_time"]
        trips.append(t)
    engine = make_engine(trips)
    seen: list[str] = []
    cursor = None
    for n in range(100):
        page = engine.search({**QUERY, "sort": "departure", "limit": 7, **({"cursor": cursor} if cursor else {})})
        seen += ids(page)
        # writes between pages: new trips, and cancellations of trips not yet seen do not duplicate anything
        engine.upsert([paris_lyon(f"new-{n}")], refresh=True)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert {f"t-{i:02d}" for i in range(40)} <= set(seen)


def test_facets_are_disjunctive(make_engine) -> None:
    engine = make_engine([paris_lyon("a"), paris_lyon("b", options={"pets": True}), paris_lyon("c", price={"amount": 80, "currency": "EUR"})])
    result = engine.search({**QUERY, "options": ["pets"], "max_price": 50})
    assert result.total == 1
    assert result.facets["options"]["pets"] == 1
    # options ignore the options filter but keep max_price: a and b are counted, c (80 EUR) is not
    assert result.facets["options"]["instant_booking"] == 1
    prices = result.facets["price"]["currencies"][0]
    assert prices["count"] == 1 and prices["max"] == 25.5  # b only: price ignores max_price, keeps pets
    assert [d["count"] for d in result.facets["dates"]][3] == 1


def test_refresh_across_processes(tmp_path: Path) -> None:
    """A write made by another process becomes searchable here after refresh (and by itself within the interval)."""
    data = tmp_path / "shared"
    reader = tripsearch.open(data, refresh_interval=0.2)
    try:
        code = f"import tripsearch, json; e = tripsearch.open({str(data)!r}, refresh_interval=0); e.upsert([json.loads({orjson.dumps(paris_lyon('remote')).decode()!r})]); e.close()"
        subprocess.run([sys.executable, "-c", code], check=True)
        import time

        deadline = time.monotonic() + 5
        while reader.search(QUERY).total == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ids(reader.search(QUERY)) == ["remote"]
    finally:
        reader.close()


def test_wait_for_returns_once_every_reader_sees_the_write(tmp_path: Path) -> None:
    """refresh="wait_for" (the contract): when upsert or delete returns, another engine over the same index has refreshed past it."""
    data = tmp_path / "shared"
    writer = tripsearch.open(data, refresh_interval=0.2)
    reader = tripsearch.open(data, refresh_interval=0.2)
    try:
        assert writer.upsert([paris_lyon("waited")], refresh="wait_for").items[0].result == "stored"
        assert ids(reader.search(QUERY)) == ["waited"]
        assert writer.delete(["waited"], refresh="wait_for").items[0].result == "deleted"
        assert reader.search(QUERY).total == 0
    finally:
        writer.close()
        reader.close()


def test_wait_for_in_a_write_only_process_waits_for_the_searching_ones(tmp_path: Path) -> None:
    """The indexer worker (search=False, no refresh of its own) still answers wait_for only once the searchers have the write."""
    data = tmp_path / "shared"
    reader = tripsearch.open(data, refresh_interval=0.5)
    writer = tripsearch.open(data, refresh_interval=0, search=False)
    try:
        writer.upsert([paris_lyon("waited")], refresh="wait_for")
        assert ids(reader.search(QUERY)) == ["waited"]
        reader.close()
        assert list((data / "readers").iterdir()) == []  # a closed engine is waited for no more
    finally:
        writer.close()
        reader.close()


def test_wait_for_does_not_wait_for_a_killed_reader(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A searching process killed without closing leaves its file under readers/: the next wait_for drops it instead of waiting it out."""
    data = tmp_path / "shared"
    code = "import os, signal, sys, tripsearch; tripsearch.open(sys.argv[1], refresh_interval=0.2); os.kill(os.getpid(), signal.SIGKILL)"
    assert subprocess.run([sys.executable, "-c", code, str(data)]).returncode == -9
    assert len(list((data / "readers").glob("*.seq"))) == 1
    writer = tripsearch.open(data, refresh_interval=0, search=False)
    try:
        with caplog.at_level(logging.WARNING, logger="tripsearch.index.embedded.readers"):
            writer.upsert([paris_lyon("waited")], refresh="wait_for")
        assert caplog.records == []  # no reader lagging at the deadline
        assert list((data / "readers").iterdir()) == []
    finally:
        writer.close()


def test_a_write_only_process_keeps_no_index_and_searchers_see_its_writes(tmp_path: Path) -> None:
    """search=False (the indexer worker): writes are durable and reach the searching processes; nothing is held or mapped here."""
    from tripsearch.errors import TripSearchError

    data = tmp_path / "shared"
    reader = tripsearch.open(data, refresh_interval=0)
    reader.upsert([paris_lyon("first")])
    reader.snapshot()  # a segment exists: the writer must leave it alone
    manifest = (data / "index.manifest").read_bytes()
    writer = tripsearch.open(data, refresh_interval=0, search=False)
    try:
        report = writer.upsert([paris_lyon(f"w-{i}") for i in range(50)] + [paris_lyon("first", version=2, seats_available=1)])
        assert [i.result for i in report.items] == ["stored"] * 51
        assert writer.delete(["w-0"]).items[0].result == "deleted"
        assert writer._own == {} and writer._index.view.rows == 0
        assert writer.snapshot() == 0 and (data / "index.manifest").read_bytes() == manifest
        assert writer.stats()["trips"] == 50
        with pytest.raises(TripSearchError, match="writing only"):
            writer.search(QUERY)
    finally:
        writer.close()
    assert (data / "index.manifest").read_bytes() == manifest
    reader.refresh()
    found = reader.search(dict(QUERY, limit=100))
    assert sorted(ids(found)) == sorted(["first"] + [f"w-{i}" for i in range(1, 50)])
    assert next(h for h in found.trips if h.id == "first").trip["seats_available"] == 1
    reader.close()


def test_restart_maps_the_segment_and_rebuilds_a_damaged_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    engine = tripsearch.open(data, refresh_interval=0)
    engine.upsert([paris_lyon(f"t-{i}") for i in range(50)], refresh=True)
    engine.snapshot()  # type: ignore[attr-defined]
    engine.upsert([paris_lyon("after-snapshot")], refresh=True)
    engine.close()
    reopened = tripsearch.open(data, refresh_interval=0, verify="open")
    assert reopened.search(QUERY).total == 51  # the segment plus the change feed after it
    first = reopened.stats()
    assert first["segment"] and first["delta_rows"] == 1
    reopened.close()
    segment = data / "segments" / first["segment"]
    raw = bytearray(segment.read_bytes())
    raw[-100] ^= 0xFF  # flip bits in the last array
    segment.write_bytes(bytes(raw))
    caplog.clear()
    rebuilt = tripsearch.open(data, refresh_interval=0, verify="open")
    assert rebuilt.search(QUERY).total == 51
    assert "checksum mismatch" in caplog.text and "rebuilding the index from SQLite" in caplog.text
    second = rebuilt.stats()["segment"]
    assert second != first["segment"] and not segment.exists()  # a new segment replaced the damaged one
    rebuilt.close()
    segment = data / "segments" / second
    raw = bytearray(segment.read_bytes())
    segment.write_bytes(bytes(raw[: len(raw) // 2]))  # torn: found at open whatever ``verify`` says
    caplog.clear()
    again = tripsearch.open(data, refresh_interval=0, verify="none")
    assert again.search(QUERY).total == 51
    assert "torn file" in caplog.text and "rebuilding the index from SQLite" in caplog.text
    assert again.stats()["segment"] not in (None, second)
    again.close()


def test_trip_without_route_uses_stops(make_engine) -> None:
    engine = make_engine([paris_lyon()])
    assert engine.get("t-1").get("route") is None
    assert engine.search(QUERY).total == 1


def test_round_trip_matches_both_ways(make_engine) -> None:
    trip = paris_lyon("loop")
    back = copy.deepcopy(trip["stops"][0])
    back["time"] = "2026-12-01T18:00:00+01:00"
    trip["stops"].append(back)
    engine = make_engine([trip])
    paris, lyon = [48.8566, 2.3522], [45.764, 4.8357]
    # Paris is passed twice at distance 0: the pickup takes the first pass, the dropoff the last
    assert engine.search({**QUERY, "from": paris, "to": lyon}).total == 1
    assert engine.search({**QUERY, "from": lyon, "to": paris}).total == 1


@pytest.mark.parametrize("bad", [[("a", 2**64)], [("a", -1)], [3], [("a", "1")]])
def test_bad_deletes_name_the_position(make_engine, bad: list[Any]) -> None:
    engine = make_engine()
    with pytest.raises(tripsearch.InvalidInput) as err:
        engine.delete(bad)
    assert err.value.field.startswith("ids[0]")


def commute(version: int = 1, **schedule: Any) -> dict[str, Any]:
    """A regular trip from Paris to Lyon on weekday mornings over the spring daylight-saving change of 2027-03-28."""
    trip = paris_lyon("c-1", version, seats_total=3, seats_available=3)
    trip["schedule"] = {"timezone": "Europe/Paris", "valid_from": "2027-03-22", "valid_to": "2027-04-02", "times": {d: "07:45" for d in ("MON", "TUE", "WED", "THU", "FRI")}, **schedule}
    return trip


def occurrences_found(engine, day: str, **query: Any) -> list[tuple[str, str | None, str]]:  # type: ignore[no-untyped-def]
    result = engine.search({**QUERY, "date": day, **query})
    return [(h.id, h.occurrence, h.pickup.time[:16]) for h in result.trips]


def test_regular_trips_are_found_on_their_dates_in_local_time(make_engine) -> None:
    engine = make_engine([commute(exceptions=[{"date": "2027-03-24", "skip": True}, {"date": "2027-03-27", "time": "09:00"}])])
    assert occurrences_found(engine, "2027-03-26") == [("c-1", "2027-03-26", "2027-03-26T07:45")]
    assert occurrences_found(engine, "2027-03-29") == [("c-1", "2027-03-29", "2027-03-29T07:45")]  # +02:00 after the change
    assert engine.search({**QUERY, "date": "2027-03-29"}).trips[0].trip["departure_time"] == "2027-03-29T07:45:00+02:00"
    assert occurrences_found(engine, "2027-03-24") == [] and occurrences_found(engine, "2027-03-28") == []
    assert occurrences_found(engine, "2027-03-27") == [("c-1", "2027-03-27", "2027-03-27T09:00")]
    over = engine.search({"from": QUERY["from"], "to": QUERY["to"], "date_from": "2027-03-22", "date_to": "2027-03-28", "facets": ["dates"], "sort": "departure"})
    assert [h.occurrence for h in over.trips] == ["2027-03-22", "2027-03-23", "2027-03-25", "2027-03-26", "2027-03-27"]
    assert engine.get("c-1")["schedule"]["times"]["MON"] == "07:45"


def test_an_occurrence_seat_change_is_seen_on_that_date_only(make_engine) -> None:
    engine = make_engine([commute()])
    assert engine.upsert([commute(2, exceptions=[{"date": "2027-03-30", "seats_available": 1}])], refresh=True).stored == 1
    assert occurrences_found(engine, "2027-03-30", seats=2) == []
    assert occurrences_found(engine, "2027-03-30", seats=1) == [("c-1", "2027-03-30", "2027-03-30T07:45")]
    assert occurrences_found(engine, "2027-03-31", seats=2) == [("c-1", "2027-03-31", "2027-03-31T07:45")]
    assert engine.search({**QUERY, "date": "2027-03-30"}).trips[0].trip["seats_available"] == 1


def test_a_new_schedule_replaces_every_occurrence(make_engine) -> None:
    engine = make_engine([commute()])
    assert (engine.stats()["trips"], engine.stats()["occurrences"]) == (1, 10)
    engine.upsert([commute(2, valid_to="2027-03-23")], refresh=True)
    assert occurrences_found(engine, "2027-03-23") and not occurrences_found(engine, "2027-03-24")
    assert (engine.stats()["trips"], engine.stats()["occurrences"]) == (1, 2)
    engine.upsert([commute(1)], refresh=True)  # an older version changes nothing
    assert not occurrences_found(engine, "2027-03-24")
    engine.upsert([paris_lyon("c-1", 3)], refresh=True)  # a one-off trip now
    assert [(i, o) for i, o, _ in occurrences_found(engine, "2026-12-01")] == [("c-1", None)] and not occurrences_found(engine, "2027-03-23")
    assert (engine.stats()["trips"], engine.stats()["occurrences"]) == (1, 0)
    engine.upsert([commute(4)], refresh=True)
    engine.delete(["c-1"], refresh=True)
    assert not occurrences_found(engine, "2027-03-23") and not occurrences_found(engine, "2026-12-01")
    assert (engine.stats()["trips"], engine.stats()["occurrences"]) == (0, 0)


def test_a_hit_whose_trip_changed_since_the_index_view_shows_what_is_stored() -> None:
    """The page's documents are read after the index view: a trip written again meanwhile shows as stored, never an error."""
    from tripsearch.index.execute import _source

    stored = paris_lyon("c-1", 2)  # a one-off trip now; the view still had an occurrence of its regular version
    assert _source("c-1", stored, "2027-03-30", {}) is stored
    assert _source("c-1", {"id": "c-1"}, "2027-03-30", {}) == {"id": "c-1"}  # deleted meanwhile
    shorter = commute(3, valid_to="2027-03-23")
    assert _source("c-1", shorter, "2027-03-30", {}) is shorter
    assert _source("c-1", shorter, "2027-03-23", {})["occurrence"] == "2027-03-23"
