"""H3 cells for finding candidate trips fast, with a no-miss guarantee.

A route is indexed by the H3 cells (resolution :data:`CORRIDOR_RES`) of
points sampled along it at most :data:`SAMPLE_KM` apart, each sample first
snapped to a fixed lat/lon grid (so that one cached H3 call serves every
sample that snaps to the same grid point). Any point of the route is then
within :data:`INDEX_MARGIN_KM` of the grid point of some sample.

A query disk (centre, radius r) is covered by every cell that may hold a
point within ``r + INDEX_MARGIN_KM`` of the centre, found ring by ring
around the centre's cell, keeping a cell unless its centre is farther
than that distance plus the cell's circumradius. So if a route passes
within r of the centre, one of its cells is in the cover: H3 only narrows
the search, the exact rules in :mod:`tripsearch.query.matching` decide.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import NamedTuple

import h3.api.basic_int as h3_int
import numba
import numpy as np
from h3ronpy import vector as h3_vector
from numpy.typing import NDArray

from ..core.columns import TripColumns
from ..core.kernels import arc_angle, unit_vector
from ..geo import COORD_SCALE, EARTH_RADIUS_KM, haversine_km

__all__ = [
    "CORRIDOR_RES",
    "SAMPLE_KM",
    "SNAP_DEG",
    "CELL_SHIFT",
    "INDEX_MARGIN_KM",
    "CorridorCells",
    "RouteSamples",
    "route_to_samples",
    "route_to_cells",
    "disk_to_cells",
    "point_to_cell",
]

CORRIDOR_RES = 6
SAMPLE_KM = 3.0
SNAP_DEG = 0.02
# Half the sample spacing, plus the farthest a sample can be from its grid point.
INDEX_MARGIN_KM = SAMPLE_KM / 2 + math.radians(SNAP_DEG) * math.sqrt(2) / 2 * EARTH_RADIUS_KM + 0.01


def point_to_cell(lat: float, lon: float, res: int) -> int:
    """Return the H3 cell (as an integer) of a point."""
    return int(h3_int.latlng_to_cell(lat, lon, res))


# Below this bit an index of CORRIDOR_RES holds only its unused digits (all ones): the rest identifies the cell.
CELL_SHIFT = 3 * (15 - CORRIDOR_RES)
_CELL_TAIL = (1 << CELL_SHIFT) - 1
_CELL_BITS = 64 - CELL_SHIFT  # what is left of a cell once shifted
_OWNER_SHIFT = _CELL_BITS


class _GridCells:
    """Cells of the snapping grid, computed point by point when first needed and kept, so lookups are array indexing.

    The table holds a 1x1 degree tile per row, allocated when a route first
    enters the tile; a grid point's cell is computed the first time a sample
    snaps to it (0, never an H3 index, marks a point not yet computed). A
    load of a few thousand trips then costs H3 calls for the points its
    routes touch, not for whole tiles (about a quarter of them in Europe).
    Routes stay on land in a few regions, so the tiles ever touched are a
    small part of the globe (Europe: about 2,000 tiles of 20 KB).

    Lookups may come from several threads at once (an API process's
    concurrent writes): adding tiles and computing points happen under a
    lock, and a tile's table row exists before its slot is published, so a
    lookup without the lock reads either a computed cell or 0 (then takes
    the lock and computes it), never another tile's row.
    """

    STEPS = round(1.0 / SNAP_DEG)  # grid steps per tile side
    LAT_TILES = 181
    LON_TILES = 361

    def __init__(self) -> None:
        self.slot = np.full(self.LAT_TILES * self.LON_TILES, -1, dtype=np.int64)
        self.table = np.zeros((0, self.STEPS * self.STEPS), dtype=np.uint64)  # rows beyond self.rows: room for tiles to come
        self.rows = 0
        self._lock = threading.Lock()

    def lookup(self, lat_step: NDArray[np.int64], lon_step: NDArray[np.int64]) -> NDArray[np.uint64]:
        tile_lat = np.floor_divide(lat_step, self.STEPS)
        tile_lon = np.floor_divide(lon_step, self.STEPS)
        tile = (tile_lat + 90) * self.LON_TILES + (tile_lon + 180)
        slot = self.slot[tile]
        if (slot < 0).any():
            with self._lock:
                self._add_tiles(tile)
            slot = self.slot[tile]
        # the position of each point in the table, read as one flat array
        flat = slot * (self.STEPS * self.STEPS) + (lat_step - tile_lat * self.STEPS) * self.STEPS + (lon_step - tile_lon * self.STEPS)
        cells = self.table.reshape(-1)[flat]
        if (cells == 0).any():
            with self._lock:
                table = self.table.reshape(-1)
                todo = flat[table[flat] == 0]  # another thread may have computed some meanwhile
                if len(todo):
                    self._fill(_distinct(todo, len(table)))
            cells = self.table.reshape(-1)[flat]
        return cells

    def _add_tiles(self, tile: NDArray[np.int64]) -> None:
        """Give a table row to every tile of ``tile`` without one: the rows first, then the slots that point at them."""
        missing = np.unique(tile[self.slot[tile] < 0])
        if len(missing):
            first = self.rows
            if first + len(missing) > len(self.table):  # room for twice as many: a load adds tiles batch after batch, each copy is of the whole table
                table = np.zeros((max(first + len(missing), 2 * len(self.table)), self.STEPS * self.STEPS), dtype=np.uint64)
                table[:first] = self.table[:first]
                self.table = table
            self.rows = first + len(missing)
            self.slot[missing] = np.arange(first, first + len(missing))

    def _fill(self, flat: NDArray[np.int64]) -> None:
        """Compute the cells of the grid points at ``flat`` positions of the table."""
        size = self.STEPS * self.STEPS
        row, offset = np.divmod(flat, size)
        tile = np.flatnonzero(self.slot >= 0)[np.argsort(self.slot[self.slot >= 0])][row]
        lat_step = (tile // self.LON_TILES - 90) * self.STEPS + offset // self.STEPS
        lon_step = (tile % self.LON_TILES - 180) * self.STEPS + offset % self.STEPS
        lat = np.clip(lat_step * SNAP_DEG, -90.0, 90.0)
        lon = np.mod(lon_step * SNAP_DEG + 180.0, 360.0) - 180.0
        # h3ronpy's cells equal h3's (tests/test_cells.py); its one call lets go of the interpreter's lock,
        # so a load's index thread computes them while the load's own thread parses (0.44 against 0.68 us a point)
        self.table.reshape(-1)[flat] = np.asarray(h3_vector.coordinates_to_cells(lat, lon, CORRIDOR_RES), dtype=np.uint64)


def _distinct(positions: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Return the distinct values of ``positions`` (each in ``0..size-1``) in ascending order, as ``np.unique`` does.

    A fresh process's first batches ask for millions of grid points, most
    of them many times: marking them in an array of ``size`` flags is a
    scatter and a scan (7 ms for 3 million of 4 million), where sorting
    them took over a second.
    """
    if len(positions) * 64 < size:
        return np.unique(positions)
    mark = np.zeros(size, dtype=bool)
    mark[positions] = True
    return np.flatnonzero(mark)


_grid = _GridCells()


class CorridorCells(NamedTuple):
    """The corridor of routes: one entry per (row, cell) with the range of route segments sampled in that cell.

    Segments are counted within each route (segment k joins vertices k and
    k+1). A sample at a vertex counts for the segments on both sides of it,
    so every point of a segment is within half a sample spacing of a sample
    that counts for that segment: the closest point of a route to a query
    point lies on a segment listed by one of the cells that cover the query.
    """

    rows: NDArray[np.int64]
    cells: NDArray[np.uint64]
    seg_lo: NDArray[np.int64]
    seg_hi: NDArray[np.int64]


class RouteSamples(NamedTuple):
    """Points sampled along routes, in route order: one entry per sample, each with its corridor cell.

    Consecutive samples of a route are at most :data:`SAMPLE_KM` apart along
    it (every vertex is a sample), so every point of a route lies on the
    piece between two consecutive samples.
    """

    owner: NDArray[np.int64]  # the position, in the rows given, of each sample's route
    cells: NDArray[np.uint64]  # cell (CORRIDOR_RES) of the sample's grid point
    seg_lo: NDArray[np.int64]  # the segments (counted within the route) the sample counts for
    seg_hi: NDArray[np.int64]
    along_km: NDArray[np.float64]  # distance along the route


def route_to_samples(cols: TripColumns, rows: NDArray[np.int64]) -> RouteSamples:
    """Return the samples of each route in ``rows``, route after route, each in order along its route."""
    rows = np.asarray(rows, dtype=np.int64)
    owner, lat_step, lon_step, seg_lo, seg_hi, along = _samples(cols.vert_lat, cols.vert_lon, cols.vert_cum, cols.vert_start, rows)
    return RouteSamples(owner, _grid.lookup(lat_step, lon_step), seg_lo, seg_hi, along)


@numba.njit(cache=True, nogil=True)
def _samples(vert_lat, vert_lon, vert_cum, vert_start, rows):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Return (owner, lat step, lon step, first segment, last segment, distance along) of the samples of the routes of ``rows``.

    Each segment is cut into ceil(length / SAMPLE_KM) pieces of equal length
    (at least one): a sample at each cut and at every vertex, the last
    vertex included, each snapped to the grid of :data:`SNAP_DEG`. The cuts
    are the segment's start rotated along its great circle by equal angles,
    so they are evenly spaced along the arc (to rounding: the margin of
    :data:`INDEX_MARGIN_KM` covers far more). A sample at a vertex counts for
    the segments on both sides of it; segments are counted within the route.

    One compiled pass, where numpy took a dozen passes over arrays of every
    sample: 57 against 400 ns a sample (1M samples of the demo's routes).
    """
    # First pass: every vertex's unit vector and segment's length, and so the number of samples.
    n_vert = 0
    for r in rows:
        n_vert += vert_start[r + 1] - vert_start[r]
    unit = np.empty((n_vert, 3), dtype=np.float64)
    seg_len = np.zeros(n_vert, dtype=np.float64)
    total = 0
    v = 0
    for r in rows:
        first, end = vert_start[r], vert_start[r + 1]
        for k in range(first, end):
            unit[v, 0], unit[v, 1], unit[v, 2] = unit_vector(vert_lat[k], vert_lon[k])
            if k > first:
                seg_len[v - 1] = arc_angle(unit[v - 1, 0], unit[v - 1, 1], unit[v - 1, 2], unit[v, 0], unit[v, 1], unit[v, 2]) * EARTH_RADIUS_KM
                total += max(int(math.ceil(seg_len[v - 1] / SAMPLE_KM)), 1)
            v += 1
        if end > first:
            total += 1  # the last vertex
    owner = np.empty(total, dtype=np.int64)
    lat_step = np.empty(total, dtype=np.int64)
    lon_step = np.empty(total, dtype=np.int64)
    seg_lo = np.empty(total, dtype=np.int64)
    seg_hi = np.empty(total, dtype=np.int64)
    along = np.empty(total, dtype=np.float64)
    n = 0
    v = 0
    for i in range(rows.shape[0]):
        first, end = vert_start[rows[i]], vert_start[rows[i] + 1]
        last_seg = end - first - 2
        for k in range(first, end):
            local = k - first
            # the vertex itself
            owner[n] = i
            lat_step[n] = np.int64(np.rint(vert_lat[k] / COORD_SCALE / SNAP_DEG))
            lon_step[n] = np.int64(np.rint(vert_lon[k] / COORD_SCALE / SNAP_DEG))
            seg_lo[n] = local - 1 if local > 0 else local
            seg_hi[n] = min(local, last_seg)
            along[n] = vert_cum[k]
            n += 1
            length = seg_len[v]
            pieces = max(int(math.ceil(length / SAMPLE_KM)), 1) if k < end - 1 else 1
            if pieces > 1:
                # The points p/pieces of the way along the arc to the next vertex: a rotated towards b in
                # their plane by p steps of the same angle, the rotation's cosine and sine carried along.
                ax, ay, az = unit[v, 0], unit[v, 1], unit[v, 2]
                bx, by, bz = unit[v + 1, 0], unit[v + 1, 1], unit[v + 1, 2]
                dot = ax * bx + ay * by + az * bz
                ux, uy, uz = bx - ax * dot, by - ay * dot, bz - az * dot
                un = math.sqrt(ux * ux + uy * uy + uz * uz)
                ux, uy, uz = ux / un, uy / un, uz / un
                step = length / EARTH_RADIUS_KM / pieces
                cos_step, sin_step = math.cos(step), math.sin(step)
                c, s = 1.0, 0.0
                for p in range(1, pieces):
                    c, s = c * cos_step - s * sin_step, s * cos_step + c * sin_step
                    x, y, z = ax * c + ux * s, ay * c + uy * s, az * c + uz * s
                    norm = math.sqrt(x * x + y * y + z * z)
                    owner[n] = i
                    lat_step[n] = np.int64(np.rint(math.degrees(math.asin(min(1.0, max(-1.0, z / norm)))) / SNAP_DEG))
                    lon_step[n] = np.int64(np.rint(math.degrees(math.atan2(y, x)) / SNAP_DEG))
                    seg_lo[n] = local
                    seg_hi[n] = min(local, last_seg)
                    along[n] = vert_cum[k] + p / pieces * length
                    n += 1
            v += 1
    return owner, lat_step, lon_step, seg_lo, seg_hi, along


def route_to_cells(cols: TripColumns, rows: NDArray[np.int64], samples: RouteSamples | None = None) -> CorridorCells:
    """Return the corridor cells of each route in ``rows``, with the segments each cell holds.

    ``samples`` may give :func:`route_to_samples` of the same rows, to save computing them again.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return CorridorCells(empty, np.zeros(0, dtype=np.uint64), empty, empty)
    sample_owner, cells, seg_lo, seg_hi, _ = route_to_samples(cols, rows) if samples is None else samples
    # One entry per (owner, cell): the lowest and highest segment sampled there.
    pair = (sample_owner.astype(np.uint64) << np.uint64(_OWNER_SHIFT)) | (cells >> np.uint64(CELL_SHIFT))
    # Consecutive samples often fall in one cell: fold those runs first, so there is less to sort.
    runs = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1])))
    pair = pair[runs]
    seg_lo = np.minimum.reduceat(seg_lo, runs)
    seg_hi = np.maximum.reduceat(seg_hi, runs)
    order = np.argsort(pair, kind="stable")
    pair = pair[order]
    heads = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1])))
    lo = np.minimum.reduceat(seg_lo[order], heads)
    hi = np.maximum.reduceat(seg_hi[order], heads)
    pair = pair[heads]
    owners = (pair >> np.uint64(_OWNER_SHIFT)).astype(np.int64)
    out_cells = ((pair & np.uint64((1 << _CELL_BITS) - 1)) << np.uint64(CELL_SHIFT)) | np.uint64(_CELL_TAIL)
    return CorridorCells(rows[owners], out_cells, lo.astype(np.int64), hi.astype(np.int64))


@lru_cache(maxsize=1 << 18)
def _cell_reach(cell: int) -> tuple[float, float, float]:
    """Return a cell's centre (lat, lon) and its circumradius in km."""
    lat, lon = h3_int.cell_to_latlng(cell)
    # Cell edges are great-circle arcs (gnomonic straight lines), so the farthest point is a vertex;
    # 1% more (and 10 m) for the rounding of the boundary coordinates.
    radius = max(haversine_km(lat, lon, vlat, vlon) for vlat, vlon in h3_int.cell_to_boundary(cell))
    return lat, lon, radius * 1.01 + 0.01


@lru_cache(maxsize=16384)
def disk_to_cells(lat: float, lon: float, radius_km: float, res: int = CORRIDOR_RES) -> NDArray[np.uint64]:
    """Return, sorted, every cell that may hold a point within ``radius_km`` (plus the index margin) of a point.

    A cell is kept unless its centre is farther than the reach plus its own
    circumradius. The cells are read ring by ring around the point's cell
    (grid distance 0, 1, 2, ...) up to the first ring that keeps none: the
    cells that meet the disk are connected and hold the point's cell, and
    a path of neighbours leaves the rings read only through that empty
    ring, so none of them lies beyond it.
    """
    reach = radius_km + INDEX_MARGIN_KM
    start = h3_int.latlng_to_cell(lat, lon, res)
    keep = [start]  # it holds the point
    inside = {start}
    k = 1
    while True:
        disk = h3_int.grid_disk(start, k)
        kept = 0
        for cell in disk:
            if cell in inside:
                continue
            clat, clon, circumradius = _cell_reach(cell)
            if haversine_km(lat, lon, clat, clon) - circumradius <= reach:
                keep.append(cell)
                kept += 1
        if not kept:
            break
        inside.update(disk)
        k += 1
    out = np.array(sorted(keep), dtype=np.uint64)
    out.setflags(write=False)
    return out
