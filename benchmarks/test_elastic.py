"""Elasticsearch and the embedded backend side by side: same fixture trips, same queries, one run.

Each benchmark runs once per backend (``[embedded]`` and ``[elasticsearch]``)
so their figures are comparable as ratios even though absolute times depend
on the machine; ``python -m benchmarks.summarize`` prints the ratios. The
cluster is the session's one-node cluster of ``tests/elastic`` (started with
scripts/elasticsearch on first use): without one the Elasticsearch half is
skipped with the reason, except under ``CI``, where it fails.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Callable, Iterator

import numpy as np
import orjson
import pytest

import tripsearch
from tripsearch.testing.elastic import Cluster, es_cluster, es_clusters, fresh_alias  # noqa: F401  (session fixtures)
from tripsearch.backend import Backend
from tripsearch.capacity.workload import build_workload

from .conftest import SIZES, dataset_trips

TRIPS = min(max(SIZES), int(os.environ.get("TRIPSEARCH_BENCH_ES_TRIPS", "100000")))
N_QUERIES = int(os.environ.get("TRIPSEARCH_BENCH_QUERIES", "200"))
BATCH = 2000
BACKENDS = ["embedded", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]


@pytest.fixture(scope="module")
def trips() -> list[dict[str, Any]]:
    return dataset_trips(TRIPS)


@pytest.fixture(scope="module")
def open_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Backend]]:
    """Return a factory of empty engines of a backend; Elasticsearch ones on fresh indices, removed afterwards."""
    made: list[tuple[Backend, Cluster | None, str]] = []

    def factory(backend: str) -> Backend:
        if backend == "embedded":
            engine = tripsearch.open(tmp_path_factory.mktemp("embedded"), refresh_interval=0, snapshot_on_close=False)
            made.append((engine, None, ""))
        else:
            cluster: Cluster = request.getfixturevalue("es_cluster")
            alias = fresh_alias("bench")
            engine = tripsearch.open(cluster.url, index=alias, number_of_shards=1, number_of_replicas=0, refresh_interval=0, request_timeout=60.0)
            made.append((engine, cluster, alias))
        return engine

    yield factory
    for engine, cluster, alias in made:
        engine.close()
        if cluster is not None:
            cluster.drop(alias)


def _load(engine: Backend, trips: list[dict[str, Any]]) -> None:
    lines = [orjson.dumps(t) for t in trips]  # NDJSON lines, as `tripsearch index` sends them
    for i in range(0, len(lines), BATCH):
        report = engine.upsert(lines[i : i + BATCH])
        assert report.stored == len(lines[i : i + BATCH]), report.to_dict()["items"][:3]
    engine.refresh()


@pytest.fixture(scope="module")
def loaded(open_engine: Callable[[str], Backend], trips: list[dict[str, Any]]) -> Iterator[Callable[[str], Backend]]:
    """Return the engine of a backend holding the fixture trips, loaded once per module."""
    engines: dict[str, Backend] = {}

    def get(backend: str) -> Backend:
        if backend not in engines:
            engines[backend] = open_engine(backend)
            _load(engines[backend], trips)
        return engines[backend]

    yield get


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_load_side_by_side(benchmark, backend: str, open_engine: Callable[[str], Backend], trips: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    """Trips/s of NDJSON lines into an empty index, in batches of 2,000 (the Elasticsearch backend's bulk size), then a refresh."""
    _load(open_engine(backend), trips[:200])  # warm up first (compiled kernels, JIT): the timed load is the steady rate
    engine = open_engine(backend)
    benchmark.pedantic(lambda: _load(engine, trips), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.min
    benchmark.extra_info.update({"backend": backend, "trips": len(trips), "trips_per_s": round(len(trips) / seconds, 1)})
    if backend == "elasticsearch":
        stats = engine.stats()
        assert stats["trips"] == len(trips)


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_with_facets_side_by_side(benchmark, backend: str, loaded: Callable[[str], Backend], trips: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    """Search latency with all facets, the same realistic queries on both backends."""
    engine = loaded(backend)
    work = build_workload(trips[:5000], N_QUERIES, seed=1, facets="all")
    queries = itertools.cycle(work.searches)
    totals: list[int] = []
    candidates: list[int] = []

    def one(query: dict[str, Any]) -> None:
        result = engine.search(query)
        totals.append(result.total)
        candidates.append(result.candidates)

    benchmark.pedantic(one, setup=lambda: ((next(queries),), {}), rounds=min(N_QUERIES, len(work.searches)), iterations=1, warmup_rounds=20)
    ms = np.array(benchmark.stats.stats.data) * 1000
    benchmark.extra_info.update(
        {
            "backend": backend,
            "trips": len(trips),
            "facets": "all",
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "searches_per_s": round(1000.0 / float(ms.mean()), 1),
            "mean_total": round(float(np.mean(totals)), 1),
            "candidate_ratio": round(float(np.sum(candidates)) / max(1.0, float(np.sum(totals))), 3),
        }
    )
    assert any(totals), "the query mix must find trips, or the benchmark measures nothing"
