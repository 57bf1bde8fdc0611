"""Great-circle geometry on arrays: unit vectors, distances, route geometry for sampling.

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
    "interpolate_on_arcs",
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
    window of a route keeps the distances of the whole route); otherwise an
    approximation is summed here (exact distances along come from
    :func:`tripsearch.core.kernels.route_distances_along`).
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
        cum = np.cumsum(seg_len)
        cum_len = np.concatenate(([0.0], cum[:-1])) if len(cum) else cum
        if len(counts):
            cum_len = cum_len - np.repeat(cum_len[starts[:-1]], counts)
    return RouteGeometry(x, y, z, seg_len, cum_len, starts, owner)


def interpolate_on_arcs(a: F64, b: F64, frac: F64, length_km: F64) -> tuple[F64, F64]:
    """Return (lat, lon) in degrees of the points ``frac`` of the way along the arcs from ``a`` to ``b`` (unit vectors, (n, 3)).

    Spherical interpolation, so points are evenly spaced along each arc.
    """
    theta = length_km / EARTH_RADIUS_KM
    sin_theta = np.sin(theta)
    tiny = sin_theta < 1e-12
    safe = np.where(tiny, 1.0, sin_theta)
    wa = np.where(tiny, 1.0 - frac, np.sin((1.0 - frac) * theta) / safe)
    wb = np.where(tiny, frac, np.sin(frac * theta) / safe)
    # component by component (the same operations): on (n, 3) arrays numpy loops over rows of 3 values
    x, y, z = (a[:, k] * wa + b[:, k] * wb for k in range(3))
    norm = np.sqrt(x * x + y * y + z * z)
    return np.degrees(np.arcsin(np.clip(z / norm, -1.0, 1.0))), np.degrees(np.arctan2(y / norm, x / norm))


def _angle(ax, ay, az, bx, by, bz):  # type: ignore[no-untyped-def]
    """Angle between unit vectors given by components: atan2(|a x b|, a . b), exact for small angles."""
    cx = ay * bz - az * by
    cy = az * bx - ax * bz
    cz = ax * by - ay * bx
    return np.arctan2(np.sqrt(cx * cx + cy * cy + cz * cz), ax * bx + ay * by + az * bz)
