"""Great-circle geometry on arrays: distances, closest points on routes.

Everything here works on the unit sphere with float64 numpy arrays and is
vectorised over many routes at once. A route is its great-circle segments
between consecutive vertices. Distances come out in kilometres with the
mean Earth radius :data:`EARTH_RADIUS_KM`.

Coordinates are canonical at 1e-7 degree (about 1 cm), as Elasticsearch
stores a ``geo_point``: :func:`quantize_degrees` is applied to every
coordinate on the way in, so every backend computes on the same numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "EARTH_RADIUS_KM",
    "COORD_SCALE",
    "quantize_degrees",
    "latlon_to_unit",
    "angle_between",
    "great_circle_km",
    "haversine_km",
    "ClosestPoints",
    "RouteGeometry",
    "route_geometry",
    "cumulative_km",
    "closest_points_on_routes",
]

EARTH_RADIUS_KM = 6371.0088
COORD_SCALE = 10_000_000  # 1e-7 degree, the canonical coordinate step

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def quantize_degrees(values: NDArray[np.floating] | float) -> NDArray[np.int64]:
    """Return coordinates as integer steps of 1e-7 degree (rounded half to even)."""
    return np.rint(np.asarray(values, dtype=np.float64) * COORD_SCALE).astype(np.int64)


def latlon_to_unit(lat_deg: F64, lon_deg: F64) -> F64:
    """Return unit vectors, shape (n, 3), for latitudes and longitudes in degrees."""
    lat = np.radians(lat_deg)
    lon = np.radians(lon_deg)
    cos_lat = np.cos(lat)
    return np.stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)), axis=-1)


def angle_between(u: F64, v: F64) -> F64:
    """Return the angle in radians between unit vectors (last axis), stable for small angles."""
    cross = np.cross(u, v)
    return np.arctan2(np.sqrt(np.einsum("...i,...i->...", cross, cross)), np.einsum("...i,...i->...", u, v))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the great-circle distance in km between two points in degrees (scalar, for validation)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def great_circle_km(lat1: F64 | float, lon1: F64 | float, lat2: F64 | float, lon2: F64 | float) -> F64:
    """Return great-circle distances in km between points given in degrees."""
    a = latlon_to_unit(np.asarray(lat1, dtype=np.float64), np.asarray(lon1, dtype=np.float64))
    b = latlon_to_unit(np.asarray(lat2, dtype=np.float64), np.asarray(lon2, dtype=np.float64))
    return angle_between(a, b) * EARTH_RADIUS_KM


class ClosestPoints(NamedTuple):
    """Closest route point to a target, one row per route."""

    distance_km: F64  # great-circle distance from the target to the route
    along_km: F64  # distance of that point from the route start, along the route
    lat: F64  # the point itself, degrees
    lon: F64


class RouteGeometry(NamedTuple):
    """Several routes back to back as unit-vector components, with segment lengths and distances along."""

    x: F64
    y: F64
    z: F64
    seg_len: F64  # length of the segment leaving each vertex, km (0 at a route's last vertex)
    cum_len: F64  # distance along its route of each vertex, km
    starts: I64  # first vertex of each route, plus the end
    owner: I64  # route of each vertex


def route_geometry(lat_deg: F64, lon_deg: F64, starts: I64, cum_len: F64 | None = None) -> RouteGeometry:
    """Return the geometry of routes given as vertex coordinates back to back (``starts`` as in :class:`RouteGeometry`).

    ``cum_len`` gives each vertex's distance along its route when known (a
    window of a route keeps the distances of the whole route); otherwise it
    is summed here, route by route, from 0.
    """
    lat = np.radians(lat_deg)
    lon = np.radians(lon_deg)
    cos_lat = np.cos(lat)
    x, y, z = cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)
    counts = np.diff(starts)
    owner = np.repeat(np.arange(len(counts)), counts)
    seg_len = np.zeros(len(x), dtype=np.float64)
    if len(x) > 1:
        seg_len[:-1] = _angle(x[:-1], y[:-1], z[:-1], x[1:], y[1:], z[1:]) * EARTH_RADIUS_KM
        seg_len[starts[1:] - 1] = 0.0
    if cum_len is None:
        cum_len = cumulative_km(seg_len, starts)
    return RouteGeometry(x, y, z, seg_len, cum_len, starts, owner)


def cumulative_km(seg_len: F64, starts: I64) -> F64:
    """Return each vertex's distance along its route: a plain left-to-right sum per route, from 0.

    Summed route by route (not one running sum minus offsets) so that a
    route's distances do not depend on which other routes sit beside it.
    """
    cum = np.zeros(len(seg_len), dtype=np.float64)
    for start, end in zip(starts[:-1].tolist(), starts[1:].tolist()):
        if end - start > 1:
            np.cumsum(seg_len[start : end - 1], out=cum[start + 1 : end])
    return cum


def _angle(ax, ay, az, bx, by, bz):  # type: ignore[no-untyped-def]
    """Angle between unit vectors given by components: atan2(|a x b|, a . b), exact for small angles."""
    cx = ay * bz - az * by
    cy = az * bx - ax * bz
    cz = ax * by - ay * bx
    return np.arctan2(np.sqrt(cx * cx + cy * cy + cz * cz), ax * bx + ay * by + az * bz)


def closest_points_on_routes(geom: RouteGeometry, target: tuple[F64 | float, F64 | float, F64 | float], last: bool = False) -> ClosestPoints:
    """Return, for each route, the route point closest to its target.

    ``target`` is one unit vector (x, y, z) for every route, or arrays of one
    per route. Ties (a route that passes the same place twice) go to the
    earliest point along the route, or to the latest with ``last=True``.

    Only segments that can hold the closest point are measured exactly: a
    point of a segment is at most half its length from one of its ends, so a
    segment whose nearer end is farther than the route's nearest vertex plus
    half its length cannot win.
    """
    x, y, z, seg_len, cum_len, starts, owner = geom
    n_routes = len(starts) - 1
    tx, ty, tz = target
    per_route = np.ndim(tx) > 0
    vx, vy, vz = (tx[owner], ty[owner], tz[owner]) if per_route else (tx, ty, tz)  # type: ignore[index]
    ang = _angle(vx, vy, vz, x, y, z)
    best_vertex = np.minimum.reduceat(ang, starts[:-1]) if n_routes else ang[:0]

    # Vertex candidates: the nearest vertices of each route (all of them on a tie).
    vert = np.flatnonzero(ang <= best_vertex[owner])

    # Segment candidates: those that may come closer than the nearest vertex.
    seg_ang = seg_len / EARTH_RADIUS_KM
    lower = np.minimum(ang[:-1], ang[1:]) - seg_ang[:-1] / 2
    seg = np.flatnonzero((seg_len[:-1] > 0) & (lower <= best_vertex[owner[:-1]] + 1e-12))
    ax, ay, az = x[seg], y[seg], z[seg]
    bx, by, bz = x[seg + 1], y[seg + 1], z[seg + 1]
    sx, sy, sz = (tx[owner[seg]], ty[owner[seg]], tz[owner[seg]]) if per_route else (tx, ty, tz)  # type: ignore[index]
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    norm = np.sqrt(nx * nx + ny * ny + nz * nz)
    ok = norm > 1e-15
    safe = np.where(ok, norm, 1.0)
    nx, ny, nz = nx / safe, ny / safe, nz / safe
    d = sx * nx + sy * ny + sz * nz
    cx, cy, cz = sx - d * nx, sy - d * ny, sz - d * nz
    cnorm = np.sqrt(cx * cx + cy * cy + cz * cz)
    ok &= cnorm > 1e-15
    csafe = np.where(ok, cnorm, 1.0)
    cx, cy, cz = cx / csafe, cy / csafe, cz / csafe
    # the foot lies strictly inside the arc: a -> c and c -> b turn the same way as a -> b
    side_a = (ay * cz - az * cy) * nx + (az * cx - ax * cz) * ny + (ax * cy - ay * cx) * nz
    side_b = (cy * bz - cz * by) * nx + (cz * bx - cx * bz) * ny + (cx * by - cy * bx) * nz
    inside = ok & (side_a > 0) & (side_b > 0)
    seg, cx, cy, cz = seg[inside], cx[inside], cy[inside], cz[inside]
    if per_route:
        sx, sy, sz = sx[inside], sy[inside], sz[inside]  # type: ignore[index]
    foot_dist = _angle(sx, sy, sz, cx, cy, cz)
    foot_along = cum_len[seg] + np.minimum(_angle(x[seg], y[seg], z[seg], cx, cy, cz) * EARTH_RADIUS_KM, seg_len[seg])

    cand_route = np.concatenate((owner[vert], owner[seg]))
    cand_dist = np.concatenate((ang[vert], foot_dist))
    cand_along = np.concatenate((cum_len[vert], foot_along))
    px = np.concatenate((x[vert], cx))
    py = np.concatenate((y[vert], cy))
    pz = np.concatenate((z[vert], cz))
    order = np.lexsort((-cand_along if last else cand_along, cand_dist, cand_route))
    sorted_routes = cand_route[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_routes[1:] != sorted_routes[:-1]
    best = order[first]
    lat = np.degrees(np.arcsin(np.clip(pz[best], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(py[best], px[best]))
    return ClosestPoints(cand_dist[best] * EARTH_RADIUS_KM, cand_along[best], lat, lon)
