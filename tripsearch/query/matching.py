"""The exact matching rules, vectorised over candidate trips.

Every backend finds candidates its own way (H3 postings, an Elasticsearch
query) and then calls :func:`evaluate` on them, so the final decision is the
same code everywhere. A published trip matches a query when:

1. the pickup point P, the route point closest to ``from``, is at most
   ``from_radius_km`` from it, and the dropoff point Q, the route point
   closest to ``to``, at most ``to_radius_km`` from it (great-circle
   distances; the route is its great-circle segments; a tie for P goes to
   the earliest point along the route, a tie for Q to the latest);
2. P comes strictly before Q along the route;
3. the pickup time (stop times interpolated linearly by distance along the
   route between the last stop at or before P and the next one; floored to
   the second), in the trip's own UTC offset, falls on ``date`` (or a day of
   ``date_from``..``date_to``), and inside ``time_from``..``time_to`` when
   given (minutes, both ends included; a window whose start is after its
   end wraps around midnight); with ``departure_time`` t and ``time_delta``
   d instead, the pickup's local minute is at most d // 60 minutes from t
   on one of those days, counted across midnight, where a pickup belongs to
   the day whose t is nearest (half-way: the later day)
   (:meth:`~tripsearch.query.model.Query.time_rule`);
4. ``seats_available >= seats``, ``price <= max_price``, every listed
   option is true, ``rating >= min_rating`` (an unrated driver fails it).

:class:`Evaluation` keeps which filters each row fails, one bit per filter,
so the facets can count "everything but my own filter".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..core.columns import STATUS_CODES, TripColumns
from ..geo import ClosestPoints
from ..core.kernels import filter_failures, match_geometry
from ..model import OPTION_NAMES
from .model import Query

__all__ = ["Evaluation", "SegmentWindows", "Ends", "measure_ends", "evaluate", "option_mask", "filter_bit", "FILTERS"]

# The filters a facet may leave out, by name.
FILTERS = ("date", "time", "price", "options", "rating", "seats")

_PUBLISHED = STATUS_CODES["published"]


def option_mask(names: tuple[str, ...]) -> int:
    """Return the bit mask of the named options."""
    return sum(1 << OPTION_NAMES.index(n) for n in names)


@dataclass(frozen=True)
class Evaluation:
    """The rules evaluated on candidate rows; ``rows`` index the columns that were evaluated."""

    rows: NDArray[np.int64]
    geo: NDArray[np.bool_]  # rules 1 and 2, and published
    failed: NDArray[np.uint8]  # the filters each row fails: bit i for FILTERS[i]
    pickup: ClosestPoints
    dropoff: ClosestPoints
    pickup_time: NDArray[np.int64]
    dropoff_time: NDArray[np.int64]
    local_day: NDArray[np.int64]  # search day of the pickup (its local date but with departure_time), days since 1970-01-01
    local_minute: NDArray[np.int64]  # local minute of the day of the pickup

    def matched(self, without: str | None = None) -> NDArray[np.bool_]:
        """Return which rows match every rule, or every rule but the filter ``without``."""
        failed = self.failed if without is None else self.failed & np.uint8(~filter_bit(without) & 0xFF)
        return self.geo & (failed == 0)


def filter_bit(name: str) -> int:
    """Return the bit of the filter ``name`` in :attr:`Evaluation.failed`."""
    return 1 << FILTERS.index(name)


_FILTER_BITS = np.array([filter_bit(name) for name in FILTERS], dtype=np.int64)


class SegmentWindows(NamedTuple):
    """For each candidate, the segments (counted within its route) that can hold the pickup and the dropoff."""

    from_lo: NDArray[np.int64]
    from_hi: NDArray[np.int64]
    to_lo: NDArray[np.int64]
    to_hi: NDArray[np.int64]


class Ends(NamedTuple):
    """Rules 1 and 2 for candidates: their pickup and dropoff points, which are geometric matches (and published), and the matches' times.

    Only the geometric matches' values count: the others' points and times
    are whatever the measure left there (the rules never read them).
    """

    pickup: ClosestPoints
    dropoff: ClosestPoints
    geo: NDArray[np.bool_]
    pickup_time: NDArray[np.int64]
    dropoff_time: NDArray[np.int64]

    def take(self, keep: NDArray[np.bool_]) -> Ends:
        """Return the ends where ``keep`` is true."""
        return Ends(ClosestPoints(*(part[keep] for part in self.pickup)), ClosestPoints(*(part[keep] for part in self.dropoff)), self.geo[keep], self.pickup_time[keep], self.dropoff_time[keep])

    @staticmethod
    def concat(parts: list[Ends]) -> Ends:
        """Return the ends of every part, one part after the other."""
        return Ends(
            ClosestPoints(*(np.concatenate([p.pickup[k] for p in parts]) for k in range(4))),
            ClosestPoints(*(np.concatenate([p.dropoff[k] for p in parts]) for k in range(4))),
            *(np.concatenate([p[k] for p in parts]) for k in range(2, 5)),
        )


def measure_ends(cols: TripColumns, rows: NDArray[np.int64], query: Query, windows: SegmentWindows | None = None) -> Ends:
    """Return rules 1 and 2 measured on the routes of ``rows`` of ``cols`` (see :func:`evaluate` for ``windows``)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    if windows is None:
        last_segment = np.maximum(cols.route_sizes(rows) - 2, 0)
        windows = SegmentWindows(np.zeros(n, dtype=np.int64), last_segment, np.zeros(n, dtype=np.int64), last_segment)
    # Pickup first; only trips with a pickup within the radius are measured for the dropoff, and
    # only geometric matches get times (the rest can match nothing).
    pickup, dropoff, geo, times = match_geometry(
        cols.vert_lat, cols.vert_lon, cols.vert_cum, cols.vert_start, cols.stop_start, cols.stop_along, cols.stop_time,
        cols.status[rows] == _PUBLISHED, rows, np.stack(windows, axis=1).astype(np.int64, copy=False),
        (*query.from_point, query.from_radius_km), (*query.to_point, query.to_radius_km),
    )
    return Ends(ClosestPoints(*pickup), ClosestPoints(*dropoff), geo, times[0], times[1])


def evaluate(cols: TripColumns, rows: NDArray[np.int64], query: Query, windows: SegmentWindows | None = None, ends: Ends | None = None) -> Evaluation:
    """Return the rules of ``query`` evaluated on ``rows`` of ``cols``.

    ``windows`` narrows the search for the pickup and dropoff points to the
    segments an index found near ``from`` and ``to``; without it the whole
    route is measured. Both give the same answer when the windows hold every
    segment within the radius, which the H3 index guarantees. ``ends``
    gives rules 1 and 2 already decided for ``rows`` (by an index that
    stored them, computed by the same kernels: the embedded segments'
    anchor entries); then no route is measured.

    The candidates may pick up on other days than the query's (the
    ``dates`` facet counts those); the ``date`` mask keeps the query's own days.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if ends is None:
        ends = measure_ends(cols, rows, query, windows)
    pickup, dropoff, geo, pickup_time, dropoff_time = ends
    rule = query.time_rule()
    local_day, local_minute, failed = filter_failures(
        rows, pickup_time, cols.offset_s, cols.price, cols.options, cols.rating, cols.seats_available, _FILTER_BITS,
        (rule.first_day, rule.last_day), rule.shift, (rule.low, rule.high),
        np.inf if query.max_price is None else float(query.max_price),
        option_mask(query.options),
        -np.inf if query.min_rating is None else float(query.min_rating),
        query.seats,
    )
    return Evaluation(rows, geo, failed, pickup, dropoff, pickup_time, dropoff_time, local_day, local_minute)
