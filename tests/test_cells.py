"""The H3 candidate index never misses: covers hold every point in reach, corridors every route point."""

from __future__ import annotations

import math
import threading
from typing import Any

import h3.api.basic_int as h3_int
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tripsearch.core.columns import TripColumns
from tripsearch.index.cells import CORRIDOR_RES, INDEX_MARGIN_KM, disk_to_cells, route_to_cells
from tripsearch.model import parse_trip

from .geometry import destination, random_trips

latitudes = st.one_of(st.floats(-89.99, 89.99), st.sampled_from([89.9, -89.9, 0.0, 60.0]))
longitudes = st.one_of(st.floats(-180.0, 180.0), st.sampled_from([179.99, -179.99, 180.0, -180.0]))


@settings(max_examples=150, deadline=None)
@given(lat=latitudes, lon=longitudes, radius=st.floats(0.0, 100.0), bearing=st.floats(0, 360), frac=st.floats(0, 1))
def test_cover_holds_every_point_in_reach(lat: float, lon: float, radius: float, bearing: float, frac: float) -> None:
    cover = set(disk_to_cells(lat, lon, radius).tolist())
    plat, plon = destination(lat, lon, bearing, (radius + INDEX_MARGIN_KM) * frac)
    assert h3_int.latlng_to_cell(plat, plon, CORRIDOR_RES) in cover


@settings(max_examples=40, deadline=None)
@given(region=st.sampled_from(["antimeridian", "north_pole", "europe", "south_pole"]), seed=st.integers(0, 10_000), frac=st.floats(0, 1))
def test_every_route_point_is_near_a_sample_in_its_segment_window(region: str, seed: int, frac: float) -> None:
    """For any point X of a route, the cover of X (radius 0) holds a corridor cell listing X's segment."""
    trips = [parse_trip(t) for t in random_trips(region, 5, seed)]
    cols = TripColumns.from_trips(trips)
    corridor = route_to_cells(cols, np.arange(len(cols)))
    for row in range(len(cols)):
        start, end = int(cols.vert_start[row]), int(cols.vert_start[row + 1])
        seg = min(int(frac * (end - start - 1)), end - start - 2)
        a = (cols.vert_lat[start + seg] / 1e7, cols.vert_lon[start + seg] / 1e7)
        b = (cols.vert_lat[start + seg + 1] / 1e7, cols.vert_lon[start + seg + 1] / 1e7)
        x = _slerp(a, b, frac)
        cover = set(disk_to_cells(x[0], x[1], 0.0).tolist())
        mine = corridor.rows == row
        listed = [
            lo <= seg <= hi
            for cell, lo, hi in zip(corridor.cells[mine].tolist(), corridor.seg_lo[mine].tolist(), corridor.seg_hi[mine].tolist())
            if cell in cover
        ]
        assert any(listed), (region, seed, row, seg)


def _slerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    def unit(p: tuple[float, float]) -> np.ndarray:
        la, lo = math.radians(p[0]), math.radians(p[1])
        return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])

    u, v = unit(a), unit(b)
    omega = math.acos(max(-1.0, min(1.0, float(u @ v))))
    if omega < 1e-12:
        p = u
    else:
        p = (math.sin((1 - t) * omega) * u + math.sin(t * omega) * v) / math.sin(omega)
    return math.degrees(math.asin(max(-1.0, min(1.0, p[2])))), math.degrees(math.atan2(p[1], p[0]))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(
            # a few degrees square (each tile it touches holds 20 KB for the rest of the process), and the poles and antimeridian
            st.tuples(st.integers(2200, 2500), st.integers(0, 400)),
            st.tuples(st.sampled_from([-4500, -4499, 4499, 4500]), st.sampled_from([-9000, -8999, 0, 8999, 9000])),
        ),
        min_size=1,
        max_size=300,
    ),
    st.integers(0, 2**32 - 1),
)
def test_grid_cells_are_those_of_h3_whatever_the_order_points_are_first_asked(points: list[tuple[int, int]], seed: int) -> None:
    """The snapping grid computes a point's cell when first asked and keeps it: lookups always give H3's cell of the grid point."""
    from tripsearch.index.cells import SNAP_DEG, _grid

    rng = np.random.default_rng(seed)
    # neighbours of the drawn points, so some lookups hit tiles and points already computed
    near = [(a + int(rng.integers(-2, 3)), b + int(rng.integers(-2, 3))) for a, b in points]
    asked = [(min(4500, max(-4500, a)), min(9000, max(-9000, b))) for a, b in points + near]
    lat_step = np.array([a for a, _ in asked], dtype=np.int64)
    lon_step = np.array([b for _, b in asked], dtype=np.int64)
    for part in (slice(0, len(points)), slice(None)):
        got = _grid.lookup(lat_step[part], lon_step[part])
        want = [h3_int.latlng_to_cell(max(-90.0, min(90.0, a * SNAP_DEG)), (b * SNAP_DEG + 180.0) % 360.0 - 180.0, CORRIDOR_RES) for a, b in asked[part]]
        assert got.tolist() == want


def test_grid_cells_equal_h3s_over_whole_tiles_at_the_poles_the_antimeridian_and_random_points() -> None:
    """The grid's cells (computed by h3ronpy) are h3's, point for point: whole tiles where the grid meets the poles and the antimeridian, and 200,000 grid points anywhere."""
    from tripsearch.index.cells import SNAP_DEG, _GridCells

    steps = _GridCells.STEPS
    tiles = [(89, -180), (89, 179), (-90, 0), (-1, -180), (0, 179), (48, 2), (70, -25), (-34, 151)]
    lat_step = np.concatenate([np.repeat(np.arange(steps) + a * steps, steps) for a, _ in tiles])
    lon_step = np.concatenate([np.tile(np.arange(steps) + b * steps, steps) for _, b in tiles])
    rng = np.random.default_rng(7)
    lat_step = np.concatenate([lat_step, rng.integers(-4500, 4501, 200_000)])
    lon_step = np.concatenate([lon_step, rng.integers(-9000, 9000, 200_000)])
    got = _GridCells().lookup(lat_step, lon_step)
    lat = np.clip(lat_step * SNAP_DEG, -90.0, 90.0)
    lon = np.mod(lon_step * SNAP_DEG + 180.0, 360.0) - 180.0
    want = np.array([h3_int.latlng_to_cell(a, b, CORRIDOR_RES) for a, b in zip(lat.tolist(), lon.tolist())], dtype=np.uint64)
    assert int((got != want).sum()) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 999), max_size=400), st.sampled_from([1, 10, 1000, 100_000]))
def test_the_distinct_grid_points_asked_are_those_of_np_unique(positions: list[int], size_over: int) -> None:
    """Both ways of finding the grid points to compute (a sort for a few, marks for many) give np.unique's answer."""
    from tripsearch.index.cells import _distinct

    asked = np.array(positions, dtype=np.int64)
    size = 1000 + size_over  # small tables take the marks, large ones the sort
    assert _distinct(asked, size).tolist() == np.unique(asked).tolist()


def test_grid_cells_are_right_when_threads_ask_for_new_tiles_at_once() -> None:
    """Threads that add tiles and compute points at once (an API process's concurrent writes) all get H3's cells."""
    from tripsearch.index.cells import _GridCells

    wrong = failed = 0
    for trial in range(20):
        grid, rng = _GridCells(), np.random.default_rng(trial)
        # four regions of new tiles, one per thread, overlapping a little
        asked = [(rng.integers(2000 + 400 * t, 2500 + 400 * t, 2000), rng.integers(-500, 1500, 2000)) for t in range(4)]
        got: list[Any] = [None] * 4
        start = threading.Barrier(4)

        def ask(i: int) -> None:
            start.wait()
            got[i] = grid.lookup(*asked[i])

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (lat_step, lon_step) in enumerate(asked):
            if got[i] is None:
                failed += 1
                continue
            wrong += int((got[i] != _GridCells().lookup(lat_step, lon_step)).sum())
    assert (wrong, failed) == (0, 0)
