"""The alerts index in memory: postings of every alert's From and To disks, and one batch of trips matched against them at once.

Alerts are grouped by their places: a *disk* is a (lat, lon, radius) that
some alert has as From or To, a *group* the alerts with the same From disk
and the same To disk. Workload searches go between a few thousand places,
so a million alerts make a few thousand disks and tens of thousands of
groups, and the geometry of a trip is measured once per group, not once
per alert.

Postings are sorted arrays: the tiles (:func:`route_to_tiles`) each disk's
cap may reach, then the disks of each tile. A batch of trips:

1. samples each route every :data:`SAMPLE_KM` along it and takes the
   tiles of the samples;
2. reads the disks of those tiles; a (trip, group) is a candidate when the
   trip touches the group's From disk and its To disk;
3. runs the search's own kernels: the pickup of each (trip, From disk) and
   the dropoff of each (trip, To disk), measured once on the part of the
   route between its first and last sample in the disk's tiles, half a
   sample step wider on each side (every point within the radius is there;
   :func:`~tripsearch.query.matching.evaluate` measures the whole route),
   decide rules 1 and 2 for each candidate; then, for each alert of the
   group alive and whose days hold the pickup's local day,
   :func:`~tripsearch.core.kernels.filter_failures` with the alert's filters.

No miss: a route point within r of a disk's centre lies within
``SAMPLE_KM / 2`` along the route, so on the sphere, of a sample; that
sample is within ``r + SAMPLE_KM / 2`` of the centre, and every tile that
holds a point that near is in the disk's cover (:func:`disk_to_tiles`).

The index is made of parts, each built once from a set of alerts and
never changed but for its ``alive`` mask: alerts created since the last
look become a new small part, and parts of similar sizes are merged, so a
new alert costs a small build and a million alerts a few parts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Sequence

import numba
import numpy as np
from numpy.typing import NDArray

from ..core.columns import STATUS_CODES, TripColumns, ragged_indices
from ..geo import EARTH_RADIUS_KM
from ..core.kernels import closest_in_ranges, filter_failures, match_ends
from ..query.matching import FILTERS, filter_bit
from .bodies import pack
from .numbers import NumberSet, distinct

__all__ = ["AlertIndex", "AlertTerms", "TERM_FIELDS", "SAMPLE_KM", "TILE_DEG", "route_to_tiles", "disk_to_tiles"]

SAMPLE_KM = 5.0
TILE_DEG = 0.25
# Rounding of sample positions and cap bounds is far below this (km).
_MARGIN_KM = 0.05
_ROWS = int(round(180 / TILE_DEG))
_ROW_SHIFT = 24  # a tile key: row << 24 | column
_KM_PER_DEG = math.radians(1.0) * EARTH_RADIUS_KM

# The columns of an alert the index reads, in the order AlertStore.terms_after returns them.
TERM_FIELDS = (
    "seq", "from_lat", "from_lon", "from_r", "to_lat", "to_lon", "to_r", "day_from", "day_to", "expires_s",
    "time_from", "time_to", "max_price", "options", "min_rating", "seats", "hooked", "places",
)  # fmt: skip
_FILTER_FIELDS = ("time_from", "time_to", "max_price", "options", "min_rating", "seats")
_INT_FIELDS = {"seq", "day_from", "day_to", "time_from", "time_to", "options", "seats", "hooked", "places"}
_FILTER_BITS = np.array([filter_bit(name) for name in FILTERS], dtype=np.int64)  # match_groups reads the date bit first
assert FILTERS[0] == "date"
_PUBLISHED = STATUS_CODES["published"]


@dataclass(frozen=True)
class AlertTerms:
    """Alerts as columns: :data:`TERM_FIELDS`, the alert's number (``seq``) first (no filter: time 0..1439, price inf, rating -inf)."""

    cols: dict[str, NDArray[Any]]

    def __len__(self) -> int:
        return len(self.cols["seq"])

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> AlertTerms:
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(TERM_FIELDS))
        return cls({name: table[:, i].astype(np.int64) if name in _INT_FIELDS else table[:, i].copy() for i, name in enumerate(TERM_FIELDS)})

    def take(self, keep: NDArray[Any]) -> AlertTerms:
        return AlertTerms({k: v[keep] for k, v in self.cols.items()})

    @classmethod
    def concat(cls, parts: list[AlertTerms]) -> AlertTerms:
        return cls({k: np.concatenate([p.cols[k] for p in parts]) for k in TERM_FIELDS})


def _tile_columns(row: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return the number of tiles across each row of tiles: as wide as tall at the row's edge nearer a pole, at least one."""
    edge = np.maximum(np.abs(row * TILE_DEG - 90.0), np.abs((row + 1) * TILE_DEG - 90.0))
    return np.maximum(1, np.floor(360.0 * np.cos(np.radians(np.minimum(edge, 90.0))) / TILE_DEG)).astype(np.int64)


_COLUMNS = _tile_columns(np.arange(_ROWS, dtype=np.int64))


class RouteTiles(NamedTuple):
    """Every tile routes pass through at a sample, once per route, sorted by row then tile, and where along the route (km) its samples there lie."""

    rows: NDArray[np.int64]
    tiles: NDArray[np.int64]
    first_km: NDArray[np.float64]  # the first sample in the tile, along the route
    last_km: NDArray[np.float64]  # the last one


def route_to_tiles(cols: TripColumns, rows: NDArray[np.int64]) -> RouteTiles:
    """Return the tiles the routes of ``rows`` pass through at a sample.

    Samples lie on the route (its great-circle segments) every
    :data:`SAMPLE_KM` along it from the start, and at its end.
    """
    rows = np.asarray(rows, dtype=np.int64)
    keys, first_km, last_km = _sample_tiles(cols.vert_lat, cols.vert_lon, cols.vert_cum, cols.vert_start, rows, _COLUMNS)
    keys, first_km, last_km = _spans(keys, first_km, last_km)
    return RouteTiles(keys >> 40, keys & ((1 << 40) - 1), first_km, last_km)


def _spans(keys: NDArray[np.int64], first: NDArray[np.float64], last: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Return each key once, sorted, with the smallest of its ``first`` and the largest of its ``last``."""
    if not len(keys):
        return keys, first, last
    order = np.argsort(keys, kind="stable")
    keys, first, last = keys[order], first[order], last[order]
    heads = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[heads], np.minimum.reduceat(first, heads), np.maximum.reduceat(last, heads)


@numba.njit(cache=True)
def _tile_key(lat: float, lon: float, columns: NDArray[np.int64]) -> int:  # pragma: no cover - compiled
    row = min(max(int(math.floor((lat + 90.0) / TILE_DEG)), 0), _ROWS - 1)
    n = columns[row]
    return (row << _ROW_SHIFT) | (int(math.floor((lon + 180.0) / 360.0 * n)) % n)


@numba.njit(cache=True)
def _sample_tiles(vert_lat, vert_lon, vert_cum, vert_start, rows, columns):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Return ``row << 40 | tile`` of the samples of the routes of ``rows``, once per run of samples in one tile, with the run's first and last sample along the route (km)."""
    total = 0
    for r in rows:
        total += int(vert_cum[vert_start[r + 1] - 1] / SAMPLE_KM) + 2
    out = np.empty(total, dtype=np.int64)
    out_first = np.empty(total, dtype=np.float64)
    out_last = np.empty(total, dtype=np.float64)
    n = 0
    for r in rows:
        first, last = vert_start[r], vert_start[r + 1] - 1
        length = vert_cum[last]
        k = first
        prev = -1
        for step in range(int(length / SAMPLE_KM) + 2):
            pos = min(step * SAMPLE_KM, length)
            while k < last - 1 and vert_cum[k + 1] <= pos:
                k += 1
            b = min(k + 1, last)
            seg = vert_cum[b] - vert_cum[k]
            frac = min(max((pos - vert_cum[k]) / seg, 0.0), 1.0) if seg > 0 else 0.0
            # spherical interpolation between the segment's ends, as geo.interpolate_on_arcs
            la, lo = math.radians(vert_lat[k] / 1e7), math.radians(vert_lon[k] / 1e7)
            lb, lob = math.radians(vert_lat[b] / 1e7), math.radians(vert_lon[b] / 1e7)
            ax, ay, az = math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)
            bx, by, bz = math.cos(lb) * math.cos(lob), math.cos(lb) * math.sin(lob), math.sin(lb)
            theta = seg / EARTH_RADIUS_KM
            sin_theta = math.sin(theta)
            if sin_theta < 1e-12:
                wa, wb = 1.0 - frac, frac
            else:
                wa, wb = math.sin((1.0 - frac) * theta) / sin_theta, math.sin(frac * theta) / sin_theta
            px, py, pz = ax * wa + bx * wb, ay * wa + by * wb, az * wa + bz * wb
            norm = math.sqrt(px * px + py * py + pz * pz)
            key = (np.int64(r) << 40) | _tile_key(math.degrees(math.asin(min(1.0, max(-1.0, pz / norm)))), math.degrees(math.atan2(py, px)), columns)
            if key != prev:
                out[n] = key
                out_first[n] = pos
                n += 1
                prev = key
            out_last[n - 1] = pos
    return out[:n], out_first[:n], out_last[:n]


@lru_cache(maxsize=1 << 16)
def disk_to_tiles(lat: float, lon: float, radius_km: float) -> NDArray[np.int64]:
    """Return, sorted, every tile that may hold a sample within ``radius_km + SAMPLE_KM / 2`` of a point (its cap's bounding box).

    >>> len(disk_to_tiles(89.99, 0.0, 10.0)) == int(_COLUMNS[-1])  # a cap over the pole holds every tile of its rows
    True
    """
    reach = (radius_km + SAMPLE_KM / 2 + _MARGIN_KM) / EARTH_RADIUS_KM  # radians
    reach_deg = math.degrees(reach)
    lo_row = max(0, math.floor((lat - reach_deg + 90.0) / TILE_DEG))
    hi_row = min(_ROWS - 1, math.floor((lat + reach_deg + 90.0) / TILE_DEG))
    cos_lat = math.cos(math.radians(lat))
    # Widest longitude of the cap: asin(sin(reach) / cos(lat)); all around when the cap holds a pole.
    spread = 360.0 if math.sin(reach) >= cos_lat * (1 - 1e-9) else math.degrees(math.asin(math.sin(reach) / cos_lat)) + 1e-6
    keys: list[int] = []
    for row in range(lo_row, hi_row + 1):
        n = int(_COLUMNS[row])
        first = math.floor((lon - spread + 180.0) / 360.0 * n)
        last = math.floor((lon + spread + 180.0) / 360.0 * n)
        columns = range(n) if last - first + 1 >= n else (c % n for c in range(first, last + 1))
        keys.extend((row << _ROW_SHIFT) | c for c in columns)
    out = np.unique(np.array(keys, dtype=np.int64))
    out.setflags(write=False)
    return out


class _Part:
    """Alerts indexed once: disks, their tiles, groups, alerts by group; only ``alive`` changes."""

    def __init__(self, terms: AlertTerms) -> None:
        c = terms.cols
        places = np.concatenate((np.stack((c["from_lat"], c["from_lon"], c["from_r"]), axis=1), np.stack((c["to_lat"], c["to_lon"], c["to_r"]), axis=1)))
        self.disks, which = np.unique(places, axis=0, return_inverse=True)
        which = which.reshape(-1)
        n, m = len(terms), len(self.disks)
        from_disk, to_disk = which[:n].astype(np.int64), which[n:].astype(np.int64)
        covers = [disk_to_tiles(float(a), float(b), float(r)) for a, b, r in self.disks.tolist()]
        tiles = np.concatenate(covers) if covers else np.zeros(0, dtype=np.int64)
        owners = np.repeat(np.arange(m, dtype=np.int64), [len(t) for t in covers])
        order = np.lexsort((owners, tiles))
        tiles, self.tile_disks = tiles[order], owners[order]
        heads = np.flatnonzero(np.concatenate(([True], tiles[1:] != tiles[:-1]))) if len(tiles) else np.zeros(0, dtype=np.int64)
        self.tile_keys, self.tile_start = tiles[heads], np.concatenate((heads, [len(tiles)])).astype(np.int64)
        groups, group_of = np.unique(from_disk * m + to_disk, return_inverse=True)
        self.group_from, self.group_to = groups // max(m, 1), groups % max(m, 1)
        self.from_start = np.searchsorted(self.group_from, np.arange(m + 1)).astype(np.int64)
        # Within a group, alerts with the same filters side by side: the kernel checks each set of filters once.
        filters = np.stack([c[name].astype(np.float64) for name in _FILTER_FIELDS], axis=1)
        filter_set = np.unique(filters, axis=0, return_inverse=True)[1].reshape(-1)
        group_of = group_of.reshape(-1)
        by_group = np.lexsort((filter_set, group_of))
        self.group_start = np.searchsorted(group_of[by_group], np.arange(len(groups) + 1)).astype(np.int64)
        self.filter_set = filter_set[by_group]
        self.terms = terms.take(by_group)
        self.alive = np.ones(n, dtype=np.bool_)
        self.by_number = np.argsort(self.terms.cols["seq"])  # positions in order of the alerts' numbers
        self.numbers = NumberSet(self.terms.cols["seq"][self.by_number], max_span=2)  # kept for the part's life: its table at most 8 bytes an alert, as much as the sorted numbers

    def __len__(self) -> int:
        return len(self.alive)

    def live(self) -> AlertTerms:
        return self.terms.take(self.alive)

    def drop(self, seqs: NDArray[np.int64]) -> None:
        self.alive &= ~np.isin(self.terms.cols["seq"], seqs)

    def find(self, numbers: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the positions in this part of the alerts of ``numbers`` it holds (deleted or not)."""
        at = self.numbers.index(numbers)
        return self.by_number[at[at >= 0]]

    def candidates(self, route: RouteTiles) -> Candidates:
        """Return the (row, group) whose From and To disks the rows' tiles touch, sorted by group then row, and where along each route its samples touch each disk."""
        at = np.searchsorted(self.tile_keys, route.tiles)
        found = at < len(self.tile_keys)
        found[found] = self.tile_keys[at[found]] == route.tiles[found]
        at, rows = at[found], route.rows[found]
        counts = self.tile_start[at + 1] - self.tile_start[at]
        entries = ragged_indices(self.tile_start[at], self.tile_start[at + 1])
        reach = _Reach(*_spans((np.repeat(rows, counts) << 32) | self.tile_disks[entries], np.repeat(route.first_km[found], counts), np.repeat(route.last_km[found], counts)))
        rows, groups, from_at, to_at = _touched_groups(reach.keys, self.from_start, self.group_to)
        order = np.argsort((groups << 32) | rows)
        return Candidates(rows[order], groups[order], from_at[order], to_at[order], reach)


@numba.njit(cache=True)
def _touched_groups(touched, from_start, group_to):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Return the (row, group, position of (row, From disk), position of (row, To disk)) of the groups whose both disks a row touches.

    ``touched``: the sorted (row << 32 | disk) a batch's routes touch; a
    group's From disk's groups are ``from_start[disk]`` to
    ``from_start[disk + 1] - 1``, its To disk ``group_to[group]``. A row's
    entries are side by side, few: its To disk is searched among them.
    """
    n = touched.shape[0]
    total = 0
    for a in range(n):
        d = touched[a] & 0xFFFFFFFF
        total += from_start[d + 1] - from_start[d]
    rows = np.empty(total, dtype=np.int64)
    groups = np.empty(total, dtype=np.int64)
    from_at = np.empty(total, dtype=np.int64)
    to_at = np.empty(total, dtype=np.int64)
    k = 0
    start = 0
    while start < n:
        row = touched[start] >> 32
        stop = start
        while stop < n and touched[stop] >> 32 == row:
            stop += 1
        for a in range(start, stop):
            d = touched[a] & 0xFFFFFFFF
            for g in range(from_start[d], from_start[d + 1]):
                want = (row << 32) | group_to[g]
                lo, hi = start, stop
                while lo < hi:
                    mid = (lo + hi) // 2
                    if touched[mid] < want:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < stop and touched[lo] == want:
                    rows[k], groups[k], from_at[k], to_at[k] = row, g, a, lo
                    k += 1
        start = stop
    return rows[:k], groups[:k], from_at[:k], to_at[:k]


class _Reach(NamedTuple):
    """The (row << 32 | disk) a route's samples touch (in a tile of the disk's cover), sorted, and the first and last such sample along the route (km)."""

    keys: NDArray[np.int64]
    first_km: NDArray[np.float64]
    last_km: NDArray[np.float64]

    def vertices(self, cols: TripColumns, at: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Return, for the (row, disk) of :attr:`keys` at positions ``at``, the first and last vertex of the part of the route that holds every point within the disk's radius.

        A route point within r of a disk's centre lies within ``SAMPLE_KM / 2``
        along the route of a sample, which is then within ``r + SAMPLE_KM / 2``
        of the centre, in a tile of the disk's cover (the module's docstring):
        so between the first such sample less ``SAMPLE_KM / 2`` and the last
        plus ``SAMPLE_KM / 2``.
        """
        pad = SAMPLE_KM / 2 + _MARGIN_KM
        return _vertex_span(cols.vert_cum, cols.vert_start, self.keys[at] >> 32, self.first_km[at] - pad, self.last_km[at] + pad)


class Candidates(NamedTuple):
    """The (row, group) items of a batch whose rows touch the group's From and To disks, and where: the positions in ``reach.keys`` of (row, From disk) and (row, To disk)."""

    rows: NDArray[np.int64]
    groups: NDArray[np.int64]
    from_at: NDArray[np.int64]
    to_at: NDArray[np.int64]
    reach: _Reach


@numba.njit(cache=True)
def _vertex_span(vert_cum, vert_start, rows, from_km, to_km):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Return, for each row, the last vertex at or before ``from_km`` along its route and the first at or after ``to_km`` (its first and last vertex if none)."""
    n = rows.shape[0]
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    for i in range(n):
        lo, hi = vert_start[rows[i]], vert_start[rows[i] + 1] - 1
        a, b = lo, hi  # the last vertex with cum <= from_km: binary search on [lo, hi]
        while a < b:
            mid = (a + b + 1) // 2
            if vert_cum[mid] <= from_km[i]:
                a = mid
            else:
                b = mid - 1
        first[i] = a
        a, b = lo, hi  # the first vertex with cum >= to_km
        while a < b:
            mid = (a + b) // 2
            if vert_cum[mid] >= to_km[i]:
                b = mid
            else:
                a = mid + 1
        last[i] = max(a, first[i])
    return first, last


class Matches(NamedTuple):
    """Matches of a batch, a (trip row, alert group) item at a time: the row, what the item's match events say (packed), and its alerts' numbers."""

    rows: list[int]
    bodies: list[bytes]
    alerts: list[NDArray[np.int64]]


class AlertIndex:
    """Every active alert of a store, in memory, kept up to date by :meth:`update`."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self.last_seq = 0  # the last alert (AlertStore terms sequence) read
        self.last_drop = 0  # the last deletion read
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return sum(int(p.alive.sum()) for p in self.parts)

    def update(self, added: AlertTerms, dropped: NDArray[np.int64]) -> None:
        """Add alerts (a new part, then merges of parts of similar sizes) and mark deleted ones (by sequence number)."""
        if len(dropped):
            for part in self.parts:
                part.drop(dropped)
        if len(added):
            parts = [*self.parts, _Part(added)]
            while len(parts) >= 2 and len(parts[-2]) <= 2 * len(parts[-1]):  # sizes fall at least by half: few parts, each alert rebuilt O(log n) times
                parts[-2:] = [_Part(AlertTerms.concat([parts[-2].live(), parts[-1].live()]))]
            self.parts = parts  # one assignment: a batch matching meanwhile reads the old list or the new one
            self.last_seq = max(self.last_seq, int(added.cols["seq"].max()))

    def alive(self, numbers: NDArray[np.int64], now: float, fields: Sequence[str]) -> tuple[NDArray[np.int64], dict[str, NDArray[Any]]]:
        """Return the alerts of ``numbers`` indexed, not deleted and not expired at ``now`` (sorted, no repeats), and their ``fields`` (of :data:`TERM_FIELDS`)."""
        numbers = distinct(numbers)
        alive, columns = [], []
        for part in self.parts:
            rows = part.find(numbers)
            t = part.terms.cols
            rows = rows[part.alive[rows] & (t["expires_s"][rows] > now)]
            alive.append(t["seq"][rows])
            columns.append([t[name][rows] for name in fields])
        if not alive:
            return numbers[:0], {name: AlertTerms.from_rows([]).cols[name] for name in fields}
        if len(alive) == 1:  # found in the order of the numbers
            return alive[0], dict(zip(fields, columns[0]))
        numbers = np.concatenate(alive)
        order = np.argsort(numbers)  # the parts hold different alerts
        return numbers[order], {name: np.concatenate(column)[order] for name, column in zip(fields, zip(*columns))}

    def match(self, cols: TripColumns, rows: NDArray[np.int64], now: float) -> Matches:
        """Return the matches of trips ``rows`` of ``cols`` with the live alerts not expired at ``now``."""
        out = Matches([], [], [])
        rows = rows[cols.status[rows] == _PUBLISHED]
        if not len(rows) or not self.parts:
            return out
        route = route_to_tiles(cols, rows)
        for part in self.parts:  # the list is replaced, never changed, by update
            items = part.candidates(route)
            if not len(items.rows):
                continue
            pickup, dropoff, times, geo_rows, geo_groups = _geometry(cols, part, items)
            if not len(geo_rows):
                continue
            local_day = filter_failures(geo_rows, times[0], cols.offset_s, cols.price, cols.options, cols.rating, cols.seats_available, _FILTER_BITS, (0, 0), 0, (0, 24 * 60 - 1), np.inf, 0, -np.inf, 0)[0]
            t = part.terms.cols
            hit_item, hit_alert = match_alerts(
                cols.offset_s, cols.price, cols.options, cols.rating, cols.seats_available, _FILTER_BITS,
                geo_rows, geo_groups, times[0], local_day, part.group_start, part.filter_set, part.alive, now,
                t["day_from"], t["day_to"], t["expires_s"], t["time_from"], t["time_to"], t["max_price"], t["options"], t["min_rating"], t["seats"],
            )  # fmt: skip
            if not len(hit_item):
                continue
            self._bodies(out, part, cols, hit_item, hit_alert, geo_rows, pickup, dropoff, times)
        return out

    @staticmethod
    def _bodies(
        out: Matches, part: _Part, cols: TripColumns, hit_item: NDArray[np.int64], hit_alert: NDArray[np.int64],
        rows: NDArray[np.int64], pickup: NDArray[np.float64], dropoff: NDArray[np.float64], times: NDArray[np.int64],
    ) -> None:  # fmt: skip
        """Append the matched items to ``out``, each with what its events say (packed: :mod:`tripsearch.alerts.bodies`) and its alerts.

        The alerts of a group matched by one trip share one body: it depends on the trip and the group's places only.
        """
        order = np.argsort(hit_item, kind="stable")  # each item's alerts together, in the order they matched
        items, counts = np.unique(hit_item[order], return_counts=True)
        out.rows.extend(rows[items].tolist())
        out.bodies.extend(pack(pickup[:, items], dropoff[:, items], times[:, items], cols.offset_s[rows[items]]))
        out.alerts.extend(np.split(part.terms.cols["seq"][hit_alert[order]], np.cumsum(counts)[:-1]))


def _geometry(cols: TripColumns, part: _Part, items: Candidates) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Rules 1 and 2 for candidate (row, group) items: return the pickups, dropoffs (4 x n), times (2 x n), rows and groups of the items that pass.

    The pickup depends on the row and the From disk only, the dropoff on the
    row and the To disk: each is measured once, on the part of the route
    that holds every point within the disk's radius (:meth:`_Reach.vertices`), by
    :func:`~tripsearch.core.kernels.closest_in_ranges` (the dropoffs first,
    then the pickups of the items whose dropoff is within the To radius,
    as rule 2 asks), then
    :func:`~tripsearch.core.kernels.match_ends` decides each item by the
    rule :func:`~tripsearch.core.kernels.match_geometry` decides by and
    gives it its times.
    Measured with a larger ``within_km`` than a disk's own radius, a closest
    point that is within the radius is the same one: pruning only skips
    route parts provably farther than the best point found.
    """
    radius = part.disks[:, 2]
    rows, groups = items.rows, items.groups
    dropoff = _closest(cols, part, items.reach, part.group_to[groups], items.to_at, True)
    near = dropoff[0] <= radius[part.group_to[groups]]  # rule 2's dropoff first: most candidates' routes do not come that near their To disk
    rows, groups, dropoff = rows[near], groups[near], dropoff[:, near]
    pickup = _closest(cols, part, items.reach, part.group_from[groups], items.from_at[near], False)
    geo, times = match_ends(
        cols.stop_start, cols.stop_along, cols.stop_time, cols.status[rows] == _PUBLISHED, rows, pickup, dropoff,
        radius[part.group_from[groups]], radius[part.group_to[groups]],
    )  # fmt: skip
    return pickup[:, geo], dropoff[:, geo], times[:, geo], rows[geo], groups[geo]


def _closest(cols: TripColumns, part: _Part, reach: _Reach, disks: NDArray[np.int64], at: NDArray[np.int64], latest: bool) -> NDArray[np.float64]:
    """Return the closest point (4 x n, as ClosestPoints) of each item's route to its disk of ``disks``, the item's (row, disk) being at ``at`` in ``reach``."""
    if not len(at):
        return np.zeros((4, 0), dtype=np.float64)
    # each (disk, row) once (its position in reach.keys), by disk: one target after another, so the kernel computes each once
    keys, which = np.unique((disks << 32) | at, return_inverse=True)
    d = keys >> 32
    first, last = reach.vertices(cols, keys & 0xFFFFFFFF)
    found = np.array(closest_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, first, last, part.disks[d, 0], part.disks[d, 1], latest, float(part.disks[d, 2].max())))
    return found[:, which.reshape(-1)]


@numba.njit(cache=True)
def match_alerts(  # type: ignore[no-untyped-def]
    offset_s, price, options, rating, seats_available, bits,
    rows, groups, pickup_time, local_day, group_start, filter_set, alive, now,
    day_from, day_to, expires_s, time_from, time_to, max_price, option_bits, min_rating, seats,
):  # pragma: no cover - compiled
    """Return the (item, alert) matches of items that pass rules 1 and 2 (sorted by group) with their groups' alerts.

    An alert matches when it is alive, not expired at ``now``, its days
    hold the pickup's local day, and :func:`~tripsearch.core.kernels.filter_failures`
    with its filters finds no failure but the date (rules 3 and 4; the
    alert's day range stands for the search's date). A group's alerts come
    grouped by filter set, so each set is checked once per group.
    """
    n = rows.shape[0]
    hit_item = []
    hit_alert = []
    start = 0
    while start < n:
        g = groups[start]
        stop = start
        while stop < n and groups[stop] == g:
            stop += 1
        first, last = local_day[start:stop].min(), local_day[start:stop].max()
        passes = np.zeros(stop - start, dtype=np.bool_)
        checked = -1  # the filter set ``passes`` holds
        for a in range(group_start[g], group_start[g + 1]):
            if not alive[a] or expires_s[a] <= now or day_to[a] < first or day_from[a] > last:
                continue
            if filter_set[a] != checked:
                failed = filter_failures(
                    rows[start:stop], pickup_time[start:stop], offset_s, price, options, rating, seats_available, bits, (0, 0), 0,
                    (time_from[a], time_to[a]), max_price[a], option_bits[a], min_rating[a], seats[a],
                )[2]  # fmt: skip
                passes = failed & ~bits[0] == 0
                checked = filter_set[a]
            for j in range(stop - start):
                if passes[j] and day_from[a] <= local_day[start + j] <= day_to[a]:
                    hit_item.append(start + j)
                    hit_alert.append(a)
        start = stop
    return np.array(hit_item, dtype=np.int64), np.array(hit_alert, dtype=np.int64)
