"""Anchors: the places passengers search from, and each trip's exact pickup and dropoff there, computed once when it is indexed.

Passengers search from a small set of known places: the page and MaaS apps
send the coordinates of :mod:`tripsearch.data.places`, and a popular
corridor is a pair of such places. For every place of at least
:data:`ANCHOR_MIN_POPULATION` inhabitants within :data:`ANCHOR_KM` of a
trip's route, :func:`anchor_entries` computes, with the loops a search
runs (:func:`~tripsearch.core.kernels.closest_both_in_ranges`, the loop of
:func:`~tripsearch.core.kernels.closest_in_ranges` for both closest points
at once; :func:`~tripsearch.core.kernels.times_along`) on the same bits, what the
exact rules of :mod:`tripsearch.query.matching` compute for a search from
or to that place with any radius up to :data:`ANCHOR_KM`:

- ``km``: the distance from the place to the route (rule 1);
- ``along``, ``pickup_lat``, ``pickup_lon``, ``pickup_time``: the pickup
  there (the earliest closest point), its distance along the route and its
  time (rule 3);
- ``drop_along``, ``dropoff_lat``, ``dropoff_lon``, ``dropoff_time``: the
  dropoff there (the latest closest point), the same.

A trip with no entry for a place is farther than :data:`ANCHOR_KM` from it;
rule 2 between two places compares one entry's ``along`` with the other's
``drop_along``. Both backends read these arrays: the Elasticsearch backend
writes them into its documents (:mod:`.elastic.anchors`), the embedded one
into its segments (:mod:`.embedded.anchored`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from ..core.columns import TripColumns
from ..core.kernels import closest_both_in_ranges, near_parts, times_along, vertex_cap
from ..data.places import load_places
from ..geo import EARTH_RADIUS_KM

__all__ = ["ANCHOR_KM", "ANCHOR_MIN_POPULATION", "Anchors", "AnchorEntries", "anchor_places", "anchor_entries", "point_key"]

# Radii of searches that anchors serve; the page's default radius is 10 km.
ANCHOR_KM = 25.0
# Cities: a few per metropolitan area, 6,000 places worldwide, about ten entries on a 500 km trip.
ANCHOR_MIN_POPULATION = 100_000
# Routes are compared with places by angle on the unit sphere, with this much slack for rounding.
_ANGLE_MARGIN = 1e-9
# Latitudes (radians) are compared with this much slack for the rounding of arcsin.
_LAT_MARGIN = 1e-7


@dataclass(frozen=True)
class Anchors:
    """The anchor places, in coordinate order (a place's key is its position), and a fingerprint of the set."""

    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    unit: NDArray[np.float64]  # n x 3
    by_point: dict[tuple[float, float], str]
    fingerprint: str

    @classmethod
    def of(cls, points: list[tuple[float, float]]) -> Anchors:
        """Return the anchors at ``points`` (distinct), keyed by their position in coordinate order."""
        places = sorted(set(points))
        lat = np.array([p[0] for p in places], dtype=np.float64)
        lon = np.array([p[1] for p in places], dtype=np.float64)
        rlat, rlon = np.radians(lat), np.radians(lon)
        unit = np.stack((np.cos(rlat) * np.cos(rlon), np.cos(rlat) * np.sin(rlon), np.sin(rlat)), axis=1).reshape(len(places), 3)
        digest = hashlib.sha256(f"{ANCHOR_KM!r};{';'.join(map(point_key, places))}".encode()).hexdigest()[:16]
        return cls(lat, lon, unit, {p: str(i) for i, p in enumerate(places)}, f"{len(places)}-{digest}")

    def __len__(self) -> int:
        return len(self.lat)

    def key_of(self, point: tuple[float, float]) -> str | None:
        """Return the key of the anchor at exactly ``point``, or None."""
        return self.by_point.get((float(point[0]), float(point[1])))


def point_key(point: tuple[float, float]) -> str:
    """Return the keyword of a point: its coordinates as Python writes them (read back to the same floats)."""
    return f"{point[0]!r},{point[1]!r}"


@lru_cache(maxsize=1)
def anchor_places() -> Anchors:
    """Return the anchor places: every place of :func:`~tripsearch.data.places.load_places` with enough inhabitants."""
    return Anchors.of([(p.lat, p.lon) for p in load_places(ANCHOR_MIN_POPULATION) if p.population >= ANCHOR_MIN_POPULATION])


class AnchorEntries(NamedTuple):
    """Anchor entries, one per (row, place) within ANCHOR_KM, by row then place (see the module docstring)."""

    rows: NDArray[np.int64]
    places: NDArray[np.int64]
    km: NDArray[np.float64]
    along: NDArray[np.float64]
    pickup_lat: NDArray[np.float64]
    pickup_lon: NDArray[np.float64]
    pickup_time: NDArray[np.int64]
    drop_along: NDArray[np.float64]
    dropoff_lat: NDArray[np.float64]
    dropoff_lon: NDArray[np.float64]
    dropoff_time: NDArray[np.int64]


def anchor_entries(cols: TripColumns, anchors: Anchors | None = None, rows: NDArray[np.int64] | None = None) -> AnchorEntries:
    """Return the anchor entries of ``rows`` (rising; default every row) of ``cols``, by row then place.

    ``anchors`` defaults to :func:`anchor_places`.
    """
    anchors = anchor_places() if anchors is None else anchors
    rows = np.arange(len(cols), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    at, places = _near_pairs(cols, rows, anchors)
    # each pair is measured on the part of its route that may come within ANCHOR_KM of the place
    first, last = near_parts(cols.vert_lat, cols.vert_lon, cols.vert_start, rows[at], anchors.unit[places], ANCHOR_KM)
    some = first >= 0
    rows, places, first, last = rows[at][some], places[some], first[some], last[some]
    # The loop of a search (kernels.match_geometry): the closest point, the earliest on a tie for the pickup
    # and the latest for the dropoff (both in one pass), then their times by the pickup time rule.
    km, along, p_lat, p_lon, q_along, q_lat, q_lon = closest_both_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, first, last, anchors.lat[places], anchors.lon[places], ANCHOR_KM)
    near = km <= ANCHOR_KM
    rows, places, km, along, p_lat, p_lon, q_along, q_lat, q_lon = rows[near], places[near], km[near], along[near], p_lat[near], p_lon[near], q_along[near], q_lat[near], q_lon[near]
    time = times_along(cols.stop_start, cols.stop_along, cols.stop_time, rows, along)
    drop_time = times_along(cols.stop_start, cols.stop_along, cols.stop_time, rows, q_along)
    return AnchorEntries(rows, places, km, along, p_lat, p_lon, time, q_along, q_lat, q_lon, drop_time)


def _near_pairs(cols: TripColumns, rows: NDArray[np.int64], anchors: Anchors) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return (position in ``rows``, place) pairs, by row then place, holding every place within ANCHOR_KM of a route.

    A route lies in the spherical cap around the direction of the sum of its
    vertices, of the angle to its farthest vertex (a cap under a hemisphere
    holds the arcs between its points); a place within ANCHOR_KM of the
    route is within that angle plus ANCHOR_KM of the centre.
    """
    n = len(rows)
    if n == 0 or len(anchors.lat) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    centre, norm, cos_far = _route_caps(cols.vert_lat, cols.vert_lon, cols.vert_start, rows)
    spread = np.arccos(np.clip(cos_far, -1.0, 1.0)) + ANCHOR_KM / EARTH_RADIUS_KM + _ANGLE_MARGIN
    # A route too spread out for a cap under a hemisphere (or degenerate) is compared with every place.
    wide = (spread >= math.pi / 2) | (norm <= 1e-9)
    threshold = np.where(wide, -2.0, np.cos(np.minimum(spread, math.pi)))
    # Anchors come by latitude, and a place within the cap is within its angle of the centre's latitude.
    lat = np.radians(anchors.lat)
    centre_lat = np.arcsin(np.clip(centre[:, 2], -1.0, 1.0))
    lo = np.where(wide, 0, np.searchsorted(lat, centre_lat - spread - _LAT_MARGIN, "left"))
    hi = np.where(wide, len(lat), np.searchsorted(lat, centre_lat + spread + _LAT_MARGIN, "right"))
    return _cap_members(centre, threshold, lo.astype(np.int64), hi.astype(np.int64), anchors.unit)  # type: ignore[no-any-return]


@numba.njit(cache=True, nogil=True)
def _route_caps(vert_lat: NDArray[np.int32], vert_lon: NDArray[np.int32], vert_start: NDArray[np.int64], rows: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:  # pragma: no cover - compiled
    """Return, for the route of each of ``rows``: the direction of the sum of its vertices' unit vectors (n x 3), that sum's norm, and the cosine of the angle to its farthest vertex (:func:`~tripsearch.core.kernels.vertex_cap`)."""
    n = rows.shape[0]
    centre = np.zeros((n, 3), dtype=np.float64)
    norm = np.zeros(n, dtype=np.float64)
    cos_far = np.ones(n, dtype=np.float64)
    for i in range(n):
        centre[i, 0], centre[i, 1], centre[i, 2], norm[i], cos_far[i] = vertex_cap(vert_lat, vert_lon, vert_start[rows[i]], vert_start[rows[i] + 1] - 1)
    return centre, norm, cos_far


@numba.njit(cache=True, nogil=True)
def _cap_members(centre: NDArray[np.float64], threshold: NDArray[np.float64], lo: NDArray[np.int64], hi: NDArray[np.int64], unit: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Return (route, place) of every place ``lo[r] <= p < hi[r]`` whose unit vector is in route r's cap (dot product at least ``threshold[r]``)."""
    count = 0
    for r in range(centre.shape[0]):
        for p in range(lo[r], hi[r]):
            if centre[r, 0] * unit[p, 0] + centre[r, 1] * unit[p, 1] + centre[r, 2] * unit[p, 2] >= threshold[r]:
                count += 1
    rows = np.empty(count, dtype=np.int64)
    places = np.empty(count, dtype=np.int64)
    k = 0
    for r in range(centre.shape[0]):
        for p in range(lo[r], hi[r]):
            if centre[r, 0] * unit[p, 0] + centre[r, 1] * unit[p, 1] + centre[r, 2] * unit[p, 2] >= threshold[r]:
                rows[k] = r
                places[k] = p
                k += 1
    return rows, places
