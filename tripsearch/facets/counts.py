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

With ``date_from``..``date_to`` every facet counts the matches on all the
days of the range, and ``dates`` covers date_from-3 .. date_to+3: each day
counts the trips the search of that one day would return. With
``departure_time`` the days are search days (a pickup belongs to the day
whose departure_time is nearest, see
:meth:`~tripsearch.query.model.Query.time_rule`), so ``departure_hour``
counts the 24 hours around departure_time on each day of the search, by
local hour.

Every backend computes facets with this module: tallies of the candidates
after the exact rules (:func:`tally_evaluation`), plus whatever a backend
counted exactly itself (the Elasticsearch shards' aggregations), written out
by :func:`render_facets`, so the counts are exact and equal across backends.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Callable

import h3
import numpy as np
from numpy.typing import NDArray

from ..core.columns import TripColumns, currency_name
from ..model import OPTION_NAMES
from ..core.kernels import facet_counts
from ..query.matching import Evaluation, filter_bit
from ..query.model import Query, facet_days

__all__ = ["tally_evaluation", "render_facets", "FacetTallies", "TIME_OF_DAY_BUCKETS", "RATING_THRESHOLDS", "FACET_FILTER"]

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


@dataclass
class FacetTallies:
    """What the facets count, before they are written out.

    The shared rules tally evaluated candidates (:func:`tally_evaluation`);
    a backend that counts in its own way (the Elasticsearch shards'
    aggregations) fills the same tallies, and the facets come out the
    same. ``dates`` counts the search days of
    :func:`~tripsearch.query.model.facet_days`, the first one first;
    ``prices`` holds each currency's distinct amounts with their counts, so
    sums and buckets are computed here, once, whoever counted.
    """

    hours: NDArray[np.int64]
    options: NDArray[np.int64]
    seats: dict[int, int]
    ratings: NDArray[np.int64]  # at or above each of RATING_THRESHOLDS, then all
    dates: NDArray[np.int64]
    prices: dict[str, Counter[float]] = field(default_factory=dict)
    pickups: Counter[tuple[float, float]] = field(default_factory=Counter)
    dropoffs: Counter[tuple[float, float]] = field(default_factory=Counter)

    @classmethod
    def empty(cls, query: Query) -> FacetTallies:
        first, last = facet_days(query)
        return cls(
            hours=np.zeros(24, dtype=np.int64),
            options=np.zeros(len(OPTION_NAMES), dtype=np.int64),
            seats={},
            ratings=np.zeros(len(RATING_THRESHOLDS) + 1, dtype=np.int64),
            dates=np.zeros(last - first + 1, dtype=np.int64),
        )


# The filters the counting facets leave out (see FACET_FILTER), in the order facet_counts takes them.
_COUNTED_BITS = np.array([filter_bit(name) for name in ("time", "options", "seats", "rating", "date")], dtype=np.int64)
_RATING_THRESHOLDS = np.array(RATING_THRESHOLDS, dtype=np.float64)


def tally_evaluation(ev: Evaluation, cols: TripColumns, query: Query) -> FacetTallies:
    """Return the tallies of the facets ``query.facets`` asks for, over evaluated candidates (the others stay empty)."""
    first, last = facet_days(query)
    hours, options, seats, ratings, dates = facet_counts(
        ev.rows, ev.geo, ev.failed, ev.local_minute, ev.local_day, cols.options, cols.seats_available, cols.rating,
        _COUNTED_BITS, len(OPTION_NAMES), _RATING_THRESHOLDS, first, last - first + 1,
    )
    tallies = FacetTallies(hours, options, {s: c for s, c in enumerate(seats.tolist()) if c}, ratings, dates)
    if "price" in query.facets:
        rows = ev.rows[ev.matched("price")]
        _tally_prices(tallies.prices, cols.currency[rows], cols.price[rows])
    if "pickup_cells" in query.facets or "dropoff_cells" in query.facets:
        mask = ev.matched()
        _tally_points(tallies.pickups, ev.pickup.lat[mask], ev.pickup.lon[mask])
        _tally_points(tallies.dropoffs, ev.dropoff.lat[mask], ev.dropoff.lon[mask])
    return tallies


# Below this many values plain Python lists cost less than numpy calls; a hot corridor's facets count thousands.
_FEW = 64


def _tally_prices(prices: dict[str, Counter[float]], codes: NDArray[np.int32], amounts: NDArray[np.float64]) -> None:
    """Count each currency's distinct amounts into ``prices``."""
    if len(codes) <= _FEW:
        for code, amount in zip(codes.tolist(), amounts.tolist()):
            prices.setdefault(currency_name(code), Counter())[amount] += 1
        return
    for code in np.unique(codes).tolist():
        distinct, counts = np.unique(amounts[codes == code], return_counts=True)
        prices.setdefault(currency_name(code), Counter()).update(dict(zip(distinct.tolist(), counts.tolist())))


def _tally_points(points: Counter[tuple[float, float]], lat: NDArray[np.float64], lon: NDArray[np.float64]) -> None:
    """Count the distinct (lat, lon) points into ``points``."""
    if len(lat) <= _FEW:
        points.update(zip(lat.tolist(), lon.tolist()))
        return
    both = np.empty(len(lat), dtype=np.complex128)  # a complex holds both doubles as they are
    both.real, both.imag = lat, lon
    distinct, counts = np.unique(both, return_counts=True)
    points.update(dict(zip(zip(distinct.real.tolist(), distinct.imag.tolist()), counts.tolist())))


def render_facets(tallies: FacetTallies, query: Query) -> dict[str, Any]:
    """Return the facets ``query.facets`` asks for, written out from their tallies."""
    return {name: _BUILDERS[name](tallies, query) for name in query.facets}


def _departure_hour(tallies: FacetTallies, query: Query) -> list[dict[str, int]]:
    return [{"hour": h, "count": c} for h, c in enumerate(tallies.hours.tolist())]


def _time_of_day(tallies: FacetTallies, query: Query) -> list[dict[str, Any]]:
    # The buckets start and end on whole hours: a bucket's count is the sum of its hours'.
    hours = tallies.hours.tolist()
    return [
        {"key": key, "from": f"{lo // 60:02d}:00", "to": f"{hi // 60:02d}:00", "count": sum(hours[lo // 60 : hi // 60])}
        for key, lo, hi in TIME_OF_DAY_BUCKETS
    ]


def _price(tallies: FacetTallies, query: Query) -> dict[str, Any]:
    interval = query.price_interval
    per_currency: list[dict[str, Any]] = []
    for currency, amounts in tallies.prices.items():
        if not amounts:
            continue
        count = sum(amounts.values())
        per_bucket: Counter[int] = Counter()
        for amount, c in amounts.items():
            per_bucket[math.floor(amount / interval)] += c
        per_currency.append(
            {
                "currency": currency,
                "count": count,
                "min": min(amounts),
                "max": max(amounts),
                # fsum is exact: the same sum whatever the order, or whoever counted.
                "avg": round(math.fsum(amounts.elements()) / count, 2),
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


def _options(tallies: FacetTallies, query: Query) -> dict[str, int]:
    return dict(zip(OPTION_NAMES, tallies.options.tolist()))


def _seats_available(tallies: FacetTallies, query: Query) -> list[dict[str, int]]:
    return [{"seats": seats, "count": c} for seats, c in sorted(tallies.seats.items()) if c]


def _driver_rating(tallies: FacetTallies, query: Query) -> list[dict[str, Any]]:
    return [{"min": t, "count": c} for t, c in zip((*RATING_THRESHOLDS, None), tallies.ratings.tolist())]


def _dates(tallies: FacetTallies, query: Query) -> list[dict[str, Any]]:
    first = facet_days(query)[0]
    return [{"date": _iso_day(first + k), "count": c} for k, c in enumerate(tallies.dates.tolist())]


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _cells(points: Counter[tuple[float, float]], res: int) -> list[dict[str, Any]]:
    # Many hits share a pickup point (a city centre): one H3 call per distinct point.
    per_cell: dict[str, int] = {}
    for (point_lat, point_lon), c in points.items():
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


def _pickup_cells(tallies: FacetTallies, query: Query) -> list[dict[str, Any]]:
    return _cells(tallies.pickups, query.cell_resolution)


def _dropoff_cells(tallies: FacetTallies, query: Query) -> list[dict[str, Any]]:
    return _cells(tallies.dropoffs, query.cell_resolution)


_BUILDERS: dict[str, Callable[[FacetTallies, Query], Any]] = {
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
