"""The event envelope without a broker: the one-pass decoder takes well-formed events, and anything else gets the checks that name the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tripsearch.broker import events
from tripsearch.broker.events import InvalidEvent, TripEvent, delete_event, parse_event, trip_event

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
    ({"trip": dict(TRIP, id="t-2")}, "trip.id"),
    ({"trip": dict(TRIP, version=True)}, "trip.version"),
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
