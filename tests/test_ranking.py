"""select_page against a plain sort of (primary, secondary, id), on keys with many ties."""

from __future__ import annotations

import numpy as np
import pytest

from tripsearch.query.ranking import select_page


@pytest.mark.parametrize("seed", range(20))
def test_a_page_is_the_plain_sort_of_its_keys_after_the_cursor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    primary = rng.integers(0, 4, n).astype(np.float64) / 2  # few values: runs of equal keys everywhere
    secondary = rng.integers(0, 3, n).astype(np.int64)
    ids = [f"t{int(x)}" for x in rng.permutation(10 * n)[:n]]
    keyed = sorted(range(n), key=lambda i: (primary[i], secondary[i], ids[i]))
    for limit in (1, 3, 20):
        after = None
        seen: list[int] = []
        while True:
            page, more = select_page(primary, secondary, ids, after, limit)
            start = len(seen)
            assert page == keyed[start : start + limit]
            assert more == (start + limit < n)
            seen += page
            if not more:
                break
            last = page[-1]
            after = (primary[last], secondary[last], ids[last])
        assert seen == keyed
