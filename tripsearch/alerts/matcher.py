"""Reverse matching: written trips against the saved alerts, exactly as a search would decide.

A batch of trips is matched at once by the alerts index
(:class:`~tripsearch.alerts.index.AlertIndex`): the postings of the
alerts' From and To disks give the candidate (trip, alert group) pairs,
then the search's kernels decide, the alert's day range standing for the
search's date: the alert matches when the trip passes every rule but the
date and its pickup's local day is in the alert's range. That day's search
with the alert's fields returns the trip, and no other day's does (the
pickup falls on one local day).

A regular trip is matched as its occurrences (:mod:`tripsearch.occurrences`):
it matches an alert when one of them does, and the match tells the first
such occurrence (its ``occurrence`` date, pickup and dropoff).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from ..core.columns import LATER_OCCURRENCE, TripColumns
from ..model import Trip
from ..occurrences import index_trips, split_key
from .bodies import with_occurrence
from .store import AlertStore, TripOutcome

__all__ = ["match_trips"]


def match_trips(store: AlertStore, trips: Sequence[Trip], routes: Sequence[np.ndarray | None] | None = None) -> list[TripOutcome]:
    """Return, for each trip, the alerts of ``store`` it matches now (by number), in groups that share what their match events say."""
    if not trips:
        return []
    rows, row_routes = index_trips(trips, routes)
    cols = TripColumns.from_trips(rows, row_routes)
    # the rows of one trip follow one another, and each trip's first row is not a later occurrence
    owner = np.cumsum(cols.occurrence != LATER_OCCURRENCE) - 1
    found = store.index().match(cols, np.arange(len(rows), dtype=np.int64), store.clock())
    matches: list[list[tuple[bytes, NDArray[np.int64]]]] = [[] for _ in trips]
    trip_of = owner.tolist()
    if all(trip.schedule is None for trip in trips):  # no regular trip: one row per trip, and an alert in one of its items
        for row, body, alerts in zip(found.rows, found.bodies, found.alerts):
            matches[trip_of[row]].append((body, alerts))
    else:  # an alert that several occurrences of a trip match is told the first of them
        dates = [split_key(key)[1] for key in cols.ids]  # each row's occurrence date, None for a one-off trip
        seen: list[NDArray[np.int64]] = [np.zeros(0, dtype=np.int64) for _ in trips]
        for at in sorted(range(len(found.rows)), key=found.rows.__getitem__):  # stable: an item's group order kept within a row
            row, body, alerts = found.rows[at], found.bodies[at], found.alerts[at]
            pos = trip_of[row]
            alerts = alerts[~np.isin(alerts, seen[pos])]
            if len(alerts):
                seen[pos] = np.concatenate((seen[pos], alerts))
                date = dates[row]
                matches[pos].append((body if date is None else with_occurrence(body, date), alerts))
    return [TripOutcome(trip.id, trip.version, trip.status, m) for trip, m in zip(trips, matches)]
