"""Publish-to-match cost, tiny: ``make test`` runs :mod:`benchmarks.alerts` once at a small size so that it cannot rot.

The figures of benchmarks/README.md come from ``python -m benchmarks.alerts``
(10,000 to 1,000,000 alerts), a separate command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.alerts import measure, table
from tripsearch.testing.elastic import Cluster, es_cluster, es_clusters  # noqa: F401  (session fixtures)

ALERT_SIZES = [int(s) for s in os.environ.get("TRIPSEARCH_BENCH_ALERTS", "300").split(",") if s.strip()]


@pytest.mark.parametrize("n_alerts", ALERT_SIZES)
def test_publish_to_match_cost(n_alerts: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = measure(n_alerts, single=60, bulk=300, work=tmp_path)
    with capsys.disabled():
        print("\n" + json.dumps(run))
    assert run["matches"] > 0, "the workload's alerts matched none of the trips: the benchmark measures nothing"
    assert run["bulk_trips_per_s"]["on"] > 0 and run["write_ms"]["on"]["p50"] > 0
    assert f"| {n_alerts:,} |" in table({"runs": [run]})


@pytest.mark.elasticsearch
def test_publish_to_match_cost_on_elasticsearch(es_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = measure(ALERT_SIZES[0], single=20, bulk=200, work=tmp_path, backend=es_cluster.url)
    with capsys.disabled():
        print("\n" + json.dumps(run))
    assert run["matches"] > 0, "the workload's alerts matched none of the trips: the benchmark measures nothing"
    assert run["bulk_trips_per_s"]["on"] > 0 and run["write_ms"]["on"]["p50"] > 0
