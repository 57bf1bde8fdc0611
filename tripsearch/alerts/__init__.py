"""Ride alerts: saved searches matched exactly against every trip write, on every backend.

- :mod:`.model`: an alert's fields (the search's, over a date range) as a value;
- :mod:`.store`: alerts, their postings, match state and feed in SQLite;
- :mod:`.matcher`: one trip against the alerts, by the search's own rules;
- :mod:`.backend`: the wrapper every write goes through.
"""

from __future__ import annotations

from .backend import ALERTS_DB_NAME, AlertingBackend
from .matcher import match_trips, trip_matches_alert
from .model import MAX_DAYS, AlertSpec, parse_alert
from .store import AlertRecord, AlertStore, MatchEvent, TripOutcome

__all__ = [
    "ALERTS_DB_NAME",
    "AlertingBackend",
    "AlertRecord",
    "AlertSpec",
    "AlertStore",
    "MAX_DAYS",
    "MatchEvent",
    "TripOutcome",
    "match_trips",
    "parse_alert",
    "trip_matches_alert",
]
