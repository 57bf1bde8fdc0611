"""Bulk load throughput, restart time and memory per trip of the embedded backend."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orjson

import tripsearch

from .conftest import DAYS, SEED, START, SIZES

LOAD_SIZE = min(max(SIZES), 100_000)


def test_bulk_load(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Trips/s through engine.upsert of NDJSON lines in batches of 5,000, as `tripsearch index` does."""
    from tripsearch.fixtures import generate_trips

    lines = [orjson.dumps(t) for t in generate_trips(LOAD_SIZE, SEED + 1, START, DAYS)]
    runs = iter(range(100))

    def load() -> None:
        engine = tripsearch.open(tmp_path / f"load-{next(runs)}", refresh_interval=0, snapshot_on_close=False)
        for i in range(0, len(lines), 5000):
            report = engine.upsert(lines[i : i + 5000], refresh=True)
            assert report.rejected == 0
        engine.close()

    benchmark.pedantic(load, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.min
    benchmark.extra_info.update({"trips": LOAD_SIZE, "trips_per_s": round(LOAD_SIZE / seconds)})


_PROBE = """
import json, sys, time, psutil
proc = psutil.Process()
import tripsearch, numpy, h3, msgspec, orjson  # the libraries' own memory is not the index's
before = proc.memory_info().rss
t0 = time.perf_counter()
engine = tripsearch.open(sys.argv[1], refresh_interval=0, snapshot_on_close=False)
opened = time.perf_counter() - t0
stats = engine.stats()
print(json.dumps({"open_s": opened, "rss_delta": proc.memory_info().rss - before, "trips": stats["trips"]}))
"""


def test_restart_and_memory(benchmark, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Open a data directory in a fresh process (map the segment + catch-up): seconds, and resident memory per trip."""
    results = []

    def restart() -> None:
        out = subprocess.run([sys.executable, "-c", _PROBE, str(data_dir)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout))

    benchmark.pedantic(restart, rounds=3, iterations=1)
    best = min(results, key=lambda r: r["open_s"])
    trips = best["trips"]
    benchmark.extra_info.update(
        {
            "trips": trips,
            "open_s": round(best["open_s"], 3),
            "bytes_per_trip": round(max(r["rss_delta"] for r in results) / max(1, trips)),
        }
    )
    assert trips > 0
