"""A route's coordinates read from their text (tripsearch.routetext) give msgspec's floats exactly, or leave the text to it."""

from __future__ import annotations

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripsearch.errors import InvalidTrip
from tripsearch.model import Route, parse_trip_route, trip_to_dict, trip_to_json
from tripsearch.routetext import read_points

_typed = msgspec.json.Decoder(list[tuple[float, float]])


def _same_as_msgspec(text: bytes) -> bool:
    """Whether read_points gives msgspec's own floats (sign of zero included), or declines; True also if both refuse."""
    got = read_points(text)
    try:
        expected = np.array(_typed.decode(text), dtype=np.float64).reshape(-1, 2)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return got is None
    return got is None or (got.shape == expected.shape and np.array_equal(got, expected) and np.array_equal(np.signbit(got), np.signbit(expected)))


def _number_text(value: float, digits: int, form: int) -> str:
    return (f"{value:.{digits}f}", f"{value:.{digits}e}", f"{value:.{digits}E}", repr(value), str(int(value)))[form]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.integers(0, 17), st.integers(0, 4)), min_size=2, max_size=40), st.sampled_from(["", " ", "\n"]))
def test_numbers_read_are_the_decoders_floats(numbers: list[tuple[float, int, int]], space: str) -> None:
    texts = [_number_text(value, digits, form) for value, digits, form in numbers][: len(numbers) // 2 * 2]
    text = ("[" + f",{space}".join(f"[{a},{space}{b}]" for a, b in zip(texts[::2], texts[1::2])) + "]").encode()
    assert _same_as_msgspec(text)


def test_route_points_as_routing_engines_write_them_are_read_by_the_fast_path() -> None:
    rng = np.random.default_rng(7)
    points = np.round(rng.uniform([-180, -90], [180, 90], (500, 2)), 6)
    text = orjson.dumps(points.tolist())
    got = read_points(text)
    assert got is not None and np.array_equal(got, points)


@pytest.mark.parametrize(
    "text",
    [b"[[-0,2]]", b"[[-0.0,-0e0]]", b"[[0e0,-0E-0]]", b"[[1e22,1e-22]]", b"[[1e23,1]]", b"[[123456789012345,1]]", b"[[1234567890123456,1]]",
     b"[[0.000000000000000000001,1]]", b"[[0.0000000000000000000001,1]]", b"[[48.856600000000000,2]]", b" [ [1 , 2 ] ,\n[3,4] ] ",
     # digits whose value wraps a 64-bit integer to 0 or to a small one: counted, never read off the value
     b"[[18446744073709551616,1]]", b"[[0.18446744073709551616,1]]", b"[[1.8446744073709551616,1]]", b"[[-0.36893488147419103232,1]]",
     b"[[0.000000000000001234,1]]", b"[[0.000000000000000000,1]]"],
)  # fmt: skip
def test_edge_numbers_are_read_exactly_or_left_to_the_decoder(text: bytes) -> None:
    assert _same_as_msgspec(text)


@pytest.mark.parametrize(
    "text",
    [b"[]", b"[[1,2],]", b"[[01,2]]", b"[[1.,2]]", b"[[.5,2]]", b"[[+1,2]]", b"[[1,2,3]]", b"[[1]]", b'[[1,"2"]]', b"[[1,2]] x", b"[[1,2]",
     b"[[-,2]]", b"[[1e,2]]", b"[[1e+,2]]", b"[[NaN,2]]", b"[[Infinity,2]]", b"[[1,2],[3,4]]]", b"[[[1,2]]]", b"{}", b"[[1,null]]"],
)  # fmt: skip
def test_texts_that_are_no_list_of_pairs_are_left_to_the_decoder(text: bytes) -> None:
    assert read_points(text) is None


def _trip(route: object) -> dict[str, object]:
    return {
        "id": "r-1", "version": 1, "departure_time": "2026-12-01T08:30:00+01:00",
        "stops": [{"name": "Paris", "lat": 48.8566, "lon": 2.3522, "time": "2026-12-01T08:30:00+01:00"},
                  {"name": "Lyon", "lat": 45.764, "lon": 4.8357, "time": "2026-12-01T13:10:00+01:00"}],
        "seats_total": 4, "seats_available": 3, "price": {"amount": 25.5, "currency": "EUR"}, "route": route,
    }  # fmt: skip


def test_a_route_is_kept_as_its_text_and_read_the_same_from_text_or_dict() -> None:
    points = [[2.3522, 48.8566], [3.0, 47.0000000000000001], [4.8357, 45.764]]
    text = b'{"type": "LineString", "coordinates": [[2.3522, 48.8566], [3.0, 47.0000000000000001], [4.8357, 45.764]]}'
    raw = orjson.dumps(_trip(None))[:-len(b"null}")] + text + b"}"
    from_text, from_dict = parse_trip_route(raw), parse_trip_route(_trip({"type": "LineString", "coordinates": points}))
    assert np.array_equal(from_text[1], from_dict[1]) and from_text[1].tolist() == [[2.3522, 48.8566], [3.0, 47.0], [4.8357, 45.764]]
    assert from_text[0].route is not None and bytes(from_text[0].route.coordinates) == text[text.index(b"[[") : -1]  # as received
    assert trip_to_dict(from_text[0])["route"]["coordinates"] == from_text[1].tolist()
    assert orjson.loads(trip_to_json(from_text[0]))["route"]["coordinates"] == from_text[1].tolist()
    assert Route.of(points).points().tolist() == from_text[1].tolist()


@pytest.mark.parametrize(
    ("route", "field", "reason"),
    [
        ({"type": "LineString", "coordinates": [[2.35, 48.85], [4.83, "x"]]}, "route.coordinates[1][1]", "expected `float`, got `str`"),
        ({"type": "LineString", "coordinates": [[2.35, 48.85, 1.0], [4.83, 45.76]]}, "route.coordinates[0]", "expected `array` of length 2"),  # (", got 3" from a dict)
        ({"type": "Polygon", "coordinates": [[2.35, 48.85], [4.83, 45.76]]}, "route.type", "invalid enum value 'Polygon'"),
        ({"type": "LineString"}, "route.coordinates", "is required"),
        ("a line", "route", "expected `object | null`, got `str`"),
        ({"type": "LineString", "coordinates": {"lon": 2.35}}, "route.coordinates", "expected `array`, got `object`"),
        ({"type": "LineString", "coordinates": [[2.35, 48.85], [float("nan"), 45.76]]}, "route.coordinates[1]", "must be [lon, lat] with lon in [-180, 180] and lat in [-90, 90]"),
    ],
)
def test_a_bad_route_names_its_field_from_text_and_from_dict(route: object, field: str, reason: str) -> None:
    inputs: list[object] = [_trip(route)]
    if not (isinstance(route, dict) and any(isinstance(v, float) and v != v for p in route.get("coordinates", []) for v in p)):
        inputs.append(orjson.dumps(_trip(route)))  # JSON text cannot write nan
    for data in inputs:
        with pytest.raises(InvalidTrip) as caught:
            parse_trip_route(data)  # type: ignore[arg-type]
        assert caught.value.field == field and caught.value.reason.startswith(reason), (type(data), caught.value.reason)
