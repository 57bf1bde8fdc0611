"""Sets of alert numbers: the table over a dense span and the binary search over a sparse one give what numpy's set operations give."""

from __future__ import annotations

import numpy as np
import pytest

from tripsearch.alerts.numbers import DENSE_SPAN, NumberSet, distinct


def _sets(seed: int) -> list[np.ndarray]:
    """Sorted distinct numbers of every kind a store makes: dense runs, a few scattered, one, none, and both sides of the table's bound."""
    rng = np.random.default_rng(seed)
    dense = np.unique(rng.integers(1, 5_000, 2_000))
    sparse = np.unique(rng.integers(1, 10**9, 300))
    edge = np.arange(10, 10 + DENSE_SPAN * 50, DENSE_SPAN)  # span just within the bound: a table
    past = np.append(edge, edge[-1] + DENSE_SPAN + 1)  # just past it: a search
    return [dense, sparse, edge, past, np.array([7]), np.zeros(0, dtype=np.int64), np.array([2**40, 2**40 + 3])]


@pytest.mark.parametrize("seed", range(5))
def test_index_and_has_are_what_a_search_of_the_sorted_numbers_gives(seed: int) -> None:
    rng = np.random.default_rng(seed + 100)
    for numbers in _sets(seed):
        numbers = numbers.astype(np.int64)
        lookup = NumberSet(numbers)
        lo, hi = (int(numbers.min()), int(numbers.max())) if len(numbers) else (0, 10)
        # numbers held, numbers between them, below, above and far off, in no order, repeated
        values = np.concatenate((numbers, rng.integers(lo - 20, hi + 20, 500), [lo - 1, hi + 1, -(2**40), 2**50], numbers[::-1]))
        rng.shuffle(values)
        expected = np.array([int(np.flatnonzero(numbers == v)[0]) if v in numbers else -1 for v in values.tolist()], dtype=np.int64)
        assert lookup.index(values).tolist() == expected.tolist()
        assert lookup.has(values).tolist() == np.isin(values, numbers).tolist()
        assert lookup.index(values[:0]).tolist() == []


@pytest.mark.parametrize("seed", range(5))
def test_distinct_is_numpys_unique(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for values in (rng.integers(1, 3_000, 10_000), rng.integers(1, 10**12, 1_000), np.array([5, 5, 5]), np.zeros(0, dtype=np.int64), rng.integers(-50, 50, 300)):
        values = values.astype(np.int64)
        got = distinct(values)
        assert got.dtype == np.int64 and got.tolist() == np.unique(values).tolist()


def test_a_dense_set_keeps_a_table_and_a_sparse_one_does_not() -> None:
    """The two ways are both taken: a test of the lookups above over only one of them would not see the other broken."""
    assert NumberSet(np.arange(1, 1_000, dtype=np.int64))._table is not None
    assert NumberSet(np.array([1, 10**9], dtype=np.int64))._table is None
    every_tenth = np.arange(0, 10_000, 10, dtype=np.int64)
    assert NumberSet(every_tenth)._table is not None and NumberSet(every_tenth, max_span=2)._table is None
    assert NumberSet(every_tenth, max_span=2).index(np.array([20, 21])).tolist() == [2, -1]
