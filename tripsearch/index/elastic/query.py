"""Compile a search into the Elasticsearch requests that decide what the shards can decide.

A search becomes a :class:`SearchPlan` of up to two requests, each a filter
that Lucene answers with the fields of :mod:`~tripsearch.index.elastic.encoding`:

``candidates``
    The trips posted on the query's days (one more when a ``departure_time``
    window reaches across midnight) whose route may match: a corridor
    cell near ``from`` and one near ``to`` (the embedded index's postings),
    a cell near ``from`` and later a cell near ``to`` along the route
    (``span_near`` in order, or one cell near both), a route point within
    ``r + ROUTE_POINT_KM / 2`` of each place, published and not deleted;
    plus every filter that no requested facet leaves out. No match is ever
    left out (docs/elasticsearch.md proves each clause); the shared exact
    rules decide on what comes back.

``band`` (only with the ``dates`` facet)
    The ``dates`` facet counts matches on the three days either side of
    the query's days too, with every filter but the date. The shards count the trips that
    certainly match on such a day (aggregation ``certain_dates`` of the
    candidates request, :func:`certain_clauses`): a route point within
    ``r - GEO_TOLERANCE_KM`` of each place, no cell near ``to`` before a
    cell near ``from`` and no cell near both (so the pickup comes first),
    every sample of the route near ``from`` on that day (so the pickup is),
    the time window holding every minute of a one-day trip when there is a
    window, and every other filter. The band request fetches the rest of
    those days' candidates, which the exact rules decide: the counts are the
    shards' plus the band's, exactly. Around a ``departure_time`` nothing
    is certain (a pickup counts on the day whose departure_time is nearest,
    not on its local day): the band fetches every candidate of those days.

>>> from tripsearch.query.model import parse_query
>>> q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": []})
>>> plan = compile_search(q, page_size=1000)
>>> [next(iter(f)) for f in plan.candidates["query"]["bool"]["filter"]], plan.band
(['terms', 'terms', 'span_near', 'geo_distance', 'geo_distance', 'term', 'term', 'term', 'range'], None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...facets.counts import FACET_FILTER
from ...model import OPTION_NAMES
from ...query.model import Query, facet_days, local_days_of
from ..cells import disk_to_cells
from .encoding import GEO_TOLERANCE_KM, ROUTE_POINT_KM, cell_day_keywords, cells_to_keywords, span_cover

__all__ = [
    "SearchPlan",
    "compile_search",
    "certain_clauses",
    "CANDIDATE_FIELDS",
    "CERTAIN_DATES",
    "DEFAULT_PAGE_SIZE",
    "Clause",
    "Near",
    "near_cells",
    "order_clause",
    "span_clause",
    "attribute_clauses",
    "time_window",
    "bool_clause",
    "request",
]

DEFAULT_PAGE_SIZE = 5000
# What a candidate brings back: its id and the trip as one compact row of columns, both from doc values.
# No stored field is read (not even _id): loading stored fields costs more than the rest of a search.
CANDIDATE_FIELDS = ("id", "compact")
CERTAIN_DATES = "certain_dates"
# Lucene's slop is an int; "any distance along the route".
_ANY_SLOP = 2**31 - 1
_MINUTES_PER_DAY = 24 * 60
# Filters the shards apply exactly, by their names in FACET_FILTER (the date is applied by the day clauses).
_ATTRIBUTE_FILTERS = ("seats", "price", "options", "rating")

Clause = dict[str, Any]


@dataclass(frozen=True)
class SearchPlan:
    """The requests of one search: its candidates (with the ``certain_dates`` aggregation), and the band of the dates facet."""

    candidates: dict[str, Any]
    band: dict[str, Any] | None


@dataclass(frozen=True)
class Near:
    """The cells near ``from`` and ``to`` a query uses: the embedded index's covers, and the wider ones of the route sentence."""

    from_cells: list[str]
    to_cells: list[str]
    from_span: list[str]
    to_span: list[str]
    shared: list[str]  # in both wider covers


def near_cells(query: Query) -> Near:
    from_span = span_cover(query.from_point[0], query.from_point[1], query.from_radius_km)
    to_span = span_cover(query.to_point[0], query.to_point[1], query.to_radius_km)
    return Near(
        from_cells=cells_to_keywords(disk_to_cells(query.from_point[0], query.from_point[1], query.from_radius_km)),
        to_cells=cells_to_keywords(disk_to_cells(query.to_point[0], query.to_point[1], query.to_radius_km)),
        from_span=cells_to_keywords(from_span),
        to_span=cells_to_keywords(to_span),
        shared=cells_to_keywords(np.intersect1d(from_span, to_span)),
    )


def compile_search(query: Query, page_size: int = DEFAULT_PAGE_SIZE) -> SearchPlan:
    """Return the requests of ``query`` (first pages, sorted by ``_doc``; more pages add a point in time)."""
    near = near_cells(query)
    ignored = {FACET_FILTER[name] for name in query.facets} - {None}
    pushed = [name for name in _ATTRIBUTE_FILTERS if name not in ignored]
    # The local days the query's search days overlap (one more with a departure_time off noon: its days start off midnight).
    days = local_days_of(query, query.day, query.last_day)
    filters = _corridor(query, near, days) + attribute_clauses(query, pushed)
    must_not = [] if "time" in ignored else _time_fails(query)
    candidates = request(filters, must_not, page_size)
    if "dates" not in query.facets:
        return SearchPlan(candidates, None)
    others = [d for d in local_days_of(query, *facet_days(query)) if d not in days]
    certain = certain_clauses(query, near)
    band_filters = _corridor(query, near, others) + attribute_clauses(query, list(_ATTRIBUTE_FILTERS))
    # Trips posted on the query's days are candidates already, decided exactly for every day they span.
    posted_on_date: Clause = {"terms": {"local_days": days}} if len(days) > 1 else {"term": {"local_days": days[0]}}
    band_not: list[Clause] = [posted_on_date, *_time_fails(query)]
    if certain is not None:
        on_day = {str(day): _picks_up_on(near, day) for day in others}
        band_not.append({"bool": {"filter": [certain], "should": list(on_day.values()), "minimum_should_match": 1}})
        candidates["aggs"] = {
            CERTAIN_DATES: {
                "global": {},
                "aggs": {
                    "certain": {
                        "filter": bool_clause(band_filters + [certain], [posted_on_date]),
                        "aggs": {"days": {"filters": {"filters": on_day}}},
                    }
                },
            }
        }
    return SearchPlan(candidates, request(band_filters, band_not, page_size))


def certain_clauses(query: Query, near: Near | None = None) -> Clause | None:
    """Return the clause true of a candidate that matches for sure, on whatever day it picks up (None: none is sure).

    Sure: a route point within ``r - GEO_TOLERANCE_KM`` of each place, no
    cell near ``to`` before a cell near ``from`` and none near both (the
    pickup comes first), and the time window holding every minute of the
    trip. Every other filter, and the day, are left to the caller.
    """
    if query.departure_time is not None:
        return None  # a pickup then counts on its search day, which its samples' local days do not tell
    near = near or near_cells(query)
    inner_from = query.from_radius_km - GEO_TOLERANCE_KM
    inner_to = query.to_radius_km - GEO_TOLERANCE_KM
    if inner_from < 0 or inner_to < 0:
        return None
    must_not = [span_clause(near.to_span, near.from_span)]
    if near.shared:
        must_not.append({"terms": {"route_cells": near.shared}})
    filters = [_distance(query.from_point, inner_from), _distance(query.to_point, inner_to), *_time_holds(query)]
    return {"bool": {"filter": filters, "must_not": must_not}}


def _picks_up_on(near: Near, day: int) -> Clause:
    """Return the clause of a trip whose every sample near ``from`` is on local ``day``, so its pickup is too.

    A trip spans at most two days here, so its samples' days are among
    day - 1, day and day + 1.
    """
    return {
        "bool": {
            "filter": [{"terms": {"route_cell_days": cell_day_keywords(near.from_span, day)}}, {"range": {"local_day_span": {"lte": 1}}}],
            "must_not": [{"terms": {"route_cell_days": cell_day_keywords(near.from_span, day - 1) + cell_day_keywords(near.from_span, day + 1)}}],
        }
    }


def request(filters: list[Clause], must_not: list[Clause], page_size: int) -> dict[str, Any]:
    query = bool_clause(filters, must_not)
    return {"query": query, "sort": ["_doc"], "size": page_size, "track_total_hits": True, "stored_fields": "_none_", "docvalue_fields": list(CANDIDATE_FIELDS)}


def bool_clause(filters: list[Clause], must_not: list[Clause] | None = None) -> Clause:
    body: dict[str, Any] = {"filter": filters}
    if must_not:
        body["must_not"] = must_not
    return {"bool": body}


def _corridor(query: Query, near: Near, days: list[int]) -> list[Clause]:
    """Return the clauses every trip that may match on one of ``days`` (its posting days) passes."""
    slack = ROUTE_POINT_KM / 2 + GEO_TOLERANCE_KM
    return [
        {"terms": {"corridor_cells": near.from_cells}},
        {"terms": {"corridor_cells": near.to_cells}},
        order_clause(near),
        _distance(query.from_point, query.from_radius_km + slack),
        _distance(query.to_point, query.to_radius_km + slack),
        {"terms": {"local_days": days}} if len(days) > 1 else {"term": {"local_days": days[0]}},
        {"term": {"status": "published"}},
        {"term": {"deleted": False}},
    ]


def order_clause(near: Near) -> Clause:
    """Return the clause every trip whose pickup comes before its dropoff passes: a cell near ``from``, later one near ``to``, or one near both."""
    in_order = span_clause(near.from_span, near.to_span)
    if not near.shared:
        return in_order
    return {"bool": {"should": [in_order, {"terms": {"route_cells": near.shared}}], "minimum_should_match": 1}}


def span_clause(first: list[str], then: list[str]) -> Clause:
    """Return "a token of ``first``, and later one of ``then``" on the route sentence."""
    return {
        "span_near": {
            "clauses": [{"span_or": {"clauses": [{"span_term": {"route_cells": c}} for c in cells]}} for cells in (first, then)],
            "slop": _ANY_SLOP,
            "in_order": True,
        }
    }


def _distance(point: tuple[float, float], radius_km: float) -> Clause:
    return {"geo_distance": {"distance": f"{radius_km * 1000:.3f}m", "route_points": {"lat": point[0], "lon": point[1]}}}


def attribute_clauses(query: Query, names: list[str]) -> list[Clause]:
    """Return the clauses of the filters ``names`` the query sets (the shared rules, as range and term queries)."""
    out: list[Clause] = []
    if "seats" in names:
        out.append({"range": {"seats_available": {"gte": query.seats}}})
    if "price" in names and query.max_price is not None:
        out.append({"range": {"price": {"lte": query.max_price}}})
    if "options" in names:
        out.extend({"term": {f"options.{name}": True}} for name in OPTION_NAMES if name in query.options)
    if "rating" in names and query.min_rating is not None:
        out.append({"range": {"driver_rating": {"gte": query.min_rating}}})  # an unrated driver has no value: fails
    return out


def time_window(query: Query) -> tuple[int, int] | None:
    """Return the window ``time_from``..``time_to`` of ``query`` in minutes (None: no window; a search around ``departure_time`` has none)."""
    if query.time_from is None and query.time_to is None:
        return None
    return (0 if query.time_from is None else query.time_from, _MINUTES_PER_DAY - 1 if query.time_to is None else query.time_to)


def _time_holds(query: Query) -> list[Clause]:
    """Return the clauses of a one-day trip whose every minute from departure to arrival is in the time window."""
    window = time_window(query)
    if window is None:
        return []
    lo, hi = window
    one_day: Clause = {"term": {"local_day_span": 0}}
    if lo <= hi:
        return [one_day, {"range": {"local_minute_first": {"gte": lo}}}, {"range": {"local_minute_last": {"lte": hi}}}]
    # Across midnight: [lo, 23:59] or [00:00, hi]; a one-day trip's minutes never wrap.
    return [one_day, {"bool": {"should": [{"range": {"local_minute_first": {"gte": lo}}}, {"range": {"local_minute_last": {"lte": hi}}}], "minimum_should_match": 1}}]


def _time_fails(query: Query) -> list[Clause]:
    """Return the clause of a one-day trip with no minute from departure to arrival in the time window (none without a window)."""
    window = time_window(query)
    if window is None:
        return []
    lo, hi = window
    if lo <= hi:
        outside: Clause = {"bool": {"should": [{"range": {"local_minute_last": {"lt": lo}}}, {"range": {"local_minute_first": {"gt": hi}}}], "minimum_should_match": 1}}
    else:
        outside = {"bool": {"filter": [{"range": {"local_minute_first": {"gt": hi}}}, {"range": {"local_minute_last": {"lt": lo}}}]}}
    return [{"bool": {"filter": [{"term": {"local_day_span": 0}}, outside]}}]
