"""Shared fixtures: one engine factory for every backend the tests run against."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import tripsearch
from tripsearch.backend import Backend

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Return a factory of fresh embedded engines, each over its own data directory; all are closed after the test."""
    opened: list[Backend] = []

    def factory(trips: list[dict[str, Any]] | None = None, **options: Any) -> Backend:
        options.setdefault("refresh_interval", 0)
        engine = tripsearch.open(tmp_path / f"data-{len(opened)}", **options)
        opened.append(engine)
        if trips:
            report = engine.upsert(trips, refresh=True)
            assert report.rejected == 0, [i for i in report.items if i.result == "rejected"][:3]
        return engine

    yield factory
    for engine in opened:
        engine.close()
