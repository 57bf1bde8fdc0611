"""`tripsearch capacity plan --backend elasticsearch`: the model's arithmetic on a small saved measurement (no cluster, no measuring)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from tripsearch.capacity import Measurements, Targets, make_plan, render_plan
from tripsearch.capacity.corridor import SEARCHES_PER_MSEARCH, at_size, busiest, load_corridor_runs
from tripsearch.capacity.errors import CapacityError
from tripsearch.capacity.measure import SCHEMA
from tripsearch.cli import main

KINDS = ("page 1, all facets", "page 2", "page 1, no facets")


def _es_row(kind: str, took: float, cpu: float, nbytes: float, docs: float, p99: float) -> dict[str, Any]:
    return {"per_day": 0, "backend": "elasticsearch", "kind": kind, "searches": 20, "matches": 270.0, "matches_min": 260, "matches_max": 280,
            "p50_ms": p99 / 2, "p99_ms": p99, "cpu_ms": cpu, "counters": {"fetched": docs, "fetched_bytes": nbytes, "took_ms": took, "es_requests": 2.0},
            "wire": {"requests": 2.0, "response_bytes": nbytes, "took_ms": took}, "p50_ratio": 10.0}


def _embedded_row(kind: str) -> dict[str, Any]:
    # far dearer than any Elasticsearch figure: the plan must not read it
    return {"per_day": 0, "backend": "embedded", "kind": kind, "searches": 20, "matches": 270.0, "matches_min": 260, "matches_max": 280,
            "p50_ms": 900.0, "p99_ms": 999.0, "cpu_ms": 999.0, "counters": {}, "wire": {}, "p50_ratio": None}


def _run(per_day: int, trips: int, shards: int, es_rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for kind, es in zip(KINDS, es_rows) for r in (_embedded_row(kind), es)]
    return {"per_day": per_day, "background": 1000, "days": 9, "trips": trips, "shards": shards, "radius_km": 10.0, "limit": None,
            "pair": ["Paris", "Lyon"], "distinct_queries": 6, "load_s": {"embedded": 1.0, "elasticsearch": 2.0}, "rows": rows}


# The busiest corridor (300 a day): the dearest kind is page 2 for took (25 ms), page 1 for API CPU (30 ms),
# bytes (1 MB) and documents; page 2 for p99 (90 ms).
BUSY = [
    _es_row(KINDS[0], took=20.0, cpu=30.0, nbytes=1_000_000.0, docs=300.0, p99=80.0),
    _es_row(KINDS[1], took=25.0, cpu=28.0, nbytes=900_000.0, docs=290.0, p99=90.0),
    _es_row(KINDS[2], took=5.0, cpu=20.0, nbytes=800_000.0, docs=250.0, p99=60.0),
]
QUIET = [_es_row(k, took=2.0, cpu=3.0, nbytes=50_000.0, docs=30.0, p99=10.0) for k in KINDS]


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Path]:
    """Return (capacity measurements, hot-corridor run), as `capacity measure` and `benchmarks.hot_corridor --json` save them."""
    capacity = tmp_path / "capacity.json"
    capacity.write_bytes(orjson.dumps({
        "schema": SCHEMA, "complete": True,
        "machine": {"cpu_model": "Test CPU", "cores": 8, "usable_cores": 8, "memory_bytes": 32 * 2**30, "date": "2026-12-03T06:00:00+00:00",
                    "git_commit": "abc1234def", "load_average_at_start": [0.1]},
        "results": {
            "es:cluster": {"kind": "es_cluster", "nodes": 1, "heap_max_bytes": [2**30]},
            "es:load": {"kind": "es_load", "trips": 1000, "store_bytes": 5_000_000, "bytes_per_trip": 5000.0, "bulk_trips_per_s": 2000.0, "note": "test"},
        },
    }))
    corridor = tmp_path / "hot_corridor.json"
    corridor.write_text(orjson.dumps({
        "command": ["python", "-m", "benchmarks.hot_corridor"], "started_utc": "2026-12-03 05:00", "finished_utc": "2026-12-03 05:10", "commit": "abc1234",
        "runs": [_run(30, 2_000, 1, QUIET), _run(300, 10_000, 1, BUSY)],
    }).decode())
    return capacity, corridor


def _plan(saved: tuple[Path, Path], **kw: Any) -> Any:
    target: dict[str, Any] = {"trips": 20_000_000, "searches_per_s": 100.0, "writes_per_s": 0.0, "p99_ms": 500.0, "backend": "elasticsearch",
                              "headroom": 0.25, "cores_per_machine": 8, "nic_gbit": 0.4}
    target.update(kw)
    return make_plan(Measurements.load(saved[0]), Targets(**target), load_corridor_runs([saved[1]]))


def test_runs_are_read_as_their_dearest_kind_of_search(saved: tuple[Path, Path]) -> None:
    runs = load_corridor_runs([saved[1]])
    assert [(r.per_day, r.trips) for r in runs] == [(30, 2_000), (300, 10_000)]
    top = busiest(runs)[-1]
    assert (top.took_ms.value, top.took_ms.kind) == (25.0, "page 2")
    assert (top.api_cpu_ms.value, top.api_cpu_ms.kind) == (30.0, "page 1, all facets")
    assert (top.fetched_bytes.value, top.fetched_docs.value, top.p99_ms.value) == (1_000_000.0, 300.0, 90.0)


def test_plan_arithmetic(saved: tuple[Path, Path]) -> None:
    plan = _plan(saved)
    rate = 100.0 * 1.25
    # primaries from the data: 20M trips x 5,000 bytes = 100 GB, 50 GB a shard at most
    assert plan.get("primary data") == 100_000_000_000
    assert plan.get("primary shards") == 2
    assert plan.get("corridor planned for") == "300 trips a day each way"
    # the shards: took of the dearest kind (held beyond the 10,000 trips per shard measured) x 2 searches per _msearch x 2 primaries
    assert plan.get("took per search, per shard") == 25.0
    assert plan.get("node CPU per search") == 25.0 * SEARCHES_PER_MSEARCH * 2 == 100.0
    assert plan.get("data node cores") == pytest.approx(rate * 0.100)  # 12.5 cores
    # the network: 1 MB a search x 125 searches/s = 1 Gbit/s, over 0.4 Gbit/s per node
    assert plan.get("network from the data nodes to the API") == pytest.approx(1.0)
    nodes = max(2, math.ceil(12.5 / 8), math.ceil(1.0 / 0.4))
    assert nodes == 3 and plan.get("data nodes") == nodes
    assert plan.get("replicas") == max(1, math.ceil(3 / 2) - 1) == 1
    assert plan.get("shard copies") == 4
    # the API: 30 ms of CPU per search
    assert plan.get("API CPU per search") == 30.0
    assert plan.get("API cores") == pytest.approx(rate * 0.030)  # 3.75
    assert plan.get("API workers") == 4
    assert plan.get("API machines") == max(math.ceil(4 / 8), math.ceil(1.0 / 0.4)) == 3
    # memory: each node holds 100 GB x 2 copies / 3 nodes
    per_node = 100e9 * 2 / 3
    assert plan.get("memory per node") == pytest.approx(2**30 + per_node * 1.25, abs=1)
    assert plan.get("p99 of one search, measured") == 90.0
    assert plan.feasible, plan.warnings


def test_throughput_scales_with_replicas_not_primaries(saved: tuple[Path, Path]) -> None:
    small = _plan(saved, nic_gbit=100.0)
    big = _plan(saved, nic_gbit=100.0, searches_per_s=1000.0)
    assert big.get("data node cores") == pytest.approx(10 * small.get("data node cores"))
    assert big.get("API cores") == pytest.approx(10 * small.get("API cores"))
    assert big.get("primary shards") == small.get("primary shards") == 2
    assert big.get("data nodes") == math.ceil(125.0 / 8) == 16
    assert big.get("replicas") == math.ceil(16 / 2) - 1 == 7


def test_every_figure_names_its_source_and_none_is_a_ratio_to_the_embedded_engine(saved: tuple[Path, Path]) -> None:
    plan = _plan(saved)
    assert all(f.source for f in plan.figures)
    assert not any("embedded" in f.source.lower() or f.unit == "×" for f in plan.figures)
    projected = {f.name for f in plan.figures if f.projection}
    assert {"took per search, per shard", "node CPU per search", "API CPU per search", "data nodes"} <= projected
    within = _plan(saved, trips=5_000)  # inside the measured sizes: measured, not projected
    assert not any(f.projection for f in within.figures if f.name in ("took per search, per shard", "API CPU per search"))
    assert within.get("primary shards") == 1 and within.get("node CPU per search") == 25.0 * SEARCHES_PER_MSEARCH


def test_p99_over_the_target_is_not_feasible(saved: tuple[Path, Path]) -> None:
    plan = _plan(saved, p99_ms=50.0)
    assert not plan.feasible
    assert any("90 ms" in w and "throughput, not the speed of one search" in w for w in plan.warnings)


def test_without_corridor_runs_the_plan_says_what_to_run(saved: tuple[Path, Path]) -> None:
    plan = make_plan(Measurements.load(saved[0]), Targets(1000, 10.0, 0.0, 500.0, backend="elasticsearch"))
    assert not plan.feasible and plan.get("primary shards") == 1
    assert "benchmarks.hot_corridor --json" in render_plan(plan)


def test_a_run_without_counters_is_refused(saved: tuple[Path, Path], tmp_path: Path) -> None:
    doc = orjson.loads(saved[1].read_bytes())
    for row in doc["runs"][1]["rows"]:
        row["counters"] = {"fetched": 3916.0, "fetched_bytes": None, "took_ms": None, "es_requests": None}  # the baseline, before the counters
    old = tmp_path / "old.json"
    old.write_bytes(orjson.dumps(doc))
    with pytest.raises(CapacityError, match="300 trips a day: no 'took_ms'"):
        load_corridor_runs([old])
    with pytest.raises(CapacityError, match="benchmarks.hot_corridor --json"):
        load_corridor_runs([tmp_path / "missing.json"])


def test_at_size_reads_a_power_law_and_never_scales_down() -> None:
    pts = [(10_000.0, 10.0), (100_000.0, 20.0)]
    value, beyond, how = at_size(pts, 1_000_000)
    assert value == pytest.approx(40.0) and beyond and "two biggest" in how
    value, beyond, _ = at_size(pts, 10_000 * 10**0.5)
    assert value == pytest.approx(10 * 2**0.5) and not beyond
    assert at_size(pts, 100)[:2] == (10.0, False)


def test_plan_command_prints_nodes_shards_and_api_cores(saved: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["capacity", "plan", "--measurements", str(saved[0]), "--es-measurements", str(saved[1]), "--backend", "elasticsearch",
            "--trips", "20000000", "--searches-per-s", "100", "--p99-ms", "500", "--headroom", "0.25", "--cores-per-machine", "8", "--nic-gbit", "0.4"]
    assert main(args) == 0
    text = capsys.readouterr().out
    for name in ("primary shards", "replicas", "data nodes", "node CPU per search", "API cores", "API machines", "bytes fetched per search"):
        assert name in text
    assert "took" in text and "hot_corridor.json" in text and text.count("from: ") >= 15
    assert main(args + ["--json"]) == 0
    figures = {f["name"]: f for f in orjson.loads(capsys.readouterr().out)["figures"]}
    assert figures["data nodes"]["value"] == 3 and figures["API cores"]["value"] == 3.75
    assert main(args[:-2] + ["--backend", "embedded"]) == 2
    assert "--es-measurements goes with --backend elasticsearch" in capsys.readouterr().err


def test_the_model_and_its_options_are_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "elasticsearch.md").read_text()
    section = doc[doc.index("### Capacity planning") :]
    for words in ("--es-measurements", "--nic-gbit", "`took`", "replicas", "API cores", "benchmarks.hot_corridor"):
        assert words in section


def test_node_cpu_counts_the_searches_each_search_sent(saved: tuple[Path, Path], tmp_path: Path) -> None:
    """A run that counted its shard searches (one per search between anchors) is planned with that count, not the bound."""
    doc = orjson.loads(saved[1].read_bytes())
    for run in doc["runs"]:
        for row in run["rows"]:
            if row["backend"] == "elasticsearch":
                row["counters"]["shard_searches"] = 1.0
    counted = tmp_path / "counted.json"
    counted.write_bytes(orjson.dumps(doc))
    target = Targets(trips=20_000_000, searches_per_s=100.0, writes_per_s=0.0, p99_ms=500.0, backend="elasticsearch", headroom=0.25, cores_per_machine=8, nic_gbit=0.4)
    plan = make_plan(Measurements.load(saved[0]), target, load_corridor_runs([counted]))
    assert plan.get("node CPU per search") == 25.0 * 1 * 2  # took x 1 search sent x 2 primaries
