"""Posting segments: a merge equals sorting every live entry by (key, row), which is what a segment is."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tripsearch.index.embedded.memory import PostingSegment


def _segments(seed: int, sizes: list[int], n_keys: int) -> list[PostingSegment]:
    """Segments of random entries over a few keys, each segment's rows after the previous one's (as rows are appended)."""
    rng = np.random.default_rng(seed)
    out, first = [], 0
    for size in sizes:
        rows = np.sort(rng.integers(first, first + size + 1, size))
        keys = rng.integers(0, n_keys, size).astype(np.uint64) * np.uint64(1 << 40)  # far apart, as cell-day keys are
        out.append(PostingSegment.build(keys, rows, rng.integers(0, 500, size), rng.integers(0, 500, size)))
        first += size + 1
    return out


def _as_tuple(s: PostingSegment) -> tuple[list[int], ...]:
    return tuple(getattr(s, name).tolist() for name in ("keys", "offsets", "rows", "seg_lo", "seg_hi"))


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(0, 60), min_size=0, max_size=5),
    n_keys=st.integers(1, 30),
    dead_share=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_merge_equals_sorting_every_live_entry(seed: int, sizes: list[int], n_keys: int, dead_share: float) -> None:
    segments = _segments(seed, sizes, n_keys)
    n_rows = sum(sizes) + len(sizes)
    alive = np.random.default_rng(seed + 1).random(n_rows) >= dead_share
    merged = PostingSegment.merge(segments, alive)
    entries = [s.expanded() for s in segments] or [PostingSegment.empty().expanded()]
    keys, rows, lo, hi = (np.concatenate([e[i] for e in entries]) for i in range(4))
    keep = alive[rows]
    expected = PostingSegment.build(keys[keep], rows[keep], lo[keep], hi[keep])
    assert _as_tuple(merged) == _as_tuple(expected)
    assert [getattr(merged, n).dtype for n in ("keys", "offsets", "rows", "seg_lo", "seg_hi")] == [getattr(expected, n).dtype for n in ("keys", "offsets", "rows", "seg_lo", "seg_hi")]
