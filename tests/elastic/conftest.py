"""Fixtures of the Elasticsearch tests: the two-node cluster, the parity data set and engines over it.

The one-node cluster (``es_cluster``) and the session's cluster registry
come from :mod:`tripsearch.testing.elastic` through ``tests/conftest.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import pytest

import tripsearch
from tripsearch.backend import Backend
from tripsearch.core.columns import TripColumns
from tripsearch.data.fixtures import generate_trips
from tripsearch.index.elastic import ElasticBackend
from tripsearch.index.elastic.anchors import anchor_fields, anchor_places
from tripsearch.model import parse_trip
from tripsearch.capacity.workload import build_workload
from tests.geometry import random_queries, time_queries, vary_time

from tripsearch.testing.elastic import Cluster, Clusters, fresh_alias

PARITY_TRIPS = 20_000
PARITY_SEED = 2026
PARITY_START = dt.date(2026, 12, 1)
PARITY_DAYS = 7  # a dense week, so that searches between big cities find many trips
LOAD_BATCH = 5000


@dataclass(frozen=True)
class Layout:
    """How the parity index is laid out: cluster size, shards, replicas, candidate page size."""

    name: str
    nodes: int
    shards: int
    replicas: int
    page_size: int = 5000


LAYOUTS = {
    "1-shard": Layout("1-shard", nodes=1, shards=1, replicas=0),
    # small pages: the big searches go through point-in-time paging
    "3-shards": Layout("3-shards", nodes=1, shards=3, replicas=0, page_size=400),
    "2-nodes": Layout("2-nodes", nodes=2, shards=2, replicas=1),
}


@pytest.fixture(scope="session")
def es_cluster_2nodes(es_clusters: Clusters, es_cluster: Cluster) -> Cluster:
    """A two-node cluster (node 0 is the only master), booted beside the one-node cluster."""
    return es_clusters.get(2)


@pytest.fixture
def es_engine(es_cluster: Cluster) -> Iterator[Callable[..., ElasticBackend]]:
    """Return a factory of engines over fresh indices of the one-node cluster; indices are removed afterwards."""
    opened: list[tuple[ElasticBackend, str]] = []

    def factory(**options: Any) -> ElasticBackend:
        alias = options.pop("index", None) or fresh_alias()
        options.setdefault("number_of_replicas", 0)
        options.setdefault("refresh_interval", 0)
        # The whole suite on two shared cores can keep a fresh index's first refresh past the 5 s default.
        options.setdefault("request_timeout", 30.0)
        engine = tripsearch.open(es_cluster.url, index=alias, **options)
        assert isinstance(engine, ElasticBackend)
        opened.append((engine, alias))
        return engine

    yield factory
    for engine, alias in opened:
        engine.close()
        es_cluster.drop(alias)


@pytest.fixture(scope="session")
def parity_trips() -> list[dict[str, Any]]:
    return list(generate_trips(PARITY_TRIPS, PARITY_SEED, PARITY_START, PARITY_DAYS))


@pytest.fixture(scope="session")
def parity_embedded(parity_trips: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    engine = tripsearch.open(tmp_path_factory.mktemp("parity-embedded"), refresh_interval=0)
    report = engine.upsert(parity_trips, refresh=True)
    assert report.stored == len(parity_trips)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def parity_queries(parity_trips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return 360 searches: city pairs from the trips' own stops and points of their routes, with random filters, sorts, limits and facets."""
    rng = np.random.default_rng(PARITY_SEED)
    queries: list[dict[str, Any]] = []
    for q in build_workload(parity_trips, 220, seed=PARITY_SEED).searches:
        q = dict(q)
        q["from_radius_km"] = float(rng.choice([2.0, 10.0, 10.0, 25.0, 60.0]))
        q["to_radius_km"] = float(rng.choice([2.0, 10.0, 10.0, 25.0, 60.0]))
        q["sort"] = str(rng.choice(["relevance", "departure", "price", "pickup_distance"]))
        q["limit"] = int(rng.choice([1, 5, 20, 20, 100]))
        if rng.random() < 0.1:
            q["seats"] = int(rng.integers(2, 4))
        if rng.random() < 0.1:
            q["time_from"], q["time_to"] = "22:00", "05:30"  # across midnight
        queries.append(q)
    with_routes = [t for t in parity_trips if t["status"] == "published"][:3000]
    for q in random_queries(with_routes, 140, seed=PARITY_SEED):
        q["facets"] = [] if rng.random() < 0.5 else "all"
        queries.append(q)
    return queries + anchored_queries(parity_trips, 120, seed=PARITY_SEED)


@pytest.fixture(scope="session")
def parity_time_queries(parity_trips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return 120 searches around a time or over days (issue 22): on points of the trips' routes, and between anchors (in the shards but for sort=time_distance)."""
    rng = np.random.default_rng(PARITY_SEED + 22)
    with_routes = [t for t in parity_trips if t["status"] == "published"][:3000]
    queries = time_queries(with_routes, 60, seed=PARITY_SEED + 22)
    return queries + anchored_queries(parity_trips, 60, seed=PARITY_SEED + 22, around=lambda q, minute: vary_time(q, rng, minute))


def anchored_queries(trips: list[dict[str, Any]], n: int, seed: int, around: Callable[[dict[str, Any], int], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Return ``n`` searches between two anchor places some trip passes in that order (the shards answer them in full).

    Radii up to ANCHOR_KM, a few beyond (the general path), dates of the
    pickup or a day off, every sort, and filters and facets as users set them.
    ``around`` turns each search into another, given the local minute of the trip's pickup.
    """
    rng = np.random.default_rng(seed)
    sample = [parse_trip(t) for t in trips[:4000]]
    found = anchor_fields(TripColumns.from_trips(sample))
    anchors = anchor_places()
    point_of = {key: [float(anchors.lat[int(key)]), float(anchors.lon[int(key)])] for key in {e["place"] for entries in found.entries for e in entries}}
    day_of = {(i, e["place"]): e["day"] for i, entries in enumerate(found.entries) for e in entries}
    minute_of = {(i, e["place"]): e["minute"] for i, entries in enumerate(found.entries) for e in entries}
    with_pairs = [i for i, pairs in enumerate(found.pairs) if pairs]
    queries: list[dict[str, Any]] = []
    for _ in range(n):
        i = int(rng.choice(with_pairs))
        f, t = str(rng.choice(found.pairs[i])).split(">")
        day = int(day_of[(i, f)]) + int(rng.choice([0, 0, 0, -1, 1]))
        q: dict[str, Any] = {
            "from": point_of[f],
            "to": point_of[t],
            "date": (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat(),
            "from_radius_km": float(rng.choice([1.0, 5.0, 7.5, 10.0, 10.0, 25.0, 30.0])),  # 7.5: not a radius class
            "to_radius_km": float(rng.choice([1.0, 5.0, 10.0, 10.0, 25.0])),
            "sort": str(rng.choice(["relevance", "departure", "price", "pickup_distance"])),
            "limit": int(rng.choice([1, 5, 20, 20, 100])),
            "facets": "all" if rng.random() < 0.7 else list(rng.choice(["dates", "price", "pickup_cells", "departure_hour", "seats_available"], size=2, replace=False)),
        }
        if rng.random() < 0.15:
            q["seats"] = int(rng.integers(2, 4))
        if rng.random() < 0.15:
            q["time_from"], q["time_to"] = ("22:00", "05:30") if rng.random() < 0.5 else ("07:00", "12:00")
        if rng.random() < 0.15:
            q["max_price"] = float(rng.choice([10.0, 25.0, 40.0]))
        if rng.random() < 0.1:
            q["options"] = ["pets"]
        if rng.random() < 0.1:
            q["min_rating"] = 4.0
        queries.append(q if around is None else around(q, int(minute_of[(i, f)])))
    return queries


def load_layout(layout: Layout, cluster: Cluster, trips: list[dict[str, Any]]) -> ElasticBackend:
    engine = tripsearch.open(
        ",".join(cluster.urls),
        index=fresh_alias(f"parity-{layout.name}"),
        number_of_shards=layout.shards,
        number_of_replicas=layout.replicas,
        refresh_interval=0,
        page_size=layout.page_size,
        request_timeout=30.0,
    )
    assert isinstance(engine, ElasticBackend)
    for i in range(0, len(trips), LOAD_BATCH):
        report = engine.upsert(trips[i : i + LOAD_BATCH])
        assert report.stored == len(trips[i : i + LOAD_BATCH]), report.to_dict()["items"][:3]
    engine.refresh()
    with cluster.client() as es:
        es.cluster.health(index=engine.alias, wait_for_status="green", timeout="120s")
    return engine


@pytest.fixture(scope="session")
def parity_engines(request: pytest.FixtureRequest, parity_trips: list[dict[str, Any]]) -> Iterator[Callable[[str], ElasticBackend]]:
    """Return the engine of a layout, loading the parity trips into it on first use (once per session)."""
    engines: dict[str, ElasticBackend] = {}

    def get(name: str) -> ElasticBackend:
        if name not in engines:
            layout = LAYOUTS[name]
            cluster = request.getfixturevalue("es_cluster" if layout.nodes == 1 else "es_cluster_2nodes")
            engines[name] = load_layout(layout, cluster, parity_trips)
        return engines[name]

    yield get
    for engine in engines.values():
        engine.close()
