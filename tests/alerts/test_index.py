"""The alerts index: its candidates are every (trip, group) whose both disks the trip touches; each (trip, disk) is measured on the part of the route its samples say, and the whole route gives the same answer within the radius."""

from __future__ import annotations

import numpy as np

from tests.geometry import REGIONS, destination, random_trips
from tripsearch.alerts.index import TERM_FIELDS, AlertTerms, _Part, route_to_tiles
from tripsearch.core.columns import TripColumns
from tripsearch.core.kernels import closest_in_ranges
from tripsearch.model import parse_trip
from tripsearch.occurrences import index_trips


def test_the_part_of_a_route_near_a_disk_holds_its_closest_point_within_the_radius() -> None:
    """Random routes of every region (loops, out and back, the antimeridian, near a pole), disks on and near them."""
    rng = np.random.default_rng(7)
    trips = [t for i, region in enumerate(REGIONS) for t in random_trips(region, 40, seed=300 + i)]
    rows, _ = index_trips([parse_trip(t) for t in trips])
    cols = TripColumns.from_trips(rows, None)
    points = [(float(lat), float(lon)) for lat, lon in zip(cols.vert_lat[:: 7] / 1e7, cols.vert_lon[:: 7] / 1e7)]
    disks = [(*destination(lat, lon, float(rng.uniform(0, 360)), float(rng.uniform(0, 15))), float(rng.choice([2.0, 5.0, 10.0, 25.0]))) for lat, lon in points]
    values: dict[str, np.ndarray] = {name: np.zeros(len(disks) // 2) for name in TERM_FIELDS}
    values["seq"] = np.arange(1, len(disks) // 2 + 1, dtype=np.int64)
    for i, key in enumerate(("from_lat", "from_lon", "from_r", "to_lat", "to_lon", "to_r")):
        values[key] = np.array([d[i % 3] for d in (disks[0::2] if key.startswith("from") else disks[1::2])][: len(disks) // 2], dtype=np.float64)
    part = _Part(AlertTerms({k: np.asarray(v) for k, v in values.items()}))
    items = part.candidates(route_to_tiles(cols, np.arange(len(rows), dtype=np.int64)))
    reach, keys = items.reach, items.reach.keys
    assert len(keys) > 1000
    r, d = keys >> 32, keys & 0xFFFFFFFF
    radius = part.disks[d, 2]
    first, last = reach.vertices(cols, np.arange(len(keys)))
    whole_first, whole_last = cols.vert_start[r], cols.vert_start[r + 1] - 1
    assert (whole_first <= first).all() and (first <= last).all() and (last <= whole_last).all()
    assert (last - first < whole_last - whole_first).mean() > 0.5, "most parts are shorter than their route"
    for latest in (False, True):
        whole = np.array(closest_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, whole_first, whole_last, part.disks[d, 0], part.disks[d, 1], latest, np.inf))
        near = np.array(closest_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, first, last, part.disks[d, 0], part.disks[d, 1], latest, np.inf))
        within = whole[0] <= radius
        assert within.sum() > 300
        np.testing.assert_array_equal(near[:, within], whole[:, within])
        assert (near[0, ~within] > radius[~within]).all()

    # the candidates: every (row, group) whose both disks the row touches, sorted by group then row, with where each disk is in the reach
    touched = {(int(k >> 32), int(k & 0xFFFFFFFF)): at for at, k in enumerate(keys.tolist())}
    expected = sorted((g, row) for (row, disk), _ in touched.items() for g in range(part.from_start[disk], part.from_start[disk + 1]) if (row, int(part.group_to[g])) in touched)
    assert list(zip(items.groups.tolist(), items.rows.tolist())) == expected and len(expected) > 100
    assert items.from_at.tolist() == [touched[(row, int(part.group_from[g]))] for g, row in expected]
    assert items.to_at.tolist() == [touched[(row, int(part.group_to[g]))] for g, row in expected]
