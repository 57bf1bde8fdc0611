"""Shared fixtures: one engine factory for every backend the tests run against."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest

import tripsearch
from tripsearch.backend import Backend, DeleteReport, Refresh, UpsertReport

from tripsearch.testing.elastic import Cluster, es_cluster, es_clusters, fresh_alias  # noqa: F401  (session fixtures, started on first use)
from tripsearch.testing.rabbitmq import rabbitmq  # noqa: F401  (the session broker, started on first use)

from .skip_summary import pytest_terminal_summary, pytest_unconfigure  # noqa: F401  (the run's last line: what was skipped)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

BACKENDS = ["embedded", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]


@pytest.fixture(params=BACKENDS)
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Return a factory of fresh engines of one backend, each over its own data directory or index; all are closed after the test.

    The Elasticsearch engines share the session's one-node cluster, each
    with an index of its own that is removed afterwards.
    """
    if request.param == "embedded":
        opened: list[Backend] = []

        def factory(trips: list[dict[str, Any]] | None = None, **options: Any) -> Backend:
            options.setdefault("refresh_interval", 0)
            engine = tripsearch.open(tmp_path / f"data-{len(opened)}", **options)
            opened.append(engine)
            if trips:
                _load(engine, trips)
            return engine

        yield factory
        for engine in opened:
            engine.close()
        return

    indices = _ElasticIndices(request.getfixturevalue("es_cluster"))
    yield indices.engine
    indices.close()


def _load(engine: Backend, trips: list[dict[str, Any]]) -> None:
    report = engine.upsert(trips, refresh=True)
    assert report.rejected == 0, [i for i in report.items if i.result == "rejected"][:3]


class _ElasticIndices:
    """Elasticsearch engines for one test, each behaving as if it had an index of its own.

    Creating an index takes a few hundred milliseconds, and property tests
    ask for hundreds of fresh engines with the same trips that they only
    search. So engines made with the same arguments share one index until
    they are written to: the first ``upsert`` or ``delete`` through an
    engine gives it an index of its own, loaded with its trips (copy on
    write).
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.aliases: list[str] = []
        self.opened: list[Backend] = []
        self.clean: dict[str, Backend] = {}  # creation arguments -> an index not written to since

    def open(self, trips: list[dict[str, Any]] | None, options: dict[str, Any]) -> Backend:
        self.aliases.append(fresh_alias("contract"))
        # a generous timeout: index creation waits for the cluster state, slow on a busy machine
        engine = tripsearch.open(self.cluster.url, index=self.aliases[-1], **{"number_of_replicas": 0, "request_timeout": 30.0, **options})
        self.opened.append(engine)
        if trips:
            _load(engine, trips)
        return engine

    def engine(self, trips: list[dict[str, Any]] | None = None, **options: Any) -> Backend:
        options.setdefault("refresh_interval", 0)
        key = repr((trips, sorted(options.items())))
        if key not in self.clean:
            self.clean[key] = self.open(trips, options)
        return _CopyOnWrite(self, key, trips, options)  # type: ignore[return-value]

    def close(self) -> None:
        for engine in self.opened:
            engine.close()
        for alias in self.aliases:
            self.cluster.drop(alias)


class _CopyOnWrite:
    """An engine over a shared clean index until its first write, then over an index of its own."""

    def __init__(self, indices: _ElasticIndices, key: str, trips: list[dict[str, Any]] | None, options: dict[str, Any]) -> None:
        self._indices, self._key, self._trips, self._options = indices, key, trips, options
        self._engine = indices.clean[key]
        self._own = False

    def _writable(self) -> Backend:
        if not self._own:
            self._engine = self._indices.open(self._trips, self._options)
            self._own = True
        return self._engine

    def upsert(self, trips: Iterable[Any], refresh: Refresh = False) -> UpsertReport:
        return self._writable().upsert(trips, refresh=refresh)

    def delete(self, ids: Iterable[Any], refresh: Refresh = False) -> DeleteReport:
        return self._writable().delete(ids, refresh=refresh)

    def close(self) -> None:
        pass  # the factory closes every engine after the test

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)
