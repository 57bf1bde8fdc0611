"""The batch parse of many trips gives what parsing them one by one gives: same trips, same routes, same errors."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Callable

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from tests.geometry import regular_trips
from tripsearch.errors import InvalidTrip
from tripsearch.data.fixtures import generate_trips
from tripsearch.model import _encoder, parse_trip, parse_trip_route, parse_trips_routes, trip_to_dict, trip_to_json

TRIPS = list(generate_trips(40, 5, dt.date(2026, 12, 1), 3))


def _one_by_one(raws: list[Any]) -> list[tuple[Any, Any] | tuple[str, str]]:
    out: list[tuple[Any, Any] | tuple[str, str]] = []
    for raw in raws:
        try:
            out.append(parse_trip_route(raw))
        except InvalidTrip as exc:
            out.append((exc.field, exc.reason))
    return out


def _batch(raws: list[Any]) -> list[tuple[Any, Any] | tuple[str, str]]:
    return [(r.field, r.reason) if isinstance(r, InvalidTrip) else r for r in parse_trips_routes(raws)]


def _assert_same(raws: list[Any]) -> None:
    expected, got = _one_by_one(raws), _batch(raws)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        if isinstance(e[1], np.ndarray):
            assert isinstance(g[1], np.ndarray) and g[0] == e[0]
            assert g[1].dtype == np.float64 and g[1].shape == e[1].shape and np.array_equal(g[1], e[1])
        else:
            assert g == e


def _route(trip: dict[str, Any]) -> list[list[float]]:
    return trip["route"]["coordinates"]  # type: ignore[no-any-return]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(trip: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = trip
        for key in head:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


# Each breaks one rule; several together must still report the first rule in the model's order.
BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "point out of range": lambda t: _route(t).__setitem__(3, [200.0, 45.0]),
    "latitude out of range": lambda t: _route(t).__setitem__(-2, [2.0, 91.0]),
    "route starts far": lambda t: _route(t).__setitem__(0, [_route(t)[0][0] + 0.5, _route(t)[0][1]]),
    "route ends far": lambda t: _route(t).__setitem__(-1, [_route(t)[-1][0], _route(t)[-1][1] - 0.3]),
    "route ends just within": lambda t: _route(t).__setitem__(-1, [_route(t)[-1][0], _route(t)[-1][1] + 0.0179]),
    "route ends just beyond": lambda t: _route(t).__setitem__(-1, [_route(t)[-1][0], _route(t)[-1][1] + 0.0181]),
    "long hop": lambda t: _route(t).insert(2, [150.0, -30.0]),
    "repeated point": lambda t: _route(t).insert(1, list(_route(t)[0])),
    "hop over 40 degrees under 5000 km": lambda t: _route(t).insert(2, [_route(t)[1][0] + 45.0, _route(t)[1][1]]),
    "one point": lambda t: t["route"].__setitem__("coordinates", _route(t)[:1]),
    "no route": lambda t: t.pop("route"),
    "seats": _set("seats_total", 0),
    "seats available": _set("seats_available", 9),
    "price": _set("price.amount", -1),
    "currency": _set("price.currency", "eur"),
    "rating": _set("driver.rating", 7.5),
    "status": _set("status", "draft"),
    "id": _set("id", "a/b"),
    "stop time": _set("stops.1.time", "2020-01-01T00:00:00+00:00"),
    "stop lat": _set("stops.0.lat", 95.0),
    "departure": _set("departure_time", "2020-01-01T00:00:00+00:00"),
    "missing field": lambda t: t.pop("version"),
    "wrong type": _set("seats_total", "four"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_batch_parse_reports_what_one_by_one_reports(name: str) -> None:
    raws: list[Any] = []
    for i, trip in enumerate(TRIPS):
        broken = copy.deepcopy(trip)
        if i % 3 == 0:
            BREAKS[name](broken)
        raws.append(orjson.dumps(broken) if i % 2 else broken)
    _assert_same(raws)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(TRIPS) - 1), st.lists(st.sampled_from(sorted(BREAKS)), max_size=3)), min_size=1, max_size=12))
def test_batch_parse_of_trips_with_several_faults_matches_one_by_one(picks: list[tuple[int, list[str]]]) -> None:
    raws: list[Any] = []
    for index, names in picks:
        trip = copy.deepcopy(TRIPS[index])
        for name in names:
            try:
                BREAKS[name](trip)
            except (KeyError, IndexError, TypeError):  # an earlier fault took away what this one changes
                pass
        raws.append(orjson.dumps(trip))
    _assert_same(raws)


def test_batch_parse_of_inputs_that_are_no_trip() -> None:
    _assert_same([b"{not json", b"[1]", 5, None, b"\xff", TRIPS[0], orjson.dumps(TRIPS[1]), b""])


def test_a_trip_encoded_as_it_is_gives_the_bytes_of_its_wire_dict() -> None:
    """``trip_to_json`` encodes a trip with a route and a driver straight from the struct: the same bytes as the dict that leaves out a missing route or driver."""
    trips = [parse_trip(t) for t in [*generate_trips(200, 3, dt.date(2026, 3, 28), 3), *regular_trips("europe", 20, 5)]]
    variants = [v for t in trips for v in (t, replace(t, route=None), replace(t, driver=None), replace(t, route=None, driver=None))]
    assert any(t.schedule is not None for t in trips) and all(t.driver is not None and t.route is not None for t in trips[:200])
    for trip in variants:
        assert trip_to_json(trip) == _encoder.encode(trip_to_dict(trip))
        assert orjson.loads(trip_to_json(trip)).keys() >= {"id", "stops"} and ("route" in orjson.loads(trip_to_json(trip))) == (trip.route is not None)
