"""Query mixes that look like real traffic, for benchmarks and capacity planning.

City pairs are drawn from the trips themselves (their origin, stopovers and
destination): the fixture generator draws origins by population and
destinations by a gravity model, so big pairs such as Paris-Lyon come up
often and have many results while small towns come up rarely with few. On
top of that: a share of queries carries filters, a share follows the cursor
to page 2, and a share of calls are place autocompletes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

__all__ = ["Workload", "build_workload", "FILTERED_SHARE", "PAGE2_SHARE", "PLACES_SHARE"]

FILTERED_SHARE = 0.2
PAGE2_SHARE = 0.1
PLACES_SHARE = 0.15


@dataclass(frozen=True)
class Workload:
    """Searches (each with ``follow_cursor``: whether the client then asks for page 2) and autocomplete prefixes."""

    searches: list[dict[str, Any]] = field(default_factory=list)
    follow_cursor: list[bool] = field(default_factory=list)
    place_prefixes: list[str] = field(default_factory=list)

    def mixed(self, seed: int = 0) -> list[tuple[str, Any]]:
        """Return the calls in a shuffled order: ("search", (query, follow)) or ("places", prefix)."""
        calls: list[tuple[str, Any]] = [("search", (q, f)) for q, f in zip(self.searches, self.follow_cursor)]
        calls += [("places", p) for p in self.place_prefixes]
        order = np.random.default_rng(seed).permutation(len(calls))
        return [calls[i] for i in order]


def build_workload(trips: Iterable[dict[str, Any]], n_searches: int, seed: int, facets: str | list[str] = "all") -> Workload:
    """Return a workload of ``n_searches`` searches (plus autocompletes) drawn from a sample of trips."""
    rng = np.random.default_rng(seed)
    sample = [t for t in trips if t.get("status") == "published"]
    if not sample:
        return Workload()
    searches: list[dict[str, Any]] = []
    follow: list[bool] = []
    for _ in range(n_searches):
        trip = sample[int(rng.integers(0, len(sample)))]
        stops = trip["stops"]
        i = int(rng.integers(0, len(stops) - 1))
        j = int(rng.integers(i + 1, len(stops)))
        a, b = stops[i], stops[j]
        query: dict[str, Any] = {
            "from": [a["lat"], a["lon"]],
            "to": [b["lat"], b["lon"]],
            "date": dt.date.fromisoformat(a["time"][:10]).isoformat(),
            "facets": facets,
        }
        if rng.random() < FILTERED_SHARE:
            kind = int(rng.integers(0, 4))
            if kind == 0:
                query["options"] = ["instant_booking"]
            elif kind == 1:
                query["max_price"] = float(rng.choice([15, 25, 40]))
            elif kind == 2:
                query["time_from"], query["time_to"] = "06:00", "12:00"
            else:
                query["min_rating"] = 4.5
        searches.append(query)
        follow.append(bool(rng.random() < PAGE2_SHARE))
    n_places = int(round(n_searches * PLACES_SHARE / (1 - PLACES_SHARE)))
    names = [s["name"] for t in sample for s in t["stops"]]
    prefixes = []
    for _ in range(n_places):
        name = names[int(rng.integers(0, len(names)))]
        prefixes.append(name[: int(rng.integers(2, min(6, len(name)) + 1))])
    return Workload(searches, follow, prefixes)
