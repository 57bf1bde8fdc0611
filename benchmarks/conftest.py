"""Benchmark data sets: built once per size and cached outside the repository.

Sizes come from ``TRIPSEARCH_BENCH_SIZES`` (comma list). The default is a
tiny size so that ``make test`` runs every benchmark once and they cannot
rot; ``make bench`` sets the full sizes (10,000 / 100,000 / 1,000,000).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

try:
    import pytest_benchmark  # noqa: F401  (the plugin of the benchmark fixture)
except ImportError:
    raise pytest.UsageError("the benchmarks need pytest-benchmark: pip install -e '.[bench]' (make bench and make dev install it)") from None

import tripsearch
from tripsearch.data.fixtures import generate_trips

SEED = 42
START = dt.date(2026, 12, 1)
DAYS = 30
SIZES = [int(s) for s in os.environ.get("TRIPSEARCH_BENCH_SIZES", "2000").split(",") if s.strip()]
CACHE = Path(os.environ.get("TRIPSEARCH_BENCH_DIR", Path.home() / ".cache" / "tripsearch" / "bench"))


def dataset_trips(size: int) -> list[dict[str, Any]]:
    return list(generate_trips(size, SEED, START, DAYS))


def build_data_dir(size: int) -> Path:
    """Return a data directory holding ``size`` fixture trips (and its index segment), building it if absent."""
    path = CACHE / f"data-{size}-seed{SEED}-days{DAYS}"
    done = path / "READY"
    if done.exists():
        return path
    engine = tripsearch.open(path, refresh_interval=0)
    batch: list[dict[str, Any]] = []
    for trip in generate_trips(size, SEED, START, DAYS):
        batch.append(trip)
        if len(batch) == 5000:
            engine.upsert(batch, refresh=True)
            batch = []
    if batch:
        engine.upsert(batch, refresh=True)
    engine.snapshot()  # type: ignore[attr-defined]
    engine.close()
    done.write_text("ok\n")
    return path


@pytest.fixture(scope="session", params=SIZES, ids=lambda s: f"{s}trips")
def data_dir(request: pytest.FixtureRequest) -> Path:
    return build_data_dir(request.param)


def workload_sample(size: int, n: int = 5000) -> list[dict[str, Any]]:
    """Return the first trips of the data set: a sample drawn by the same distribution as the whole."""
    return list(generate_trips(min(size, n), SEED, START, DAYS))
