"""tripsearch: exact geospatial search for shared car trips.

>>> import tripsearch
>>> engine = tripsearch.open("data")            # doctest: +SKIP
>>> engine.search({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01"})  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

__version__ = "0.1.0"


def open(target: str | Path, **options: Any) -> Backend:  # noqa: A001 - mirrors the built-in on purpose
    """Return an engine: a directory path opens the embedded backend, an ``http(s)://`` address Elasticsearch."""
    text = str(target)
    if text.startswith(("http://", "https://")):
        from .index.elastic import ElasticBackend

        return ElasticBackend(text, **options)
    from .index.embedded import EmbeddedBackend

    return EmbeddedBackend(target, **options)
