"""tripsearch: exact geospatial search for shared car trips.

>>> import tripsearch
>>> engine = tripsearch.open("data")            # doctest: +SKIP
>>> engine.search({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01"})  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import Backend, DeleteReport, Hit, ItemResult, Point, SearchResult, UpsertReport
from .errors import BackendUnavailable, InvalidCursor, InvalidInput, InvalidQuery, InvalidTrip, NotFound, StoreReadOnly, TripSearchError
from .model import Trip, parse_trip
from .query.model import Query, parse_query

__all__ = [
    "open",
    "Backend",
    "Trip",
    "Query",
    "parse_trip",
    "parse_query",
    "SearchResult",
    "Hit",
    "Point",
    "UpsertReport",
    "DeleteReport",
    "ItemResult",
    "TripSearchError",
    "InvalidInput",
    "InvalidTrip",
    "InvalidQuery",
    "InvalidCursor",
    "NotFound",
    "BackendUnavailable",
    "StoreReadOnly",
]

if TYPE_CHECKING:
    from .alerts import AlertStore

__version__ = "0.1.0"


def open(target: str | Path, alerts: str | Path | AlertStore | bool | None = None, matching: str | None = None, **options: Any) -> Backend:  # noqa: A001 - mirrors the built-in on purpose
    """Return an engine: a directory path opens the embedded backend, an ``http(s)://`` address Elasticsearch.

    Writes are matched against saved alerts (:mod:`tripsearch.alerts`):
    kept in ``alerts.sqlite`` in the data directory for the embedded backend;
    for Elasticsearch in the SQLite file ``alerts`` names, else
    ``$TRIPSEARCH_ALERTS_DB``, else not at all. ``alerts`` may also be an
    open :class:`~tripsearch.alerts.AlertStore`; ``alerts=False`` turns matching off.
    ``matching`` (embedded backend): ``"inline"`` (default) matches in the
    write, ``"process"`` in a follower process after it
    (:mod:`tripsearch.alerts.follower`; what ``tripsearch serve`` does).
    """
    from .alerts import ALERTS_DB_NAME, AlertingBackend, AlertStore

    text = str(target)
    backend: Backend
    if text.startswith(("http://", "https://")):
        from .index.elastic import ElasticBackend

        backend = ElasticBackend(text, **options)
        path = alerts if isinstance(alerts, (str, Path, AlertStore)) else (os.environ.get("TRIPSEARCH_ALERTS_DB") or None) if alerts is not False else None
        matching = matching or "inline"  # no change feed to follow: "process" is refused
    else:
        from .index.embedded import EmbeddedBackend

        backend = EmbeddedBackend(target, **options)
        path = alerts if isinstance(alerts, (str, Path, AlertStore)) else (Path(target) / ALERTS_DB_NAME if alerts is not False else None)
        matching = matching or "inline"
    return backend if path is None else AlertingBackend(backend, path, matching=matching)
