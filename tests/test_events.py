"""The event envelope without a broker: the one-pass decoder takes well-formed events, and anything else gets the checks that name the field; the writer checks each trip is the one its event names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

import tripsearch
from tripsearch.broker import events
from tripsearch.broker.events import InvalidEvent, TripEvent, delete_event, parse_event, trip_event
from tripsearch.broker.writer import ThreadWriter
from tripsearch.data.fixtures import generate_trips
from tripsearch.errors import NotFound

TRIP = {"id": "t-1", "version": 3, "seats_total": 3}


@pytest.mark.parametrize("event", [trip_event(TRIP), trip_event(TRIP, event_id="e-1", occurred_at="2026-12-03T10:00:00Z"),
                                   delete_event("t-1", 3), delete_event("t-1", 3, type="trip.cancelled")], ids=["upsert", "upsert-traced", "delete", "cancel"])
def test_a_well_formed_event_is_decoded_in_one_pass(event: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(body: bytes) -> None:
        raise AssertionError("a well-formed event took the field-by-field checks")

    monkeypatch.setattr(events, "_envelope", type("Slow", (), {"decode": staticmethod(slow)})())
    got = parse_event(orjson.dumps(event))
    trip = orjson.dumps(event["trip"]) if "trip" in event else None
    assert got == TripEvent(event["type"], "t-1", 3, trip)


@pytest.mark.parametrize(("change", "field"), [
    ({"event_id": None}, "event_id"),
    ({"trip": None}, "trip"),
    ({"trip": [1]}, "trip"),
    ({"trip": "t-1"}, "trip"),
    ({"version": -1}, "version"),
    ({"version": True}, "version"),
    ({"trip_id": ""}, "trip_id"),
    ({"extra": 1}, "extra"),
])
def test_a_malformed_event_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_event(orjson.dumps(trip_event(TRIP) | change))
    assert raised.value.field == field


def test_a_delete_with_a_trip_is_refused() -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_event(orjson.dumps(delete_event("t-1", 3) | {"trip": TRIP}))
    assert raised.value.field == "trip"


def test_the_envelope_leaves_the_trip_to_the_writer_which_checks_it_is_the_one_the_event_names(tmp_path: Path) -> None:
    """The event loop reads the envelope only; where the trip is parsed, one whose id or version is not the event's is rejected naming it, and not stored."""
    trips = [dict(t, version=3) for t in generate_trips(3, 5, dt.date(2026, 12, 1), 2)]
    bodies = [trip_event(trips[0]), trip_event(trips[1]) | {"trip_id": "other"}, trip_event(trips[2]) | {"version": 4}]
    parsed = [parse_event(orjson.dumps(body)) for body in bodies]
    assert [(e.trip_id, e.version) for e in parsed] == [(trips[0]["id"], 3), ("other", 3), (trips[2]["id"], 4)]
    backend = tripsearch.open(tmp_path / "data", refresh_interval=0)
    writer = ThreadWriter(backend)
    try:
        report, _ = writer.submit([(e.trip_id, e.version, e.trip) for e in parsed if e.trip is not None], []).result(timeout=60)
    finally:
        writer.close()
    assert report is not None
    assert [(i.result, i.field) for i in report.items] == [("stored", None), ("rejected", "id"), ("rejected", "version")]
    assert report.items[1].reason == f"must equal trip_id 'other', got {trips[1]['id']!r}"
    assert report.items[2].reason == "must equal version 4, got 3"
    assert backend.get(trips[0]["id"])["version"] == 3
    for trip in trips[1:]:
        with pytest.raises(NotFound):
            backend.get(trip["id"])
    backend.close()
