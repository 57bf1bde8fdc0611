"""What the searchable fields of a trip document mean: written once, read by the mapping and the query compiler.

A cluster without scripts cannot compute anything per trip at search time,
so everything a shard decides is encoded when the trip is indexed:

- ``route_cells``: the route as a sentence of H3 cells (resolution
  :data:`~tripsearch.index.cells.CORRIDOR_RES`), one token per corridor
  sample in order along the route, consecutive repeats written once, in a
  positional text field. ``span_near`` with ``in_order`` then asks, inside
  Lucene, "a cell near ``from``, and later a cell near ``to``".
- ``route_points``: points at most :data:`ROUTE_POINT_KM` apart along the
  route (both ends included) in a multi-valued ``geo_point``: one of them
  within ``r`` of a place proves the route passes within ``r``; none within
  ``r + ROUTE_POINT_KM / 2`` proves it does not.
- ``route_cell_days``: ``cell@day`` keywords, the local day of each
  sample with its cell: when every sample near ``from`` has one day, so
  has the pickup (it lies between two of them, and time never goes back).
- ``local_day_first``, ``local_day_span`` (days from departure to
  arrival) and ``local_minute_first``/``local_minute_last``: the local day
  and minute (in the trip's own UTC offset) of its departure and arrival.
  A pickup happens between them, so a trip that departs and arrives on one
  day (span 0) picks up on that day, at a minute between the two.

Each statement above is what :mod:`tripsearch.index.elastic.query` relies on
(see docs/elasticsearch.md for the proofs).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ...core.columns import SECONDS_PER_DAY, TripColumns
from ...geo import interpolate_on_arcs
from ...core.kernels import times_along
from ..cells import SAMPLE_KM, RouteSamples, disk_to_cells, route_to_samples

__all__ = [
    "ROUTE_POINT_KM",
    "GEO_TOLERANCE_KM",
    "SPAN_REACH_KM",
    "ROUTE_CELLS_ANALYZER",
    "LocalTimes",
    "route_cell_sentences",
    "route_cell_days",
    "cell_day_keywords",
    "DAY_MARGIN_S",
    "route_points",
    "local_times",
    "span_cover",
    "cells_to_keywords",
]

ROUTE_POINT_KM = 5.0
# What a distance measured by a shard may differ from ours by: Lucene stores a geo_point in 32-bit steps
# (about 1 cm), rounds route points to 1e-6 degree here (below 12 cm), and measures with a
# sloppy haversine (under 40 cm); five metres is far more than all of it together.
GEO_TOLERANCE_KM = 0.005
# A route's samples are at most SAMPLE_KM apart: both ends of the piece of route that holds a point within r
# of a place are within r + SAMPLE_KM of it, so their cells are in the cover of that wider disk.
SPAN_REACH_KM = SAMPLE_KM
ROUTE_CELLS_ANALYZER = "whitespace"
# Far more than the rounding between a sample's time and a pickup's on the same piece of route.
DAY_MARGIN_S = 60


def cells_to_keywords(cells: NDArray[np.uint64]) -> list[str]:
    """Return H3 cells as their usual hexadecimal strings (the tokens and keywords the index holds).

    >>> cells_to_keywords(np.array([0x85283473FFFFFFF], dtype=np.uint64))
    ['85283473fffffff']
    """
    return [_keyword(c) for c in cells.tolist()]


@lru_cache(maxsize=1 << 18)
def _keyword(cell: int) -> str:
    # Routes share their cells: a city's cells are written for every trip that passes.
    return format(cell, "x")


def route_cell_sentences(cols: TripColumns, samples: RouteSamples | None = None) -> list[str]:
    """Return each row's route as its cells in order along it, space-separated, consecutive repeats written once.

    ``samples`` may give :func:`~tripsearch.index.cells.route_to_samples` of every row, in order.
    """
    n = len(cols)
    owner, cells, _, _, _ = route_to_samples(cols, np.arange(n, dtype=np.int64)) if samples is None else samples
    keep = np.ones(len(cells), dtype=bool)
    keep[1:] = (cells[1:] != cells[:-1]) | (owner[1:] != owner[:-1])
    owner, words = owner[keep], cells_to_keywords(cells[keep])
    bounds = np.searchsorted(owner, np.arange(n + 1)).tolist()
    return [" ".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]


def route_cell_days(cols: TripColumns, samples: RouteSamples | None = None) -> list[list[str]]:
    """Return each row's (cell, local day) pairs of its samples, as ``cell@day`` keywords.

    A sample's day is that of its time by the pickup time rule, and also
    the day of that time plus or minus :data:`DAY_MARGIN_S`, so that a
    pickup on the piece of route between two samples (at a time between
    theirs) has its day among the two samples' days, rounding included.
    """
    n = len(cols)
    owner, cells, _, _, along = route_to_samples(cols, np.arange(n, dtype=np.int64)) if samples is None else samples
    times = times_along(cols.stop_start, cols.stop_along, cols.stop_time, owner, along) + cols.offset_s[owner]
    day_lo = np.floor_divide(times - DAY_MARGIN_S, SECONDS_PER_DAY)
    day_hi = np.floor_divide(times + DAY_MARGIN_S, SECONDS_PER_DAY)
    owner2 = np.concatenate((owner, owner))
    cells2 = np.concatenate((cells, cells))
    days2 = np.concatenate((day_lo, day_hi))
    order = np.lexsort((days2, cells2, owner2))
    owner2, cells2, days2 = owner2[order], cells2[order], days2[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (owner2[1:] != owner2[:-1]) | (cells2[1:] != cells2[:-1]) | (days2[1:] != days2[:-1])
    owner2, words = owner2[keep], [f"{c}@{d}" for c, d in zip(cells_to_keywords(cells2[keep]), days2[keep].tolist())]
    bounds = np.searchsorted(owner2, np.arange(n + 1)).tolist()
    return [words[bounds[i] : bounds[i + 1]] for i in range(n)]


def cell_day_keywords(cells: list[str], day: int) -> list[str]:
    """Return the ``cell@day`` keywords of some cells on one local day."""
    return [f"{c}@{day}" for c in cells]


def route_points(cols: TripColumns) -> list[NDArray[np.float64]]:
    """Return each row's points every :data:`ROUTE_POINT_KM` or less along its route, both ends included, as [lon, lat] rows."""
    n = len(cols)
    geom = cols.route_geometry(np.arange(n, dtype=np.int64))
    ends = geom.starts[1:] - 1
    length = geom.cum_len[ends]
    count = np.where(length > 0, np.ceil(length / ROUTE_POINT_KM).astype(np.int64) + 1, 1)
    owner = np.repeat(np.arange(n, dtype=np.int64), count)
    heads = np.concatenate(([0], np.cumsum(count)[:-1]))
    k = np.arange(len(owner)) - np.repeat(heads, count)
    along = length[owner] * k / np.maximum(count[owner] - 1, 1)
    # One search over all routes: route r's distances are shifted by r * span so they never interleave.
    span = float(length.max()) + 1.0 if n else 1.0
    vert_key = geom.cum_len + geom.owner * span
    seg = np.searchsorted(vert_key, along + owner * span, side="right") - 1
    seg = np.clip(seg, geom.starts[owner], np.maximum(ends[owner] - 1, geom.starts[owner]))
    nxt = np.minimum(seg + 1, ends[owner])
    seg_len = geom.seg_len[seg]
    frac = np.where(seg_len > 0, np.clip((along - geom.cum_len[seg]) / np.where(seg_len > 0, seg_len, 1.0), 0.0, 1.0), 0.0)
    a = np.stack((geom.x[seg], geom.y[seg], geom.z[seg]), axis=1)
    b = np.stack((geom.x[nxt], geom.y[nxt], geom.z[nxt]), axis=1)
    lat, lon = interpolate_on_arcs(a, b, frac, seg_len)
    points = np.stack((np.round(lon, 6), np.round(lat, 6)), axis=1)
    bounds = np.searchsorted(owner, np.arange(n + 1)).tolist()
    return [points[bounds[i] : bounds[i + 1]] for i in range(n)]


class LocalTimes(NamedTuple):
    """Local day (days since 1970-01-01) and minute of the day of each row's departure and arrival."""

    day_first: NDArray[np.int64]
    day_last: NDArray[np.int64]
    minute_first: NDArray[np.int64]
    minute_last: NDArray[np.int64]


def local_times(cols: TripColumns) -> LocalTimes:
    """Return the local days and minutes of each row's departure and arrival, in its own UTC offset."""
    day_first, day_last = cols.local_days()
    first = cols.departure_time + cols.offset_s
    last = cols.arrival_time + cols.offset_s
    return LocalTimes(day_first, day_last, (first % SECONDS_PER_DAY) // 60, (last % SECONDS_PER_DAY) // 60)


def span_cover(lat: float, lon: float, radius_km: float) -> NDArray[np.uint64]:
    """Return the cells whose tokens may stand for the piece of route that holds a point within ``radius_km``."""
    return disk_to_cells(lat, lon, radius_km + SPAN_REACH_KM)
