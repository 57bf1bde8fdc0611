"""Hot corridor: the embedded engine and Elasticsearch side by side on a popular city pair.

Usage::

    python -m benchmarks.hot_corridor [--per-day 300,3000] [--background 20000] [--days 9]
        [--queries 200] [--warmup 2] [--warmup-seconds 30] [--es URL] [--shards 1] [--radius 10] [--limit N]
        [--from Paris] [--to Lyon] [--json PATH]

For each ``--per-day`` value, in one process: the trips are ``--background``
trips of :func:`tripsearch.data.fixtures.generate_trips` plus ``per-day`` trips a
day each way between Paris and Lyon (:func:`tripsearch.data.fixtures.corridor_trips`),
over ``--days`` days. The same trips go into a fresh embedded engine (a
temporary directory, its index then written as one segment) and a fresh
Elasticsearch alias; then the same searches
run on both, interleaved (embedded, then Elasticsearch, query by query, so
noise on the machine hits both alike): Paris to Lyon and Lyon to Paris from
the city coordinates, on each middle day (those whose ``dates`` facet window,
the day +-3, lies inside the data), in three kinds:

* ``page 1, all facets``: the default query;
* ``page 2``: the next page of that query (following its ``next_cursor``;
  only the page-2 call is timed);
* ``page 1, no facets``: ``"facets": []``.

The kinds take turns in :data:`ROUNDS` rounds, after a warm-up of at least
``--warmup`` passes and ``--warmup-seconds`` seconds (a fresh node's JVM
compiles the search's hot paths during its first few hundred searches).

Then the same searches run on the embedded engine alone (``embedded, alone``
rows: the kinds taking turns in the same rounds, nothing else between two
searches), as in an API process that serves the embedded backend only: the
interleaved figures include what a search between two Elasticsearch ones
pays for the caches the client and the JVM took over meanwhile.

It prints one Markdown row per backend and kind: p50 and p99 wall time, the
CPU time of this process per search (``time.process_time``: for
Elasticsearch that is the client side, decoding and the exact rules in
Python, not the cluster's CPU), the matches (``total``), and for
Elasticsearch the per-search means of the backend's ``stats()`` counters
(documents and bytes fetched, Elasticsearch ``took``, requests; ``n/a`` when
the backend does not count them) and its p50 over the embedded one. Every
search must give the same total, ids in order, facets and cursor on both
backends, or the command fails.

Without ``--es`` it starts a one-node cluster (``scripts/elasticsearch start
--name tripsearch-bench-hot``) and stops it at the end; the alias and its
indices are deleted either way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import orjson
from elastic_transport import Urllib3HttpNode

import tripsearch
from tripsearch.backend import Backend, SearchResult
from tripsearch.data.fixtures import corridor_trips, generate_trips
from tripsearch.data.places import Place, load_places

__all__ = [
    "KINDS",
    "Row",
    "Mismatch",
    "WireMeter",
    "middle_days",
    "corridor_queries",
    "bench_trips",
    "load_both",
    "measure",
    "measure_alone",
    "run_corridor",
    "format_table",
    "main",
]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "elasticsearch"
CLUSTER_NAME = "tripsearch-bench-hot"
START = dt.date(2026, 12, 1)
SEED = 1
LOAD_BATCH = 2000  # the Elasticsearch backend's bulk size
KINDS = ("page 1, all facets", "page 2", "page 1, no facets")
# The searches of each kind run in this many rounds, the kinds taking turns, so that a noisy minute on a shared
# machine falls on all three kinds alike (page 2 against page 1 is one of the targets).
ROUNDS = 10
# Counters of ElasticBackend.stats() reported per search; absent ones print "n/a".
ES_COUNTERS = ("fetched", "fetched_bytes", "took_ms", "es_requests", "shard_searches", "anchored")


class Mismatch(AssertionError):
    """The two backends answered one search differently."""


class WireMeter:
    """Count the HTTP requests of this process's Elasticsearch clients, their response bytes and ``took``, while on.

    The same measure whatever the backend counts itself (its ``stats()``
    counters may be missing or defined differently in another version), so
    runs before and after a change compare. It wraps the client's urllib3
    node for as long as the ``with`` block lasts; requests count only while
    :attr:`on` is true (around the searches, not the ``stats()`` calls).
    """

    _TOOK = re.compile(rb'^\{"took":(\d+)')

    def __init__(self) -> None:
        self.on = False
        self.requests = 0
        self.response_bytes = 0
        self.took_ms = 0
        self._original: Any = None

    def snapshot(self) -> tuple[int, int, int]:
        return self.requests, self.response_bytes, self.took_ms

    def __enter__(self) -> WireMeter:
        original = self._original = Urllib3HttpNode.perform_request
        meter = self

        def perform_request(node: Urllib3HttpNode, *args: Any, **kwargs: Any) -> Any:
            response = original(node, *args, **kwargs)
            if meter.on:
                meter.requests += 1
                meter.response_bytes += len(response.body)
                took = meter._TOOK.match(response.body[:32])
                meter.took_ms += int(took.group(1)) if took else 0
            return response

        setattr(Urllib3HttpNode, "perform_request", perform_request)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        setattr(Urllib3HttpNode, "perform_request", self._original)


@dataclass
class Row:
    """Figures of one backend and one kind of search, at one corridor size."""

    per_day: int
    backend: str
    kind: str
    searches: int
    matches: float  # mean total per search
    matches_min: int
    matches_max: int
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # mean CPU of this process per search
    counters: dict[str, float | None] = field(default_factory=dict)  # Elasticsearch stats(), per search
    wire: dict[str, float] = field(default_factory=dict)  # Elasticsearch, measured by WireMeter, per search
    p50_ratio: float | None = None  # Elasticsearch p50 / embedded p50


def middle_days(start: dt.date, days: int) -> list[dt.date]:
    """Return the days whose ``dates`` facet window (day - 3 .. day + 3) lies inside the data; all days if none does.

    >>> [d.day for d in middle_days(dt.date(2026, 12, 1), 9)]
    [4, 5, 6]
    >>> [d.day for d in middle_days(dt.date(2026, 12, 1), 2)]
    [1, 2]
    """
    inside = list(range(3, days - 3))
    return [start + dt.timedelta(days=d) for d in (inside or range(days))]


def city(name: str) -> Place:
    """Return the biggest city of that name (what :func:`corridor_trips` picks for a name)."""
    for place in load_places():
        if place.name == name:
            return place
    raise SystemExit(f"hot_corridor: no city named {name!r}")


def corridor_queries(
    a: Place, b: Place, start: dt.date, days: int, radius_km: float = 10.0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Return the page-1 queries (default facets; default ``limit`` unless given) from a to b and back on each middle day."""
    ends = [[round(a.lat, 5), round(a.lon, 5)], [round(b.lat, 5), round(b.lon, 5)]]
    page = {} if limit is None else {"limit": limit}
    return [
        {"from": ends[i], "to": ends[1 - i], "date": day.isoformat(), "from_radius_km": radius_km, "to_radius_km": radius_km, **page}
        for day in middle_days(start, days)
        for i in (0, 1)
    ]


def bench_trips(a: Place, b: Place, per_day: int, background: int, start: dt.date, days: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Yield the background trips, then the corridor's."""
    yield from generate_trips(background, seed, start, days)
    yield from corridor_trips(a, b, per_day, start, days, seed)


def load_both(engines: Sequence[Backend], trips: Iterable[dict[str, Any]], batch: int = LOAD_BATCH) -> tuple[int, list[float]]:
    """Upsert the trips (as NDJSON lines) into every engine in batches, refresh; return the count and seconds per engine."""
    seconds = [0.0] * len(engines)
    count = 0
    lines: list[bytes] = []

    def flush() -> None:
        for i, engine in enumerate(engines):
            started = time.perf_counter()
            report = engine.upsert(lines)
            seconds[i] += time.perf_counter() - started
            if report.stored != len(lines):
                raise RuntimeError(f"{type(engine).__name__} stored {report.stored} of {len(lines)} trips: {report.to_dict()['items'][:3]}")

    for trip in trips:
        lines.append(orjson.dumps(trip))
        count += 1
        if len(lines) == batch:
            flush()
            lines = []
    if lines:
        flush()
    for i, engine in enumerate(engines):
        started = time.perf_counter()
        engine.refresh()
        seconds[i] += time.perf_counter() - started
    return count, seconds


def check_same(want: SearchResult, got: SearchResult, query: dict[str, Any], kind: str) -> None:
    """Raise :class:`Mismatch` unless both results have the same total, ids in order, facets and cursor."""
    checks = (
        ("total", want.total, got.total),
        ("ids", [h.id for h in want.trips], [h.id for h in got.trips]),
        ("facets", want.facets, got.facets),
        ("next_cursor", want.next_cursor, got.next_cursor),
    )
    for what, a, b in checks:
        if a != b:
            raise Mismatch(f"{kind}: embedded and Elasticsearch differ in {what} for {query}:\n  embedded:      {str(a)[:300]}\n  elasticsearch: {str(b)[:300]}")


def _page_queries(engine: Backend, queries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Return the queries of each kind; page 2 follows this engine's own page-1 cursors."""
    page2: list[dict[str, Any]] = []
    for q in queries:
        cursor = engine.search(q).next_cursor
        if cursor is None:
            raise SystemExit(f"hot_corridor: no second page for {q}; use a bigger --per-day")
        page2.append({**q, "cursor": cursor})
    return {KINDS[0]: queries, KINDS[1]: page2, KINDS[2]: [{**q, "facets": []} for q in queries]}


def measure(
    embedded: Backend,
    elastic: Backend,
    queries: list[dict[str, Any]],
    n_searches: int,
    per_day: int = 0,
    warmup: int = 2,
    warmup_s: float = 0.0,
) -> list[Row]:
    """Run ``n_searches`` searches of each kind on both engines, interleaved; return a row per backend and kind.

    Interleaved twice over: query by query between the engines, and in
    :data:`ROUNDS` rounds between the kinds.

    Every search's results are compared (:class:`Mismatch` if they differ).
    Warm-up: passes over the distinct queries of each kind, at least
    ``warmup`` of them and for at least ``warmup_s`` seconds. A freshly
    started Elasticsearch node needs some: its JVM compiles the search's hot
    paths after a few hundred searches, and the steady state is what a
    serving cluster runs in.
    """
    kinds = {"embedded": _page_queries(embedded, queries), "elasticsearch": _page_queries(elastic, queries)}
    passes, warm_until = 0, time.perf_counter() + warmup_s
    while passes < warmup or time.perf_counter() < warm_until:
        passes += 1
        for kind in KINDS:
            for i in range(len(queries)):
                want = embedded.search(kinds["embedded"][kind][i])
                check_same(want, elastic.search(kinds["elasticsearch"][kind][i]), kinds["embedded"][kind][i], kind)
    tallies = {kind: _Tally() for kind in KINDS}
    with WireMeter() as wire:
        for block in _blocks(n_searches, ROUNDS):
            for kind in KINDS:
                _measure_block(embedded, elastic, kind, kinds["embedded"][kind], kinds["elasticsearch"][kind], block, wire, tallies[kind])
    return [row for kind in KINDS for row in tallies[kind].rows(kind, per_day)]


def measure_alone(embedded: Backend, queries: list[dict[str, Any]], n_searches: int, per_day: int = 0) -> list[Row]:
    """Run ``n_searches`` searches of each kind on the embedded engine alone, the kinds taking turns in :data:`ROUNDS` rounds; return a row per kind.

    After :func:`measure`, which warmed the engine up and checked every
    answer against Elasticsearch's: the same searches, with no other search
    between two of them.
    """
    kinds = _page_queries(embedded, queries)
    wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    totals: dict[str, list[int]] = {kind: [] for kind in KINDS}
    for block in _blocks(n_searches, ROUNDS):
        for kind in KINDS:
            gc.collect()
            for n in block:
                totals[kind].append(_timed(embedded, kinds[kind][n % len(queries)], wall[kind], cpu[kind]).total)
    return [_row(per_day, "embedded, alone", kind, wall[kind], cpu[kind], totals[kind]) for kind in KINDS]


def _row(per_day: int, backend: str, kind: str, wall: list[float], cpu: list[float], totals: list[int]) -> Row:
    """Return the figures of one backend and kind from each search's wall and CPU seconds and total."""
    ms = np.array(wall) * 1000.0
    return Row(per_day=per_day, backend=backend, kind=kind, searches=len(totals), matches=float(np.mean(totals)), matches_min=min(totals),
               matches_max=max(totals), p50_ms=float(np.percentile(ms, 50)), p99_ms=float(np.percentile(ms, 99)), cpu_ms=float(np.mean(cpu)) * 1000.0)


def _blocks(n: int, rounds: int) -> list[range]:
    """Split searches ``0..n-1`` into ``rounds`` consecutive blocks (fewer when ``n`` is small)."""
    bounds = np.linspace(0, n, min(rounds, n) + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _timed(engine: Backend, query: dict[str, Any], wall: list[float], cpu: list[float]) -> SearchResult:
    """Run one search, appending its wall time and this process's CPU time (seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = engine.search(query)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
    return result


@dataclass
class _Tally:
    """What the searches of one kind measured so far, over all rounds."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {"embedded": [], "elasticsearch": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"embedded": [], "elasticsearch": []})
    totals: list[int] = field(default_factory=list)
    counters: dict[str, float | None] = field(default_factory=lambda: {name: 0.0 for name in ES_COUNTERS})
    on_wire: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def rows(self, kind: str, per_day: int) -> list[Row]:
        n = len(self.totals)
        rows = [_row(per_day, backend, kind, self.wall[backend], self.cpu[backend], self.totals) for backend in ("embedded", "elasticsearch")]
        rows[1].counters = {name: None if v is None else v / n for name, v in self.counters.items()}
        rows[1].wire = dict(zip(("requests", "response_bytes", "took_ms"), (v / n for v in self.on_wire)))
        rows[1].p50_ratio = rows[1].p50_ms / rows[0].p50_ms if rows[0].p50_ms > 0 else None
        return rows


def _measure_block(
    embedded: Backend,
    elastic: Backend,
    kind: str,
    embedded_queries: list[dict[str, Any]],
    elastic_queries: list[dict[str, Any]],
    block: range,
    wire: WireMeter,
    tally: _Tally,
) -> None:
    """Run the searches ``block`` of one kind on both engines, query by query, into ``tally``."""
    gc.collect()
    before, wire_before = elastic.stats(), wire.snapshot()
    for n in block:
        i = n % len(embedded_queries)
        want = _timed(embedded, embedded_queries[i], tally.wall["embedded"], tally.cpu["embedded"])
        wire.on = True
        got = _timed(elastic, elastic_queries[i], tally.wall["elasticsearch"], tally.cpu["elasticsearch"])
        wire.on = False
        check_same(want, got, embedded_queries[i], kind)
        tally.totals.append(want.total)
    after, wire_after = elastic.stats(), wire.snapshot()
    for name in ES_COUNTERS:
        a, b, so_far = before.get(name), after.get(name), tally.counters[name]
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and so_far is not None
        tally.counters[name] = so_far + (b - a) if ok else None  # type: ignore[operator]
    tally.on_wire = [t + (y - x) for t, x, y in zip(tally.on_wire, wire_before, wire_after)]


def drop_alias(url: str, alias: str) -> None:
    """Delete the indices and the index template an Elasticsearch engine made for ``alias``."""
    from elasticsearch import Elasticsearch

    with Elasticsearch(url, request_timeout=60) as es:
        es.options(ignore_status=404).indices.delete(index=f"{alias}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"tripsearch-{alias}")


def run_corridor(
    es_url: str,
    per_day: int,
    background: int,
    days: int,
    n_searches: int,
    *,
    shards: int = 1,
    radius_km: float = 10.0,
    limit: int | None = None,
    origin: str = "Paris",
    destination: str = "Lyon",
    start: dt.date = START,
    seed: int = SEED,
    warmup: int = 2,
    warmup_s: float = 0.0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Load one corridor size into a fresh embedded engine and a fresh Elasticsearch alias, measure both, clean up."""
    say = log or (lambda message: None)
    a, b = city(origin), city(destination)
    alias = f"bench-hot-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="hot-corridor-") as tmp:
        embedded = tripsearch.open(tmp, refresh_interval=0, snapshot_on_close=False)
        try:
            elastic = tripsearch.open(
                es_url, index=alias, number_of_shards=shards, number_of_replicas=0, refresh_interval=0, request_timeout=60.0
            )
            try:
                started = time.perf_counter()
                count, load_s = load_both([embedded, elastic], bench_trips(a, b, per_day, background, start, days, seed))
                # The trips in one segment, as a restart or the first merge (at 50,000 rows written) leaves them: a smaller
                # load stays in the in-memory delta, whose searches go through the postings, not the anchor entries.
                merging = time.perf_counter()
                embedded.snapshot()  # type: ignore[attr-defined]
                load_s[0] += time.perf_counter() - merging
                say(f"per day {per_day}: {count:,} trips built and loaded in {time.perf_counter() - started:.0f} s (embedded {load_s[0]:.0f} s, Elasticsearch {load_s[1]:.0f} s)")
                queries = corridor_queries(a, b, start, days, radius_km, limit)
                started = time.perf_counter()
                rows = measure(embedded, elastic, queries, n_searches, per_day=per_day, warmup=warmup, warmup_s=warmup_s)
                anchored = embedded.stats().get("anchored", 0)
                alone = measure_alone(embedded, queries, n_searches, per_day=per_day)
                say(f"per day {per_day}: {len(KINDS) * n_searches} searches per backend in {time.perf_counter() - started:.0f} s ({anchored:,} embedded ones from anchor entries)")
            finally:
                elastic.close()
        finally:
            embedded.close()
            drop_alias(es_url, alias)
    return {
        "per_day": per_day,
        "background": background,
        "days": days,
        "trips": count,
        "shards": shards,
        "radius_km": radius_km,
        "limit": limit,
        "pair": [origin, destination],
        "distinct_queries": len(queries),
        "load_s": {"embedded": round(load_s[0], 2), "elasticsearch": round(load_s[1], 2)},
        "embedded_anchored_searches": anchored,
        "rows": [asdict(r) for r in rows],
        "embedded_alone": [asdict(r) for r in alone],
    }


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def format_table(runs: list[dict[str, Any]]) -> str:
    """Return the rows of all runs as one Markdown table.

    The columns up to ``ES requests`` are the backend's own ``stats()``
    counters (``n/a`` when it has none of that name); ``on the wire`` is what
    :class:`WireMeter` saw: HTTP requests, response KB and the sum of
    ``took``, per search.
    """
    lines = [
        "| trips/day each way | backend | search | matches | p50 ms | p99 ms | CPU ms/search | docs fetched | bytes fetched | ES took ms | ES requests | on the wire: requests, KB, took ms | p50 ES/emb |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for r in [*run["rows"], *run.get("embedded_alone", [])]:
            common = f"| {r['per_day']:,} | {r['backend']} | {r['kind']} | {_num(r['matches'], 0)} | {_num(r['p50_ms'])} | {_num(r['p99_ms'])} | {_num(r['cpu_ms'])} |"
            if r["backend"] != "elasticsearch":
                lines.append(common + " - | - | - | - | - | |")
                continue
            c, w = r["counters"], r["wire"]
            lines.append(
                f"{common} {_num(c.get('fetched'), 0)} | {_num(c.get('fetched_bytes'), 0)} | {_num(c.get('took_ms'), 1)} | {_num(c.get('es_requests'), 1)} | "
                f"{_num(w['requests'], 1)}, {_num(w['response_bytes'] / 1024, 0)}, {_num(w['took_ms'], 1)} | {_num(r['p50_ratio'], 1)}x |"
            )
    return "\n".join(lines)


def _script(*args: str, timeout: float = 360) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--name", CLUSTER_NAME], capture_output=True, text=True, timeout=timeout)


def start_cluster() -> str:
    """Start the benchmark's own one-node cluster; return its URL."""
    done = _script("start", "--timeout", "300")
    if done.returncode != 0:
        raise SystemExit(f"hot_corridor: scripts/elasticsearch start failed: {done.stderr.strip()[-500:]}")
    return str(json.loads(done.stdout)["urls"][0])


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want integers >= 1: {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_corridor", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-day", type=_positive_ints, default=[300, 3000], help="corridor trips a day each way, comma list (default 300,3000)")
    parser.add_argument("--background", type=int, default=20_000, help="trips on other routes (default 20000; the 1M run: 1000000)")
    parser.add_argument("--days", type=int, default=9, help="days of departures (default 9)")
    parser.add_argument("--queries", type=int, default=200, help="searches of each kind per backend (default 200)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up passes over the distinct queries, at least (default 2)")
    parser.add_argument("--warmup-seconds", type=float, default=30.0, help="warm-up time, at least (default 30)")
    parser.add_argument("--es", help="Elasticsearch URL (default: start a cluster named tripsearch-bench-hot, stop it at the end)")
    parser.add_argument("--shards", type=int, default=1, help="primary shards of the Elasticsearch index (default 1)")
    parser.add_argument("--radius", type=float, default=10.0, help="from/to radius in km (default 10)")
    parser.add_argument("--limit", type=int, help="page size (default: the query default, 20)")
    parser.add_argument("--from", dest="origin", default="Paris", help="one end of the corridor (default Paris)")
    parser.add_argument("--to", dest="destination", default="Lyon", help="the other end (default Lyon)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.background < 0 or args.days < 1 or args.queries < 1 or args.shards < 1 or args.warmup < 0 or args.warmup_seconds < 0:
        parser.error("--background must be >= 0; --days, --queries and --shards >= 1; --warmup and --warmup-seconds >= 0")

    def log(message: str) -> None:
        print(f"hot_corridor: {message}", file=sys.stderr, flush=True)

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    url = args.es
    if url is None:
        log(f"starting Elasticsearch ({CLUSTER_NAME})")
        url = start_cluster()
    try:
        runs = [
            run_corridor(
                url, per_day, args.background, args.days, args.queries, shards=args.shards, radius_km=args.radius,
                limit=args.limit, origin=args.origin, destination=args.destination, warmup=args.warmup,
                warmup_s=args.warmup_seconds, log=log,
            )
            for per_day in args.per_day
        ]
    finally:
        if args.es is None:
            _script("stop", timeout=120)
    table = format_table(runs)
    print(table)
    if args.json is not None:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        args.json.write_text(
            json.dumps(
                {"command": ["python", "-m", "benchmarks.hot_corridor", *(sys.argv[1:] if argv is None else argv)],
                 "started_utc": started, "finished_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                 "commit": commit, "runs": runs},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
