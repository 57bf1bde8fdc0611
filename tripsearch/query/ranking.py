"""Ordering and paging of matches.

Every sort orders by a key of three parts, all ascending, the trip id last
so that no two hits tie:

- ``relevance``: walking distance (pickup km + dropoff km), pickup time, id;
  the reported score is ``1 / (1 + walking km)``;
- ``departure``: pickup time, pickup time, id;
- ``price``: price amount, pickup time, id;
- ``pickup_distance``: pickup km, pickup time, id;
- ``time_distance`` (with ``departure_time``): minutes between the pickup's
  local time and ``departure_time`` on its search day (the nearest one, see
  :meth:`~tripsearch.query.model.Query.time_rule`), pickup time, id.

Pages are cut by key (keyset pagination, like Elasticsearch's
``search_after``): a cursor holds the key of the last hit returned and the
next page starts strictly after it, so a trip is never returned twice and
writes between pages do not shift the pages.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from ..core.kernels import search_minutes
from .model import Query

__all__ = ["sort_keys", "select_page", "score_of"]


def sort_keys(
    query: Query, walk_km: NDArray[np.float64], pickup_km: NDArray[np.float64], pickup_time: NDArray[np.int64], offset_s: NDArray[np.integer[Any]], price: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return the first two parts of each hit's sort key for ``query.sort`` (``offset_s``: each trip's UTC offset)."""
    primary: NDArray[np.float64]
    if query.sort == "time_distance":
        rule = query.time_rule()
        minutes = search_minutes(pickup_time, offset_s.astype(np.int64, copy=False), rule.shift)
        primary = np.abs(minutes + rule.shift - rule.target).astype(np.float64)
    elif query.sort == "relevance":
        primary = walk_km
    elif query.sort == "departure":
        primary = pickup_time.astype(np.float64)
    elif query.sort == "price":
        primary = price
    else:
        primary = pickup_km
    return primary, pickup_time


def score_of(walk_km: float) -> float:
    """Return the relevance score of a hit: 1 for a pickup and dropoff exactly at from/to, falling with walking distance."""
    return 1.0 / (1.0 + walk_km)


def select_page(primary: NDArray[np.float64], secondary: NDArray[np.int64], ids: Sequence[str], after: tuple[Any, ...] | None, limit: int) -> tuple[list[int], bool]:
    """Return the positions of the next page of hits in key order, and whether more hits follow it."""
    n = len(primary)
    keep = np.ones(n, dtype=bool)
    if after is not None:
        a_primary, a_secondary, a_id = float(after[0]), int(after[1]), str(after[2])
        greater = (primary > a_primary) | ((primary == a_primary) & (secondary > a_secondary))
        equal = (primary == a_primary) & (secondary == a_secondary)
        keep = greater.copy()
        for pos in np.flatnonzero(equal).tolist():
            keep[pos] = ids[pos] > a_id
    candidates = np.flatnonzero(keep)
    if len(candidates) == 0:
        return [], False
    order = candidates[np.lexsort((secondary[candidates], primary[candidates]))]
    # Take one more than a page, plus whatever ties with the boundary, then break ties by id.
    cut = min(limit + 1, len(order))
    if cut < len(order):
        last_p, last_s = primary[order[cut - 1]], secondary[order[cut - 1]]
        while cut < len(order) and primary[order[cut]] == last_p and secondary[order[cut]] == last_s:
            cut += 1
    head = sorted(order[:cut].tolist(), key=lambda pos: (primary[pos], secondary[pos], ids[pos]))
    return head[:limit], len(order) > limit
