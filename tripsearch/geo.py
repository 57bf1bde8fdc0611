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
    "segment_lengths_km",
    "ClosestPoints",
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


def great_circle_km(lat1: F64 | float, lon1: F64 | float, lat2: F64 | float, lon2: F64 | float) -> F64:
    """Return great-circle distances in km between points given in degrees."""
    a = latlon_to_unit(np.asarray(lat1, dtype=np.float64), np.asarray(lon1, dtype=np.float64))
    b = latlon_to_unit(np.asarray(lat2, dtype=np.float64), np.asarray(lon2, dtype=np.float64))
    return angle_between(a, b) * EARTH_RADIUS_KM


def segment_lengths_km(unit: F64, starts: I64) -> F64:
    """Return, per vertex, the length of the segment that leaves it (0 at each route's last vertex).

    ``unit`` holds the vertices of several routes back to back; ``starts`` is
    the index of each route's first vertex plus a final end index.
    """
    lengths = np.zeros(len(unit), dtype=np.float64)
    if len(unit) > 1:
        lengths[:-1] = angle_between(unit[:-1], unit[1:]) * EARTH_RADIUS_KM
    lengths[starts[1:] - 1] = 0.0
    return lengths


class ClosestPoints(NamedTuple):
    """Closest route point to a target, one row per route."""

    distance_km: F64  # great-circle distance from the target to the route
    along_km: F64  # distance of that point from the route start, along the route
    lat: F64  # the point itself, degrees
    lon: F64


def closest_points_on_routes(
    unit: F64,
    seg_len: F64,
    cum_len: F64,
    starts: I64,
    targets: F64,
    last: bool = False,
) -> ClosestPoints:
    """Return, for each route, the route point closest to its target.

    ``unit`` are the vertices of all routes back to back (unit vectors),
    ``seg_len`` the length of the segment leaving each vertex, ``cum_len``
    the distance along its route of each vertex, ``starts`` the first vertex
    of each route plus a final end index, and ``targets`` one unit vector per
    route. Ties (a route that passes the same place twice) go to the earliest
    point along the route, or to the latest with ``last=True``.
    """
    n_routes = len(starts) - 1
    n_vert = len(unit)
    route_of_vertex = np.repeat(np.arange(n_routes), np.diff(starts))
    x = targets[route_of_vertex]

    # Each vertex's own distance: covers one-vertex routes and segment ends.
    vert_dist = angle_between(x, unit)

    # Segments: every vertex but the last of its route starts one.
    is_seg = np.ones(n_vert, dtype=bool)
    is_seg[starts[1:] - 1] = False
    seg = np.flatnonzero(is_seg)
    a = unit[seg]
    b = unit[seg + 1]
    xs = x[seg]
    normal = np.cross(a, b)
    norm = np.sqrt(np.einsum("ij,ij->i", normal, normal))
    ok = norm > 1e-15
    n_hat = np.zeros_like(normal)
    n_hat[ok] = normal[ok] / norm[ok, None]
    # Projection of the target on the segment's great circle.
    proj = xs - np.einsum("ij,ij->i", xs, n_hat)[:, None] * n_hat
    proj_norm = np.sqrt(np.einsum("ij,ij->i", proj, proj))
    ok &= proj_norm > 1e-15
    c = np.zeros_like(proj)
    c[ok] = proj[ok] / proj_norm[ok, None]
    inside = ok & (np.einsum("ij,ij->i", np.cross(a, c), n_hat) > 0) & (np.einsum("ij,ij->i", np.cross(c, b), n_hat) > 0)

    # Candidate points: every vertex, plus the interior foot of each segment where it lies inside.
    inner = seg[inside]
    inner_dist = angle_between(xs[inside], c[inside])
    inner_along = cum_len[inner] + np.minimum(angle_between(a[inside], c[inside]) * EARTH_RADIUS_KM, seg_len[inner])

    cand_route = np.concatenate((route_of_vertex, route_of_vertex[inner]))
    cand_dist = np.concatenate((vert_dist, inner_dist))
    cand_along = np.concatenate((cum_len, inner_along))
    cand_point = np.concatenate((unit, c[inside]))

    # Per route: smallest distance, then earliest (or latest) along the route.
    along_key = -cand_along if last else cand_along
    order = np.lexsort((along_key, cand_dist, cand_route))
    first_of_route = np.ones(len(order), dtype=bool)
    sorted_routes = cand_route[order]
    first_of_route[1:] = sorted_routes[1:] != sorted_routes[:-1]
    best = order[first_of_route]

    point = cand_point[best]
    lat = np.degrees(np.arcsin(np.clip(point[:, 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(point[:, 1], point[:, 0]))
    return ClosestPoints(cand_dist[best] * EARTH_RADIUS_KM, cand_along[best], lat, lon)
