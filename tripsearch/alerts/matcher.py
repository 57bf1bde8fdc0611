"""Reverse matching: written trips against the saved alerts, exactly as a search would decide.

A batch of trips is matched at once by the alerts index
(:class:`~tripsearch.alerts.index.AlertIndex`): the postings of the
alerts' From and To disks give the candidate (trip, alert group) pairs,
then the search's kernels decide, the alert's day range standing for the
search's date: the alert matches when the trip passes every rule but the
date and its pickup's local day is in the alert's range. That day's search
with the alert's fields returns the trip, and no other day's does (the
pickup falls on one local day).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.columns import TripColumns
from ..model import Trip
from .store import AlertStore, TripOutcome

__all__ = ["match_trips"]


def match_trips(store: AlertStore, trips: Sequence[Trip], routes: Sequence[np.ndarray | None] | None = None) -> list[TripOutcome]:
    """Return, for each trip, the alerts of ``store`` it matches now and what each match event says."""
    if not trips:
        return []
    cols = TripColumns.from_trips(trips, routes)
    found = store.index().match(cols, np.arange(len(trips), dtype=np.int64), store.clock())
    matches: list[dict[str, dict[str, Any]]] = [{} for _ in trips]
    for row, alert_id, body in zip(found.rows, found.alert_ids, found.bodies):
        matches[row][alert_id] = body
    return [TripOutcome(trip.id, trip.version, trip.status, m) for trip, m in zip(trips, matches)]
