"""Compiled loops (numba) for a search: the exact geometry (closest route points, distances along routes), the rest of the rules, the join of posting lists and the counting facets.

The geometry loops read the trip columns in place (int32 coordinates in 1e-7 degree,
per-vertex distances along) over vertex ranges, so a search measures only
the part of each route its index points at, with no copies. numba's math
functions are the C library's, the same as Python's ``math`` module, so these
loops compute bit for bit what the plain-Python reference in the tests
computes with the same formulas.

Formulas (unit sphere, mean Earth radius :data:`~tripsearch.geo.EARTH_RADIUS_KM`):

- angle between unit vectors a, b: ``atan2(|a x b|, a . b)``;
- closest point of segment a-b to x: the foot c of x on the great circle
  through a and b when it lies strictly inside the arc, else the nearer end;
- a tie between points at the same distance goes to the earliest point along
  the route, or to the latest when ``latest`` is set.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence, cast

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from numpy.typing import NDArray

from ..geo import COORD_SCALE, EARTH_RADIUS_KM

__all__ = ["unit_vector", "arc_angle", "route_distances_along", "closest_in_ranges", "closest_both_in_ranges", "vertex_cap", "near_parts", "times_along", "match_geometry", "match_ends", "anchored_ends", "key_ranges", "table_merge", "table_join", "join_postings", "PostingRanges", "filter_failures", "facet_counts", "search_minutes"]

_DEG = math.pi / 180.0
_SECONDS_PER_DAY = 86_400  # columns.SECONDS_PER_DAY (columns imports this module)
_MINUTES_PER_DAY = 1_440
# How many items ahead the closest-point loop asks for its vertices: a candidate's route lies anywhere in
# the vertex columns (hundreds of MB at 1M trips), so reading it is a cache miss the loop would wait for.
_PREFETCH_AHEAD = 4


@intrinsic
def _prefetch_intrinsic(typingctx, array, index):  # type: ignore[no-untyped-def]
    """Ask the CPU to bring ``array[index]`` into its caches (LLVM's prefetch; a hint, it changes no value)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        # read, keep in all cache levels, data
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


_prefetch = cast(Callable[[NDArray[Any], int], None], _prefetch_intrinsic)  # as the compiled loops call it


@numba.njit(cache=True, nogil=True, inline="always")
def unit_vector(lat_step: int, lon_step: int) -> tuple[float, float, float]:
    """Return the unit vector of a point given in steps of 1e-7 degree."""
    la = math.radians(lat_step / COORD_SCALE)
    lo = math.radians(lon_step / COORD_SCALE)
    return math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)


@numba.njit(cache=True, nogil=True, inline="always")
def arc_angle(ax: float, ay: float, az: float, bx: float, by: float, bz: float) -> float:
    """Return the angle in radians between unit vectors a and b: atan2(|a x b|, a . b), exact for small angles."""
    cx = ay * bz - az * by
    cy = az * bx - ax * bz
    cz = ax * by - ay * bx
    return math.atan2(math.sqrt(cx * cx + cy * cy + cz * cz), ax * bx + ay * by + az * bz)


@numba.njit(cache=True, nogil=True)
def route_distances_along(vert_lat: NDArray[np.int32], vert_lon: NDArray[np.int32], starts: NDArray[np.int64]) -> NDArray[np.float64]:  # pragma: no cover - compiled
    """Return each vertex's distance along its route (km), summed left to right from 0 per route."""
    cum = np.zeros(vert_lat.shape[0], dtype=np.float64)
    for r in range(starts.shape[0] - 1):
        start = starts[r]
        end = starts[r + 1]
        if end - start < 2:
            continue
        px, py, pz = unit_vector(vert_lat[start], vert_lon[start])
        for k in range(start + 1, end):
            vx, vy, vz = unit_vector(vert_lat[k], vert_lon[k])
            cum[k] = cum[k - 1] + arc_angle(px, py, pz, vx, vy, vz) * EARTH_RADIUS_KM
            px, py, pz = vx, vy, vz
    return cum


@numba.njit(cache=True, nogil=True, inline="always")
def _hav_bounds(lat_step: int, lon_step: int, x_lat: float, x_lon: float, cos_x: float) -> tuple[float, float]:
    """Lower and upper bounds of hav(distance) between a vertex and a target, with no trigonometry.

    hav(d) = sin^2(dlat/2) + cos(lat1) cos(lat2) sin^2(dlon/2), with
    u - u^3/6 <= sin(u) <= u for u in [0, pi/2], and cos(lat2) within
    |lat2 - lat1| of cos(lat1) = ``cos_x`` (cos is 1-Lipschitz).
    """
    dlat = abs(lat_step / COORD_SCALE * _DEG - x_lat) / 2.0
    dlon = abs(lon_step / COORD_SCALE * _DEG - x_lon)
    if dlon > math.pi:
        dlon = 2.0 * math.pi - dlon
    dlon /= 2.0
    s1 = dlat - dlat * dlat * dlat / 6.0
    s2 = dlon - dlon * dlon * dlon / 6.0
    low = s1 * s1 + cos_x * max(0.0, cos_x - 2.0 * dlat) * s2 * s2
    high = dlat * dlat + cos_x * (cos_x + 2.0 * dlat) * dlon * dlon
    return low * (1.0 - 1e-12), high * (1.0 + 1e-12)


@numba.njit(cache=True, nogil=True, inline="always")
def _hav_limit(angle: float) -> float:
    """The largest hav(distance) a vertex may have and still be within ``angle`` (1e-9 rad of margin)."""
    return math.sin(min(math.pi / 2, (angle + 1e-9) / 2.0)) ** 2 + 1e-15


@numba.njit(cache=True, nogil=True, inline="always")
def _target(lat: float, lon: float) -> tuple[float, float, float, float, float, float]:
    """Return a target's latitude and longitude in radians, the cosine of its latitude and its unit vector.

    As Python's math computes them, so results match a plain-Python reading of the rules.
    """
    tla = math.radians(lat)
    tlo = math.radians(lon)
    return tla, tlo, math.cos(tla), math.cos(tla) * math.cos(tlo), math.cos(tla) * math.sin(tlo), math.sin(tla)


@numba.njit(cache=True, nogil=True, inline="always")
def _prefetch_vertices(vert_lat: NDArray[np.int32], vert_lon: NDArray[np.int32], vert_cum: NDArray[np.float64], lo: int, hi: int) -> None:
    _prefetch(vert_lat, lo)
    _prefetch(vert_lat, hi)
    _prefetch(vert_lon, lo)
    _prefetch(vert_lon, hi)
    _prefetch(vert_cum, lo)
    _prefetch(vert_cum, hi)


@numba.njit(cache=True, nogil=True, inline="always")
def _closest_one(
    vert_lat: NDArray[np.int32],
    vert_lon: NDArray[np.int32],
    vert_cum: NDArray[np.float64],
    lo: int,
    hi: int,
    target: tuple[float, float, float, float, float, float],
    latest: bool,
    within_km: float,
) -> tuple[float, float, float, float]:  # pragma: no cover - compiled
    """Return (distance km, distance along km, lat, lon) of the point of vertices ``lo..hi`` closest to ``target`` (see :func:`closest_in_ranges`): the earliest of equally close points, or the latest."""
    d, a, lat, lon, late_a, late_lat, late_lon = _closest_both(vert_lat, vert_lon, vert_cum, lo, hi, target, within_km)
    if latest:
        return d, late_a, late_lat, late_lon
    return d, a, lat, lon


@numba.njit(cache=True, nogil=True, inline="always")
def _closest_both(
    vert_lat: NDArray[np.int32],
    vert_lon: NDArray[np.int32],
    vert_cum: NDArray[np.float64],
    lo: int,
    hi: int,
    target: tuple[float, float, float, float, float, float],
    within_km: float,
) -> tuple[float, float, float, float, float, float, float]:  # pragma: no cover - compiled
    """Return (distance km, distance along km, lat, lon) of the earliest point of vertices ``lo..hi`` closest to ``target``, then the distance along, lat and lon of the latest, in one pass (see :func:`closest_in_ranges`).

    The distance of the best point so far, which alone steers the pruning,
    is the same for both answers, and a tie moves only the answer it favours.
    """
    tla, tlo, cos_t, x, y, z = target
    prune = within_km < EARTH_RADIUS_KM * math.pi / 2
    cap = within_km / EARTH_RADIUS_KM  # nothing farther can be the answer
    if prune:
        h_cap = 1.0
        for k in range(lo, hi + 1):
            h_cap = min(h_cap, _hav_bounds(vert_lat[k], vert_lon[k], tla, tlo, cos_t)[1])
        cap = min(cap, 2.0 * math.asin(min(1.0, math.sqrt(h_cap))))
    h_vertex = _hav_limit(cap)
    best_d = np.inf
    best_a = 0.0
    bx = 0.0
    by = 0.0
    bz = 0.0
    late_a = 0.0
    lx = 0.0
    ly = 0.0
    lz = 0.0
    ax = 0.0
    ay = 0.0
    az = 0.0
    have_prev = False
    prev_low = 0.0
    for k in range(lo, hi + 1):
        near_vertex = True
        use_segment = k > lo
        if prune:
            h = _hav_bounds(vert_lat[k], vert_lon[k], tla, tlo, cos_t)[0]
            near_vertex = h <= h_vertex
            low = 2.0 * math.sqrt(h)  # asin(u) >= u
            if use_segment:
                use_segment = (prev_low + low - (vert_cum[k] - vert_cum[k - 1]) / EARTH_RADIUS_KM) / 2.0 <= min(cap, best_d) + 1e-9
            prev_low = low
        if not (near_vertex or use_segment):
            have_prev = False
            continue
        if use_segment and not have_prev:
            ax, ay, az = unit_vector(vert_lat[k - 1], vert_lon[k - 1])
        vx, vy, vz = unit_vector(vert_lat[k], vert_lon[k])
        along = vert_cum[k]
        if near_vertex:
            d = arc_angle(x, y, z, vx, vy, vz)
            if d < best_d:
                best_d, best_a, bx, by, bz = d, along, vx, vy, vz
                late_a, lx, ly, lz = along, vx, vy, vz
                h_vertex = min(h_vertex, _hav_limit(best_d))
            elif d == best_d:
                if along < best_a:
                    best_a, bx, by, bz = along, vx, vy, vz
                if along > late_a:
                    late_a, lx, ly, lz = along, vx, vy, vz
        if use_segment:
            # segment (k-1) -> k: a -> v
            nx = ay * vz - az * vy
            ny = az * vx - ax * vz
            nz = ax * vy - ay * vx
            nn = math.sqrt(nx * nx + ny * ny + nz * nz)
            if nn > 1e-15:
                nx, ny, nz = nx / nn, ny / nn, nz / nn
                dd = x * nx + y * ny + z * nz
                cx, cy, cz = x - dd * nx, y - dd * ny, z - dd * nz
                cn = math.sqrt(cx * cx + cy * cy + cz * cz)
                if cn > 1e-15:
                    cx, cy, cz = cx / cn, cy / cn, cz / cn
                    # c lies inside the arc when a -> c and c -> b turn like a -> b
                    s1 = (ay * cz - az * cy) * nx + (az * cx - ax * cz) * ny + (ax * cy - ay * cx) * nz
                    s2 = (cy * vz - cz * vy) * nx + (cz * vx - cx * vz) * ny + (cx * vy - cy * vx) * nz
                    if s1 > 0 and s2 > 0:
                        seg = vert_cum[k] - vert_cum[k - 1]
                        fd = arc_angle(x, y, z, cx, cy, cz)
                        fa = vert_cum[k - 1] + min(arc_angle(ax, ay, az, cx, cy, cz) * EARTH_RADIUS_KM, seg)
                        if fd < best_d:
                            best_d, best_a, bx, by, bz = fd, fa, cx, cy, cz
                            late_a, lx, ly, lz = fa, cx, cy, cz
                            h_vertex = min(h_vertex, _hav_limit(best_d))
                        elif fd == best_d:
                            if fa < best_a:
                                best_a, bx, by, bz = fa, cx, cy, cz
                            if fa > late_a:
                                late_a, lx, ly, lz = fa, cx, cy, cz
        ax, ay, az = vx, vy, vz
        have_prev = True
    return (
        best_d * EARTH_RADIUS_KM, best_a, math.degrees(math.asin(min(1.0, max(-1.0, bz)))), math.degrees(math.atan2(by, bx)),
        late_a, math.degrees(math.asin(min(1.0, max(-1.0, lz)))), math.degrees(math.atan2(ly, lx)),
    )


@numba.njit(cache=True, nogil=True)
def closest_in_ranges(
    vert_lat: NDArray[np.int32],
    vert_lon: NDArray[np.int32],
    vert_cum: NDArray[np.float64],
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    target_lat: NDArray[np.float64],
    target_lon: NDArray[np.float64],
    latest: bool,
    within_km: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:  # pragma: no cover - compiled
    """Return (distance km, distance along km, lat, lon) of the closest point to each target.

    Item i searches vertices ``first[i]..last[i]`` (absolute indexes,
    inclusive) and the segments between them, for the target i (degrees).
    Only the closest point *within* ``within_km`` matters to the caller: route
    parts provably farther, or farther than the best point found so far, are
    skipped, and a route with nothing that near reports a distance above
    ``within_km`` (infinity). ``within_km=inf`` measures everything.

    Pruning, all in angles on the unit sphere: a first pass bounds every
    vertex's distance with no trigonometry, and the smallest upper bound
    caps the answer; the exact pass then skips a vertex whose lower bound is
    above the cap (or the best so far), and a segment a-b whose points are
    all provably farther: by the triangle inequality a point c of the
    segment has d(x, c) >= (d(x, a) + d(x, b) - |ab|) / 2.
    """
    n = first.shape[0]
    out_dist = np.empty(n, dtype=np.float64)
    out_along = np.empty(n, dtype=np.float64)
    out_lat = np.empty(n, dtype=np.float64)
    out_lon = np.empty(n, dtype=np.float64)
    target = _target(0.0, 0.0)
    for i in range(n):
        # A search has one target for every item: computed once.
        if i == 0 or target_lat[i] != target_lat[i - 1] or target_lon[i] != target_lon[i - 1]:
            target = _target(target_lat[i], target_lon[i])
        if i + _PREFETCH_AHEAD < n:
            _prefetch_vertices(vert_lat, vert_lon, vert_cum, first[i + _PREFETCH_AHEAD], last[i + _PREFETCH_AHEAD])
        out_dist[i], out_along[i], out_lat[i], out_lon[i] = _closest_one(vert_lat, vert_lon, vert_cum, first[i], last[i], target, latest, within_km)
    return out_dist, out_along, out_lat, out_lon


@numba.njit(cache=True, nogil=True)
def closest_both_in_ranges(
    vert_lat: NDArray[np.int32],
    vert_lon: NDArray[np.int32],
    vert_cum: NDArray[np.float64],
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    target_lat: NDArray[np.float64],
    target_lon: NDArray[np.float64],
    within_km: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:  # pragma: no cover - compiled
    """Return :func:`closest_in_ranges` without ``latest`` (distance, along, lat, lon of the earliest closest point) and the along, lat and lon of the latest, in one pass."""
    n = first.shape[0]
    out = np.empty((7, n), dtype=np.float64)
    target = _target(0.0, 0.0)
    for i in range(n):
        if i == 0 or target_lat[i] != target_lat[i - 1] or target_lon[i] != target_lon[i - 1]:
            target = _target(target_lat[i], target_lon[i])
        if i + _PREFETCH_AHEAD < n:
            _prefetch_vertices(vert_lat, vert_lon, vert_cum, first[i + _PREFETCH_AHEAD], last[i + _PREFETCH_AHEAD])
        r = _closest_both(vert_lat, vert_lon, vert_cum, first[i], last[i], target, within_km)
        for k in range(7):
            out[k, i] = r[k]
    return out[0], out[1], out[2], out[3], out[4], out[5], out[6]


@numba.njit(cache=True, nogil=True)
def vertex_cap(vert_lat: NDArray[np.int32], vert_lon: NDArray[np.int32], lo: int, hi: int) -> tuple[float, float, float, float, float]:  # pragma: no cover - compiled
    """Return the cap of vertices ``lo..hi`` (inclusive): the direction x, y, z of the sum of their unit vectors (zero when the sum is), the sum's norm, and the cosine of the angle from the direction to the farthest vertex.

    A cap under a hemisphere holds the arcs between its points, so the
    segments between these vertices lie in it; a sum of norm near zero
    (vertices all around the sphere) gives no cap.
    """
    sx = sy = sz = 0.0
    for k in range(lo, hi + 1):
        vx, vy, vz = unit_vector(vert_lat[k], vert_lon[k])
        sx, sy, sz = sx + vx, sy + vy, sz + vz
    length = math.sqrt(sx * sx + sy * sy + sz * sz)
    if length > 0:
        sx, sy, sz = sx / length, sy / length, sz / length
    far = 1.0
    for k in range(lo, hi + 1):
        vx, vy, vz = unit_vector(vert_lat[k], vert_lon[k])
        far = min(far, vx * sx + vy * sy + vz * sz)
    return sx, sy, sz, length, far


# A route is cut into parts of this many segments, each compared with a point by its own cap, with this much slack
# (radians; the arccos of a part's spread loses up to about 1e-8 near 1).
_PART_SEGMENTS = 8
_PART_MARGIN = 1e-6


@numba.njit(cache=True, nogil=True)
def near_parts(
    vert_lat: NDArray[np.int32], vert_lon: NDArray[np.int32], vert_start: NDArray[np.int64], rows: NDArray[np.int64], target_unit: NDArray[np.float64], within_km: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # fmt: skip  # pragma: no cover - compiled
    """Return, for each pair (route of ``rows[i]``, point of unit vector ``target_unit[i]``), the vertices first..last (inclusive) from the first to the last part of the route that may come within ``within_km`` of the point; -1, -1 when none may.

    ``rows`` come grouped by row. A part is :data:`_PART_SEGMENTS` segments
    (its vertices, the last one shared with the next part) and lies in the
    cap of its vertices (a cap under a hemisphere holds the arcs between
    its points): a part whose cap widened by ``within_km`` does not hold the
    point has no point within ``within_km`` of it. The segments just
    outside first..last belong to such parts, so the closest point within
    ``within_km``, with its ties, lies in the range, and
    :func:`closest_in_ranges` or :func:`closest_both_in_ranges` over it
    answer as over the whole route, bit for bit.
    """
    n = rows.shape[0]
    first = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    reach = within_km / EARTH_RADIUS_KM + _PART_MARGIN
    i = 0
    while i < n:
        row = rows[i]
        j = i
        while j < n and rows[j] == row:
            j += 1
        start, end = vert_start[row], vert_start[row + 1] - 1
        parts = max(1, (end - start + _PART_SEGMENTS - 1) // _PART_SEGMENTS)
        centre = np.zeros((parts, 3), dtype=np.float64)
        threshold = np.full(parts, -2.0)  # -2: every point (a part too spread out for its cap, or degenerate)
        for q in range(parts):
            sx, sy, sz, length, far = vertex_cap(vert_lat, vert_lon, start + q * _PART_SEGMENTS, min(start + (q + 1) * _PART_SEGMENTS, end))
            spread = math.acos(max(-1.0, min(1.0, far))) + reach
            if length > 1e-9 and spread < math.pi / 2:
                centre[q, 0], centre[q, 1], centre[q, 2] = sx, sy, sz
                threshold[q] = math.cos(spread)
        for t in range(i, j):
            px, py, pz = target_unit[t, 0], target_unit[t, 1], target_unit[t, 2]
            for q in range(parts):
                if centre[q, 0] * px + centre[q, 1] * py + centre[q, 2] * pz >= threshold[q]:
                    if first[t] < 0:
                        first[t] = start + q * _PART_SEGMENTS
                    last[t] = min(start + (q + 1) * _PART_SEGMENTS, end)
        i = j
    return first, last


@numba.njit(cache=True, nogil=True)
def key_ranges(keys: NDArray[np.uint64], offsets: NDArray[np.int64], wanted: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Return the entry ranges (``offsets[i]``, ``offsets[i + 1]``) of the ``wanted`` keys (sorted, distinct) found in ``keys`` (sorted).

    The next wanted key is often one of the next few keys (the same cell on
    the next day), so those are read first; otherwise a binary search over
    the keys not yet passed.
    """
    starts = np.empty(wanted.shape[0], dtype=np.int64)
    ends = np.empty(wanted.shape[0], dtype=np.int64)
    found = 0
    pos = 0
    size = keys.shape[0]
    for key in wanted:
        near = min(pos + 4, size)
        while pos < near and keys[pos] < key:
            pos += 1
        if pos == near and pos < size and keys[pos] < key:
            lo, hi = pos, size
            while lo < hi:
                mid = (lo + hi) >> 1
                if keys[mid] < key:
                    lo = mid + 1
                else:
                    hi = mid
            pos = lo
        if pos < size and keys[pos] == key:
            starts[found] = offsets[pos]
            ends[found] = offsets[pos + 1]
            found += 1
    return starts[:found], ends[:found]


# Row tables: open addressing with linear probing over a power-of-two number of slots, keyed by row
# (-1 marks an empty slot). A search reaches a few thousand rows: its table is sized for them, not for
# the index.
_EMPTY = -1


@numba.njit(cache=True, nogil=True, inline="always")
def _find(keys: NDArray[np.int32], row: int, mask: int) -> np.int64:
    """Return the slot holding ``row``, or the empty slot where it would go (multiplicative hashing, then the next slots)."""
    h = ((np.int64(row) * 2654435761) >> 7) & mask
    while keys[h] != row and keys[h] != _EMPTY:
        h = (h + 1) & mask
    return h


@numba.njit(cache=True, nogil=True)
def table_merge(
    keys: NDArray[np.int32],
    lo: NDArray[np.int32],
    hi: NDArray[np.int32],
    entry_rows: NDArray[np.int32],
    entry_lo: NDArray[np.uint16],
    entry_hi: NDArray[np.uint16],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    add_rows: bool,
) -> int:  # pragma: no cover - compiled
    """Merge the posting entries ``starts[i]:ends[i]`` into one segment window per row of a table; return how many slots got their first window.

    ``lo``/``hi`` hold a window per slot (``hi`` is -1 while it has none).
    With ``add_rows`` a row the table does not hold yet is added (the table
    must have an empty slot for every entry); without, its entries are
    skipped: with the other side's windows in a second pair of arrays, that
    is the join of the two sides of a search.
    """
    mask = keys.shape[0] - 1
    first = 0
    for i in range(starts.shape[0]):
        for p in range(starts[i], ends[i]):
            r = entry_rows[p]
            h = _find(keys, r, mask)
            if keys[h] == _EMPTY:
                if not add_rows:
                    continue
                keys[h] = r
            if hi[h] < 0:
                lo[h] = entry_lo[p]
                hi[h] = entry_hi[p]
                first += 1
            else:
                if entry_lo[p] < lo[h]:
                    lo[h] = entry_lo[p]
                if entry_hi[p] > hi[h]:
                    hi[h] = entry_hi[p]
    return first


@numba.njit(cache=True, nogil=True)
def table_join(
    keys: NDArray[np.int32],
    first_lo: NDArray[np.int32],
    first_hi: NDArray[np.int32],
    second_lo: NDArray[np.int32],
    second_hi: NDArray[np.int32],
    alive: NDArray[np.bool_],
    from_first: bool,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Return the rows of a table (:func:`table_merge`) with a window on both sides, rising, and their windows.

    Only live rows whose pickup window can come before the dropoff window
    (``from_lo <= to_hi``) are kept. The windows come as an n x 4 array of
    (from_lo, from_hi, to_lo, to_hi); ``from_first`` says whether the first
    side of the table is ``from``.
    """
    # Sorted by row: a row and its slot packed in one integer, row above (both below 2**31).
    both = np.flatnonzero(second_hi >= 0)
    packed = np.empty(both.shape[0], dtype=np.int64)
    for j in range(both.shape[0]):
        packed[j] = np.int64(keys[both[j]]) << 32 | both[j]
    packed.sort()
    slots = packed & 0xFFFFFFFF
    rows = np.empty(slots.shape[0], dtype=np.int64)
    windows = np.empty((slots.shape[0], 4), dtype=np.int64)
    kept = 0
    for h in slots:
        if from_first:
            from_lo, from_hi, to_lo, to_hi = first_lo[h], first_hi[h], second_lo[h], second_hi[h]
        else:
            from_lo, from_hi, to_lo, to_hi = second_lo[h], second_hi[h], first_lo[h], first_hi[h]
        if alive[keys[h]] and from_lo <= to_hi:
            rows[kept] = keys[h]
            windows[kept, 0] = from_lo
            windows[kept, 1] = from_hi
            windows[kept, 2] = to_lo
            windows[kept, 3] = to_hi
            kept += 1
    return rows[:kept], windows[:kept]


class PostingRanges(NamedTuple):
    """Posting entries (row, first and last route segment) and the ranges ``starts[i]:ends[i]`` of them a search reads."""

    rows: NDArray[np.int32]
    seg_lo: NDArray[np.uint16]
    seg_hi: NDArray[np.uint16]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]


def join_postings(from_parts: Sequence[PostingRanges], to_parts: Sequence[PostingRanges], alive: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the live rows with entries near ``from`` and near ``to`` whose pickup window can come first, and their windows.

    The one rule of both backends' candidates: a row's window near a place
    spans the segments of all its entries there, and the pickup window must
    not start after the dropoff window ends (``from_lo <= to_hi``). Rows come
    rising, windows as an n x 4 array (from_lo, from_hi, to_lo, to_hi).

    The side with fewer entries (a village, against a capital) fills a table
    of its rows and their windows, sized for that side alone, not for the
    index; the other side's entries only look rows up in it.
    """
    n_from = sum(int((p.ends - p.starts).sum()) for p in from_parts)
    n_to = sum(int((p.ends - p.starts).sum()) for p in to_parts)
    from_first = n_from <= n_to
    first, second = (from_parts, to_parts) if from_first else (to_parts, from_parts)
    # At least two slots per entry of the first side: at most half full, so lookups stay short.
    size = 1 << max(4, (2 * min(n_from, n_to) - 1).bit_length())
    keys = np.full(size, -1, dtype=np.int32)
    first_lo, first_hi = np.empty(size, dtype=np.int32), np.full(size, -1, dtype=np.int32)
    second_lo, second_hi = np.empty(size, dtype=np.int32), np.full(size, -1, dtype=np.int32)
    n_rows = 0
    for p in first:
        n_rows += table_merge(keys, first_lo, first_hi, p.rows, p.seg_lo, p.seg_hi, p.starts, p.ends, True)
    if n_rows:  # else nothing can join: the other side's entries need not be read
        for p in second:
            table_merge(keys, second_lo, second_hi, p.rows, p.seg_lo, p.seg_hi, p.starts, p.ends, False)
    return table_join(keys, first_lo, first_hi, second_lo, second_hi, alive, from_first)  # type: ignore[no-any-return]


@numba.njit(cache=True, nogil=True, inline="always")
def _stop_time_at(stop_start: NDArray[np.int64], stop_along: NDArray[np.float64], stop_time: NDArray[np.int64], row: int, along_km: float) -> int:
    """Return the time (epoch seconds, floored) at ``along_km`` on the route of ``row``.

    Linear in distance between the last stop at or before the point (at
    least the origin) and the next stop; a point past the last stop gets the
    last stop's time.
    """
    first = stop_start[row]
    count = stop_start[row + 1] - first
    at_or_before = 0
    for m in range(count):
        if stop_along[first + m] <= along_km:
            at_or_before += 1
    last = count - 1
    i = max(at_or_before - 1, 0)
    j = min(i + 1, last)
    t_i = float(stop_time[first + i])
    t_j = float(stop_time[first + j])
    a_i = stop_along[first + i]
    span = stop_along[first + j] - a_i
    frac = (along_km - a_i) / span if i < last and span > 0 else 0.0
    frac = min(max(frac, 0.0), 1.0)
    return int(math.floor(t_i + (t_j - t_i) * frac))


@numba.njit(cache=True, nogil=True)
def times_along(stop_start: NDArray[np.int64], stop_along: NDArray[np.float64], stop_time: NDArray[np.int64], rows: NDArray[np.int64], along_km: NDArray[np.float64]) -> NDArray[np.int64]:  # pragma: no cover - compiled
    """Return the time (epoch seconds, floored) at each distance along the route of its row, by the pickup time rule."""
    out = np.empty(len(rows), dtype=np.int64)
    for i in range(len(rows)):
        out[i] = _stop_time_at(stop_start, stop_along, stop_time, rows[i], along_km[i])
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _pickup_passes(published: bool, pickup_km: float, from_km: float) -> bool:
    """Return whether a trip may match whatever its dropoff: it is published and its pickup is within the From radius."""
    return published and pickup_km <= from_km


@numba.njit(cache=True, nogil=True, inline="always")
def _ends_match(published: bool, pickup_km: float, pickup_along: float, dropoff_km: float, dropoff_along: float, from_km: float, to_km: float) -> bool:
    """Return rules 1 and 2 for a trip's closest points: :func:`_pickup_passes`, the dropoff within the To radius and strictly after the pickup along the route."""
    return _pickup_passes(published, pickup_km, from_km) and dropoff_km <= to_km and pickup_along < dropoff_along


@numba.njit(cache=True, nogil=True)
def match_ends(
    stop_start: NDArray[np.int64], stop_along: NDArray[np.float64], stop_time: NDArray[np.int64], published: NDArray[np.bool_],
    rows: NDArray[np.int64], pickup: NDArray[np.float64], dropoff: NDArray[np.float64], from_km: NDArray[np.float64], to_km: NDArray[np.float64],
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:  # fmt: skip  # pragma: no cover - compiled
    """Rules 1 and 2 for items whose pickup and dropoff are measured: which items match, and their times.

    ``pickup`` and ``dropoff`` are 4 x n, as :func:`match_geometry` returns
    them; ``from_km`` and ``to_km`` are each item's radii. Returns the
    matches and the pickup and dropoff times of the matches (2 x n; 0
    elsewhere), as :func:`match_geometry` decides them.
    """
    n = rows.shape[0]
    geo = np.zeros(n, dtype=np.bool_)
    times = np.zeros((2, n), dtype=np.int64)
    for i in range(n):
        if _ends_match(published[i], pickup[0, i], pickup[1, i], dropoff[0, i], dropoff[1, i], from_km[i], to_km[i]):
            geo[i] = True
            times[0, i] = _stop_time_at(stop_start, stop_along, stop_time, rows[i], pickup[1, i])
            times[1, i] = _stop_time_at(stop_start, stop_along, stop_time, rows[i], dropoff[1, i])
    return geo, times


@numba.njit(cache=True, nogil=True)
def match_geometry(
    vert_lat: NDArray[np.int32],
    vert_lon: NDArray[np.int32],
    vert_cum: NDArray[np.float64],
    vert_start: NDArray[np.int64],
    stop_start: NDArray[np.int64],
    stop_along: NDArray[np.float64],
    stop_time: NDArray[np.int64],
    published: NDArray[np.bool_],
    rows: NDArray[np.int64],
    windows: NDArray[np.int64],
    from_point: tuple[float, float, float],
    to_point: tuple[float, float, float],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Rules 1 and 2 for candidate rows: the pickup and dropoff points, which rows match, and their times.

    ``windows`` holds, per row, the first and last segment (counted within
    the route) that can hold the pickup, then the same for the dropoff;
    ``from_point`` and ``to_point`` are (lat, lon, radius km). ``published``
    says which candidates may match at all. Returns the pickup and the
    dropoff as (distance km, distance along km, lat, lon) rows of two 4 x n
    arrays (the dropoff is measured only where the pickup is within its
    radius, else infinitely far), the geometric matches, and the pickup and
    dropoff times of the matches (2 x n; 0 elsewhere).
    """
    n = rows.shape[0]
    pickup = np.empty((4, n), dtype=np.float64)
    dropoff = np.zeros((4, n), dtype=np.float64)
    geo = np.zeros(n, dtype=np.bool_)
    times = np.zeros((2, n), dtype=np.int64)
    from_target = _target(from_point[0], from_point[1])
    to_target = _target(to_point[0], to_point[1])
    for i in range(n):
        # A candidate's route is a cache miss anywhere in the columns: ask for the start of a later
        # candidate's route now and for its vertices a few candidates later.
        if i + 2 * _PREFETCH_AHEAD < n:
            _prefetch(vert_start, rows[i + 2 * _PREFETCH_AHEAD])
            _prefetch(stop_start, rows[i + 2 * _PREFETCH_AHEAD])
        if i + _PREFETCH_AHEAD < n:
            ahead = vert_start[rows[i + _PREFETCH_AHEAD]]
            _prefetch_vertices(vert_lat, vert_lon, vert_cum, ahead + windows[i + _PREFETCH_AHEAD, 0], ahead + windows[i + _PREFETCH_AHEAD, 1] + 1)
            _prefetch_vertices(vert_lat, vert_lon, vert_cum, ahead + windows[i + _PREFETCH_AHEAD, 2], ahead + windows[i + _PREFETCH_AHEAD, 3] + 1)
            stops = stop_start[rows[i + _PREFETCH_AHEAD]]
            _prefetch(stop_along, stops)
            _prefetch(stop_time, stops)
        base = vert_start[rows[i]]
        p = _closest_one(vert_lat, vert_lon, vert_cum, base + windows[i, 0], base + windows[i, 1] + 1, from_target, False, from_point[2])
        pickup[0, i], pickup[1, i], pickup[2, i], pickup[3, i] = p
        dropoff[0, i] = np.inf
        if not _pickup_passes(published[i], p[0], from_point[2]):
            continue
        q = _closest_one(vert_lat, vert_lon, vert_cum, base + windows[i, 2], base + windows[i, 3] + 1, to_target, True, to_point[2])
        dropoff[0, i], dropoff[1, i], dropoff[2, i], dropoff[3, i] = q
        if _ends_match(published[i], p[0], p[1], q[0], q[1], from_point[2], to_point[2]):
            geo[i] = True
            times[0, i] = _stop_time_at(stop_start, stop_along, stop_time, rows[i], p[1])
            times[1, i] = _stop_time_at(stop_start, stop_along, stop_time, rows[i], q[1])
    return pickup, dropoff, geo, times


@numba.njit(cache=True, nogil=True)
def anchored_ends(
    entry_start: NDArray[np.int64], entry_place: NDArray[np.uint16], entries: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    drops: tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    order_rows: NDArray[np.uint32], order_m: NDArray[np.uint16], from_range: tuple[int, int], to_range: tuple[int, int], from_place: int, to_place: int,
    status: NDArray[np.int8], published: int, from_km: float, to_km: float,
    stop_start: NDArray[np.int64], stop_along: NDArray[np.float64], stop_time: NDArray[np.int64], offset_s: NDArray[np.int32], first_day: int, last_day: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:  # fmt: skip  # pragma: no cover - compiled
    """Rules 1 and 2 from stored anchor entries: the rows of both order ranges that match geometrically and pick up on local days ``first_day..last_day``, their ends and times.

    ``from_range`` and ``to_range`` are positions of ``order_rows``: the
    rows with an entry at ``from_place``, and at ``to_place``, on some days,
    and ``order_m`` is each entry's distance in metres, never more than its
    ``km * 1000``. The entries within their radius (by ``order_m``) are
    joined on their rows first, by a bitmap of the ``from`` rows that the
    ``to`` rows are looked up in (two sequential reads, as a postings join
    does), and only the rows of both are read further.
    Row r's entries are ``entry_start[r]:entry_start[r + 1]``, each at
    place ``entry_place`` with the values ``entries`` (distance km, then
    the pickup's distance along, lat and lon: what :func:`match_geometry`
    measures, computed by the same loops); the dropoff is the pickup but for
    the entries ``drops`` lists (entries rising, their dropoffs' distance
    along, lat and lon). A row matches when it has an entry at
    ``from_place`` and one at ``to_place`` and they pass the rule of
    :func:`_ends_match` (a published row: ``status`` is ``published``)
    and its pickup's local day (``offset_s``) is one of the days.
    Returns the matching rows (in the order of ``to_range``), their pickups
    and dropoffs as two 4 x n arrays and their pickup and dropoff times
    (2 x n), as :func:`match_geometry` returns them.
    """
    km, along, p_lat, p_lon = entries
    drop_entry, drop_along, q_lat, q_lon = drops
    marks = np.zeros((status.shape[0] + 63) // 64, dtype=np.uint64)
    from_m = from_km * 1000.0
    to_m = to_km * 1000.0
    for i in range(from_range[0], from_range[1]):
        if order_m[i] > from_m:
            continue
        row = order_rows[i]
        marks[row >> 6] |= np.uint64(1) << (row & np.uint64(63))
    both = np.empty(max(0, to_range[1] - to_range[0]), dtype=np.int64)
    n = 0
    for i in range(to_range[0], to_range[1]):
        if order_m[i] > to_m:
            continue
        row = order_rows[i]
        if (marks[row >> 6] >> (row & np.uint64(63))) & np.uint64(1):
            both[n] = row
            n += 1
    rows = np.empty(n, dtype=np.int64)
    pickup = np.empty((4, n), dtype=np.float64)
    dropoff = np.empty((4, n), dtype=np.float64)
    times = np.empty((2, n), dtype=np.int64)
    k = 0
    for i in range(n):
        if i + 2 * _PREFETCH_AHEAD < n:
            _prefetch(entry_start, both[i + 2 * _PREFETCH_AHEAD])
        if i + _PREFETCH_AHEAD < n:
            ahead = entry_start[both[i + _PREFETCH_AHEAD]]
            _prefetch(entry_place, ahead)
            _prefetch(km, ahead)
            _prefetch(along, ahead)
        row = both[i]
        f = -1
        t = -1
        for e in range(entry_start[row], entry_start[row + 1]):
            p = int(entry_place[e])
            if p == from_place:
                f = e
            elif p == to_place:
                t = e
        if f < 0 or t < 0:
            continue
        t_along, t_lat, t_lon = along[t], p_lat[t], p_lon[t]
        if drop_entry.shape[0]:
            d = np.searchsorted(drop_entry, t)
            if d < drop_entry.shape[0] and drop_entry[d] == t:
                t_along, t_lat, t_lon = drop_along[d], q_lat[d], q_lon[d]
        if not _ends_match(status[row] == published, km[f], along[f], km[t], t_along, from_km, to_km):
            continue
        pickup_time = _stop_time_at(stop_start, stop_along, stop_time, row, along[f])
        day = (pickup_time + offset_s[row]) // _SECONDS_PER_DAY
        if day < first_day or day > last_day:
            continue
        rows[k] = row
        pickup[0, k], pickup[1, k], pickup[2, k], pickup[3, k] = km[f], along[f], p_lat[f], p_lon[f]
        dropoff[0, k], dropoff[1, k], dropoff[2, k], dropoff[3, k] = km[t], t_along, t_lat, t_lon
        times[0, k] = pickup_time
        times[1, k] = _stop_time_at(stop_start, stop_along, stop_time, row, t_along)
        k += 1
    return rows[:k], pickup[:, :k], dropoff[:, :k], times[:, :k]


@numba.njit(cache=True, nogil=True)
def _search_clock(local_s: int, shift: int) -> tuple[int, int]:  # pragma: no cover - compiled
    """Return the search day of a pickup at local time ``local_s`` (epoch seconds) and its minute on that day.

    A search day starts ``shift`` minutes after local midnight (before it when negative).
    """
    since = local_s // 60 - shift
    return since // _MINUTES_PER_DAY, since % _MINUTES_PER_DAY


@numba.njit(cache=True, nogil=True)
def search_minutes(pickup_time: NDArray[np.int64], offset_s: NDArray[np.int64], shift: int) -> NDArray[np.int64]:  # pragma: no cover - compiled
    """Return the minute of each pickup on its search day (see :func:`filter_failures`); pickup i is at ``pickup_time[i]`` in UTC offset ``offset_s[i]``."""
    out = np.empty(pickup_time.shape[0], dtype=np.int64)
    for i in range(pickup_time.shape[0]):
        out[i] = _search_clock(pickup_time[i] + offset_s[i], shift)[1]
    return out


@numba.njit(cache=True, nogil=True)
def filter_failures(
    rows: NDArray[np.int64],
    pickup_time: NDArray[np.int64],
    offset_s: NDArray[np.int32],
    price: NDArray[np.float64],
    options: NDArray[np.uint8],
    rating: NDArray[np.float64],
    seats_available: NDArray[np.int16],
    bits: NDArray[np.int64],
    days: tuple[int, int],
    shift: int,
    minutes: tuple[int, int],
    max_price: float,
    option_bits: int,
    min_rating: float,
    seats: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:  # pragma: no cover - compiled
    """Return the search day and local minute of each candidate's pickup and the filters it fails (rules 3 and 4).

    Candidate i is row ``rows[i]`` of the columns, picking up at
    ``pickup_time[i]``. ``bits`` holds the failed-filter bits of date, time,
    price, options, rating and seats. The date and time filters are the
    rule of :class:`~tripsearch.query.model.TimeRule`: the pickup's local
    minute less ``shift`` gives its search day (:func:`_search_clock`),
    which must be within ``days`` (first, last), and its minute on that day,
    which must be in ``minutes`` (both ends included; a start after the end
    wraps around midnight). With no shift the search day is the local day.
    The other filters: price at most ``max_price``; every
    option of ``option_bits``; rating at least ``min_rating`` (NaN, an
    unrated driver, fails it); at least ``seats`` seats. A ``max_price`` of
    inf or a ``min_rating`` of -inf stands for no filter.
    """
    n = rows.shape[0]
    local_day = np.empty(n, dtype=np.int64)
    local_minute = np.empty(n, dtype=np.int64)
    failed = np.zeros(n, dtype=np.uint8)
    low, high = minutes
    first_day, last_day = days
    for i in range(n):
        row = rows[i]
        local = pickup_time[i] + offset_s[row]
        local_minute[i] = local % _SECONDS_PER_DAY // 60
        day, minute = _search_clock(local, shift)
        local_day[i] = day
        f = 0
        if not first_day <= day <= last_day:
            f |= bits[0]
        if not ((low <= minute <= high) if low <= high else (minute >= low or minute <= high)):
            f |= bits[1]
        if max_price != np.inf and not price[row] <= max_price:
            f |= bits[2]
        if options[row] & option_bits != option_bits:
            f |= bits[3]
        if min_rating != -np.inf and not rating[row] >= min_rating:
            f |= bits[4]
        if seats_available[row] < seats:
            f |= bits[5]
        failed[i] = f
    return local_day, local_minute, failed


@numba.njit(cache=True, nogil=True)
def facet_counts(
    rows: NDArray[np.int64],
    geo: NDArray[np.bool_],
    failed: NDArray[np.uint8],
    local_minute: NDArray[np.int64],
    local_day: NDArray[np.int64],
    options: NDArray[np.uint8],
    seats_available: NDArray[np.int16],
    rating: NDArray[np.float64],
    bits: NDArray[np.int64],
    n_options: int,
    rating_thresholds: NDArray[np.float64],
    first_day: int,
    n_days: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Count the counting facets in one pass over evaluated candidates; each leaves out its own filter.

    Candidate i is row ``rows[i]`` of the columns ``options``,
    ``seats_available`` and ``rating``; it counts when it is a geometric match
    and fails no filter but the facet's own (``bits``: the failed-filter bits
    of time, options, seats, rating and date). Returns counts by local hour of
    the pickup; of trips with each option; by seats available (index = seats);
    of ratings at or above each threshold, then of all trips; by local day
    ``first_day .. first_day + n_days - 1``.
    """
    time_bit, options_bit, seats_bit, rating_bit, date_bit = bits[0], bits[1], bits[2], bits[3], bits[4]
    most_seats = 0
    for i in range(rows.shape[0]):
        if geo[i] and seats_available[rows[i]] > most_seats:
            most_seats = seats_available[rows[i]]
    hours = np.zeros(24, dtype=np.int64)
    with_option = np.zeros(n_options, dtype=np.int64)
    seats = np.zeros(most_seats + 1, dtype=np.int64)
    ratings = np.zeros(rating_thresholds.shape[0] + 1, dtype=np.int64)
    days = np.zeros(n_days, dtype=np.int64)
    for i in range(rows.shape[0]):
        if not geo[i]:
            continue
        f = failed[i]
        row = rows[i]
        if f & ~time_bit == 0:
            hours[local_minute[i] // 60] += 1
        if f & ~options_bit == 0:
            for o in range(n_options):
                if options[row] >> o & 1:
                    with_option[o] += 1
        if f & ~seats_bit == 0:
            seats[seats_available[row]] += 1
        if f & ~rating_bit == 0:
            for t in range(rating_thresholds.shape[0]):
                if rating[row] >= rating_thresholds[t]:
                    ratings[t] += 1
            ratings[rating_thresholds.shape[0]] += 1
        if f & ~date_bit == 0:
            d = local_day[i] - first_day
            if 0 <= d < n_days:
                days[d] += 1
    return hours, with_option, seats, ratings, days
