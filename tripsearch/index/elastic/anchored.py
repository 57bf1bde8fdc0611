"""Searches between two anchors: the page, the total and the facets from the shards, nothing to decide here.

When ``from`` and ``to`` are both anchor places
(:mod:`~tripsearch.index.elastic.anchors`) and the radii at most
:data:`~tripsearch.index.elastic.anchors.ANCHOR_KM`, every value the
matching rules compute for a trip is in its document: the distance of each
place to the route, the pickup time and its local day and minute, the
pickup and dropoff points, and whether the pickup at one place comes before
the dropoff at the other (``anchor_pairs``). So a search is one request
whose every clause is exact:

- the query: ``from``'s entry within its radius (on the query's days, or the
  days of the dates facet), ``to``'s within its radius, the pair in order,
  published, not deleted;
- a ``post_filter`` with every filter, so that the aggregations can leave
  out a facet's own: the date and the time window on ``from``'s entry, the
  attributes on the trip; around a ``departure_time`` the days are search
  days turned off midnight (:meth:`~tripsearch.query.model.Query.time_rule`):
  the local days they cover whole and a window of minutes on the others,
  and the window is the same on every local day
  (:meth:`~tripsearch.query.model.Query.local_window`);
- the page sorted by the shared sort keys (:mod:`tripsearch.query.ranking`)
  after the cursor's (``search_after``), with an exact total
  (``track_total_hits``); the first page is exactly the page (the total says
  whether more follow), a cursor page one hit more (:func:`page_size`);
- one aggregation per facet, a ``filter`` with every filter but the facet's
  own, read back into :class:`~tripsearch.facets.FacetTallies` (the
  distinct prices and points, so that sums, buckets and cells are computed
  by the shared code).

Nothing is uncertain: no trip beyond the page is fetched, but for the one
hit after a cursor page that says whether another page follows. A hit brings its
stored trip and its entries (from doc values): the pickup and dropoff
as the shared rules compute them, which :func:`read_page` hands to the
shared page builder (:func:`~tripsearch.index.execute.sorted_page`).

>>> from tripsearch.query.model import parse_query
>>> q = parse_query({"from": [48.85341, 2.3488], "to": [45.74906, 4.84789], "date": "2026-12-01", "facets": ["seats_available", "options"]})
>>> body = compile_anchored(q, "3958", "3121")
>>> body["query"]["bool"]["filter"][3], body["sort"][0]["anchors.km"]["mode"], body["size"], sorted(body["aggs"])
({'term': {'anchor_pairs': '3958>3121'}}, 'sum', 20, ['all', 'but_seats'])
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import numpy as np

from ...facets import FACET_FILTER, RATING_THRESHOLDS, FacetTallies
from ...model import OPTION_NAMES
from ...geo import ClosestPoints
from ..execute import PageRows
from ...query.matching import FILTERS
from ...query.model import Query, facet_days, local_days_of
from ..anchors import ANCHOR_KM
from .anchors import RADIUS_CLASSES, anchor_pair, place_value, value_entry
from .query import Clause, attribute_clauses, bool_clause

__all__ = ["compile_anchored", "page_size", "has_more", "read_tallies", "read_page", "InexactAggregation", "MAX_TERMS", "HIT_FIELDS"]

# What a hit brings back, all from doc values (loading the source costs more than the rest of the fetch, and
# inner hits a nested query per hit): its id, UTC offset and price, the stored trip as JSON bytes, and its
# anchor entries.
HIT_FIELDS = ("id", "utc_offset_s", "price", "trip_json", "anchor_values")
# Distinct values a terms aggregation returns (prices, pickup points): far more than any corridor has in a week.
MAX_TERMS = 10_000
# The counts each facet reads, and the entry they are counted over (if any); the two time facets read one.
_COUNTS: dict[str, tuple[str, str | None]] = {
    "departure_hour": ("hours", "from"),
    "time_of_day": ("hours", "from"),
    "dates": ("dates", "from"),
    "pickup_cells": ("pickup_cells", "from"),
    "dropoff_cells": ("dropoff_cells", "to"),
    "price": ("price", None),
    "options": ("options", None),
    "seats_available": ("seats_available", None),
    "driver_rating": ("driver_rating", None),
}
_MINUTES_PER_DAY = 24 * 60
# The place@value field (anchors.BY_PLACE) counts of an entry are read from.
_BY_PLACE_FIELD = {"hours": "anchor_hours", "dates": "anchor_days", "pickup_cells": "anchor_pickups", "dropoff_cells": "anchor_dropoffs"}


class InexactAggregation(Exception):
    """An aggregation left values out (more distinct values than :data:`MAX_TERMS`)."""


def compile_anchored(query: Query, from_key: str, to_key: str) -> dict[str, Any]:
    """Return the request of ``query`` from anchor ``from_key`` to anchor ``to_key`` (radii at most ANCHOR_KM)."""
    assert query.from_radius_km <= ANCHOR_KM and query.to_radius_km <= ANCHOR_KM and from_key != to_key
    days = _query_days(query)
    base: list[Clause] = [
        _days(from_key, days),
        _within(from_key, query.from_radius_km),
        _within(to_key, query.to_radius_km),
        {"term": {"anchor_pairs": anchor_pair(from_key, to_key)}},
        {"term": {"status": "published"}},
        {"term": {"deleted": False}},
    ]
    by_filter = _filter_clauses(query, from_key)
    body: dict[str, Any] = {
        "query": bool_clause(base),
        "post_filter": bool_clause([c for name in FILTERS for c in by_filter[name]]),
        "sort": _sort(query, from_key, to_key),
        "size": page_size(query),
        "track_total_hits": True,
        "stored_fields": "_none_",  # not even _id: loading stored fields costs more than the rest of the fetch
        "docvalue_fields": list(HIT_FIELDS),
    }
    if query.after is not None:
        body["search_after"] = _search_after(query)
    aggs = _facet_aggs(query, from_key, to_key, by_filter)
    if aggs:
        body["aggs"] = aggs
    return body


def page_size(query: Query) -> int:
    """Return how many hits the request of ``query`` asks for: the page, and one more after a cursor.

    On the first page the exact total, from the same reader as the hits,
    says whether more follow. After a cursor it cannot: the total counts the
    trips before the cursor too, and writes since the page before may have
    moved them; the one hit after the page answers, whatever happened.
    """
    return query.limit if query.after is None else query.limit + 1


def has_more(query: Query, hits: int, total: int) -> bool:
    """Return whether a page that came back with ``hits`` hits (of :func:`page_size`) has a page after it."""
    return total > hits if query.after is None else hits > query.limit


def _entry(key: str, *clauses: Clause | None) -> Clause:
    """Return "the trip's entry for the anchor ``key`` passes every clause" (one entry per place)."""
    filters = [{"term": {"anchors.place": key}}, *(c for c in clauses if c is not None)]
    return {"nested": {"path": "anchors", "query": {"bool": {"filter": filters}}}}


def _within(key: str, radius_km: float) -> Clause:
    """Return "the trip's entry for the anchor ``key`` is within ``radius_km`` of the place": a term for a radius class, else a nested join."""
    if radius_km in RADIUS_CLASSES:
        return {"term": {"anchor_radii": place_value(key, float(radius_km))}}
    return _entry(key, {"range": {"anchors.km": {"lte": radius_km}}})


def _query_days(query: Query) -> list[int]:
    """Return the local days the query's request covers: those of the query's days, or of every day of the dates facet."""
    first, last = facet_days(query) if "dates" in query.facets else (query.day, query.last_day)
    return local_days_of(query, first, last)


def _search_days(key: str, query: Query, first: int, last: int) -> Clause:
    """Return "the trip's entry for the anchor ``key`` picks up on the search days ``first .. last``" (local days but around a departure_time).

    Search days turned off midnight start and end inside a local day: the
    local days they cover whole, and a window of minutes on the others.
    """
    shift = query.time_rule().shift
    start, end = first * _MINUTES_PER_DAY + shift, last * _MINUTES_PER_DAY + shift + _MINUTES_PER_DAY - 1  # local minutes since 1970
    whole = [d for d in local_days_of(query, first, last) if start <= d * _MINUTES_PER_DAY and (d + 1) * _MINUTES_PER_DAY - 1 <= end]
    parts = [_days(key, whole)] if whole else []
    for d in sorted({start // _MINUTES_PER_DAY, end // _MINUTES_PER_DAY} - set(whole)):
        minutes = {"gte": max(start - d * _MINUTES_PER_DAY, 0), "lte": min(end - d * _MINUTES_PER_DAY, _MINUTES_PER_DAY - 1)}
        parts.append(bool_clause([_days(key, [d]), _entry(key, {"range": {"anchors.minute": minutes}})]))
    return parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}


def _days(key: str, days: list[int]) -> Clause:
    """Return "the trip's entry for the anchor ``key`` picks up on one of ``days``" (one entry per place, so no nested join)."""
    # A disjunction of terms, not a terms query: that one gathers every doc of every term first.
    terms = [{"term": {"anchor_days": place_value(key, d)}} for d in days]
    return terms[0] if len(terms) == 1 else {"bool": {"should": terms, "minimum_should_match": 1}}


def _filter_clauses(query: Query, from_key: str) -> dict[str, list[Clause]]:
    """Return the clauses of each filter of ``query`` (empty when it does not set it), by name (:data:`~tripsearch.query.matching.FILTERS`)."""
    window = query.local_window()
    time: list[Clause] = []
    if window is not None:
        lo, hi = window
        minutes: Clause = (
            {"range": {"anchors.minute": {"gte": lo, "lte": hi}}}
            if lo <= hi
            else {"bool": {"should": [{"range": {"anchors.minute": {"gte": lo}}}, {"range": {"anchors.minute": {"lte": hi}}}], "minimum_should_match": 1}}
        )
        time = [_entry(from_key, minutes)]
    # Without the dates facet, the query itself holds the date.
    if query.departure_time is not None:
        date = [_search_days(from_key, query, query.day, query.last_day)]
    else:
        date = [_days(from_key, list(range(query.day, query.last_day + 1)))] if "dates" in query.facets else []
    clauses = {"date": date, "time": time}
    for name in ("price", "options", "rating", "seats"):
        clauses[name] = attribute_clauses(query, [name])
    return clauses


def _scope(name: str, by_filter: dict[str, list[Clause]]) -> str:
    """Return the name of the aggregation scope of facet ``name``: every filter the query sets but the facet's own.

    Facets whose own filter is not set share the scope of every filter
    (``all``), so a search with a date and nothing else counts in two scopes.
    """
    own = FACET_FILTER[name]
    return f"but_{own}" if own is not None and by_filter[own] else "all"


def _facet_aggs(query: Query, from_key: str, to_key: str, by_filter: dict[str, list[Clause]]) -> dict[str, Any]:
    """Return the aggregations of the facets ``query`` asks for: a ``filter`` per scope, then each facet's counts."""
    keys = {"from": from_key, "to": to_key}
    scopes: dict[str, dict[str, Any]] = {}
    for name in query.facets:
        counts, entry = _COUNTS[name]
        scope = _scope(name, by_filter)
        if scope not in scopes:
            left_out = FACET_FILTER[name] if scope != "all" else None
            scopes[scope] = {"filter": bool_clause([c for f in FILTERS if f != left_out for c in by_filter[f]]), "aggs": {}}
        scopes[scope]["aggs"][counts] = _counts(query, counts, None if entry is None else keys[entry])
    return scopes


def _counts(query: Query, counts: str, key: str | None) -> dict[str, Any]:
    """Return the aggregation of one kind of counts (of the entries of anchor ``key`` for the counts of an entry).

    A trip has one entry per place, so counting a place's values of a
    :data:`~tripsearch.index.elastic.anchors.BY_PLACE` field counts trips.
    """
    if key is not None:
        terms: dict[str, Any] = {"field": _BY_PLACE_FIELD[counts]}
        if counts == "hours":
            terms |= {"include": [place_value(key, h) for h in range(24)], "size": 24}
        elif counts == "dates":
            if query.departure_time is not None:
                first, last = facet_days(query)
                return {"filters": {"filters": {str(d): _search_days(key, query, d, d) for d in range(first, last + 1)}}}
            days = _query_days(query)
            terms |= {"include": [place_value(key, d) for d in days], "size": len(days)}
        else:
            # The place's points, by a prefix: the accepted values are read off the terms dictionary once.
            terms |= {"include": place_value(key, ".*"), "size": MAX_TERMS}
        return {"terms": terms}
    if counts == "price":
        return {"terms": {"field": "currency", "size": MAX_TERMS}, "aggs": {"amounts": {"terms": {"field": "price", "size": MAX_TERMS}}}}
    if counts == "options":
        return {"filters": {"filters": {name: {"term": {f"options.{name}": True}} for name in OPTION_NAMES}}}
    if counts == "seats_available":
        return {"terms": {"field": "seats_available", "size": MAX_TERMS}}
    # driver_rating: at or above each threshold (a range's "from" is included); all trips are the scope's count
    return {"range": {"field": "driver_rating", "ranges": [{"key": str(t), "from": t} for t in RATING_THRESHOLDS]}}


def _sort(query: Query, from_key: str, to_key: str) -> list[dict[str, Any]]:
    """Return the sort of the shared keys (tripsearch.query.ranking), over trips that have both entries."""

    def entry(field: str, keys: list[str], mode: str) -> dict[str, Any]:
        nested_filter = {"term": {"anchors.place": keys[0]}} if len(keys) == 1 else {"terms": {"anchors.place": keys}}
        return {f"anchors.{field}": {"order": "asc", "mode": mode, "nested": {"path": "anchors", "filter": nested_filter}}}

    pickup_time = entry("time", [from_key], "min")
    by_id = {"id": {"order": "asc"}}
    if query.sort == "relevance":
        # Walking distance = from's distance + to's (the sum of two doubles, in either order, is one double).
        return [entry("km", [from_key, to_key], "sum"), pickup_time, by_id]
    if query.sort == "departure":
        return [pickup_time, by_id]
    if query.sort == "price":
        return [{"price": {"order": "asc"}}, pickup_time, by_id]
    return [entry("km", [from_key], "min"), pickup_time, by_id]


def _search_after(query: Query) -> list[Any]:
    """Return the cursor's key as the sort values of :func:`_sort`."""
    assert query.after is not None
    primary, secondary, tid = float(query.after[0]), int(query.after[1]), str(query.after[2])
    return [secondary, tid] if query.sort == "departure" else [primary, secondary, tid]


def read_tallies(query: Query, from_key: str, aggs: dict[str, Any]) -> FacetTallies:
    """Return the facet tallies of the matches from the aggregations of :func:`compile_anchored` (:class:`InexactAggregation` if one left values out)."""
    by_filter = _filter_clauses(query, from_key)
    t = FacetTallies.empty(query)
    read: set[str] = set()
    for name in query.facets:
        counts, entry = _COUNTS[name]
        if counts in read:
            continue
        read.add(counts)
        scope = aggs[_scope(name, by_filter)]
        found = scope[counts]
        if counts == "hours":
            for b in found["buckets"]:
                t.hours[int(_value(b["key"]))] += b["doc_count"]
        elif counts == "dates":
            first = facet_days(query)[0]
            if query.departure_time is not None:
                for day, b in found["buckets"].items():
                    t.dates[int(day) - first] += b["doc_count"]
            else:
                for b in _exact(found):
                    t.dates[int(_value(b["key"])) - first] += b["doc_count"]
        elif counts == "pickup_cells":
            t.pickups.update({_point(_value(b["key"])): b["doc_count"] for b in _exact(found)})
        elif counts == "dropoff_cells":
            t.dropoffs.update({_point(_value(b["key"])): b["doc_count"] for b in _exact(found)})
        elif counts == "price":
            for b in _exact(found):
                amounts = t.prices.setdefault(b["key"], Counter())
                for a in _exact(b["amounts"]):
                    amounts[float(a["key"])] += a["doc_count"]
        elif counts == "options":
            t.options[:] = [found["buckets"][o]["doc_count"] for o in OPTION_NAMES]
        elif counts == "seats_available":
            t.seats = {int(b["key"]): b["doc_count"] for b in _exact(found)}
        elif counts == "driver_rating":
            at_least = {b["key"]: b["doc_count"] for b in found["buckets"]}
            t.ratings[:] = [at_least[str(th)] for th in RATING_THRESHOLDS] + [scope["doc_count"]]
    return t


def _value(key: str) -> str:
    """Return the value of a :func:`~tripsearch.index.elastic.anchors.place_value` keyword."""
    return key.split("@", 1)[1]


def _exact(terms: dict[str, Any]) -> list[dict[str, Any]]:
    if terms.get("sum_other_doc_count", 0) or terms.get("doc_count_error_upper_bound", 0):
        raise InexactAggregation("more distinct values than a terms aggregation returns")
    return list(terms["buckets"])


def _point(key: str) -> tuple[float, float]:
    lat, lon = key.split(",")
    return float(lat), float(lon)


def read_page(hits: list[dict[str, Any]], from_key: str, to_key: str) -> tuple[PageRows, dict[str, bytes]]:
    """Return the hits of an answer as page rows in their order (from their entries for ``from_key`` and ``to_key``), and the stored trips (JSON bytes) of the punctual ones by id."""
    ids: list[str] = []
    values: list[tuple[Any, ...]] = []
    docs: dict[str, bytes] = {}
    for hit in hits:
        fields = hit["fields"]
        tid = fields["id"][0]
        ids.append(tid)
        entries = {v.split("|", 1)[0]: v for v in base64.b64decode(fields["anchor_values"][0]).decode().split("\n")}
        pickup, dropoff = value_entry(entries[from_key]), value_entry(entries[to_key])
        p_lat, p_lon = _point(pickup["pickup"])
        d_lat, d_lon = _point(dropoff["dropoff"])
        values.append((pickup["km"], p_lat, p_lon, pickup["time"], dropoff["km"], d_lat, d_lon, dropoff["drop_time"], fields["utc_offset_s"][0], fields["price"][0]))
        if "trip_json" in fields:  # an occurrence's stored trip is its master's
            docs[tid] = base64.b64decode(fields["trip_json"][0])
    v = np.array(values, dtype=np.float64).reshape(len(values), 10)
    none = np.zeros(len(values), dtype=np.float64)
    rows = PageRows(
        ids=ids,
        pickup=ClosestPoints(v[:, 0], none, v[:, 1], v[:, 2]),
        dropoff=ClosestPoints(v[:, 4], none, v[:, 5], v[:, 6]),
        pickup_time=np.array([x[3] for x in values], dtype=np.int64),
        dropoff_time=np.array([x[7] for x in values], dtype=np.int64),
        offset_s=np.array([x[8] for x in values], dtype=np.int64),
        price=v[:, 9],
    )
    return rows, docs
