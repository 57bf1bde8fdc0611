"""Facet counts beside the filters, computed from an :class:`~tripsearch.query.matching.Evaluation`.

Faceting is disjunctive: a facet counts the trips that match the whole query
except its own filter, so choosing "pets" does not turn the other option
counts into zero. Which filter each facet leaves out:

============== ====================
facet          ignores
============== ====================
departure_hour time_from / time_to
time_of_day    time_from / time_to
price          max_price
options        options
seats_available seats
driver_rating  min_rating
dates          date (covers date-3 .. date+3)
pickup_cells   nothing
dropoff_cells  nothing
============== ====================

Every backend computes facets with this module, on the candidates after the
exact rules, so the counts are exact and equal across backends.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from functools import lru_cache
from typing import Any, Callable, Mapping, NamedTuple

import h3
import numpy as np
from numpy.typing import NDArray

from ..columns import TripColumns, currency_name
from ..model import OPTION_NAMES
from ..kernels import facet_counts
from ..query.matching import Evaluation, filter_bit
from ..query.model import DATES_FACET_SPAN, Query

__all__ = ["compute_facets", "TIME_OF_DAY_BUCKETS", "RATING_THRESHOLDS", "FACET_FILTER"]

TIME_OF_DAY_BUCKETS = (
    ("night", 0, 6 * 60),
    ("morning", 6 * 60, 12 * 60),
    ("afternoon", 12 * 60, 18 * 60),
    ("evening", 18 * 60, 24 * 60),
)
RATING_THRESHOLDS = (4.5, 4.0, 3.5, 3.0)

FACET_FILTER: dict[str, str | None] = {
    "departure_hour": "time",
    "time_of_day": "time",
    "price": "price",
    "options": "options",
    "seats_available": "seats",
    "driver_rating": "rating",
    "dates": "date",
    "pickup_cells": None,
    "dropoff_cells": None,
}


class _Counts(NamedTuple):
    """The counting facets, from one compiled pass (:func:`~tripsearch.kernels.facet_counts`)."""

    hours: NDArray[np.int64]
    options: NDArray[np.int64]
    seats: NDArray[np.int64]
    ratings: NDArray[np.int64]
    dates: NDArray[np.int64]


# The filters the counting facets leave out (see FACET_FILTER), in the order facet_counts takes them.
_COUNTED_BITS = np.array([filter_bit(name) for name in ("time", "options", "seats", "rating", "date")], dtype=np.int64)
_RATING_THRESHOLDS = np.array(RATING_THRESHOLDS, dtype=np.float64)


def compute_facets(ev: Evaluation, cols: TripColumns, query: Query, certain_dates: Mapping[int, int] | None = None) -> dict[str, Any]:
    """Return the facets ``query.facets`` asks for, over the evaluated candidates.

    ``certain_dates`` adds, per local day, matches that were counted
    without being candidates (see :func:`~tripsearch.query.execute.execute`).
    """
    counts = _Counts(
        *facet_counts(
            ev.rows, ev.geo, ev.failed, ev.local_minute, ev.local_day, cols.options, cols.seats_available, cols.rating,
            _COUNTED_BITS, len(OPTION_NAMES), _RATING_THRESHOLDS, query.day - DATES_FACET_SPAN, 2 * DATES_FACET_SPAN + 1,
        )
    )
    if certain_dates:
        first = query.day - DATES_FACET_SPAN
        for day, count in certain_dates.items():
            if 0 <= day - first < len(counts.dates):
                counts.dates[day - first] += count
    return {name: _BUILDERS[name](ev, cols, query, counts) for name in query.facets}


def _departure_hour(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, int]]:
    return [{"hour": h, "count": c} for h, c in enumerate(counted.hours.tolist())]


def _time_of_day(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, Any]]:
    # The buckets start and end on whole hours: a bucket's count is the sum of its hours'.
    hours = counted.hours.tolist()
    return [
        {"key": key, "from": f"{lo // 60:02d}:00", "to": f"{hi // 60:02d}:00", "count": sum(hours[lo // 60 : hi // 60])}
        for key, lo, hi in TIME_OF_DAY_BUCKETS
    ]


def _price(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> dict[str, Any]:
    rows = ev.rows[ev.matched("price")]
    interval = query.price_interval
    # A facet counts tens of trips, rarely thousands: plain Python lists cost less than numpy calls here.
    by_currency: dict[int, list[float]] = {}
    for code, amount in zip(cols.currency[rows].tolist(), cols.price[rows].tolist()):
        by_currency.setdefault(code, []).append(amount)
    per_currency: list[dict[str, Any]] = []
    for code, amounts in by_currency.items():
        per_bucket = Counter(math.floor(amount / interval) for amount in amounts)
        per_currency.append(
            {
                "currency": currency_name(code),
                "count": len(amounts),
                "min": min(amounts),
                "max": max(amounts),
                "avg": round(math.fsum(amounts) / len(amounts), 2),
                "buckets": [
                    {"from": _bucket_edge(k, interval), "to": _bucket_edge(k + 1, interval), "count": c}
                    for k, c in sorted(per_bucket.items())
                ],
            }
        )
    per_currency.sort(key=lambda c: (-c["count"], c["currency"]))
    return {"interval": interval, "currencies": per_currency}


def _bucket_edge(k: int, interval: float) -> float:
    return round(k * interval, 10)


def _options(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> dict[str, int]:
    return dict(zip(OPTION_NAMES, counted.options.tolist()))


def _seats_available(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, int]]:
    return [{"seats": seats, "count": c} for seats, c in enumerate(counted.seats.tolist()) if c]


def _driver_rating(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, Any]]:
    return [{"min": t, "count": c} for t, c in zip((*RATING_THRESHOLDS, None), counted.ratings.tolist())]


def _dates(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, Any]]:
    first = query.day - DATES_FACET_SPAN
    return [{"date": _iso_day(first + k), "count": c} for k, c in enumerate(counted.dates.tolist())]


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _cells(lat: NDArray[np.float64], lon: NDArray[np.float64], res: int) -> list[dict[str, Any]]:
    # Many hits share a pickup point (a city centre): one H3 call per distinct point.
    per_cell: dict[str, int] = {}
    for (point_lat, point_lon), c in Counter(zip(lat.tolist(), lon.tolist())).items():
        cell = _cell_of(point_lat, point_lon, res)
        per_cell[cell] = per_cell.get(cell, 0) + c
    return [{"cell": cell, "count": count, **_cell_centre(cell)} for cell, count in sorted(per_cell.items(), key=lambda kv: (-kv[1], kv[0]))]


# Pickups and dropoffs come back to the same points (city centres, stops) search after search.
@lru_cache(maxsize=1 << 16)
def _cell_of(lat: float, lon: float, res: int) -> str:
    return str(h3.latlng_to_cell(lat, lon, res))


@lru_cache(maxsize=1 << 16)
def _cell_centre(cell: str) -> dict[str, float]:
    clat, clon = h3.cell_to_latlng(cell)
    return {"lat": round(clat, 6), "lon": round(clon, 6)}


def _pickup_cells(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, Any]]:
    mask = ev.matched()
    return _cells(ev.pickup.lat[mask], ev.pickup.lon[mask], query.cell_resolution)


def _dropoff_cells(ev: Evaluation, cols: TripColumns, query: Query, counted: _Counts) -> list[dict[str, Any]]:
    mask = ev.matched()
    return _cells(ev.dropoff.lat[mask], ev.dropoff.lon[mask], query.cell_resolution)


_BUILDERS: dict[str, Callable[[Evaluation, TripColumns, Query, _Counts], Any]] = {
    "departure_hour": _departure_hour,
    "time_of_day": _time_of_day,
    "price": _price,
    "options": _options,
    "seats_available": _seats_available,
    "driver_rating": _driver_rating,
    "dates": _dates,
    "pickup_cells": _pickup_cells,
    "dropoff_cells": _dropoff_cells,
}
