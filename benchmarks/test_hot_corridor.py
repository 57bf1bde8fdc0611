"""The hot-corridor benchmark (``python -m benchmarks.hot_corridor``) at a tiny size, so that it cannot rot.

It runs the benchmark's own functions on the session's one-node cluster
(``tests/elastic``); without one it is skipped with the reason, except under
``CI``, where it fails.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.hot_corridor import KINDS, Mismatch, check_same, format_table, run_corridor
from tripsearch.testing.elastic import Cluster, es_cluster, es_clusters  # noqa: F401  (session fixtures)
from tripsearch.backend import SearchResult


@pytest.mark.elasticsearch
def test_tiny_corridor_side_by_side(es_cluster: Cluster) -> None:  # noqa: F811
    # Pages of 2 so that a corridor of 5 trips a day has a second page.
    run = run_corridor(es_cluster.url, per_day=5, background=500, days=9, n_searches=3, limit=2, warmup=1)
    assert run["trips"] == 500 + 5 * 2 * 9
    rows = run["rows"]
    assert [(r["backend"], r["kind"]) for r in rows] == [(b, k) for k in KINDS for b in ("embedded", "elasticsearch")]
    for embedded, elastic in zip(rows[::2], rows[1::2]):
        # The same searches found the same trips on both (measure() also compared every page).
        assert embedded["matches"] == elastic["matches"] and embedded["matches_min"] >= 3
        for r in (embedded, elastic):
            assert r["searches"] == 3
            assert 0 < r["p50_ms"] <= r["p99_ms"] and r["cpu_ms"] >= 0
        assert elastic["counters"]["fetched"] > 0, "the Elasticsearch backend counts the documents it fetched"
        assert elastic["wire"]["requests"] >= 1 and elastic["wire"]["response_bytes"] > 0
        assert math.isfinite(elastic["p50_ratio"])
    # Searches between two anchors fetch the page (the exact total says whether more follow), and after a
    # cursor one hit more (the one that says whether another page follows); nothing else.
    fetched = {r["kind"]: r["counters"]["fetched"] for r in rows[1::2]}
    assert fetched[KINDS[0]] == fetched[KINDS[2]] == 2 and 0 < fetched[KINDS[1]] <= 3
    # The same searches on the embedded engine alone found the same trips.
    alone = run["embedded_alone"]
    assert [(r["backend"], r["kind"]) for r in alone] == [("embedded, alone", k) for k in KINDS]
    for r, embedded in zip(alone, rows[::2]):
        assert (r["searches"], r["matches"], r["matches_min"], r["matches_max"]) == (3, embedded["matches"], embedded["matches_min"], embedded["matches_max"])
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["cpu_ms"] >= 0
    table = format_table([run]).splitlines()
    assert len(table) == 2 + len(rows) + len(alone)
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_a_difference_fails_loudly() -> None:
    a = SearchResult(total=2, trips=[], facets={"seats_available": {"1": 2}})
    check_same(a, SearchResult(total=2, trips=[], facets={"seats_available": {"1": 2}}), {}, KINDS[0])
    with pytest.raises(Mismatch, match="facets"):
        check_same(a, SearchResult(total=2, trips=[], facets={"seats_available": {"1": 1}}), {}, KINDS[0])
    with pytest.raises(Mismatch, match="total"):
        check_same(a, SearchResult(total=3, trips=[]), {}, KINDS[0])
