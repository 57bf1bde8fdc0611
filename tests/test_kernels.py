"""The compiled closest-point loop skips route parts it can prove farther; it must still find what the plain reference finds.

``closest_in_ranges`` prunes with trigonometry-free bounds: the smallest
upper bound of a window's vertices caps the answer, and a vertex or segment
whose lower bound is above the cap, the radius or the best point found so
far is skipped. Pruning may only skip work: for every route within the
radius, the distance, the distance along, the point and the tie-breaking
must equal the reference's bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tripsearch.core.kernels import closest_in_ranges, route_distances_along

from . import reference as ref
from .geometry import destination, random_route

# Centres where the geometry is awkward: the antimeridian, high latitudes, the equator, near a pole.
CENTRES = [(48.85, 2.35), (-16.5, 179.9), (65.6, -179.95), (78.2, 15.6), (0.0, 0.0), (89.7, 40.0), (-41.3, 174.8)]


def _columns(route: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat = np.array([round(la * 1e7) for la, _ in route], dtype=np.int32)
    lon = np.array([round(((lo + 180.0) % 360.0 - 180.0) * 1e7) for _, lo in route], dtype=np.int32)
    return lat, lon, route_distances_along(lat, lon, np.array([0, len(route)], dtype=np.int64))


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    centre=st.sampled_from(CENTRES),
    radius_km=st.sampled_from([0.5, 2.0, 5.0, 15.0, 40.0, 100.0]),
    latest=st.booleans(),
    on_vertex=st.booleans(),
)
def test_pruned_closest_point_equals_the_reference(seed: int, centre: tuple[float, float], radius_km: float, latest: bool, on_vertex: bool) -> None:
    rng = np.random.default_rng(seed)
    route = random_route(rng, centre, 30.0)
    lat, lon, cum = _columns(route)
    # A target on a vertex makes exact ties (loops pass it twice); otherwise somewhere near the route.
    k = int(rng.integers(0, len(route)))
    target = (lat[k] / 1e7, lon[k] / 1e7) if on_vertex else destination(lat[k] / 1e7, lon[k] / 1e7, float(rng.uniform(0, 360)), float(rng.uniform(0, 2 * radius_km)))
    trip = ref.RefTrip({}, [ref.unit(la / 1e7, lo / 1e7) for la, lo in zip(lat.tolist(), lon.tolist())], cum.tolist(), [], [], 0)
    want_km, want_along, want_point = ref.closest(trip, ref.unit(*target), last=latest)

    first, last = np.array([0]), np.array([len(route) - 1])
    got = closest_in_ranges(lat, lon, cum, first, last, np.array([target[0]]), np.array([target[1]]), latest, radius_km)
    if want_km <= radius_km:
        assert (got[0][0], got[1][0]) == (want_km, want_along)
        want_lat = math.degrees(math.asin(min(1.0, max(-1.0, want_point[2]))))
        assert (got[2][0], got[3][0]) == (want_lat, math.degrees(math.atan2(want_point[1], want_point[0])))
    else:
        assert got[0][0] > radius_km
