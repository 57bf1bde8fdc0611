"""The Elasticsearch backend gives exactly what the embedded one gives, whatever the shard layout.

The same 20,000 fixture trips (a dense week of European trips) are loaded
into the embedded backend and into Elasticsearch laid out three ways (one
shard; three shards with small candidate pages, so big searches page through
a point in time; two nodes with a replica). Every search of
:func:`~tests.elastic.conftest.parity_queries` must return the same total,
the same hits in the same order (ids, scores, pickup and dropoff points,
documents), the same facets and the same cursor; a third of them are
followed for up to three pages.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pytest

from tripsearch.backend import Backend, SearchResult
from tripsearch.index.cells import disk_to_cells
from tripsearch.index.elastic import ElasticBackend, corridor_windows
from tripsearch.query.elastic import compile_candidates
from tripsearch.query.execute import candidate_days
from tripsearch.query.model import parse_query

from .cluster import Cluster

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
        "candidates_per_match": round(candidates / max(1, matches), 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
    }


@pytest.mark.parametrize("layout", ["1-shard", "3-shards"])
def test_same_results_as_embedded(layout: str, parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]], record_property: Callable[[str, Any], None]) -> None:
    figures = compare_all(parity_engines(layout), parity_embedded, parity_queries)
    record_property("parity", figures)
    print(f"\nparity {layout}: {figures}")
    assert figures["queries"] >= 300
    assert figures["queries_with_hits"] >= figures["queries"] * 0.5, "most searches must find trips, or parity proves little"


def test_same_results_on_two_nodes(es_cluster_2nodes: Cluster, parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]], record_property: Callable[[str, Any], None]) -> None:
    engine = parity_engines("2-nodes")
    assert engine.stats()["nodes"] == 2
    figures = compare_all(engine, parity_embedded, parity_queries)
    record_property("parity", figures)
    print(f"\nparity 2-nodes: {figures}")


def test_same_candidates_as_embedded(parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]]) -> None:
    """The Elasticsearch request finds the embedded index's candidates (the published ones), with the same windows."""
    engine = parity_engines("1-shard")
    view = parity_embedded._index.view  # type: ignore[attr-defined]
    for query in parity_queries[::3]:
        q = parse_query(query)
        found = view.candidates(q.from_point, q.from_radius_km, q.to_point, q.to_radius_km, candidate_days(q))
        published = view.cols.status[found.rows] == 0
        want = {view.cols.ids[r]: (lo, hi, tlo, thi) for r, lo, hi, tlo, thi in zip(*(a[published].tolist() for a in found))}
        cols, corridor = engine._candidates(compile_candidates(q, engine.page_size))
        rows, windows = corridor_windows(corridor, disk_to_cells(*q.from_point, q.from_radius_km), disk_to_cells(*q.to_point, q.to_radius_km))
        got = {cols.ids[r]: w for r, *w in zip(rows.tolist(), *(a.tolist() for a in windows))}
        assert got == {k: list(v) for k, v in want.items()}, query


def test_searches_answer_with_a_node_stopped(es_cluster_2nodes: Cluster, parity_engines: Callable[[str], ElasticBackend], parity_embedded: Backend, parity_queries: list[dict[str, Any]]) -> None:
    """Stopping the non-master node (which holds half of the primaries) loses no search and changes no result."""
    engine = parity_engines("2-nodes")
    stopped = es_cluster_2nodes.script("stop", "--node", "1", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    for query in parity_queries[:80]:
        assert_same(engine.search(query), parity_embedded.search(query), query)
    stats = engine.stats()
    assert stats["nodes"] == 1 and stats["health"] == "yellow"
