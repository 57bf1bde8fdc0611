"""The trip document: wire format, validation and normalisation.

A trip arrives as JSON (a dict, bytes or one NDJSON line), is decoded by
msgspec into typed structs, then checked against the rules that msgspec's
types cannot say (times never decrease, the route starts at the first stop,
...). Every failure is an :class:`~tripsearch.errors.InvalidTrip` naming the
field (``stops[1].time``) and the reason. A route's points stay the JSON
text they came as (:class:`Route`), read once into an array by
:mod:`tripsearch.routetext`: no Python float per point.

The document is stored as given. Every backend matches on coordinates
quantised to 1e-7 degree (see :mod:`tripsearch.geo`), as Elasticsearch
stores a ``geo_point``, so they all work on the same numbers.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache, wraps
from typing import Any, Literal, ParamSpec, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import numpy as np

from .errors import InvalidTrip
from .geo import EARTH_RADIUS_KM, great_circle_km, haversine_km
from .routetext import read_points

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "stored_trip_route",
    "tombstone_version",
    "OPTION_NAMES",
    "STATUSES",
    "MAX_STOPS",
    "MAX_ROUTE_POINTS",
    "ROUTE_END_TOLERANCE_KM",
    "MAX_SEGMENT_KM",
    "Stop",
    "Route",
    "Price",
    "Options",
    "Driver",
    "WEEKDAYS",
    "MAX_SCHEDULE_DAYS",
    "ScheduleException",
    "Schedule",
    "Trip",
    "parse_time_of_day",
    "schedule_dates",
    "schedule_zone",
    "parse_trip",
    "parse_trip_route",
    "parse_trips_routes",
    "paused_gc",
    "gc_paused",
    "trip_to_dict",
    "raw_trip_id",
    "trip_to_json",
]

OPTION_NAMES = ("instant_booking", "pets", "smoking", "women_only", "max_two_back")
STATUSES = ("published", "full", "cancelled")
MAX_STOPS = 20
MAX_ROUTE_POINTS = 20_000
MAX_ID_LENGTH = 128
MAX_SEATS = 99
MAX_PRICE_AMOUNT = 1_000_000
MAX_RATING = 5.0
MAX_STOP_NAME_LENGTH = 200
ID_PATTERN = rf"^[^\x00-\x1f\x7f/]{{1,{MAX_ID_LENGTH}}}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
ROUTE_END_TOLERANCE_KM = 2.0
# A segment is a great-circle arc; far below half the Earth's circumference it is well defined.
MAX_SEGMENT_KM = 5000.0
_ID_PATTERN = re.compile(ID_PATTERN)
_CURRENCY_PATTERN = re.compile(CURRENCY_PATTERN)


class Stop(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    lat: float
    lon: float
    time: dt.datetime


class Route(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A GeoJSON LineString of [lon, lat] points.

    ``coordinates`` is kept as its JSON text (``[[lon, lat], ...]``, as
    received), which the checks read once into an array
    (:func:`parse_trip_route` returns it; :meth:`points` reads it again): a
    route of hundreds of points is never a list of Python floats. Build one
    from points with :meth:`of`.
    """

    type: Literal["LineString"]
    coordinates: msgspec.Raw

    @classmethod
    def of(cls, points: Iterable[Sequence[float]]) -> Route:
        """Return the route through ``points`` ([lon, lat] pairs)."""
        return cls("LineString", msgspec.Raw(_encoder.encode([[float(lon), float(lat)] for lon, lat in points])))

    def points(self) -> np.ndarray:
        """Return the [lon, lat] points as an (n, 2) float64 array (raise :class:`InvalidTrip` if the text is no list of pairs of numbers)."""
        if not isinstance(self.coordinates, msgspec.Raw):
            raise InvalidTrip("route.coordinates", "must be the JSON text of [[lon, lat], ...] (Route.of builds a route from points)")
        return _route_points(self.coordinates)


class _TypedRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A route as a dict holds it (a Python caller's trip): its points as numbers, checked by type."""

    type: Literal["LineString"]
    coordinates: list[tuple[float, float]]


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: float
    currency: str = "EUR"


class Options(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    instant_booking: bool = False
    pets: bool = False
    smoking: bool = False
    women_only: bool = False
    max_two_back: bool = False


class Driver(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    rating: float | None = None
    verified: bool = False


WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")  # as the standard covoiturage names them; Monday is 0, as in datetime
MAX_SCHEDULE_DAYS = 366  # a schedule's validity period, from valid_from to valid_to inclusive
_TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?$")


class ScheduleException(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One date of a schedule that differs: skipped, at another time, or with other seats available."""

    date: dt.date
    skip: bool = False
    time: str | None = None  # local "HH:MM" or "HH:MM:SS"; on a weekday without a time, it adds a trip
    seats_available: int | None = None


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a regular trip runs: a local departure time per weekday, between two dates, with exceptions.

    Times are wall-clock times in ``timezone`` (an IANA name): 07:45 stays
    07:45 local across a daylight-saving change. See :mod:`tripsearch.occurrences`.
    """

    timezone: str
    valid_from: dt.date
    valid_to: dt.date  # inclusive
    times: dict[str, str]  # weekday (MON ... SUN) -> local departure time "HH:MM" or "HH:MM:SS"
    exceptions: list[ScheduleException] = []


class Trip(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A validated, normalised trip. Build it with :func:`parse_trip`.

    A trip with a ``schedule`` is a regular trip: its stops' times give the
    time from the first stop to each of the others, and the schedule gives
    the dates and departure times (see :mod:`tripsearch.occurrences`).
    """

    id: str
    version: int
    departure_time: dt.datetime
    stops: list[Stop]
    seats_total: int
    seats_available: int
    price: Price
    options: Options = Options()
    driver: Driver | None = None
    status: str = "published"
    route: Route | None = None
    schedule: Schedule | None = None

    @property
    def utc_offset_s(self) -> int:
        """The trip's own UTC offset in seconds (that of its departure time)."""
        offset = self.departure_time.utcoffset()
        assert offset is not None  # parse_trip refuses naive times
        return int(offset.total_seconds())

    def route_latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the route vertices as (lat, lon) float64 arrays; the stops when there is no route."""
        if self.route is None:
            lat = np.array([s.lat for s in self.stops], dtype=np.float64)
            lon = np.array([s.lon for s in self.stops], dtype=np.float64)
            return lat, lon
        coords = self.route.points()
        return coords[:, 1].copy(), coords[:, 0].copy()


_decoder = msgspec.json.Decoder(Trip)
_encoder = msgspec.json.Encoder()
_points_decoder = msgspec.json.Decoder(list[tuple[float, float]])


def _route_points(text: msgspec.Raw) -> np.ndarray:
    """Return a route's [lon, lat] points read from their JSON text, or raise :class:`InvalidTrip` naming ``route.coordinates``.

    The compiled reader takes what it reads exactly; anything else (17
    significant digits, a wrong shape, not a number) goes through msgspec's
    typed decoding, which words the error as it would for the whole trip.
    """
    points = read_points(text)
    if points is not None:
        return points
    try:
        return np.array(_points_decoder.decode(text), dtype=np.float64).reshape(-1, 2)
    except msgspec.ValidationError as exc:
        raise _invalid_in("route.coordinates", exc) from None
    except msgspec.DecodeError as exc:  # not from a decoded trip: its text was checked as JSON then
        raise InvalidTrip("route.coordinates", f"not valid JSON ({exc})") from None


def _msgspec_field(message: str) -> tuple[str, str]:
    """Split a msgspec message ``Expected `int`, got `str` - at `$.stops[0].lat``` into field and reason."""
    reason, sep, where = message.rpartition(" - at `")
    if not sep:
        missing = re.match(r"Object missing required field `(\w+)`", message)
        if missing:
            return missing.group(1), "is required"
        unknown = re.match(r"Object contains unknown field `(\w+)`", message)
        if unknown:
            return unknown.group(1), "is not a known field"
        return "", message
    field = where.rstrip("`").removeprefix("$").removeprefix(".")
    missing = re.match(r"Object missing required field `(\w+)`", reason)
    if missing:
        return f"{field}.{missing.group(1)}" if field else missing.group(1), "is required"
    unknown = re.match(r"Object contains unknown field `(\w+)`", reason)
    if unknown:
        return f"{field}.{unknown.group(1)}" if field else unknown.group(1), "is not a known field"
    return field, reason[0].lower() + reason[1:] if reason else reason


def _invalid_in(field: str, exc: msgspec.ValidationError) -> InvalidTrip:
    """Return the error of a part of a trip (``route``, ``route.coordinates``) decoded on its own, worded as for the whole trip."""
    message = str(exc)
    inner, reason = _msgspec_field(message if " - at `" in message else f"{message} - at `$`")  # at the part's root
    return InvalidTrip(f"{field}.{inner}" if inner and not inner.startswith("[") else f"{field}{inner}", reason)


def parse_trip(data: bytes | str | Mapping[str, Any] | Trip) -> Trip:
    """Return a validated :class:`Trip`, or raise :class:`InvalidTrip` naming the field (see :func:`parse_trip_route`)."""
    return parse_trip_route(data)[0]


def parse_trip_route(data: bytes | str | Mapping[str, Any] | Trip) -> tuple[Trip, np.ndarray]:
    """Return a validated :class:`Trip`, or raise :class:`InvalidTrip` naming the field.

    >>> t, route = parse_trip_route({"id": "t-1", "version": 1, "departure_time": "2026-12-01T08:30:00+01:00",
    ...     "stops": [{"name": "Paris", "lat": 48.8566, "lon": 2.3522, "time": "2026-12-01T08:30:00+01:00"},
    ...               {"name": "Lyon", "lat": 45.764, "lon": 4.8357, "time": "2026-12-01T13:10:00+01:00"}],
    ...     "seats_total": 4, "seats_available": 3, "price": {"amount": 25.5, "currency": "EUR"}})
    >>> t.utc_offset_s, t.status
    (3600, 'published')

    Also returns the route as an (n, 2) array of [lon, lat] (the stops when
    there is no route), read once here for the checks and the index.
    """
    trip, points = _decode(data)
    return trip, _check(trip, points)


def stored_trip_route(doc: bytes) -> tuple[Trip, np.ndarray | None]:
    """Return a trip as a backend stores it (the JSON text of a trip checked when it was written) and its route's points (None without a route).

    Its types are checked, not the rules again: what a search indexes is
    what was stored (a rule of a later release does not hide it), and
    reading it back costs a decode only. Raises :class:`InvalidTrip` when
    the text is no trip at all.
    """
    return _decode(doc)


def _decode(data: bytes | str | Mapping[str, Any] | Trip) -> tuple[Trip, np.ndarray | None]:
    """Return the input as a :class:`Trip` struct (types checked, rules not yet) and its route's points (None without a route), or raise :class:`InvalidTrip`."""
    try:
        if isinstance(data, Trip):
            trip = data
        elif isinstance(data, Mapping):
            return _convert(data if isinstance(data, dict) else dict(data))
        elif isinstance(data, (bytes, bytearray, memoryview, str)):
            trip = _decoder.decode(data)
        else:
            raise InvalidTrip("", f"must be a JSON object, JSON text or a Trip, not {type(data).__name__}")
    except msgspec.ValidationError as exc:
        field, reason = _msgspec_field(str(exc))
        raise InvalidTrip(field, reason) from None
    except msgspec.DecodeError as exc:
        raise InvalidTrip("", f"not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise InvalidTrip("", "not valid UTF-8 text") from None
    except RecursionError:
        raise InvalidTrip("", "JSON nested too deeply") from None
    return trip, None if trip.route is None else trip.route.points()


def _convert(data: dict[str, Any]) -> tuple[Trip, np.ndarray | None]:
    """Return a trip given as a dict, and its route's points: the route's numbers checked by type, then kept as text like a decoded trip's."""
    route = data.get("route")
    trip = msgspec.convert({**data, "route": None}, Trip, strict=False)  # the other fields' errors first, as when decoding JSON text
    if route is None:
        return trip, None
    try:
        typed = cast(_TypedRoute, msgspec.convert(route, _TypedRoute | None, strict=False))  # not None: worded as for the whole trip
    except msgspec.ValidationError as exc:
        raise _invalid_in("route", exc) from None
    # a point that is no number JSON can write (nan, inf) fails the checks before the text is used
    points = np.array(typed.coordinates, dtype=np.float64).reshape(-1, 2)
    text = _encoder.encode(typed.coordinates) if np.isfinite(points).all() else b"[]"
    return msgspec.structs.replace(trip, route=Route(typed.type, msgspec.Raw(text))), points


_EXAMPLE = {"id": "t-1", "version": 1, "departure_time": "2026-12-01T08:30:00+01:00",
            "stops": [{"name": "Paris", "lat": 48.8566, "lon": 2.3522, "time": "2026-12-01T08:30:00+01:00"},
                      {"name": "Lyon", "lat": 45.764, "lon": 4.8357, "time": "2026-12-01T13:10:00+01:00"}],
            "seats_total": 4, "seats_available": 3, "price": {"amount": 25.5, "currency": "EUR"}}


def parse_trips_routes(data: Iterable[bytes | str | Mapping[str, Any] | Trip]) -> list[tuple[Trip, np.ndarray] | InvalidTrip]:
    """Return, for each input, what :func:`parse_trip_route` returns, or the :class:`InvalidTrip` it raises.

    The same results, faster for many trips: the routes of the whole batch
    become one array and their checks run on it at once. A trip that any of
    those checks doubts goes through :func:`parse_trip_route`'s own checks,
    one by one and in order, so the error names the same field and reason.

    >>> ok, bad = parse_trips_routes([_EXAMPLE, b'{"id": "t-2"}'])
    >>> ok[0].id, ok[1].tolist(), bad.field, bad.reason
    ('t-1', [[2.3522, 48.8566], [4.8357, 45.764]], 'version', 'is required')
    """
    out: list[tuple[Trip, np.ndarray] | InvalidTrip] = []
    routed: list[int] = []  # positions in out of trips whose route the batch checks
    with paused_gc():
        _parse_each(data, out, routed)
        if routed:
            _check_routes(out, routed)
    return out


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding many trips makes millions of tuples, none in a cycle.

    The collector would otherwise run every few hundred trips and walk all
    of them each time (a third of the time of a batch). The first object
    made after the pause still starts a collection of all that the pause
    made and is alive: so a write pauses it until its trips are freed
    (:func:`gc_paused`).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def gc_paused(write: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``write`` with the collector paused (:func:`paused_gc`) until it has returned.

    For a write that decodes its trips and drops them before it returns:
    they are freed (by their counts) before the collector runs again, so it
    never walks them. Pausing the decoding alone left the walk to the first
    object made after it, while the batch was still alive: 6 to 10 us a
    trip of the worker's writes.
    """

    @wraps(write)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with paused_gc():
            return write(*args, **kwargs)

    return paused


def _parse_each(data: Iterable[bytes | str | Mapping[str, Any] | Trip], out: list[tuple[Trip, np.ndarray] | InvalidTrip], routed: list[int]) -> None:
    for raw in data:
        try:
            trip, points = _decode(raw)
            stops = _check_fields(trip, points)
        except InvalidTrip as exc:
            out.append(exc)
            continue
        if stops is None:
            routed.append(len(out))
        out.append((trip, cast(np.ndarray, stops if points is None else points)))  # a route's points are checked below


def _check_routes(out: list[tuple[Trip, np.ndarray] | InvalidTrip], routed: list[int]) -> None:
    """Check the routes of ``out[routed]`` (each a trip and its route's points, not checked yet) together; put in each trip's route array, or the error of a bad one."""
    trips, points = zip(*(cast(tuple[Trip, np.ndarray], out[i]) for i in routed))
    sizes = np.fromiter((len(p) for p in points), dtype=np.int64, count=len(trips))
    doubt = (sizes < 2) | (sizes > MAX_ROUTE_POINTS)
    fine = np.flatnonzero(~doubt)
    ends = np.cumsum(sizes[fine])
    flat = np.concatenate([points[k] for k in fine.tolist()]) if len(fine) else np.zeros((0, 2), dtype=np.float64)
    starts = ends - sizes[fine]
    lon, lat = flat[:, 0], flat[:, 1]
    bad_point = ~(np.isfinite(flat).all(axis=1) & (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0))
    step = np.abs(np.diff(flat, axis=0)).sum(axis=1)
    step[ends[:-1] - 1] = 0.0  # from one route's last point to the next route's first is no hop
    hop = np.append(step, 0.0)  # hop[i]: from point i to point i + 1
    # Any route with a long hop, and any route end near the tolerance, takes the exact path.
    per_route = np.add.reduceat(bad_point | (hop > 40.0), starts) if len(starts) else np.zeros(0, dtype=np.int64)
    first_lat = np.array([trips[k].stops[0].lat for k in fine.tolist()], dtype=np.float64)
    first_lon = np.array([trips[k].stops[0].lon for k in fine.tolist()], dtype=np.float64)
    last_lat = np.array([trips[k].stops[-1].lat for k in fine.tolist()], dtype=np.float64)
    last_lon = np.array([trips[k].stops[-1].lon for k in fine.tolist()], dtype=np.float64)
    margin = ROUTE_END_TOLERANCE_KM - 1e-6  # the vectorised distances may differ from the scalar ones in the last digits
    with np.errstate(invalid="ignore"):
        gaps_ok = (_gap_km(first_lat, first_lon, lat[starts], lon[starts]) <= margin) & (_gap_km(last_lat, last_lon, lat[ends - 1], lon[ends - 1]) <= margin)
    doubt[fine[(per_route > 0) | ~gaps_ok]] = True
    where = np.full(len(trips), -1, dtype=np.int64)
    where[fine] = np.arange(len(fine))
    for k, pos in enumerate(routed):
        trip = trips[k]
        if doubt[k]:
            try:
                out[pos] = (trip, _check(trip, points[k]))
            except InvalidTrip as exc:
                out[pos] = exc
        else:
            j = where[k]
            out[pos] = (trip, flat[starts[j] : ends[j]])


def _gap_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Return haversine distances as :func:`~tripsearch.geo.haversine_km` does, on arrays."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))


def _check(trip: Trip, points: np.ndarray | None) -> np.ndarray:
    """Check every rule in order, the route's on its ``points``; return the route as an (n, 2) array of [lon, lat] (the stops when there is no route)."""
    _check_head(trip)
    arr = _check_route(trip, points) if points is not None else None
    _check_tail(trip)
    if arr is None:
        return np.array([(s.lon, s.lat) for s in trip.stops], dtype=np.float64)
    return arr


def _check_fields(trip: Trip, points: np.ndarray | None) -> np.ndarray | None:
    """Check every rule but those on the route's points: return the stops as :func:`_check` does, or None for a trip with a route.

    If a rule fails, the error is that of :func:`_check`, which may be about an earlier rule on the route.
    """
    try:
        _check_head(trip)
        _check_tail(trip)
    except InvalidTrip:
        if points is not None:
            _check(trip, points)
        raise
    if trip.route is None:
        return np.array([(s.lon, s.lat) for s in trip.stops], dtype=np.float64)
    return None


def _check_head(trip: Trip) -> None:
    if not _ID_PATTERN.match(trip.id):
        raise InvalidTrip("id", f"must be 1 to {MAX_ID_LENGTH} characters without control characters or '/'")
    if trip.version < 0 or trip.version >= 2**63:
        raise InvalidTrip("version", "must be an integer from 0 to 2^63-1")
    if trip.departure_time.tzinfo is None:
        raise InvalidTrip("departure_time", "must carry a UTC offset, e.g. 2026-12-01T08:30:00+01:00")
    if not 2 <= len(trip.stops) <= MAX_STOPS:
        raise InvalidTrip("stops", f"must have 2 to {MAX_STOPS} stops (origin first, destination last), got {len(trip.stops)}")
    previous = None
    for i, stop in enumerate(trip.stops):
        _check_point(f"stops[{i}]", stop.lat, stop.lon)
        if stop.time.tzinfo is None:
            raise InvalidTrip(f"stops[{i}].time", "must carry a UTC offset")
        if not stop.name.strip() or len(stop.name) > MAX_STOP_NAME_LENGTH:
            raise InvalidTrip(f"stops[{i}].name", f"must be 1 to {MAX_STOP_NAME_LENGTH} characters")
        if previous is not None and stop.time < previous:
            raise InvalidTrip(f"stops[{i}].time", "is earlier than the stop before it; times never decrease")
        previous = stop.time
    if trip.route is None:
        for i in range(1, len(trip.stops)):
            a, b = trip.stops[i - 1], trip.stops[i]
            if haversine_km(a.lat, a.lon, b.lat, b.lon) > MAX_SEGMENT_KM:
                raise InvalidTrip(f"stops[{i}]", f"is more than {MAX_SEGMENT_KM:g} km from the stop before it; give a route")
    if trip.stops[0].time != trip.departure_time:
        raise InvalidTrip("departure_time", "must be the time of the first stop")


def _check_route(trip: Trip, arr: np.ndarray) -> np.ndarray:
    if not 2 <= len(arr) <= MAX_ROUTE_POINTS:
        raise InvalidTrip("route.coordinates", f"must have 2 to {MAX_ROUTE_POINTS} points, got {len(arr)}")
    bad = ~(np.isfinite(arr).all(axis=1) & (np.abs(arr[:, 0]) <= 180.0) & (np.abs(arr[:, 1]) <= 90.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidTrip(f"route.coordinates[{i}]", "must be [lon, lat] with lon in [-180, 180] and lat in [-90, 90]")
    # An arc is never longer than |dlat| + |dlon| degrees; 40 degrees is under MAX_SEGMENT_KM, so
    # only routes with a long hop (or one across the antimeridian) need the exact distances.
    if np.abs(np.diff(arr, axis=0)).sum(axis=1).max() > 40.0:
        hops = great_circle_km(arr[:-1, 1], arr[:-1, 0], arr[1:, 1], arr[1:, 0])
        if (hops > MAX_SEGMENT_KM).any():
            i = int(np.argmax(hops > MAX_SEGMENT_KM))
            raise InvalidTrip(f"route.coordinates[{i + 1}]", f"is more than {MAX_SEGMENT_KM:g} km from the point before it")
    first, last = trip.stops[0], trip.stops[-1]
    start_gap = haversine_km(first.lat, first.lon, float(arr[0, 1]), float(arr[0, 0]))
    end_gap = haversine_km(last.lat, last.lon, float(arr[-1, 1]), float(arr[-1, 0]))
    if start_gap > ROUTE_END_TOLERANCE_KM:
        raise InvalidTrip("route", f"must start within {ROUTE_END_TOLERANCE_KM:g} km of the first stop (starts {start_gap:.1f} km away)")
    if end_gap > ROUTE_END_TOLERANCE_KM:
        raise InvalidTrip("route", f"must end within {ROUTE_END_TOLERANCE_KM:g} km of the last stop (ends {end_gap:.1f} km away)")
    return arr


def _check_tail(trip: Trip) -> None:
    if not 1 <= trip.seats_total <= MAX_SEATS:
        raise InvalidTrip("seats_total", f"must be from 1 to {MAX_SEATS}")
    if not 0 <= trip.seats_available <= trip.seats_total:
        raise InvalidTrip("seats_available", f"must be from 0 to seats_total ({trip.seats_total})")
    if not (math.isfinite(trip.price.amount) and 0 <= trip.price.amount <= MAX_PRICE_AMOUNT):
        raise InvalidTrip("price.amount", f"must be a number from 0 to {MAX_PRICE_AMOUNT}")
    if not _CURRENCY_PATTERN.match(trip.price.currency):
        raise InvalidTrip("price.currency", "must be an ISO 4217 code of three capital letters, e.g. EUR")
    if trip.driver is not None:
        rating = trip.driver.rating
        if rating is not None and not (math.isfinite(rating) and 0.0 <= rating <= MAX_RATING):
            raise InvalidTrip("driver.rating", f"must be from 0 to {MAX_RATING:g}")
    if trip.status not in STATUSES:
        raise InvalidTrip("status", f"must be one of {', '.join(STATUSES)}, got {trip.status!r}")
    if trip.schedule is not None:
        _check_schedule(trip.schedule, trip.seats_total)


def parse_time_of_day(text: str, field: str) -> dt.time:
    """Return a local time written "HH:MM" or "HH:MM:SS", or raise :class:`InvalidTrip` naming ``field``.

    >>> parse_time_of_day("07:45", "t"), parse_time_of_day("23:59:30", "t")
    (datetime.time(7, 45), datetime.time(23, 59, 30))
    """
    match = _TIME_OF_DAY.match(text)
    if match is None:
        raise InvalidTrip(field, f"must be a local time HH:MM or HH:MM:SS from 00:00 to 23:59:59, got {text!r}")
    return dt.time(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name and "\0" not in name else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def schedule_zone(schedule: Schedule) -> ZoneInfo:
    """Return the time zone of a validated schedule."""
    zone = _zone(schedule.timezone)
    assert zone is not None  # _check_schedule refused the name otherwise
    return zone


def _check_schedule(schedule: Schedule, seats_total: int) -> None:
    if _zone(schedule.timezone) is None:
        raise InvalidTrip("schedule.timezone", f"must be an IANA time zone name such as Europe/Paris, got {schedule.timezone!r}")
    if schedule.valid_to < schedule.valid_from:
        raise InvalidTrip("schedule.valid_to", "is before valid_from")
    if (schedule.valid_to - schedule.valid_from).days >= MAX_SCHEDULE_DAYS:
        raise InvalidTrip("schedule.valid_to", f"must be less than {MAX_SCHEDULE_DAYS} days after valid_from (a schedule lasts at most a year)")
    for day, text in schedule.times.items():
        if day not in WEEKDAYS:
            raise InvalidTrip(f"schedule.times.{day}", f"is not a weekday; use {', '.join(WEEKDAYS)}")
        parse_time_of_day(text, f"schedule.times.{day}")
    seen: set[dt.date] = set()
    for i, exc in enumerate(schedule.exceptions):
        field = f"schedule.exceptions[{i}]"
        if not schedule.valid_from <= exc.date <= schedule.valid_to:
            raise InvalidTrip(f"{field}.date", "is outside valid_from .. valid_to")
        if exc.date in seen:
            raise InvalidTrip(f"{field}.date", "is given twice; give one exception per date")
        seen.add(exc.date)
        if exc.skip and (exc.time is not None or exc.seats_available is not None):
            raise InvalidTrip(field, "a skipped date takes no time or seats_available")
        if not exc.skip and exc.time is None and exc.seats_available is None:
            raise InvalidTrip(field, "must skip the date, or give a time or seats_available")
        if exc.time is not None:
            parse_time_of_day(exc.time, f"{field}.time")
        if exc.seats_available is not None and not 0 <= exc.seats_available <= seats_total:
            raise InvalidTrip(f"{field}.seats_available", f"must be from 0 to seats_total ({seats_total})")
        if exc.seats_available is not None and exc.time is None and WEEKDAYS[exc.date.weekday()] not in schedule.times:
            raise InvalidTrip(f"{field}.seats_available", f"the trip does not run on {exc.date.isoformat()}; give a time to add it")
    if not any(True for _ in schedule_dates(schedule)):
        raise InvalidTrip("schedule", "has no date on which the trip runs")


def schedule_dates(schedule: Schedule) -> Iterator[tuple[dt.date, str, int | None]]:
    """Yield each date the schedule runs, with its local departure time (as written) and seats_available (None: the trip's)."""
    by_date = {exc.date: exc for exc in schedule.exceptions}
    day = schedule.valid_from
    one = dt.timedelta(days=1)
    while day <= schedule.valid_to:
        exc = by_date.get(day)
        time = schedule.times.get(WEEKDAYS[day.weekday()])
        if exc is None:
            if time is not None:
                yield day, time, None
        elif not exc.skip and (exc.time or time) is not None:
            yield day, cast(str, exc.time or time), exc.seats_available
        day += one


def _check_point(field: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise InvalidTrip(f"{field}.lat", f"must be in [-90, 90], got {lat}")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise InvalidTrip(f"{field}.lon", f"must be in [-180, 180], got {lon}")


def raw_trip_id(raw: object) -> str | None:
    """Return the id of a trip input that may be invalid, if one can be read (for reports of rejected lines)."""
    if isinstance(raw, Trip):
        return raw.id
    if isinstance(raw, Mapping):
        tid = raw.get("id")
        return tid if isinstance(tid, str) else None
    if isinstance(raw, (bytes, str)):
        try:
            obj = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        return raw_trip_id(obj) if isinstance(obj, dict) else None
    return None


def trip_to_dict(trip: Trip) -> dict[str, Any]:
    """Return the wire-format dict of a trip (datetimes as ISO strings, route as GeoJSON)."""
    out: dict[str, Any] = msgspec.to_builtins(trip, enc_hook=_builtin)
    if out.get("route") is None:
        out.pop("route", None)
    if out.get("driver") is None:
        out.pop("driver", None)
    return out


def _builtin(value: Any) -> Any:
    if isinstance(value, msgspec.Raw):  # a route's coordinates
        return msgspec.json.decode(value)
    raise NotImplementedError(f"cannot convert {type(value).__name__}")


def trip_to_json(trip: Trip) -> bytes:
    """Return the wire-format JSON bytes of a trip.

    A trip with a route and a driver has nothing :func:`trip_to_dict`
    leaves out, so it is encoded as it is, without the dict of every route
    point first (6.7 against 9.8 us for the demo's trips).
    """
    if trip.route is not None and trip.driver is not None:
        return _encoder.encode(trip)
    return _encoder.encode(trip_to_dict(trip))


def tombstone_version(stored: tuple[int, bool] | None, wanted: int | None) -> int | None:
    """Return the version of the tombstone a delete leaves over a stored (version, deleted), or None if it does not apply.

    The versioning rule every backend follows: an unversioned delete
    (``wanted`` None) applies to a live trip and keeps its version; a
    versioned one applies over a lower stored version or an unknown trip,
    and stores its own version, as an upsert would.

    >>> tombstone_version((3, False), None), tombstone_version((3, True), None), tombstone_version(None, None)
    (3, None, None)
    >>> tombstone_version((3, False), 3), tombstone_version((3, False), 4), tombstone_version(None, 2)
    (None, 4, 2)
    """
    if wanted is None:
        return None if stored is None or stored[1] else stored[0]
    return None if stored is not None and wanted <= stored[0] else wanted

