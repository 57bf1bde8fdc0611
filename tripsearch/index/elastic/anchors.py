"""Anchors: the places passengers search from, with each trip's exact pickup there written when it is indexed.

A shard cannot compute the pickup point of a trip for a place (no
scripts), and the page's sort keys, time filters and facets all depend on
it. But passengers search from a small set of known places: the page and
MaaS apps send the coordinates of :mod:`tripsearch.data.places`, and a popular
corridor is a pair of such places. So for every place of at least
:data:`ANCHOR_MIN_POPULATION` inhabitants within :data:`ANCHOR_KM` of a
trip's route, the trip document holds an entry (``anchors``, ``nested``)
computed by the same kernels a search runs, on the same bits:

- ``place``: the place's key (its position among the anchors);
- ``km``: the distance from the place to the route (rule 1 of
  :mod:`tripsearch.query.matching`);
- ``time``, ``day``, ``minute``: the pickup time there (the earliest
  closest point) and its local day and minute in the trip's UTC offset;
  ``drop_time``: the dropoff time there (the latest closest point);
- ``pickup`` and ``dropoff``: the closest point, earliest and latest on a
  tie, as ``"lat,lon"`` (the point a hit reports, and its cell).

Rule 2 (pickup before dropoff) compares two entries, which a query cannot
do; so the document also lists, in ``anchor_pairs``, every ordered pair
``"A>B"`` of its anchors whose pickup at A comes strictly before the
dropoff at B along the route. A search from one anchor to another with
radii up to :data:`ANCHOR_KM` then reads, in the shard, exactly the values
the shared rules compute: a trip with no entry for a place is farther than
:data:`ANCHOR_KM` from it, and one without the pair drops off before it
picks up.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from ...core.columns import SECONDS_PER_DAY, TripColumns
from ...geo import EARTH_RADIUS_KM
from ...core.kernels import closest_in_ranges, times_along
from ...data.places import load_places

__all__ = ["ANCHOR_KM", "ANCHOR_MIN_POPULATION", "RADIUS_CLASSES", "Anchors", "AnchorFields", "anchor_places", "point_key", "anchor_fields", "anchor_pair", "entry_value", "value_entry", "BY_PLACE", "place_value"]

# Radii of searches that anchors serve; the page's default radius is 10 km.
ANCHOR_KM = 25.0
# Radii (km) a place's entry is also indexed under when it is that close (``anchor_radii``): the page's
# choices up to ANCHOR_KM and the standard covoiturage's default of 1 km, so a search with one of them
# needs no nested join for its radius.
RADIUS_CLASSES = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0)
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

    def key_of(self, point: tuple[float, float]) -> str | None:
        """Return the key of the anchor at exactly ``point``, or None."""
        return self.by_point.get((float(point[0]), float(point[1])))


def point_key(point: tuple[float, float]) -> str:
    """Return the keyword of a point: its coordinates as Python writes them (read back to the same floats)."""
    return f"{point[0]!r},{point[1]!r}"


def anchor_pair(from_key: str, to_key: str) -> str:
    """Return the ``anchor_pairs`` keyword of a trip that picks up at ``from_key`` before it drops off at ``to_key``."""
    return f"{from_key}>{to_key}"


# An entry as one line of the trip's ``anchor_values`` (binary doc values, read back with a page's hits
# without loading the source: one value per trip, where a multi-valued keyword cost a terms dictionary
# lookup per entry).
_ENTRY_KEYS = ("place", "km", "time", "drop_time", "day", "minute", "pickup", "dropoff")
_ENTRY_TYPES = (str, float, int, int, int, int, str, str)


def entry_value(entry: dict[str, object]) -> str:
    """Return an anchor entry as one line, its place first (floats as Python writes them, read back to the same)."""
    return "|".join(repr(entry[k]) if isinstance(entry[k], float) else str(entry[k]) for k in _ENTRY_KEYS)


def value_entry(value: str) -> dict[str, Any]:
    """Return the anchor entry of a line of :func:`entry_value`."""
    return {k: t(part) for k, t, part in zip(_ENTRY_KEYS, _ENTRY_TYPES, value.split("|"))}


class AnchorFields(NamedTuple):
    """The anchor fields of trip documents: each trip's entries, the same as lines (:func:`entry_value`), its ordered pairs, and its entries' values by place (:data:`BY_PLACE`)."""

    entries: list[list[dict[str, object]]]
    values: list[list[str]]
    pairs: list[list[str]]
    by_place: dict[str, list[list[str]]]


# Values of each entry also indexed as top-level keywords ``place@value`` (:func:`place_value`), so that a
# filter or a facet on one place's entry reads them without joining nested documents: its local day, the
# hour of its minute, its pickup point, its dropoff point, and every radius of RADIUS_CLASSES it is within.
BY_PLACE = ("anchor_days", "anchor_hours", "anchor_pickups", "anchor_dropoffs", "anchor_radii")


def place_value(place: str, value: object) -> str:
    """Return the keyword of a place's entry value in the :data:`BY_PLACE` fields."""
    return f"{place}@{value}"


@lru_cache(maxsize=1)
def anchor_places() -> Anchors:
    """Return the anchor places: every place of :func:`~tripsearch.data.places.load_places` with enough inhabitants."""
    return Anchors.of([(p.lat, p.lon) for p in load_places(ANCHOR_MIN_POPULATION) if p.population >= ANCHOR_MIN_POPULATION])


def anchor_fields(cols: TripColumns, anchors: Anchors | None = None) -> AnchorFields:
    """Return the anchor entries and pairs of every trip of ``cols`` (see the module docstring), in the order of the places.

    ``anchors`` defaults to :func:`anchor_places`.
    """
    anchors = anchor_places() if anchors is None else anchors
    n = len(cols)
    out = AnchorFields([[] for _ in range(n)], [[] for _ in range(n)], [[] for _ in range(n)], {name: [[] for _ in range(n)] for name in BY_PLACE})
    rows, places = _near_pairs(cols, anchors)
    if len(rows) == 0:
        return out
    first = cols.vert_start[rows]
    last = cols.vert_start[rows + 1] - 1
    # The kernels of a search (kernels.match_geometry): the closest point, the earliest on a tie for the
    # pickup and the latest for the dropoff, then the pickup time by the pickup time rule.
    km, along, p_lat, p_lon = closest_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, first, last, anchors.lat[places], anchors.lon[places], False, ANCHOR_KM)
    near = km <= ANCHOR_KM
    rows, places, km, along, p_lat, p_lon = rows[near], places[near], km[near], along[near], p_lat[near], p_lon[near]
    first, last = first[near], last[near]
    _, q_along, q_lat, q_lon = closest_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, first, last, anchors.lat[places], anchors.lon[places], True, ANCHOR_KM)
    time = times_along(cols.stop_start, cols.stop_along, cols.stop_time, rows, along)
    drop_time = times_along(cols.stop_start, cols.stop_along, cols.stop_time, rows, q_along)
    local = time + cols.offset_s[rows].astype(np.int64)
    day = local // SECONDS_PER_DAY
    minute = local % SECONDS_PER_DAY // 60
    keys = places.astype(str).tolist()
    for row, place, d, t, dt, dy, mi, plat, plon, qlat, qlon in zip(
        rows.tolist(), keys, km.tolist(), time.tolist(), drop_time.tolist(), day.tolist(), minute.tolist(), p_lat.tolist(), p_lon.tolist(), q_lat.tolist(), q_lon.tolist()
    ):
        pickup, dropoff = f"{plat!r},{plon!r}", f"{qlat!r},{qlon!r}"  # point_key
        out.entries[row].append({"place": place, "km": d, "time": t, "drop_time": dt, "day": dy, "minute": mi, "pickup": pickup, "dropoff": dropoff})
        out.values[row].append(f"{place}|{d!r}|{t}|{dt}|{dy}|{mi}|{pickup}|{dropoff}")  # entry_value
        for name, value in zip(BY_PLACE, (dy, mi // 60, pickup, dropoff)):
            out.by_place[name][row].append(f"{place}@{value}")  # place_value
        out.by_place["anchor_radii"][row].extend(f"{place}@{r}" for r in RADIUS_CLASSES if d <= r)  # place_value
    # Rule 2 for every two anchors of a route: the pickup at one strictly before the dropoff at the other.
    # Entries come by route: every (i, j) of one route's entries, i != j, from the group sizes.
    bounds = np.searchsorted(rows, np.arange(n + 1))
    size = np.diff(bounds)
    group = np.repeat(bounds[:-1], size)  # first entry of each entry's route
    i = np.repeat(np.arange(len(rows)), size[rows])
    j = group[i] + (np.arange(len(i)) - np.repeat(np.cumsum(size[rows]) - size[rows], size[rows]))
    keep = (i != j) & (along[i] < q_along[j])
    i, j = i[keep], j[keep]
    pair_bounds = np.searchsorted(rows[i], np.arange(n + 1)).tolist()
    flat = [f"{keys[a]}>{keys[b]}" for a, b in zip(i.tolist(), j.tolist())]  # anchor_pair
    for row in range(n):
        out.pairs[row].extend(flat[pair_bounds[row] : pair_bounds[row + 1]])
    return out


def _near_pairs(cols: TripColumns, anchors: Anchors) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return (route, place) pairs, by route then place, holding every place within ANCHOR_KM of a route.

    A route lies in the spherical cap around the direction of the sum of its
    vertices, of the angle to its farthest vertex (a cap under a hemisphere
    holds the arcs between its points); a place within ANCHOR_KM of the
    route is within that angle plus ANCHOR_KM of the centre.
    """
    n = len(cols)
    if n == 0 or len(anchors.lat) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    geom = cols.route_geometry(np.arange(n, dtype=np.int64))
    vertices = np.stack((geom.x, geom.y, geom.z), axis=1)
    centre = np.add.reduceat(vertices, geom.starts[:-1], axis=0)
    norm = np.linalg.norm(centre, axis=1)
    centre = centre / np.where(norm > 0, norm, 1.0)[:, None]
    cos_far = np.minimum.reduceat(np.einsum("ij,ij->i", vertices, centre[geom.owner]), geom.starts[:-1])
    spread = np.arccos(np.clip(cos_far, -1.0, 1.0)) + ANCHOR_KM / EARTH_RADIUS_KM + _ANGLE_MARGIN
    # A route too spread out for a cap under a hemisphere (or degenerate) is compared with every place.
    wide = (spread >= math.pi / 2) | (norm <= 1e-9)
    threshold = np.where(wide, -2.0, np.cos(np.minimum(spread, math.pi)))
    # Anchors come by latitude, and a place within the cap is within its angle of the centre's latitude.
    lat = np.radians(anchors.lat)
    centre_lat = np.arcsin(np.clip(centre[:, 2], -1.0, 1.0))
    lo = np.where(wide, 0, np.searchsorted(lat, centre_lat - spread - _LAT_MARGIN, "left"))
    hi = np.where(wide, len(lat), np.searchsorted(lat, centre_lat + spread + _LAT_MARGIN, "right"))
    return _cap_members(centre, threshold, lo.astype(np.int64), hi.astype(np.int64), anchors.unit)


@numba.njit(cache=True)
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
