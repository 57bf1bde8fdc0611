"""The standard covoiturage search parameters: their definitions, parsing, and the engine queries they become.

The parameters are those of the standard's OpenAPI document (names,
defaults and units: km, Unix seconds, weekday names); the tests check them
one by one against the spec file. Parsing refuses a bad value with a 400
naming the parameter and the reason.

``departureDate`` is read in the operator's time zone (setting
``TRIPSEARCH_STANDARD_TIMEZONE``) as a local date and time, and a journey
matches when its pickup, in its own local time, is within ``timeDelta`` of
it: the engine matches on trips' local times. :func:`journey_queries` is the
one place that turns the standard's window into engine queries;
:func:`regular_trip_queries` does the same for ``departureTimeOfDay`` between
``minDepartureDate`` and ``maxDepartureDate`` (:func:`regular_trip_window`
gives their defaults). A regular trip's occurrences are hits like any trip's,
told apart by :func:`hit_key`.

>>> search = JourneySearch((48.8566, 2.3522), (45.764, 4.8357), departure_date=1797289200, time_delta=1800)  # 2026-12-15 00:00 in Paris
>>> [(q["date"], q["time_from"], q["time_to"]) for q in journey_queries(search, ZoneInfo("Europe/Paris"))]
[('2026-12-14', '23:30', '23:59'), ('2026-12-15', '00:00', '00:30')]
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from starlette.datastructures import QueryParams

from tripsearch.backend import Backend, Hit
from tripsearch.query.model import MAX_DAYS, MAX_LIMIT, MAX_RADIUS_KM, MAX_TIME_DELTA

from ..problems import Problem

__all__ = [
    "JourneySearch",
    "RegularTripSearch",
    "WEEKDAYS",
    "DEFAULT_TIME_DELTA_S",
    "DEFAULT_RADIUS_KM",
    "MAX_TIME_DELTA_S",
    "MAX_COUNT",
    "MAX_WINDOW_HITS",
    "JOURNEY_PARAMETERS",
    "REGULAR_TRIP_PARAMETERS",
    "parse_journey_search",
    "parse_regular_trip_search",
    "journey_queries",
    "find_driver_journeys",
    "find_driver_regular_trips",
    "regular_trip_window",
    "regular_trip_queries",
    "hit_key",
    "DEFAULT_REGULAR_WINDOW_DAYS",
    "MAX_REGULAR_WINDOW_DAYS",
    "pickup_window_centre",
    "pickup_wall_time",
]

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
DEFAULT_TIME_DELTA_S = 900
DEFAULT_RADIUS_KM = 1.0
MAX_TIME_DELTA_S = 86_400  # a day either side: a window touches at most three local days
MAX_COUNT = 1000  # journeys in one answer; without count, all matching journeys up to this many
MAX_WINDOW_HITS = 5000  # trips one search may gather before ranking by time; beyond, the client narrows it
# driver_regular_trips without minDepartureDate/maxDepartureDate looks at the coming four weeks; at most a year (a schedule's longest)
DEFAULT_REGULAR_WINDOW_DAYS = 28
MAX_REGULAR_WINDOW_DAYS = 366
MAX_REGULAR_HITS = 20_000  # occurrences (and one-off trips) one regular-trip search may gather
# departureDate bounds that keep every window day inside the engine's dates (1970-01-02 .. 2149-12-30).
MIN_DEPARTURE_DATE = int(dt.datetime(1970, 1, 4, tzinfo=dt.timezone.utc).timestamp())
MAX_DEPARTURE_DATE = int(dt.datetime(2149, 12, 28, tzinfo=dt.timezone.utc).timestamp())
_PARTIAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(\.\d+)?$")


@dataclass(frozen=True, slots=True)
class JourneySearch:
    """The parameters of ``GET /driver_journeys`` (and ``/passenger_journeys``), parsed."""

    departure: tuple[float, float]  # (lat, lon)
    arrival: tuple[float, float]
    departure_date: int  # Unix seconds
    time_delta: int = DEFAULT_TIME_DELTA_S  # seconds
    departure_radius: float = DEFAULT_RADIUS_KM  # km
    arrival_radius: float = DEFAULT_RADIUS_KM
    count: int | None = None  # None: every match, up to MAX_COUNT


@dataclass(frozen=True, slots=True)
class RegularTripSearch:
    """The parameters of ``GET /driver_regular_trips`` (and ``/passenger_regular_trips``), parsed."""

    departure: tuple[float, float]
    arrival: tuple[float, float]
    departure_time_of_day: dt.time
    departure_weekdays: tuple[str, ...] = WEEKDAYS
    time_delta: int = DEFAULT_TIME_DELTA_S
    departure_radius: float = DEFAULT_RADIUS_KM
    arrival_radius: float = DEFAULT_RADIUS_KM
    min_departure_date: int | None = None
    max_departure_date: int | None = None
    count: int | None = None


# -- the parameters, as the OpenAPI document of tripsearch lists them -----------------


def _param(name: str, description: str, schema: dict[str, Any], required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema, **extra}


_COMMON = {
    "departureLat": _param("departureLat", "Latitude of searched departure point (degrees, -90 to 90).", {"type": "number"}, True),
    "departureLng": _param("departureLng", "Longitude of searched departure point (degrees, -180 to 180).", {"type": "number"}, True),
    "arrivalLat": _param("arrivalLat", "Latitude of searched arrival point.", {"type": "number"}, True),
    "arrivalLng": _param("arrivalLng", "Longitude of searched arrival point.", {"type": "number"}, True),
    "timeDelta": _param("timeDelta", f"Time margin in seconds, 0 to {MAX_TIME_DELTA_S}: journeys within +/- timeDelta of the asked time.", {"type": "integer", "default": DEFAULT_TIME_DELTA_S}),
    "departureRadius": _param("departureRadius", f"Search radius in kilometers around the departure point (0 to {MAX_RADIUS_KM:g}).", {"type": "number", "default": DEFAULT_RADIUS_KM}),
    "arrivalRadius": _param("arrivalRadius", f"Search radius in kilometers around the arrival point (0 to {MAX_RADIUS_KM:g}).", {"type": "number", "default": DEFAULT_RADIUS_KM}),
    "count": _param("count", f"Maximum number of returned results, 0 to {MAX_COUNT}; if missing, all matching results (at most {MAX_COUNT}).", {"type": "integer"}),
}
_DEPARTURE_DATE = _param(
    "departureDate",
    "Departure datetime as a UNIX UTC timestamp in seconds; read as a local date and time in the operator's time zone (TRIPSEARCH_STANDARD_TIMEZONE).",
    {"type": "integer"},
    True,
)
_REGULAR = {
    "departureTimeOfDay": _param("departureTimeOfDay", "Departure time of day as an RFC 3339 partial-time (07:30:00).", {"type": "string", "format": "partial-time"}, True, example="07:30:00"),
    "departureWeekdays": _param(
        "departureWeekdays",
        "Departure days of week, a comma list of MON, TUE, WED, THU, FRI, SAT, SUN.",
        {"type": "array", "items": {"type": "string", "enum": list(WEEKDAYS)}, "default": ",".join(WEEKDAYS)},
        style="form",
        explode=False,
    ),
    "minDepartureDate": _param(
        "minDepartureDate",
        "Minimum date of the passenger pickups of the returned trips, a UNIX UTC timestamp in seconds; "
        f"default now (or {DEFAULT_REGULAR_WINDOW_DAYS} days before maxDepartureDate when that is in the past).",
        {"type": "integer"},
    ),
    "maxDepartureDate": _param(
        "maxDepartureDate",
        "Maximum date of the passenger pickups of the returned trips, a UNIX UTC timestamp in seconds; "
        f"default {DEFAULT_REGULAR_WINDOW_DAYS} days after minDepartureDate, at most {MAX_REGULAR_WINDOW_DAYS} days after it.",
        {"type": "integer"},
    ),
}
_C = _COMMON
JOURNEY_PARAMETERS: list[dict[str, Any]] = [
    _C["departureLat"], _C["departureLng"], _C["arrivalLat"], _C["arrivalLng"], _DEPARTURE_DATE,
    _C["timeDelta"], _C["departureRadius"], _C["arrivalRadius"], _C["count"],
]  # fmt: skip
REGULAR_TRIP_PARAMETERS: list[dict[str, Any]] = [
    _C["departureLat"], _C["departureLng"], _C["arrivalLat"], _C["arrivalLng"], _REGULAR["departureTimeOfDay"], _REGULAR["departureWeekdays"],
    _C["timeDelta"], _C["departureRadius"], _C["arrivalRadius"], _REGULAR["minDepartureDate"], _REGULAR["maxDepartureDate"], _C["count"],
]  # fmt: skip


# -- parsing ------------------------------------------------------------------------


def parse_journey_search(params: QueryParams) -> JourneySearch:
    """Return the journey search that URL parameters ask for, or raise a 400 :class:`Problem` naming the parameter.

    Parameters the standard does not define are ignored, so that a client
    sending a later version's parameters still gets an answer.
    """
    values = _single_values(params)
    departure_date = _integer(values, "departureDate", MIN_DEPARTURE_DATE, MAX_DEPARTURE_DATE, "Unix seconds")
    assert departure_date is not None
    return JourneySearch(
        departure=_point(values, "departureLat", "departureLng"),
        arrival=_point(values, "arrivalLat", "arrivalLng"),
        departure_date=departure_date,
        **_margins(values),
    )


def parse_regular_trip_search(params: QueryParams) -> RegularTripSearch:
    """Return the regular-trip search that URL parameters ask for, or raise a 400 :class:`Problem` naming the parameter."""
    values = _single_values(params)
    low = _integer(values, "minDepartureDate", MIN_DEPARTURE_DATE, MAX_DEPARTURE_DATE, "Unix seconds", required=False)
    high = _integer(values, "maxDepartureDate", MIN_DEPARTURE_DATE, MAX_DEPARTURE_DATE, "Unix seconds", required=False)
    if low is not None and high is not None and low > high:
        raise _bad("maxDepartureDate", f"must not be before minDepartureDate ({low}), got {high}")
    return RegularTripSearch(
        departure=_point(values, "departureLat", "departureLng"),
        arrival=_point(values, "arrivalLat", "arrivalLng"),
        departure_time_of_day=_time_of_day(values, "departureTimeOfDay"),
        departure_weekdays=_weekdays(params.getlist("departureWeekdays")),
        min_departure_date=low,
        max_departure_date=high,
        **_margins(values),
    )


def _bad(name: str, reason: str) -> Problem:
    return Problem(400, f"{name}: {reason}", code="invalid_query", field=name)


def _single_values(params: QueryParams) -> dict[str, str]:
    """Return the parameters by name; a parameter given twice is refused (but departureWeekdays adds up)."""
    values: dict[str, str] = {}
    for key, value in params.multi_items():
        if key in values and key != "departureWeekdays":
            raise _bad(key[:40], "is given more than once")
        values[key] = value
    return values


def _margins(values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "time_delta": _integer(values, "timeDelta", 0, MAX_TIME_DELTA_S, "seconds", default=DEFAULT_TIME_DELTA_S),
        "departure_radius": _number(values, "departureRadius", 0.0, MAX_RADIUS_KM, "km", default=DEFAULT_RADIUS_KM),
        "arrival_radius": _number(values, "arrivalRadius", 0.0, MAX_RADIUS_KM, "km", default=DEFAULT_RADIUS_KM),
        "count": _integer(values, "count", 0, MAX_COUNT, "results", required=False),
    }


def _raw(values: Mapping[str, str], name: str, required: bool) -> str | None:
    raw = values.get(name)
    if raw is None or raw.strip() == "":
        if required:
            raise _bad(name, "is required")
        return None
    return raw.strip()


def _number(values: Mapping[str, str], name: str, low: float, high: float, unit: str, default: float | None = None, required: bool = False) -> float:
    raw = _raw(values, name, required and default is None)
    if raw is None:
        assert default is not None
        return default
    try:
        number = float(raw)
    except ValueError:
        raise _bad(name, f"must be a number ({unit}), got {raw[:40]!r}") from None
    if not low <= number <= high:  # also refuses nan and infinities
        raise _bad(name, f"must be from {low:g} to {high:g} ({unit}), got {raw[:40]}")
    return number


def _integer(values: Mapping[str, str], name: str, low: int, high: int, unit: str, default: int | None = None, required: bool = True) -> int | None:
    raw = _raw(values, name, required and default is None)
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?\d{1,20}", raw):
        raise _bad(name, f"must be an integer ({unit}), got {raw[:40]!r}")
    number = int(raw)
    if not low <= number <= high:
        raise _bad(name, f"must be from {low} to {high} ({unit}), got {number}")
    return number


def _point(values: Mapping[str, str], lat: str, lng: str) -> tuple[float, float]:
    return (_number(values, lat, -90.0, 90.0, "degrees", required=True), _number(values, lng, -180.0, 180.0, "degrees", required=True))


def _time_of_day(values: Mapping[str, str], name: str) -> dt.time:
    raw = _raw(values, name, True)
    assert raw is not None
    match = _PARTIAL_TIME.match(raw)
    if match is None:
        raise _bad(name, f"must be an RFC 3339 partial-time HH:MM:SS, got {raw[:40]!r}")
    hours, minutes, seconds = (int(part) for part in match.groups()[:3])
    return dt.time(hours, minutes, min(seconds, 59))  # a leap second reads as the second before it


def _weekdays(raw: Sequence[str]) -> tuple[str, ...]:
    if not raw:
        return WEEKDAYS
    names = [name.strip() for value in raw for name in value.split(",")]
    for name in names:
        if name not in WEEKDAYS:
            raise _bad("departureWeekdays", f"must be a comma list of {', '.join(WEEKDAYS)}, got {name[:40]!r}")
    return tuple(day for day in WEEKDAYS if day in names)


# -- the engine queries -----------------------------------------------------------------


def journey_queries(search: JourneySearch, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Return the engine queries that gather the journeys of ``search``: one per local day its window touches.

    ``departureDate`` becomes a local date and time in ``tz`` and the window
    is that +/- ``timeDelta``, on the wall clock; each query asks for one
    day's part of it in whole minutes (``time_from``/``time_to``, both ends
    included), a little wider than the window, which
    :func:`find_driver_journeys` then applies to the second.
    """
    local = pickup_window_centre(search, tz)
    start, end = local - dt.timedelta(seconds=search.time_delta), local + dt.timedelta(seconds=search.time_delta)
    queries = []
    day = start.date()
    while day <= end.date():
        first = start.hour * 60 + start.minute if day == start.date() else 0
        last = end.hour * 60 + end.minute if day == end.date() else 24 * 60 - 1
        queries.append(
            {
                "from": list(search.departure),
                "to": list(search.arrival),
                "date": day.isoformat(),
                "time_from": f"{first // 60:02d}:{first % 60:02d}",
                "time_to": f"{last // 60:02d}:{last % 60:02d}",
                "from_radius_km": search.departure_radius,
                "to_radius_km": search.arrival_radius,
                "sort": "departure",
                "limit": MAX_LIMIT,
                "facets": [],
            }
        )
        day += dt.timedelta(days=1)
    return queries


def pickup_window_centre(search: JourneySearch, tz: ZoneInfo) -> dt.datetime:
    """Return ``departureDate`` as a wall-clock time (naive) in ``tz``."""
    return dt.datetime.fromtimestamp(search.departure_date, tz).replace(tzinfo=None)


def pickup_wall_time(hit: Hit) -> dt.datetime:
    """Return a hit's pickup time on its own wall clock (naive)."""
    return dt.datetime.fromisoformat(hit.pickup.time).replace(tzinfo=None)


def find_driver_journeys(engine: Backend, search: JourneySearch, tz: ZoneInfo) -> list[Hit]:
    """Return the hits of ``search``, closest to the asked time first, at most ``count`` (else :data:`MAX_COUNT`).

    Runs :func:`journey_queries` to the last page, keeps the hits whose pickup
    is within ``timeDelta`` seconds of the asked wall-clock time, and orders
    them by that gap (then pickup time, then id, so the order is total).
    Raises a 400 :class:`Problem` when the window holds more than
    :data:`MAX_WINDOW_HITS` trips.
    """
    centre = pickup_window_centre(search, tz)
    delta = dt.timedelta(seconds=search.time_delta)
    found: dict[tuple[str, str | None], tuple[dt.timedelta, dt.datetime, Hit]] = {}
    for hit in _every_hit(engine, journey_queries(search, tz)):
        wall = pickup_wall_time(hit)
        if abs(wall - centre) <= delta:
            found[hit_key(hit)] = (abs(wall - centre), wall, hit)
    ranked = sorted(found.values(), key=lambda item: (item[0], item[1], hit_key(item[2])))
    count = MAX_COUNT if search.count is None else search.count
    return [hit for _, _, hit in ranked[:count]]


def hit_key(hit: Hit) -> tuple[str, str]:
    """Return what tells hits apart: the trip id, and the occurrence's date for a regular trip (a trip id never holds '/', so ids sort apart)."""
    return hit.id, hit.occurrence or ""


def regular_trip_window(search: RegularTripSearch, now: int) -> tuple[int, int]:
    """Return the pickup instants (Unix seconds, both included) a regular-trip search looks between.

    Missing ``minDepartureDate`` is ``now`` (or four weeks before a
    ``maxDepartureDate`` in the past); missing ``maxDepartureDate`` four weeks
    after the minimum. A window over a year is a 400 naming ``maxDepartureDate``.

    >>> day = 86_400
    >>> regular_trip_window(RegularTripSearch((0, 0), (1, 1), dt.time(7, 30)), now=1_800_000_000) == (1_800_000_000, 1_800_000_000 + 28 * day)
    True
    >>> regular_trip_window(RegularTripSearch((0, 0), (1, 1), dt.time(7, 30), max_departure_date=1_700_000_000), now=1_800_000_000) == (1_700_000_000 - 28 * day, 1_700_000_000)
    True
    """
    window = DEFAULT_REGULAR_WINDOW_DAYS * 86_400
    high = search.max_departure_date
    low = search.min_departure_date
    if low is None:
        low = now if high is None or high >= now else high - window
    if high is None:
        high = low + window
    low, high = max(low, MIN_DEPARTURE_DATE), min(high, MAX_DEPARTURE_DATE)
    if high - low > MAX_REGULAR_WINDOW_DAYS * 86_400:
        raise _bad("maxDepartureDate", f"must be at most {MAX_REGULAR_WINDOW_DAYS} days after minDepartureDate ({low}), got {high}")
    return low, high


def regular_trip_queries(search: RegularTripSearch, low: int, high: int) -> list[dict[str, Any]]:
    """Return the engine queries that gather the occurrences of a regular-trip search between ``low`` and ``high`` (Unix seconds).

    Each query covers up to a week of local days around ``departureTimeOfDay``
    (in whole minutes, a minute wider than ``timeDelta``); the days reach one
    past each end, since a trip's local date may be a day off the UTC date.
    :func:`find_driver_regular_trips` applies the window to the second.

    >>> search = RegularTripSearch((45.76, 4.84), (45.19, 5.72), dt.time(7, 30, 30), time_delta=900)
    >>> [(q["date_from"], q["date_to"], q["departure_time"], q["time_delta"]) for q in regular_trip_queries(search, 1798761600, 1799366400)]  # 2027-01-01 .. 2027-01-08 UTC
    [('2026-12-31', '2027-01-06', '07:30', 960), ('2027-01-07', '2027-01-09', '07:30', 960)]
    """
    first = dt.datetime.fromtimestamp(low, dt.timezone.utc).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(high, dt.timezone.utc).date() + dt.timedelta(days=1)
    minute = search.departure_time_of_day.hour * 60 + search.departure_time_of_day.minute
    delta = search.time_delta + 60  # the engine counts whole minutes; a second past the minute may need one more
    around: dict[str, Any] = {"departure_time": f"{minute // 60:02d}:{minute % 60:02d}", "time_delta": delta} if delta < MAX_TIME_DELTA else {}
    queries = []
    while first <= last:
        until = min(last, first + dt.timedelta(days=MAX_DAYS - 1))
        queries.append(
            {
                "from": list(search.departure),
                "to": list(search.arrival),
                "date_from": first.isoformat(),
                "date_to": until.isoformat(),
                **around,
                "from_radius_km": search.departure_radius,
                "to_radius_km": search.arrival_radius,
                "sort": "departure",
                "limit": MAX_LIMIT,
                "facets": [],
            }
        )
        first = until + dt.timedelta(days=1)
    return queries


def find_driver_regular_trips(engine: Backend, search: RegularTripSearch, now: int) -> list[list[Hit]]:
    """Return the regular trips of ``search``, each as its matching occurrences (earliest pickup first), at most ``count`` trips.

    An occurrence matches when its pickup, on the trip's own wall clock, is
    within ``timeDelta`` of ``departureTimeOfDay`` (across midnight too), on
    one of ``departureWeekdays`` (the pickup's local day), between the
    window's ends (:func:`regular_trip_window`). Trips come closest in time
    first, then earliest pickup, then id. One-off trips are left out.
    """
    low, high = regular_trip_window(search, now)
    wanted = search.departure_time_of_day
    asked = wanted.hour * 3600 + wanted.minute * 60 + wanted.second
    days = set(search.departure_weekdays)
    by_trip: dict[str, dict[str, tuple[int, dt.datetime, Hit]]] = {}
    for hit in _every_hit(engine, regular_trip_queries(search, low, high), MAX_REGULAR_HITS, "maxDepartureDate", "minDepartureDate..maxDepartureDate, timeDelta, departureRadius or arrivalRadius"):
        if hit.occurrence is None:
            continue
        at = dt.datetime.fromisoformat(hit.pickup.time)
        if not low <= at.timestamp() <= high or WEEKDAYS[at.weekday()] not in days:
            continue
        gap = abs(at.hour * 3600 + at.minute * 60 + at.second - asked)
        gap = min(gap, 86_400 - gap)
        if gap <= search.time_delta:
            by_trip.setdefault(hit.id, {})[hit.occurrence] = (gap, at, hit)
    ranked = sorted(by_trip.values(), key=lambda found: (min(g for g, _, _ in found.values()), min(a.timestamp() for _, a, _ in found.values()), next(iter(found.values()))[2].id))
    count = MAX_COUNT if search.count is None else search.count
    return [[hit for _, _, hit in sorted(found.values(), key=lambda item: item[1].timestamp())] for found in ranked[:count]]


def _every_hit(engine: Backend, queries: list[dict[str, Any]], most: int = MAX_WINDOW_HITS, field: str = "timeDelta", narrow: str = "timeDelta, departureRadius or arrivalRadius") -> Iterator[Hit]:
    gathered = 0
    for query in queries:
        cursor = None
        while True:
            result = engine.search(query if cursor is None else {**query, "cursor": cursor})
            gathered += len(result.trips)
            if gathered > most:
                raise Problem(
                    400,
                    f"{field}: the search window holds more than {most} trips; narrow {narrow}",
                    code="invalid_query",
                    field=field,
                )
            yield from result.trips
            cursor = result.next_cursor
            if cursor is None:
                break
