"""The search query: an immutable value, parsed from a dict with clear errors.

>>> q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01"})
>>> q.from_radius_km, q.sort, q.limit, q.facets[:2]
(10.0, 'relevance', 20, ('departure_hour', 'time_of_day'))
>>> replace(q, limit=5).limit
5
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, Mapping, NamedTuple

import orjson

from ..errors import InvalidCursor, InvalidQuery
from ..model import MAX_RATING, MAX_SEATS, OPTION_NAMES

__all__ = [
    "Query",
    "parse_query",
    "replace",
    "FACET_NAMES",
    "SORTS",
    "MAX_RADIUS_KM",
    "MAX_LIMIT",
    "MAX_PRICE",
    "MAX_CELL_RESOLUTION",
    "MAX_CURSOR_LENGTH",
    "MIN_PRICE_INTERVAL",
    "DEFAULT_RADIUS_KM",
    "QUERY_DEFAULTS",
    "DATES_FACET_SPAN",
    "MAX_DAYS",
    "MAX_TIME_DELTA",
    "DEFAULT_TIME_DELTA",
    "TimeRule",
    "facet_days",
    "local_days_of",
    "encode_cursor",
    "decode_cursor",
]

FACET_NAMES = (
    "departure_hour",
    "time_of_day",
    "price",
    "options",
    "seats_available",
    "driver_rating",
    "dates",
    "pickup_cells",
    "dropoff_cells",
)
SORTS = ("relevance", "departure", "price", "pickup_distance", "time_distance")
MAX_RADIUS_KM = 100.0
DEFAULT_RADIUS_KM = 10.0
MAX_LIMIT = 100
DATES_FACET_SPAN = 3  # the dates facet covers date - 3 .. date + 3
MIN_PRICE_INTERVAL = 0.01  # a cent: finer buckets say nothing and break the bucket arithmetic
MAX_PRICE = 1e9  # the highest max_price and price_interval
MAX_CELL_RESOLUTION = 15  # H3's finest
MAX_CURSOR_LENGTH = 1000
MAX_DAYS = 7  # the longest date_from..date_to, both days counted
MAX_TIME_DELTA = 12 * 3600  # seconds: the windows of two days never overlap
DEFAULT_TIME_DELTA = 900  # seconds, when departure_time comes without time_delta
MIN_DATE = dt.date(1970, 1, 2)
MAX_DATE = dt.date(2149, 12, 30)
_MINUTES_PER_DAY = 24 * 60


class TimeRule(NamedTuple):
    """The date and time filters of a query as one rule on the pickup's local minute (see :meth:`Query.time_rule`).

    The pickup's local minute since 1970-01-01, less ``shift``, gives its
    *search day* (the whole days) and its minute on that day: the date
    filter keeps the search days ``first_day .. last_day``, the time filter
    the minutes ``low .. high`` (both ends included; ``low > high`` wraps
    around midnight). ``target`` is the minute of the day the
    ``time_distance`` sort measures from (-1: none).
    """

    first_day: int
    last_day: int
    shift: int
    low: int
    high: int
    target: int


@dataclass(frozen=True, slots=True)
class Query:
    """A trip search. Build it with :func:`parse_query`; derive variants with :func:`replace`."""

    from_point: tuple[float, float]  # (lat, lon)
    to_point: tuple[float, float]
    date: dt.date  # the day, or the first day of date_from..date_to
    from_radius_km: float = DEFAULT_RADIUS_KM
    to_radius_km: float = DEFAULT_RADIUS_KM
    seats: int = 1
    time_from: int | None = None  # minutes after local midnight
    time_to: int | None = None
    max_price: float | None = None
    options: tuple[str, ...] = ()
    min_rating: float | None = None
    sort: str = "relevance"
    limit: int = 20
    cursor: str | None = None
    facets: tuple[str, ...] = FACET_NAMES
    price_interval: float = 5.0
    cell_resolution: int = 7
    date_to: dt.date | None = None  # the last day of a range (None: the one day ``date``)
    departure_time: int | None = None  # minutes after local midnight, instead of time_from/time_to
    time_delta: int | None = None  # seconds either side of departure_time
    # Filled from the cursor: the sort key of the last hit already returned.
    after: tuple[Any, ...] | None = field(default=None, compare=False)

    @property
    def day(self) -> int:
        """The date as days since 1970-01-01."""
        return (self.date - dt.date(1970, 1, 1)).days

    @property
    def last_day(self) -> int:
        """The last day of the search (``date_to``, or ``date``) as days since 1970-01-01."""
        return (self.date_to - dt.date(1970, 1, 1)).days if self.date_to is not None else self.day

    def time_rule(self) -> TimeRule:
        """Return the date and time filters as one rule on the pickup's local minute.

        With a time window (or none) the search day is the local calendar
        day. With ``departure_time`` t and ``time_delta`` d, the search day
        runs from 12 hours before t to 12 hours after, so a pickup belongs to
        the day whose t is nearest (half-way: the later day), and the window
        keeps the minutes at most d // 60 from t, even across midnight.

        >>> q = parse_query({"from": "0,0", "to": "1,1", "date": "2026-12-01", "departure_time": "23:50", "time_delta": 1800})
        >>> q.time_rule()
        TimeRule(first_day=20788, last_day=20788, shift=710, low=690, high=750, target=1430)
        """
        if self.departure_time is None:
            low = 0 if self.time_from is None else self.time_from
            high = _MINUTES_PER_DAY - 1 if self.time_to is None else self.time_to
            return TimeRule(self.day, self.last_day, 0, low, high, -1)
        half = _MINUTES_PER_DAY // 2
        delta = (self.time_delta or 0) // 60
        return TimeRule(self.day, self.last_day, self.departure_time - half, half - delta, min(half + delta, _MINUTES_PER_DAY - 1), self.departure_time)

    def local_window(self) -> tuple[int, int] | None:
        """Return the time filter alone as a window of local minutes of the day (start after end: across midnight), None without one.

        A search day is the local day turned by a whole number of minutes,
        so the window around ``departure_time`` is the same on every local day.

        >>> q = parse_query({"from": "0,0", "to": "1,1", "date": "2026-12-01", "departure_time": "23:50", "time_delta": 1800})
        >>> q.local_window()
        (1400, 20)
        """
        if self.departure_time is None and self.time_from is None and self.time_to is None:
            return None
        rule = self.time_rule()
        return (rule.low + rule.shift) % _MINUTES_PER_DAY, (rule.high + rule.shift) % _MINUTES_PER_DAY

    def fingerprint(self) -> str:
        """Return a short hash of what decides the result list (not limit, cursor or facets)."""
        key = [
            self.from_point,
            self.to_point,
            self.date.isoformat(),
            self.from_radius_km,
            self.to_radius_km,
            self.seats,
            self.time_from,
            self.time_to,
            self.max_price,
            sorted(self.options),
            self.min_rating,
            self.sort,
        ]
        if self.date_to is not None or self.departure_time is not None:
            # Only then: the cursors of one-day searches in a window stay what they were before these fields.
            key += [None if self.date_to is None else self.date_to.isoformat(), self.departure_time, self.time_delta]
        return hashlib.blake2b(orjson.dumps(key), digest_size=8).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Return the query as the dict :func:`parse_query` reads."""
        out: dict[str, Any] = {
            "from": list(self.from_point),
            "to": list(self.to_point),
            **({"date": self.date.isoformat()} if self.date_to is None else {"date_from": self.date.isoformat(), "date_to": self.date_to.isoformat()}),
            "from_radius_km": self.from_radius_km,
            "to_radius_km": self.to_radius_km,
            "seats": self.seats,
            "sort": self.sort,
            "limit": self.limit,
            "facets": list(self.facets),
            "price_interval": self.price_interval,
            "cell_resolution": self.cell_resolution,
        }
        if self.departure_time is not None:
            out["departure_time"] = _format_minutes(self.departure_time)
            out["time_delta"] = self.time_delta
        if self.time_from is not None:
            out["time_from"] = _format_minutes(self.time_from)
        if self.time_to is not None:
            out["time_to"] = _format_minutes(self.time_to)
        if self.max_price is not None:
            out["max_price"] = self.max_price
        if self.options:
            out["options"] = list(self.options)
        if self.min_rating is not None:
            out["min_rating"] = self.min_rating
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out


_FIELDS = {f.name for f in fields(Query)} - {"from_point", "to_point", "after"} | {"from", "to", "date_from"}
# The default of every optional query field, as parse_query reads it (facets: all of them).
QUERY_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Query) if f.name in _FIELDS and f.default is not MISSING} | {"facets": "all", "date_from": None}


def parse_query(data: Mapping[str, Any] | Query) -> Query:
    """Return a :class:`Query` from a dict of query fields, or raise :class:`InvalidQuery` naming the field."""
    if isinstance(data, Query):
        return data
    if not isinstance(data, Mapping):
        raise InvalidQuery("", "a query must be an object of query fields")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InvalidQuery(unknown[0], f"is not a query field (known: {', '.join(sorted(_FIELDS))})")
    for required in ("from", "to"):
        if data.get(required) is None:
            raise InvalidQuery(required, "is required")
    date, date_to = _days(data)
    departure_time, time_delta = _around(data)
    q = Query(
        from_point=_point("from", data["from"]),
        to_point=_point("to", data["to"]),
        date=date,
        date_to=date_to,
        departure_time=departure_time,
        time_delta=time_delta,
        from_radius_km=_number("from_radius_km", data.get("from_radius_km", QUERY_DEFAULTS["from_radius_km"]), 0.0, MAX_RADIUS_KM),
        to_radius_km=_number("to_radius_km", data.get("to_radius_km", QUERY_DEFAULTS["to_radius_km"]), 0.0, MAX_RADIUS_KM),
        seats=_integer("seats", data.get("seats", QUERY_DEFAULTS["seats"]), 1, MAX_SEATS),
        time_from=_minutes("time_from", data.get("time_from")),
        time_to=_minutes("time_to", data.get("time_to")),
        max_price=_optional_number("max_price", data.get("max_price"), 0.0, MAX_PRICE),
        options=_options(data.get("options")),
        min_rating=_optional_number("min_rating", data.get("min_rating"), 0.0, MAX_RATING),
        sort=_choice("sort", data.get("sort", QUERY_DEFAULTS["sort"]), SORTS),
        limit=_integer("limit", data.get("limit", QUERY_DEFAULTS["limit"]), 1, MAX_LIMIT),
        cursor=_optional_str("cursor", data.get("cursor")),
        facets=_facets(data.get("facets", QUERY_DEFAULTS["facets"])),
        price_interval=_number("price_interval", data.get("price_interval", QUERY_DEFAULTS["price_interval"]), MIN_PRICE_INTERVAL, MAX_PRICE),
        cell_resolution=_integer("cell_resolution", data.get("cell_resolution", QUERY_DEFAULTS["cell_resolution"]), 0, MAX_CELL_RESOLUTION),
    )
    if q.sort == "time_distance" and q.departure_time is None:
        raise InvalidQuery("sort", "time_distance ranks by the distance from departure_time: give departure_time")
    if q.cursor is not None:
        q = replace(q, after=decode_cursor(q.cursor, q))
    return q


def facet_days(query: Query) -> tuple[int, int]:
    """Return the first and last search day the ``dates`` facet counts: the query's days and DATES_FACET_SPAN more either side."""
    return query.day - DATES_FACET_SPAN, query.last_day + DATES_FACET_SPAN


def local_days_of(query: Query, first: int, last: int) -> list[int]:
    """Return the local days that the search days ``first .. last`` of ``query`` overlap (one more when they start off midnight).

    >>> q = parse_query({"from": "0,0", "to": "1,1", "date": "2026-12-01", "departure_time": "07:00"})
    >>> local_days_of(q, q.day, q.day) == [q.day - 1, q.day]
    True
    """
    shift = query.time_rule().shift
    return list(range((first * _MINUTES_PER_DAY + shift) // _MINUTES_PER_DAY, (last * _MINUTES_PER_DAY + shift + _MINUTES_PER_DAY - 1) // _MINUTES_PER_DAY + 1))


def _given(data: Mapping[str, Any], name: str) -> bool:
    return data.get(name) not in (None, "")


def _days(data: Mapping[str, Any]) -> tuple[dt.date, dt.date | None]:
    """Return the first and last day of a query: ``date``, or ``date_from``..``date_to`` (None for one day)."""
    if _given(data, "date"):
        for name in ("date_from", "date_to"):
            if _given(data, name):
                raise InvalidQuery(name, "cannot be given with date (give date for one day, or date_from and date_to)")
        return _date("date", data["date"]), None
    if not _given(data, "date_from") and not _given(data, "date_to"):
        raise InvalidQuery("date", "is required (or date_from and date_to)")
    for name in ("date_from", "date_to"):
        if not _given(data, name):
            raise InvalidQuery(name, "is required with " + ("date_to" if name == "date_from" else "date_from"))
    first, last = _date("date_from", data["date_from"]), _date("date_to", data["date_to"])
    if last < first:
        raise InvalidQuery("date_to", f"is before date_from ({last} < {first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidQuery("date_to", f"is more than {MAX_DAYS} days from date_from, counting both ({first} .. {last})")
    return first, (None if last == first else last)


def _around(data: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Return ``departure_time`` (minutes) and ``time_delta`` (seconds), or (None, None) without a departure_time."""
    if not _given(data, "departure_time"):
        if _given(data, "time_delta"):
            raise InvalidQuery("time_delta", "needs departure_time")
        return None, None
    for name in ("time_from", "time_to"):
        if _given(data, name):
            raise InvalidQuery(name, "cannot be given with departure_time (give departure_time and time_delta, or a window time_from..time_to)")
    departure_time = _minutes("departure_time", data["departure_time"])
    delta = data.get("time_delta")
    return departure_time, _integer("time_delta", DEFAULT_TIME_DELTA if delta in (None, "") else delta, 0, MAX_TIME_DELTA)


def _point(name: str, value: Any) -> tuple[float, float]:
    parts: list[Any]
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, Mapping):
        parts = [value.get("lat"), value.get("lon")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise InvalidQuery(name, "must be [lat, lon] or 'LAT,LON'")
    if len(parts) != 2:
        raise InvalidQuery(name, "must be [lat, lon] or 'LAT,LON' (two numbers)")
    lat = _number(f"{name}.lat", parts[0], -90.0, 90.0)
    lon = _number(f"{name}.lon", parts[1], -180.0, 180.0)
    return (lat, lon)


def _date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidQuery(name, f"must be a date YYYY-MM-DD, got {value[:40]!r}") from None
        if len(value.strip()) != 10:
            raise InvalidQuery(name, f"must be a date YYYY-MM-DD, got {value[:40]!r}")
    else:
        raise InvalidQuery(name, "must be a date YYYY-MM-DD")
    if not MIN_DATE <= parsed <= MAX_DATE:
        raise InvalidQuery(name, f"must be between {MIN_DATE} and {MAX_DATE}")
    return parsed


def _from_text(name: str, value: Any, convert: Callable[[str], Any], kind: str) -> Any:
    """Return ``value``, a string converted by ``convert``; a bool is refused, not taken for ``kind``."""
    if isinstance(value, bool):
        raise InvalidQuery(name, f"must be {kind}")
    if isinstance(value, str):
        try:
            return convert(value.strip())
        except ValueError:
            raise InvalidQuery(name, f"must be {kind}, got {value[:40]!r}") from None
    return value


def _number(name: str, value: Any, low: float, high: float, open_low: bool = False) -> float:
    value = _from_text(name, value, float, "a number")
    if not isinstance(value, (int, float)):
        raise InvalidQuery(name, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidQuery(name, "must be a finite number")
    if number < low or (open_low and number == low) or number > high:
        bound = f"greater than {low:g}" if open_low else f"at least {low:g}"
        raise InvalidQuery(name, f"must be {bound} and at most {high:g}, got {number:g}")
    return number


def _optional_number(name: str, value: Any, low: float, high: float) -> float | None:
    return None if value is None or value == "" else _number(name, value, low, high)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    value = _from_text(name, value, int, "an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise InvalidQuery(name, "must be an integer")
    if not low <= value <= high:
        raise InvalidQuery(name, f"must be from {low} to {high}, got {value}")
    return value


def _minutes(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidQuery(name, "must be a time HH:MM")
    hh, sep, mm = value.strip().partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and len(hh) in (1, 2)):
        raise InvalidQuery(name, f"must be a time HH:MM, got {value[:40]!r}")
    hours, minutes = int(hh), int(mm)
    if hours > 23 or minutes > 59:
        raise InvalidQuery(name, f"must be a time from 00:00 to 23:59, got {value!r}")
    return hours * 60 + minutes


def _format_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidQuery(name, f"must be one of {', '.join(choices)}, got {str(value)[:40]!r}")
    return str(value)


def _optional_str(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_CURSOR_LENGTH:
        raise InvalidQuery(name, f"must be a string of at most {MAX_CURSOR_LENGTH} characters")
    return value


def _names(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise InvalidQuery(name, "must be a list of names or a comma-separated string")


def _options(value: Any) -> tuple[str, ...]:
    names = _names("options", value)
    for n in names:
        if n not in OPTION_NAMES:
            raise InvalidQuery("options", f"unknown option {n[:40]!r} (known: {', '.join(OPTION_NAMES)})")
    return tuple(sorted(set(names)))


def _facets(value: Any) -> tuple[str, ...]:
    names = _names("facets", value)
    if names == ["all"]:
        return FACET_NAMES
    for n in names:
        if n not in FACET_NAMES:
            raise InvalidQuery("facets", f"unknown facet {n[:40]!r} (known: all, {', '.join(FACET_NAMES)})")
    return tuple(n for n in FACET_NAMES if n in names)


def encode_cursor(query: Query, sort_key: tuple[Any, ...]) -> str:
    """Return an opaque cursor that resumes ``query`` after the hit with ``sort_key``."""
    payload = orjson.dumps({"q": query.fingerprint(), "k": list(sort_key)})
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, query: Query) -> tuple[Any, ...]:
    """Return the sort key stored in ``cursor``, checking it belongs to ``query``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
        fingerprint, key = payload["q"], payload["k"]
    except (ValueError, KeyError, TypeError):
        raise InvalidCursor("is not a cursor this server issued") from None
    if fingerprint != query.fingerprint():
        raise InvalidCursor("belongs to another query; a cursor only continues the search that returned it")
    if not isinstance(key, list) or len(key) != 3 or not isinstance(key[2], str):
        raise InvalidCursor("is not a cursor this server issued")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in key[:2]):
        raise InvalidCursor("is not a cursor this server issued")
    return tuple(key)
