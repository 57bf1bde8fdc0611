"""The Elasticsearch backend gives exactly what the embedded one gives, whatever the shard layout.

The same 20,000 fixture trips (a dense week of European trips) are loaded
into the embedded backend and into Elasticsearch laid out three ways (one
shard; three shards with small candidate pages, so big searches page through
a point in time; two nodes with a replica). Every search of
:func:`~tests.elastic.conftest.parity_queries` must return the same total,
the same hits in the same order (ids, scores, pickup and dropoff points,
documents), the same facets and the same cursor; a third of them are
followed for up to three pages. A third of the searches go from one anchor
place to another, which the shards answer in full (page, total, facets).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pytest

from tripsearch.backend import Backend, SearchResult
from tripsearch.index.elastic import ElasticBackend
from tripsearch.index.elastic.query import CERTAIN_DATES, compile_search
from tripsearch.index.execute import candidate_days
from tripsearch.query.matching import evaluate
from tripsearch.query.model import parse_query

from tripsearch.testing.elastic import Cluster

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

FOLLOW_EVERY = 3  # every third search is followed through its next pages
MAX_PAGES = 3


def assert_same(got: SearchResult, want: SearchResult, query: dict[str, Any]) -> None:
    assert got.total == want.total, query
    assert [h.id for h in got.trips] == [h.id for h in want.trips], query
    assert [h.to_dict() for h in got.trips] == [h.to_dict() for h in want.trips], query
    assert got.facets == want.facets, query
    assert got.next_cursor == want.next_cursor, query


def compare_all(engine: ElasticBackend, embedded: Backend, queries: list[dict[str, Any]]) -> dict[str, Any]:
    """Run every query (and some next pages) on both; return figures about what was compared."""
    latencies: list[float] = []
    with_hits = pages = candidates = matches = 0
    anchored_before = engine.stats()["anchored"]
    for n, query in enumerate(queries):
        follow = n % FOLLOW_EVERY == 0
        q = {**query, "limit": min(query.get("limit", 20), 5)} if follow else dict(query)
        for page in range(MAX_PAGES if follow else 1):
            started = time.perf_counter()
            got = engine.search(q)
            latencies.append(time.perf_counter() - started)
            want = embedded.search(q)
            assert_same(got, want, q)
            pages += 1
            if page == 0:
                with_hits += got.total > 0
                candidates += got.candidates
                matches += got.total
            if got.next_cursor is None:
                break
            q = {**q, "cursor": got.next_cursor}
    ms = np.array(latencies) * 1000
    return {
        "queries": len(queries),
        "searches": pages,
        "queries_with_hits": with_hits,
        "anchored_searches": engine.stats()["anchored"] - anchored_before,
        "candidates_per_match": round(candidates / max(1, matches), 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
    }


@pytest.mark.parametrize("layout", ["1-shard", "3-shards"])
def test_same_results_as_embedded(layout: str, parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]], record_property: Callable[[str, Any], None]) -> None:
    figures = compare_all(parity_engines(layout), parity_embedded, parity_queries)
    record_property("parity", figures)
    assert figures["anchored_searches"] >= 100  # the searches between anchors ran in the shards
    print(f"\nparity {layout}: {figures}")
    assert figures["queries"] >= 300
    assert figures["queries_with_hits"] >= figures["queries"] * 0.5, "most searches must find trips, or parity proves little"


def test_same_results_around_a_time(parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_time_queries: list[dict[str, Any]]) -> None:
    """Searches around a departure_time and over date_from..date_to, on small candidate pages; between anchors in the shards but for sort=time_distance."""
    figures = compare_all(parity_engines("3-shards"), parity_embedded, parity_time_queries)
    print(f"\nparity around a time: {figures}")
    assert figures["anchored_searches"] >= 25  # ranges of days and departure_time windows between anchors ran in the shards
    # Narrow windows and points of random routes find nothing more often than the searches above (28 of 120 find trips).
    assert figures["queries_with_hits"] >= figures["queries"] * 0.2, "many searches must find trips, or parity proves little"


def test_same_results_on_two_nodes(es_cluster_2nodes: Cluster, parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]], record_property: Callable[[str, Any], None]) -> None:
    engine = parity_engines("2-nodes")
    assert engine.stats()["nodes"] == 2
    figures = compare_all(engine, parity_embedded, parity_queries)
    record_property("parity", figures)
    print(f"\nparity 2-nodes: {figures}")


def test_shards_never_leave_out_a_match_and_count_only_sure_ones(parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]]) -> None:
    """What the shards decide, checked against the exact rules on the embedded index.

    The trips fetched for the date hold every match; those fetched for the
    other days of the dates facet (the band) and those the shards count as
    certain hold every match of those days that is not posted on the date,
    without overlap; and every certain trip matches on its departure day.
    """
    engine = parity_engines("3-shards")
    view = parity_embedded._index.view  # type: ignore[attr-defined]
    certain_total = fetched_total = week_total = 0
    for query in parity_queries[::2]:
        q = parse_query({**query, "facets": "all"})
        plan = compile_search(q, engine.page_size)
        assert plan.band is not None
        fetched = {h["fields"]["id"][0] for h in engine._connection.hits(plan.candidates)}
        band = {h["fields"]["id"][0] for h in engine._connection.hits(plan.band)}
        agg = plan.candidates.get("aggs", {}).get(CERTAIN_DATES)
        certain: dict[str, int] = {}
        if agg is not None:
            sure = agg["aggs"]["certain"]
            for day, on_day in sure["aggs"]["days"]["filters"]["filters"].items():
                body = {"query": {"bool": {"filter": [sure["filter"], on_day]}}, "size": 10_000, "_source": False}
                for h in engine._connection.hits(body):
                    assert h["_id"] not in certain, "a trip is certain on one day at most"
                    certain[h["_id"]] = int(day)
        found = view.candidates(q.from_point, q.from_radius_km, q.to_point, q.to_radius_km, candidate_days(q))
        ev = evaluate(view.cols, found.rows, q)
        ids = [view.cols.ids[r] for r in ev.rows.tolist()]
        posted_on_date = view.cols.local_days()
        for pos in np.flatnonzero(ev.matched()).tolist():
            assert ids[pos] in fetched, (query, ids[pos])
        for pos in np.flatnonzero(ev.matched("date")).tolist():
            row, tid = int(ev.rows[pos]), ids[pos]
            if posted_on_date[0][row] <= q.day <= posted_on_date[1][row]:
                assert tid in fetched, (query, tid)
            else:
                assert (tid in band) != (tid in certain), (query, tid)
        for tid, day in certain.items():
            pos = ids.index(tid)
            assert ev.matched("date")[pos] and ev.local_day[pos] == day, (query, tid, day)
        certain_total += len(certain)
        fetched_total += len(fetched) + len(band)
        week_total += len(found.rows)
    print(f"\nfetched {fetched_total:,} trips where the week's candidates are {week_total:,}; {certain_total:,} counted as certain in the shards")
    assert certain_total > 0
    assert fetched_total < week_total, "the shards fetch fewer trips than the week's candidates (what a search fetched before they decided)"


def test_searches_answer_with_a_node_stopped(es_cluster_2nodes: Cluster, parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]]) -> None:
    """Stopping the non-master node (which holds half of the primaries) loses no search and changes no result."""
    engine = parity_engines("2-nodes")
    stopped = es_cluster_2nodes.script("stop", "--node", "1", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    for query in parity_queries[:80]:
        assert_same(engine.search(query), parity_embedded.search(query), query)
    stats = engine.stats()
    assert stats["nodes"] == 1 and stats["health"] == "yellow"
