"""Reverse matching: one written trip against the saved alerts, exactly as a search would decide.

The corridor of the trip (:func:`~tripsearch.index.cells.route_to_cells`,
the cells the search index posts it under) is looked up in the alerts'
postings (the cells of their From and To disks, :func:`disk_to_cells`, the
cover a search uses), so only alerts whose places the route passes near and
whose days the trip covers are candidates: if a route passes within r of a
point, one of its corridor cells is in the point's cover (the invariant of
:mod:`tripsearch.index.cells`). Then :func:`~tripsearch.query.matching.evaluate`,
the rules every search runs, decides: the alert matches when the trip
passes every rule but the date, and its pickup's local day is in the
alert's range. That day's search with the alert's fields returns the trip,
and no other day's does (the pickup falls on one local day).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.columns import TripColumns
from ..index.cells import route_to_cells
from ..model import Trip
from ..index.execute import hit_points
from ..query.matching import evaluate, filter_bit
from ..query.ranking import score_of
from .model import AlertSpec
from .store import AlertStore, TripOutcome

__all__ = ["match_trips", "trip_matches_alert"]

_ALL_BUT_DATE = np.uint8(~filter_bit("date") & 0xFF)


def match_trips(store: AlertStore, trips: Sequence[Trip], routes: Sequence[np.ndarray | None] | None = None) -> list[TripOutcome]:
    """Return, for each trip, the alerts of ``store`` it matches now and what each match event says."""
    if not trips:
        return []
    cols = TripColumns.from_trips(trips, routes)
    corridor = route_to_cells(cols, np.arange(len(trips), dtype=np.int64))
    first_days, last_days = cols.local_days()
    outcomes: list[TripOutcome] = []
    for row, trip in enumerate(trips):
        matches: dict[str, dict[str, Any]] = {}
        if trip.status == "published":
            cells = np.unique(corridor.cells[corridor.rows == row]).tolist()
            for alert_id, spec in store.candidates(cells, cells, int(first_days[row]), int(last_days[row])):
                body = trip_matches_alert(cols, row, spec)
                if body is not None:
                    matches[alert_id] = body
        outcomes.append(TripOutcome(trip.id, trip.version, trip.status, matches))
    return outcomes


def trip_matches_alert(cols: TripColumns, row: int, spec: AlertSpec) -> dict[str, Any] | None:
    """Return what the match of row ``row`` of ``cols`` with the alert says (day, pickup, dropoff, score), or None."""
    ev = evaluate(cols, np.array([row], dtype=np.int64), spec.query)
    if not (ev.geo[0] and ev.failed[0] & _ALL_BUT_DATE == 0 and spec.day_from <= ev.local_day[0] <= spec.day_to):
        return None
    offsets = [int(cols.offset_s[row])]
    pickup = hit_points(ev.pickup, ev.pickup_time, offsets)[0]
    dropoff = hit_points(ev.dropoff, ev.dropoff_time, offsets)[0]
    return {
        "date": pickup.time[:10],
        "score": score_of(float(ev.pickup.distance_km[0] + ev.dropoff.distance_km[0])),
        "pickup": pickup.to_dict(),
        "dropoff": dropoff.to_dict(),
    }
