"""Sets of alert numbers, with many numbers looked up in them at once.

Alert numbers (``alert_terms.seq``) are dense: 1, 2, 3, ... in order of
creation. A batch of a thousand trip writes over a million alerts looks up
about a hundred thousand of them, in no order. A binary search then costs a
cache miss at each of its twenty steps: 9 to 18 ms a batch, against 0.2 ms
for a read of a table indexed by number. So a set whose numbers fill at
least 1/:data:`DENSE_SPAN` of their span keeps such a table (four bytes a
slot); a sparser one (the few alerts of one trip) searches its sorted
numbers. A set kept for long (a part of the alerts index) takes a tighter
bound, so that its table costs no more than a sorted copy would.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

DENSE_SPAN = 64  # a table of at most this many slots per number


def _dense(lo: int, hi: int, count: int, max_span: int = DENSE_SPAN) -> bool:
    return count > 0 and hi - lo + 1 <= max_span * count


def distinct(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return the distinct ``values``, sorted: ``np.unique``, with a bitmap over their span where that is dense."""
    if not len(values):
        return values.astype(np.int64)
    lo, hi = int(values.min()), int(values.max())
    if not _dense(lo, hi, len(values)):
        return np.unique(values)
    seen = np.zeros(hi - lo + 1, dtype=np.bool_)
    seen[values - lo] = True
    return np.flatnonzero(seen) + lo


class NumberSet:
    """Sorted, distinct numbers, and the position among them of each of many values.

    >>> s = NumberSet(np.array([3, 5, 9]))
    >>> s.index(np.array([9, 4, 3, 100, -1])).tolist()
    [2, -1, 0, -1, -1]
    """

    def __init__(self, numbers: NDArray[np.int64], max_span: int = DENSE_SPAN) -> None:
        """Keep ``numbers`` (sorted, distinct), with a table if they fill at least 1/``max_span`` of their span."""
        self.numbers = numbers
        self._table: NDArray[np.int32] | None = None
        self._base = int(numbers[0]) if len(numbers) else 0
        if len(numbers) and _dense(self._base, int(numbers[-1]), len(numbers), max_span):
            self._table = np.full(int(numbers[-1]) - self._base + 1, -1, dtype=np.int32)
            self._table[numbers - self._base] = np.arange(len(numbers), dtype=np.int32)

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def nbytes(self) -> int:
        """The bytes of its arrays: the numbers and the table."""
        return self.numbers.nbytes + (self._table.nbytes if self._table is not None else 0)

    def index(self, values: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the position in :attr:`numbers` of each of ``values``, -1 for those it does not hold."""
        if not len(self.numbers):
            return np.full(len(values), -1, dtype=np.int64)
        if self._table is not None:
            slot = values - self._base
            outside = (slot < 0) | (slot >= len(self._table))
            at = self._table[np.where(outside, 0, slot)].astype(np.int64)
            at[outside] = -1
            return at
        at = np.minimum(np.searchsorted(self.numbers, values), len(self.numbers) - 1)
        return np.where(self.numbers[at] == values, at, -1)

    def has(self, values: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Return which of ``values`` are among the numbers."""
        return self.index(values) >= 0
