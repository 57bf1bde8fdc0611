"""Bulk load throughput, restart time and memory per trip of the embedded backend."""

from __future__ import annotations

import json
import os
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
    from tripsearch.data.fixtures import generate_trips

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
    benchmark.extra_info.update({"trips": LOAD_SIZE, "trips_per_s": round(LOAD_SIZE / seconds), "load_average": round(os.getloadavg()[0], 2)})


def test_bulk_load_stages(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """CPU per trip of each stage of the bulk load, on the trips of test_bulk_load in batches of 5,000.

    The stages as `engine.upsert` and the refresh after it run them:
    parse/validate (``parse_upserts``), the SQLite write (``Store.write``),
    and the index apply (``MemoryIndex.apply``), which builds the trip
    columns, the corridor cells and postings, and merges posting segments;
    columns and cells are also timed on their own. The H3 cells of the
    snapping grid are those test_bulk_load computed for the same trips
    (warm), which is how a long load runs once it has seen its region.
    """
    import numpy as np

    from tripsearch.backend import parse_upserts
    from tripsearch.core.columns import TripColumns
    from tripsearch.index.cells import route_to_cells
    from tripsearch.index.embedded.memory import MemoryIndex
    from tripsearch.index.embedded.store import Store
    from tripsearch.data.fixtures import generate_trips

    lines = [orjson.dumps(t) for t in generate_trips(LOAD_SIZE, SEED + 1, START, DAYS)]
    stages = {"parse_validate": 0.0, "sqlite_write": 0.0, "columns": 0.0, "cells": 0.0, "index_apply": 0.0}

    def load() -> None:
        tmp = tmp_path / "stages"
        tmp.mkdir(exist_ok=True)
        store = Store(tmp / "trips.sqlite")
        index = MemoryIndex()
        clock = time.process_time
        for i in range(0, len(lines), 5000):
            t = clock()
            parsed, latest = parse_upserts(lines[i : i + 5000])
            stages["parse_validate"] += clock() - t
            t = clock()
            store.write([(w.trip.id, w.trip.version, w.raw) for w in latest.values()])  # type: ignore[misc]
            stages["sqlite_write"] += clock() - t
            trips = [w.trip for w in latest.values()]
            routes = [w.route for w in latest.values()]
            t = clock()
            cols = TripColumns.from_trips(trips, routes)
            stages["columns"] += clock() - t
            t = clock()
            route_to_cells(cols, np.arange(len(cols), dtype=np.int64))
            stages["cells"] += clock() - t
            t = clock()
            index.apply(trips, [], i + len(trips), routes)
            stages["index_apply"] += clock() - t
        store.close()

    benchmark.pedantic(load, rounds=1, iterations=1)
    per_trip = {f"{name}_us_per_trip": round(seconds / LOAD_SIZE * 1e6, 1) for name, seconds in stages.items()}
    benchmark.extra_info.update({"trips": LOAD_SIZE, **per_trip})


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
