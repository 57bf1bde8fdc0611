"""Ride alerts: saved searches matched exactly against every trip write, on every backend.

- :mod:`.model`: an alert's fields (the search's, over a date range) as a value;
- :mod:`.store`: alerts, match state and feed in SQLite;
- :mod:`.index`: the alerts' postings in memory, and a batch of trips matched against them;
- :mod:`.numbers`: sets of alert numbers, many looked up at once;
- :mod:`.matcher`: written trips against the alerts, by the search's own rules;
- :mod:`.backend`: the wrapper every write goes through.
"""

from __future__ import annotations

from .backend import ALERTS_DB_NAME, AlertingBackend
from .index import AlertIndex
from .matcher import match_trips
from .model import MAX_DAYS, AlertSpec, parse_alert
from .store import AlertRecord, AlertStore, MatchEvent, TripOutcome

__all__ = [
    "ALERTS_DB_NAME",
    "AlertIndex",
    "AlertingBackend",
    "AlertRecord",
    "AlertSpec",
    "AlertStore",
    "MAX_DAYS",
    "MatchEvent",
    "TripOutcome",
    "match_trips",
    "parse_alert",
]
