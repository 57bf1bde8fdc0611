"""Publish-to-match cost: trip writes with N saved alerts (spread like the workload's searches) against none.

Sizes of the alert set come from ``TRIPSEARCH_BENCH_ALERTS`` (comma list;
default a tiny one so that ``make test`` keeps this benchmark alive). Each
round writes the same trips, one per call as the API's ``PUT`` does, into a
fresh data directory (never the shared benchmark cache), and reports the
per-write latency with alerts, without, and how many matches were made.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tripsearch
from tripsearch.alerts import AlertStore
from tripsearch.data.fixtures import generate_trips
from tripsearch.capacity.workload import build_workload

ALERT_SIZES = [int(s) for s in os.environ.get("TRIPSEARCH_BENCH_ALERTS", "200").split(",") if s.strip()]
WRITES = int(os.environ.get("TRIPSEARCH_BENCH_ALERT_WRITES", "300"))
START = dt.date(2027, 3, 1)
DAYS = 14
SEARCH_FIELDS = ("from", "to", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "options", "min_rating")
CLOCK = dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc).timestamp()


def workload_alerts(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """Return ``n`` alerts: the workload's searches (city pairs by popularity, some filtered), each over 1 to 7 days."""
    trips = list(generate_trips(max(2000, n // 5), seed, START, DAYS))
    searches = build_workload(trips, n, seed, facets=[]).searches
    rng = np.random.default_rng(seed)
    alerts = []
    for q in searches:
        first = dt.date.fromisoformat(str(q["date"]))
        alert = {k: q[k] for k in SEARCH_FIELDS if k in q}
        alert["date_from"], alert["date_to"] = first.isoformat(), (first + dt.timedelta(days=int(rng.integers(0, 7)))).isoformat()
        alerts.append(alert)
    return alerts


def write_latencies(path: Path, trips: list[dict[str, Any]], store: AlertStore | None) -> list[float]:
    engine = tripsearch.open(path, refresh_interval=0, alerts=store if store is not None else False)
    try:
        out = []
        for trip in trips:
            started = time.perf_counter()
            engine.upsert([trip])
            out.append(time.perf_counter() - started)
        return out
    finally:
        engine.close()


@pytest.mark.parametrize("n_alerts", ALERT_SIZES)
def test_publish_to_match_cost(n_alerts: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite", max_per_owner=10**9, clock=lambda: CLOCK)
    warm = AlertStore(tmp_path / "warm.sqlite", max_per_owner=10**9, clock=lambda: CLOCK)
    alerts = workload_alerts(n_alerts)
    started = time.perf_counter()
    for i, alert in enumerate(alerts):
        store.create(f"u-{i % 1000}", alert)
    created_s = time.perf_counter() - started
    for alert in alerts[:50]:
        warm.create("u-warm", alert)
    trips = list(generate_trips(WRITES, 11, START, DAYS))
    write_latencies(tmp_path / "warm", trips, warm)  # compiled kernels, H3 grid tiles, SQLite pages: once per process
    off = write_latencies(tmp_path / "off", trips, None)
    on = write_latencies(tmp_path / "on", trips, store)
    matches = len(store.matched_pairs())
    ms = lambda xs, q: 1000 * float(np.percentile(xs, q))  # noqa: E731
    with capsys.disabled():
        print(
            f"\nalerts={n_alerts} (created in {created_s:.1f} s) writes={len(trips)} matches={matches}: "
            f"per write p50/p99 off {ms(off, 50):.2f}/{ms(off, 99):.2f} ms, on {ms(on, 50):.2f}/{ms(on, 99):.2f} ms; "
            f"matching adds p50 {ms(on, 50) - ms(off, 50):.2f} ms"
        )
    assert matches > 0, "the workload's alerts matched none of the trips: the benchmark measures nothing"
