"""A search on the cluster: the compiled plan sent, the trips it fetches decided exactly here.

A search between two anchor places is answered in full by the shards
(:mod:`~tripsearch.index.elastic.anchored`): the page, the total and the
facet tallies come back in one request and the shared
:func:`~tripsearch.index.execute.sorted_page` writes the result, but for
``sort=time_distance``: no anchor field holds the distance from
``departure_time`` on the day a pickup belongs to (see
:meth:`~tripsearch.query.model.Query.time_rule`). Any other
query compiles to a :class:`~tripsearch.index.elastic.query.SearchPlan`:
the shards keep only the trips whose route may match (cells near both
places in order along the route, route points near both, the day, the
filters no facet leaves out) and count, for the ``dates`` facet, the trips
of the other days that certainly match. The trips they cannot decide come
back as compact rows (with a point in time when there is more than one
page), turned into :class:`~tripsearch.core.columns.TripColumns` and segment
windows (:func:`corridor_windows`), then decided, ranked, paged and faceted
by the shared :func:`~tripsearch.index.execute.execute`. Only the page of
hits is fetched in full (``mget``).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

from ...backend import SearchResult
from ...core.columns import TripColumns
from ...errors import BackendUnavailable
from ...core.kernels import PostingRanges, join_postings
from ..execute import DocFetcher, execute, sorted_page
from ...query.matching import SegmentWindows
from ...query.model import Query, parse_query
from ..cells import CorridorCells, disk_to_cells
from .anchored import InexactAggregation, compile_anchored, has_more, read_page, read_tallies
from ..anchors import ANCHOR_KM, anchor_places
from .connection import Connection, Retryable
from .indices import Indices
from .mapping import CompactFormatError, compact_to_columns
from .query import CERTAIN_DATES, SearchPlan, compile_search

__all__ = ["run_search", "corridor_windows"]


def run_search(connection: Connection, indices: Indices, query: Query | Mapping[str, Any]) -> SearchResult:
    """Return the matching trips, ranked and paged, with facets."""
    started = time.perf_counter()
    q = parse_query(query)
    indices.check_mapping()
    ends = _anchor_keys(q) if indices.anchors == anchor_places().fingerprint else None
    if ends is not None:
        try:
            return _anchored_search(connection, q, *ends, started)
        except InexactAggregation:
            pass  # a facet with more distinct values than an aggregation returns: the general path counts it
    hits, certain_dates = _plan_hits(connection, compile_search(q, connection.page_size))
    cols, corridor = _columns(hits, connection.alias)
    rows, windows = corridor_windows(
        corridor,
        len(cols),
        disk_to_cells(q.from_point[0], q.from_point[1], q.from_radius_km),
        disk_to_cells(q.to_point[0], q.to_point[1], q.to_radius_km),
    )
    result = execute(q, cols, rows, connection.fetch_docs, started, windows, certain_dates)
    connection.count(searches=1, fetched=len(cols), candidates=result.candidates, matches=result.total)
    return result


def _anchor_keys(query: Query) -> tuple[str, str] | None:
    """Return the anchor keys of ``from`` and ``to`` when a search between them can run in the shards, else None."""
    if query.from_radius_km > ANCHOR_KM or query.to_radius_km > ANCHOR_KM:
        return None
    if query.sort == "time_distance":
        return None  # no anchor field holds the distance from departure_time on the nearest day

    anchors = anchor_places()
    from_key, to_key = anchors.key_of(query.from_point), anchors.key_of(query.to_point)
    if from_key is None or to_key is None or from_key == to_key:
        return None
    return from_key, to_key


def _anchored_search(connection: Connection, q: Query, from_key: str, to_key: str, started: float) -> SearchResult:
    """Return the result of a search between two anchors: page, total and facets from the shards (see :mod:`.anchored`)."""
    body = compile_anchored(q, from_key, to_key)
    for attempt in (1, 2):
        try:
            with connection.translate("search"):
                (answer,) = connection.msearch([body])
            break
        except Retryable as exc:
            if attempt == 2:
                raise BackendUnavailable(f"cannot search: {exc}", retry_after=1.0) from None
    rows, docs = read_page(answer["hits"].get("hits", []), from_key, to_key)
    tallies = read_tallies(q, from_key, answer.get("aggregations", {}))
    total = int(answer["hits"]["total"]["value"])
    result = sorted_page(q, rows, total, has_more(q, len(rows.ids), total), tallies, _with_masters(connection, docs), started)
    connection.count(searches=1, anchored=1, fetched=len(rows.ids), candidates=result.candidates, matches=result.total)
    return result


def _with_masters(connection: Connection, docs: dict[str, bytes]) -> DocFetcher:
    """Return a fetcher of the page's documents: the punctual trips' came with their hits; only a regular trip's (an occurrence's) is read from its master."""

    def fetch(ids: list[str]) -> Mapping[str, dict[str, Any] | bytes]:
        missing = [tid for tid in ids if tid not in docs]
        return {**docs, **connection.fetch_docs(missing)} if missing else docs

    return fetch


def _plan_hits(connection: Connection, plan: SearchPlan) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Return the trips a search plan fetches (its candidates, then its band) and the shards' certain counts per day.

    A search whose index went away under it (a reindex deletes the old
    index after swapping the alias) or whose shard copy failed is tried
    once more; partial results are never used, since the trips fetched
    and counted must hold every match.
    """
    bodies = [plan.candidates] if plan.band is None else [plan.candidates, plan.band]
    for attempt in (1, 2):
        try:
            with connection.translate("search"):
                answers = connection.msearch(bodies)
                aggs: dict[str, Any] = answers[0].get("aggregations", {})
                hits = [h for body, answer in zip(bodies, answers) for h in connection.all_hits(body, answer)]
            break
        except Retryable as exc:
            if attempt == 2:
                raise BackendUnavailable(f"cannot search: {exc}", retry_after=1.0) from None
    certain: dict[int, int] = {}
    if CERTAIN_DATES in aggs:
        certain = {int(day): int(b["doc_count"]) for day, b in aggs[CERTAIN_DATES]["certain"]["days"]["buckets"].items()}
    return hits, certain


def _columns(hits: list[dict[str, Any]], alias: str) -> tuple[TripColumns, CorridorCells]:
    """Return fetched trips as columns in id order (so no result depends on shard order)."""
    try:
        rows = sorted((h["fields"]["id"][0], h["fields"]["compact"][0]) for h in hits)
        return compact_to_columns([tid for tid, _ in rows], [blob for _, blob in rows])
    except (CompactFormatError, KeyError) as exc:
        raise BackendUnavailable(f"cannot search: index {alias!r} holds trips this version cannot read ({exc}); run `tripsearch reindex`", retry_after=60.0) from None


def corridor_windows(corridor: CorridorCells, n: int, from_cells: NDArray[np.uint64], to_cells: NDArray[np.uint64]) -> tuple[NDArray[np.int64], SegmentWindows]:
    """Return the rows (of ``n`` fetched trips) whose corridor passes near ``from`` and then near ``to``, with their segment windows.

    The fetched corridors are postings of their own, joined by the rule of
    the embedded index (:func:`~tripsearch.core.kernels.join_postings`).
    """
    entries = (corridor.rows.astype(np.int32), corridor.seg_lo.astype(np.uint16), corridor.seg_hi.astype(np.uint16))
    sides = []
    for cells in (from_cells, to_cells):
        near = np.flatnonzero(np.isin(corridor.cells, cells))
        sides.append([PostingRanges(*entries, near, near + 1)])
    rows, windows = join_postings(sides[0], sides[1], np.ones(n, dtype=np.bool_))
    return rows, SegmentWindows(*windows.T)
