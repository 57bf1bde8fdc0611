"""The facets' tallies of many values (numpy) equal those of a few (one value at a time)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tripsearch.core.columns import currency_code, currency_name
from tripsearch.facets.counts import _tally_points, _tally_prices


def test_many_prices_and_points_tally_as_one_at_a_time() -> None:
    rng = np.random.default_rng(5)
    for n in (0, 1, 64, 65, 3000):
        codes = rng.choice([currency_code(c) for c in ("EUR", "GBP", "CHF")], size=n).astype(np.int32)
        amounts = rng.choice([0.0, -0.0, 12.5, 12.500000000000002, 30.0, float(rng.uniform(0, 99))], size=n)
        got: dict[str, Counter[float]] = {}
        _tally_prices(got, codes, amounts)
        want: dict[str, Counter[float]] = {}
        for code, amount in zip(codes.tolist(), amounts.tolist()):
            want.setdefault(currency_name(code), Counter())[amount] += 1
        assert got == want
        lat = rng.choice([45.764, -0.0, 0.0, 45.7640000001, 89.9999999], size=n)
        lon = rng.choice([4.8357, -180.0, 180.0, -0.0, 4.83570001], size=n)
        points: Counter[tuple[float, float]] = Counter()
        _tally_points(points, lat, lon)
        assert points == Counter(zip(lat.tolist(), lon.tolist()))
