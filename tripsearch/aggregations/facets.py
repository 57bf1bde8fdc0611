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
from functools import lru_cache
from typing import Any, Callable

import h3
import numpy as np
from numpy.typing import NDArray

from ..columns import TripColumns, currency_name
from ..model import OPTION_NAMES
from ..query.matching import Evaluation
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


def compute_facets(ev: Evaluation, cols: TripColumns, query: Query) -> dict[str, Any]:
    """Return the facets ``query.facets`` asks for, over the evaluated candidates."""
    return {name: _BUILDERS[name](ev, cols, query, ev.matched(FACET_FILTER[name])) for name in query.facets}


def _departure_hour(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, int]]:
    counts = np.bincount(ev.local_minute[mask] // 60, minlength=24)
    return [{"hour": h, "count": int(c)} for h, c in enumerate(counts)]


_BUCKET_STARTS = np.array([lo for _, lo, _ in TIME_OF_DAY_BUCKETS[1:]])


def _time_of_day(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
    # The buckets cover the day end to end: a minute's bucket is how many later buckets start at or before it.
    counts = np.bincount(np.searchsorted(_BUCKET_STARTS, ev.local_minute[mask], side="right"), minlength=len(TIME_OF_DAY_BUCKETS)).tolist()
    return [{"key": key, "from": f"{lo // 60:02d}:00", "to": f"{hi // 60:02d}:00", "count": c} for (key, lo, hi), c in zip(TIME_OF_DAY_BUCKETS, counts)]


def _price(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> dict[str, Any]:
    rows = ev.rows[mask]
    prices = cols.price[rows]
    currencies = cols.currency[rows]
    interval = query.price_interval
    per_currency: list[dict[str, Any]] = []
    # Most searches stay within one country, so one currency: no grouping needed.
    codes = [int(currencies[0])] if len(currencies) and currencies.min() == currencies.max() else np.unique(currencies).tolist()
    for code in codes:
        amounts = prices if len(codes) == 1 else prices[currencies == code]
        keys = np.floor(amounts / interval).astype(np.int64)
        values, counts = np.unique(keys, return_counts=True)
        per_currency.append(
            {
                "currency": currency_name(code),
                "count": int(len(amounts)),
                "min": float(amounts.min()),
                "max": float(amounts.max()),
                "avg": round(math.fsum(amounts.tolist()) / len(amounts), 2),
                "buckets": [
                    {"from": _bucket_edge(k, interval), "to": _bucket_edge(k + 1, interval), "count": int(c)}
                    for k, c in zip(values.tolist(), counts.tolist())
                ],
            }
        )
    per_currency.sort(key=lambda c: (-c["count"], c["currency"]))
    return {"interval": interval, "currencies": per_currency}


def _bucket_edge(k: int, interval: float) -> float:
    return round(k * interval, 10)


def _options(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> dict[str, int]:
    bits = cols.options[ev.rows[mask]]
    return {name: int(((bits >> i) & 1).sum()) for i, name in enumerate(OPTION_NAMES)}


def _seats_available(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, int]]:
    values, counts = np.unique(cols.seats_available[ev.rows[mask]], return_counts=True)
    return [{"seats": int(v), "count": int(c)} for v, c in zip(values.tolist(), counts.tolist())]


def _driver_rating(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
    ratings = cols.rating[ev.rows[mask]]
    out: list[dict[str, Any]] = [{"min": t, "count": int((ratings >= t).sum())} for t in RATING_THRESHOLDS]
    out.append({"min": None, "count": int(len(ratings))})
    return out


def _dates(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
    first = query.day - DATES_FACET_SPAN
    offsets = ev.local_day[mask] - first
    counts = np.bincount(offsets[(offsets >= 0) & (offsets <= 2 * DATES_FACET_SPAN)], minlength=2 * DATES_FACET_SPAN + 1).tolist()
    return [{"date": _iso_day(first + k), "count": c} for k, c in enumerate(counts)]


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _cells(lat: NDArray[np.float64], lon: NDArray[np.float64], res: int) -> list[dict[str, Any]]:
    if len(lat) == 0:
        return []
    # Many hits share a pickup point (a city centre): one H3 call per distinct point. A complex number
    # holds both coordinates exactly and sorts by lat then lon, much faster than np.unique(axis=0).
    both = np.empty(len(lat), dtype=np.complex128)
    both.real, both.imag = lat, lon
    points, counts = np.unique(both, return_counts=True)
    per_cell: dict[str, int] = {}
    for point, c in zip(points.tolist(), counts.tolist()):
        cell = _cell_of(point.real, point.imag, res)
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


def _pickup_cells(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
    return _cells(ev.pickup.lat[mask], ev.pickup.lon[mask], query.cell_resolution)


def _dropoff_cells(ev: Evaluation, cols: TripColumns, query: Query, mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
    return _cells(ev.dropoff.lat[mask], ev.dropoff.lon[mask], query.cell_resolution)


_BUILDERS: dict[str, Callable[[Evaluation, TripColumns, Query, NDArray[np.bool_]], Any]] = {
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
