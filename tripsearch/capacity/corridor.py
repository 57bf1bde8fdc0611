"""Elasticsearch's cost per search, read from saved hot-corridor runs (``python -m benchmarks.hot_corridor --json PATH``).

The hot-corridor benchmark runs the same searches on both backends over a
popular pair (``per_day`` trips a day each way among background trips) and
saves, per kind of search (page 1 with all facets, page 2, page 1 without
facets), what each Elasticsearch search cost: ``took`` (``counters.took_ms``,
the sum of the ``took`` of the backend's requests), the documents and bytes
fetched (``counters.fetched``, ``counters.fetched_bytes``), the CPU of the
process that decided the band and built the page (``cpu_ms``), and p50/p99.
These keys are the contract: the package reads the files and never imports
``benchmarks/``.

A run is reduced to the dearest kind for each cost (:class:`CorridorRun`),
so that any mix of the three kinds costs no more; :func:`busiest` picks the
runs of the most popular corridor measured, and :func:`at_size` reads one
cost at a planned size off them.

>>> at_size([(74_000, 180.8)], 5_000_000)
(180.8, True, 'held at the value measured at 74,000 (one size measured)')
>>> at_size([(74_000, 180.8)], 20_000)
(180.8, False, 'measured at 74,000; not scaled down')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .data import loglog_fit, read_json
from .errors import CapacityError

__all__ = ["CorridorRun", "Cost", "load_corridor_runs", "busiest", "at_size", "DEFAULT_CORRIDOR_RUNS", "SEARCHES_PER_MSEARCH"]

RESULTS = Path("benchmarks") / "results"
DEFAULT_CORRIDOR_RUNS = (RESULTS / "hot_corridor_300.json", RESULTS / "hot_corridor_3000.json", RESULTS / "hot_corridor_1m.json")
# Searches the backend sends per request, for runs saved before it counted them (``shard_searches``): at most
# a search's candidates and its uncertain band as one _msearch (tripsearch/index/elastic/search.py), which
# the node runs side by side.
SEARCHES_PER_MSEARCH = 2


@dataclass(frozen=True)
class Cost:
    """One cost per search: the dearest of the kinds measured, and which kind that was."""

    value: float
    kind: str


@dataclass(frozen=True)
class CorridorRun:
    """The Elasticsearch costs per search of one saved corridor size."""

    path: str
    commit: str
    finished: str
    per_day: int
    trips: int
    shards: int
    searches: int  # per kind
    matches: float  # mean per search
    took_ms: Cost
    shard_searches: Cost  # searches sent per search (an _msearch runs them side by side: took hides up to all)
    api_cpu_ms: Cost
    fetched_bytes: Cost
    fetched_docs: Cost
    p50_ms: Cost
    p99_ms: Cost

    @property
    def trips_per_shard(self) -> float:
        return self.trips / self.shards

    def where(self) -> str:
        """Return where and when the run was measured, for a figure's source."""
        return f"{self.path} (commit {self.commit}, finished {self.finished} UTC; {self.per_day:,} trips a day each way, {self.trips:,} trips, {self.shards} shard(s), {self.searches} searches per kind)"


def _dearest(rows: list[dict[str, Any]], key: str, counter: bool = False) -> Cost:
    values = [((r.get("counters") or {}).get(key) if counter else r.get(key), r["kind"]) for r in rows]
    known = [(float(v), kind) for v, kind in values if isinstance(v, (int, float))]
    if len(known) < len(values):
        raise CapacityError(f"no {key!r} for every kind of search (the run predates the backend's counters?)")
    value, kind = max(known)
    return Cost(value, kind)


def _counted(rows: list[dict[str, Any]], key: str) -> bool:
    return all(isinstance((r.get("counters") or {}).get(key), (int, float)) for r in rows)


def _run(path: Path, doc: dict[str, Any], run: dict[str, Any]) -> CorridorRun:
    rows = [r for r in run.get("rows", []) if r.get("backend") == "elasticsearch"]
    if not rows:
        raise CapacityError(f"{path}: a run of {run.get('per_day')} trips a day has no Elasticsearch rows")
    try:
        return CorridorRun(
            path=str(path),
            commit=str(doc.get("commit") or "?"),
            finished=str(doc.get("finished_utc") or "?"),
            per_day=int(run["per_day"]),
            trips=int(run["trips"]),
            shards=int(run.get("shards") or 1),
            searches=min(int(r["searches"]) for r in rows),
            matches=max(float(r["matches"]) for r in rows),
            took_ms=_dearest(rows, "took_ms", counter=True),
            shard_searches=_dearest(rows, "shard_searches", counter=True) if _counted(rows, "shard_searches") else Cost(SEARCHES_PER_MSEARCH, "assumed (not counted)"),
            api_cpu_ms=_dearest(rows, "cpu_ms"),
            fetched_bytes=_dearest(rows, "fetched_bytes", counter=True),
            fetched_docs=_dearest(rows, "fetched", counter=True),
            p50_ms=_dearest(rows, "p50_ms"),
            p99_ms=_dearest(rows, "p99_ms"),
        )
    except CapacityError as exc:
        raise CapacityError(f"{path}, {run.get('per_day')} trips a day: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CapacityError(f"{path}: not a hot-corridor result of benchmarks/hot_corridor.py ({type(exc).__name__}: {exc})") from None


def load_corridor_runs(paths: Sequence[Path]) -> list[CorridorRun]:
    """Return the runs saved in hot-corridor JSON files, by corridor size then trips; say which file is wrong and why."""
    runs: list[CorridorRun] = []
    for path in paths:
        doc = read_json(path, f"no hot-corridor measurements at {path}: run `python -m benchmarks.hot_corridor --json {path}`")
        if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
            raise CapacityError(f"{path}: not a hot-corridor result (no 'runs')")
        runs += [_run(Path(path), doc, r) for r in doc["runs"]]
    return sorted(runs, key=lambda r: (r.per_day, r.trips, r.shards))


def busiest(runs: Sequence[CorridorRun]) -> list[CorridorRun]:
    """Return the runs of the most popular corridor measured (most trips a day), by trips."""
    if not runs:
        return []
    top = max(r.per_day for r in runs)
    return sorted((r for r in runs if r.per_day == top), key=lambda r: r.trips_per_shard)


def at_size(points: Sequence[tuple[float, float]], size: float) -> tuple[float, bool, str]:
    """Return (cost at ``size``, whether that goes beyond the measured sizes, how it was read) from (size, cost) points.

    Between measured sizes the cost is a power law through its neighbours;
    beyond the biggest, the power law of the two biggest with its exponent
    held within [0, 1] (:func:`~tripsearch.capacity.data.loglog_fit`), or
    the one value when one size was measured. Below the smallest measured
    size nothing is scaled down.
    """
    xs = sorted({float(x) for x, _ in points})
    fit = loglog_fit([x for x, _ in points], [y for _, y in points])
    if size <= xs[0]:
        measured = max(float(y) for x, y in points if float(x) == xs[0])
        return measured, False, f"measured at {xs[0]:,.0f}" + ("; not scaled down" if size < xs[0] else "")
    value, _ = fit(size)
    beyond = size > xs[-1]
    if not beyond:
        return value, False, f"power law between the measured {', '.join(f'{x:,.0f}' for x in xs)}"
    if len(xs) == 1:
        return value, True, f"held at the value measured at {xs[0]:,.0f} (one size measured)"
    return value, True, f"power law through the two biggest measured ({xs[-2]:,.0f}, {xs[-1]:,.0f}), exponent held within [0, 1]"
