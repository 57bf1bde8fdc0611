"""The data ``capacity measure`` runs on: fixture data directories of fixed sizes, cached, and the workloads over them.

The data sets are those of ``benchmarks/conftest.py`` (same seed, start and
days), built once under the cache directory and reused.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import tripsearch

from .loadgen import workload_calls
from .workload import build_workload

__all__ = ["SEED", "START", "DAYS", "WORKLOAD_SAMPLE", "fixture_trips", "build_data_dir", "workload_queries", "http_calls", "warm_page_cache", "dir_sizes", "segment_file"]


SEED = 42


START = dt.date(2026, 12, 1)


DAYS = 30


WORKLOAD_SAMPLE = 5000


def fixture_trips(n: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    from ..data.fixtures import generate_trips

    return iter(generate_trips(n, seed, START, DAYS))


def build_data_dir(size: int, cache: Path, say: Callable[[str], None] = lambda s: None) -> Path:
    """Return a data directory of ``size`` fixture trips, building it if absent (the layout benchmarks/conftest.py shares)."""
    path = cache / f"data-{size}-seed{SEED}-days{DAYS}"
    if (path / "READY").exists():
        if segment_file(path) is None:
            # cached by a version before segments: write the segment now, or the first worker measured would
            engine = tripsearch.open(path, refresh_interval=0, snapshot_on_close=False)
            try:
                engine.snapshot()  # type: ignore[attr-defined]
            finally:
                engine.close()
        return path
    if path.exists():
        shutil.rmtree(path)  # an interrupted build
    say(f"building {size:,} trips in {path} (once; cached)")
    engine = tripsearch.open(path, refresh_interval=0)
    try:
        batch: list[dict[str, Any]] = []
        done = 0
        last = time.monotonic()
        for trip in fixture_trips(size):
            batch.append(trip)
            if len(batch) == 5000:
                engine.upsert(batch, refresh=True)
                done += len(batch)
                batch = []
                if time.monotonic() - last > 10:
                    say(f"  {done:,} / {size:,} trips")
                    last = time.monotonic()
        if batch:
            engine.upsert(batch, refresh=True)
        engine.snapshot()  # type: ignore[attr-defined]
    finally:
        engine.close()
    (path / "READY").write_text("ok\n")
    return path


@functools.lru_cache(maxsize=2)
def _sample(n: int) -> tuple[dict[str, Any], ...]:
    """Return the first ``n`` trips of every data set: drawn by the same distribution as the whole."""
    return tuple(fixture_trips(n))


def workload_queries(n: int, facets: str | list[str], seed: int = 1, sample: int = WORKLOAD_SAMPLE) -> list[dict[str, Any]]:
    """Return ``n`` searches of the realistic mix (city pairs drawn by population, a share with filters)."""
    return build_workload(_sample(sample), n, seed=seed, facets=facets).searches


def http_calls(n: int, sample: int = WORKLOAD_SAMPLE) -> list[tuple[str, str, bool]]:
    """Return the HTTP workload: searches with all facets, page-2 follows and autocompletes, shuffled."""
    return workload_calls(build_workload(_sample(sample), n, seed=2, facets="all"), seed=3)


def dir_sizes(path: Path) -> dict[str, Any]:
    def size(name: str) -> int | None:
        p = path / name
        return p.stat().st_size if p.exists() else None

    # the index on disk: the segment the manifest names (index.snapshot before segments)
    segment = segment_file(path)
    return {"sqlite_bytes": size("trips.sqlite"), "snapshot_bytes": size(segment or "index.snapshot"), "segment_bytes": size(segment) if segment else None}


def segment_file(path: Path) -> str | None:
    try:
        return "segments/" + str(json.loads((path / "index.manifest").read_bytes())["segments"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def warm_page_cache(path: Path) -> float:
    """Read a file once so that the OS page cache holds it, as it does on a server that has run a while; return the seconds."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    return time.perf_counter() - t0
