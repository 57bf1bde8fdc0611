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

from tripsearch.core.kernels import closest_both_in_ranges, closest_in_ranges, route_distances_along

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


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    centre=st.sampled_from(CENTRES),
    within_km=st.sampled_from([0.5, 5.0, 25.0, 100.0, math.inf]),
    on_vertex=st.booleans(),
)
def test_both_closest_points_in_one_pass_are_those_of_two(seed: int, centre: tuple[float, float], within_km: float, on_vertex: bool) -> None:
    """closest_both_in_ranges (the anchor entries' loop) returns the bits of closest_in_ranges for the earliest and for the latest point."""
    rng = np.random.default_rng(seed)
    routes = [random_route(rng, centre, 30.0) for _ in range(4)]
    cols = [_columns(route) for route in routes]
    lat, lon = np.concatenate([c[0] for c in cols]), np.concatenate([c[1] for c in cols])
    cum = np.concatenate([c[2] for c in cols])
    sizes = np.array([len(r) for r in routes])
    first = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    last = first + sizes - 1
    targets = []
    for r, route in enumerate(routes):
        k = int(first[r] + rng.integers(0, len(route)))
        targets.append((lat[k] / 1e7, lon[k] / 1e7) if on_vertex else destination(lat[k] / 1e7, lon[k] / 1e7, float(rng.uniform(0, 360)), float(rng.uniform(0, 40))))
    t_lat, t_lon = np.array([t[0] for t in targets]), np.array([t[1] for t in targets])
    both = closest_both_in_ranges(lat, lon, cum, first, last, t_lat, t_lon, within_km)
    earliest = closest_in_ranges(lat, lon, cum, first, last, t_lat, t_lon, False, within_km)
    latest = closest_in_ranges(lat, lon, cum, first, last, t_lat, t_lon, True, within_km)
    near = earliest[0] <= within_km
    for got, want in zip(both, (*earliest, *latest[1:])):
        assert got[near].tobytes() == want[near].tobytes()
    assert np.array_equal(both[0], earliest[0]) and np.array_equal(both[0], latest[0])


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    centre=st.sampled_from(CENTRES),
    extent_km=st.sampled_from([5.0, 30.0, 300.0, 3000.0]),
    radius_km=st.sampled_from([0.5, 2.0, 10.0, 60.0]),
)
def test_the_references_shortcut_skips_only_routes_farther_than_the_radius(seed: int, centre: tuple[float, float], extent_km: float, radius_km: float) -> None:
    """``reference.beyond`` (a cap around the route) never leaves out a route that ``reference.closest`` finds within the radius."""
    rng = np.random.default_rng(seed)
    route = random_route(rng, centre, extent_km)
    lat, lon, cum = _columns(route)
    trip = ref.RefTrip({}, [ref.unit(la / 1e7, lo / 1e7) for la, lo in zip(lat.tolist(), lon.tolist())], cum.tolist(), [], [], 0)
    for _ in range(20):
        k = int(rng.integers(0, len(route)))
        target = ref.unit(*destination(lat[k] / 1e7, lon[k] / 1e7, float(rng.uniform(0, 360)), float(rng.uniform(0, 3 * extent_km))))
        if ref.beyond(trip, target, radius_km):
            assert ref.closest(trip, target, last=False)[0] > radius_km
