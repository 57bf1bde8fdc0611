"""From candidates to a result page: the part of a search every backend shares.

A backend proposes candidate rows (a superset of the matches) and a way to
fetch trip documents; :func:`execute` applies the exact rules, ranks, cuts
the page, builds the hits and computes the facets.
"""

from __future__ import annotations

import datetime as dt
import time
from functools import lru_cache
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
from numpy.typing import NDArray

from ..facets import FacetTallies, render_facets, tally_evaluation
from ..backend import Hit, Point, SearchResult
from ..core.columns import TripColumns
from ..data.places import Place, nearest_places
from ..errors import InvalidTrip
from ..geo import ClosestPoints
from ..model import Trip, parse_trip
from ..occurrences import occurrence_document, occurrence_of, split_key
from ..query.matching import Ends, Evaluation, SegmentWindows, evaluate
from ..query.model import Query, encode_cursor, facet_days, local_days_of
from ..query.ranking import score_of, select_page, sort_keys

__all__ = ["execute", "sorted_page", "PageRows", "candidate_days", "DocFetcher", "hit_points"]

# Documents by id: decoded, or the JSON bytes a backend stored (see ``Hit.source``).
DocFetcher = Callable[[list[str]], Mapping[str, dict[str, Any] | bytes]]


def candidate_days(query: Query) -> NDArray[np.int64]:
    """Return the local days whose trips a search must look at: those its search days (:func:`facet_days` with the dates facet) overlap."""
    first, last = facet_days(query) if "dates" in query.facets else (query.day, query.last_day)
    return np.array(local_days_of(query, first, last), dtype=np.int64)


class _Ids(Sequence[str]):
    """The ids of some rows, looked up only when asked (ties are rare)."""

    def __init__(self, cols: TripColumns, rows: NDArray[np.int64]) -> None:
        self._ids = cols.ids
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, pos: int) -> str:  # type: ignore[override]
        return self._ids[int(self._rows[pos])]


def execute(
    query: Query,
    cols: TripColumns,
    rows: NDArray[np.int64],
    fetch_docs: DocFetcher,
    started: float | None = None,
    windows: SegmentWindows | None = None,
    certain_dates: Mapping[int, int] | None = None,
    ends: Ends | None = None,
) -> SearchResult:
    """Return the result page of ``query`` over the candidate ``rows`` of ``cols`` (see :func:`evaluate` for ``windows`` and ``ends``).

    ``certain_dates`` counts, per local day, matches of the ``dates`` facet
    that a backend decided without proposing them as candidates (the
    Elasticsearch shards' sure matches on the days around the date).
    """
    started = time.perf_counter() if started is None else started
    ev = evaluate(cols, rows, query, windows, ends)
    matched = np.flatnonzero(ev.matched())
    match_rows = ev.rows[matched]
    walk = ev.pickup.distance_km[matched] + ev.dropoff.distance_km[matched]
    primary, secondary = sort_keys(query, walk, ev.pickup.distance_km[matched], ev.pickup_time[matched], cols.offset_s[match_rows], cols.price[match_rows])
    page, more = select_page(primary, secondary, _Ids(cols, match_rows), query.after, query.limit)

    at = matched[page]
    ids = [cols.ids[row] for row in match_rows[page].tolist()]
    hits = _hits(
        query, ids, _at(ev.pickup, at), _at(ev.dropoff, at), ev.pickup_time[at], ev.dropoff_time[at], cols.offset_s[ev.rows[at]], cols.price[ev.rows[at]], fetch_docs
    )
    next_cursor = encode_cursor(query, hits[-1].sort) if more and hits else None
    facets = _facets(ev, cols, query, certain_dates) if query.facets else {}
    return SearchResult(
        total=len(matched),
        trips=hits,
        facets=facets,
        next_cursor=next_cursor,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
        candidates=len(rows),
    )


class PageRows(NamedTuple):
    """Hits a backend found and sorted itself, in key order: their pickups and dropoffs with times, UTC offsets and prices."""

    ids: list[str]
    pickup: ClosestPoints
    dropoff: ClosestPoints
    pickup_time: NDArray[np.int64]
    dropoff_time: NDArray[np.int64]
    offset_s: NDArray[np.int64]
    price: NDArray[np.float64]


def sorted_page(query: Query, rows: PageRows, total: int, more: bool, tallies: FacetTallies, fetch_docs: DocFetcher, started: float) -> SearchResult:
    """Return the result page of ``query`` from hits a backend sorted and counted itself.

    ``rows`` are the first hits after the cursor in key order (the shared
    keys of :mod:`~tripsearch.query.ranking`), the page and possibly more;
    ``more`` says whether a page follows; ``total`` and ``tallies`` count
    every match.
    """
    n = min(len(rows.ids), query.limit)
    at = np.arange(n)
    hits = _hits(query, rows.ids[:n], _at(rows.pickup, at), _at(rows.dropoff, at), rows.pickup_time[:n], rows.dropoff_time[:n], rows.offset_s[:n], rows.price[:n], fetch_docs)
    next_cursor = encode_cursor(query, hits[-1].sort) if more and hits else None
    return SearchResult(
        total=total,
        trips=hits,
        facets=render_facets(tallies, query) if query.facets else {},
        next_cursor=next_cursor,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
        candidates=len(rows.ids),
    )


def _at(points: ClosestPoints, at: NDArray[np.int64]) -> ClosestPoints:
    return ClosestPoints(*(part[at] for part in points))


def _hits(
    query: Query,
    ids: list[str],
    pickup: ClosestPoints,
    dropoff: ClosestPoints,
    pickup_time: NDArray[np.int64],
    dropoff_time: NDArray[np.int64],
    offset_s: NDArray[np.integer[Any]],
    price: NDArray[np.float64],
    fetch_docs: DocFetcher,
) -> list[Hit]:
    """Return the hits of a page, in order, with their documents and sort keys."""
    keys = [split_key(key) for key in ids]
    docs = fetch_docs(list(dict.fromkeys(tid for tid, _ in keys))) if ids else {}
    walk = pickup.distance_km + dropoff.distance_km
    primary, secondary = sort_keys(query, walk, pickup.distance_km, pickup_time, offset_s, price)
    # The page's values as Python lists, read once: a few tens of hits, each a dozen values.
    offsets = offset_s.tolist()
    pickups = hit_points(pickup, pickup_time, offsets)
    dropoffs = hit_points(dropoff, dropoff_time, offsets)
    regular: dict[str, Trip | None] = {}
    return [
        Hit(
            id=tid,
            score=score_of(walk_km),
            pickup=p,
            dropoff=d,
            source=_source(tid, docs.get(tid, {"id": tid}), date, regular),
            sort=(primary_key, secondary_key, key),
            occurrence=date,
        )
        for key, (tid, date), walk_km, primary_key, secondary_key, p, d in zip(ids, keys, walk.tolist(), primary.tolist(), secondary.tolist(), pickups, dropoffs)
    ]


def _source(trip_id: str, doc: dict[str, Any] | bytes, date: str | None, regular: dict[str, Trip | None]) -> dict[str, Any] | bytes:
    """Return the document a hit shows: the stored one, or for an occurrence that date's (see :func:`occurrence_document`).

    ``regular`` keeps the page's regular trips as read, so one with several
    dates on the page is read once. A trip written again between the index
    view and the read of its document may no longer run on the date (or be
    gone): the hit then shows what is stored, as a one-off trip's hit does.
    """
    if date is None:
        return doc
    if trip_id not in regular:
        try:
            regular[trip_id] = parse_trip(doc)
        except InvalidTrip:  # the placeholder of a trip deleted meanwhile
            regular[trip_id] = None
    trip = regular[trip_id]
    day = dt.date.fromisoformat(date)
    if trip is None or trip.schedule is None or occurrence_of(trip, day) is None:
        return doc
    return occurrence_document(trip, day)


def _facets(ev: Evaluation, cols: TripColumns, query: Query, certain_dates: Mapping[int, int] | None) -> dict[str, Any]:
    """Return the facets of the evaluated candidates, plus the dates a backend counted."""
    tallies = tally_evaluation(ev, cols, query)
    if certain_dates:
        first = facet_days(query)[0]
        for day, count in certain_dates.items():
            if 0 <= day - first < len(tallies.dates):
                tallies.dates[day - first] += count
    return render_facets(tallies, query)


def hit_points(points: ClosestPoints, times: NDArray[np.int64], offsets_s: list[int]) -> list[Point]:
    """Return pickup or dropoff points as search hits report them, with their times in the trips' UTC offsets."""
    return [Point(*fields) for fields in _point_fields(points, times, offsets_s)]


def hit_point_dicts(points: ClosestPoints, times: NDArray[np.int64], offsets_s: list[int]) -> list[dict[str, Any]]:
    """Return what :func:`hit_points` gives, as :meth:`Point.to_dict` says it, without making the points (what alert match events say)."""
    return [Point.dict_of(*fields) for fields in _point_fields(points, times, offsets_s)]


def _point_fields(points: ClosestPoints, times: NDArray[np.int64], offsets_s: list[int]) -> zip[tuple[float, float, float, str, Place]]:
    """Return each point's fields as a :class:`Point` holds them: rounded, its time in its trip's UTC offset, and its nearest place."""
    local = np.datetime_as_string((times + np.asarray(offsets_s, dtype=np.int64)).astype("datetime64[s]")).tolist()
    lats = [round(lat, 6) for lat in points.lat.tolist()]
    lons = [round(lon, 6) for lon in points.lon.tolist()]
    distances = [round(distance_km, 3) for distance_km in points.distance_km.tolist()]
    walls = [wall + _utc_offset(offset_s) for wall, offset_s in zip(local, offsets_s)]
    return zip(lats, lons, distances, walls, nearest_places(lats, lons))


@lru_cache(maxsize=1024)
def _utc_offset(offset_s: int) -> str:
    """Return the ISO 8601 suffix of a UTC offset, as ``datetime.isoformat`` writes it ("+05:30", "-03:00:30")."""
    return dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=offset_s))).isoformat()[len("2000-01-01T00:00:00") :]
