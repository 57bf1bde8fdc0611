"""Publish-to-match cost against the number of saved alerts, alerts on and off side by side in one run.

    python -m benchmarks.alerts --alerts 10000,100000,1000000       # writes benchmarks/results/alerts.json
    python -m benchmarks.alerts --table benchmarks/results/alerts.json  # the Markdown table of benchmarks/README.md
    python -m benchmarks.alerts --backend http://127.0.0.1:9200 --alerts 10000,100000 --single 300 --bulk 3000 \
        --out benchmarks/results/alerts_elasticsearch.json                 # the same on Elasticsearch

Alerts are the workload's searches (``build_workload``:
city pairs by popularity, a fifth of them filtered), each over 1 to 7
days of the 14 days the trips run. For each size, on the embedded backend
(or on the Elasticsearch cluster ``--backend`` names), with the same trips
written to two fresh data directories (indices), one matching against the
alerts and one with matching off, alternately so both see the same machine:

- one trip per call (an API ``PUT``, the trip as JSON text): latency p50/p99 of the write, on and off;
- the matcher alone (:func:`~tripsearch.alerts.match_trips`, one trip, no
  SQLite): p50/p99, what matching adds to a write before its journal;
- batches of :data:`BATCH` trips (a bulk load): trips/s on and off, and the
  matcher's microseconds per trip in such batches.

On the embedded backend a third data directory, over a copy of the alert
store, matches in a follower process (``matching="process"``,
:mod:`tripsearch.alerts.follower`), written in the same alternation: its
one-trip writes' latency (they return before matching), the latency of
:data:`WAITED` more one-trip writes made with ``refresh=True`` (they return
once the follower has recorded their matches: publish to match), and its
bulk load's trips/s counted until the follower has matched the last batch
(written alone, after the others: its follower works while the batches are
written, so it cannot take turns with them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

import tripsearch
from tripsearch.alerts import AlertStore, match_trips
from tripsearch.alerts.numbers import NumberSet
from tripsearch.backend import parse_upserts
from tripsearch.data.fixtures import generate_trips

try:  # the workload moves into tripsearch.capacity
    from tripsearch.capacity.workload import build_workload
except ImportError:  # pragma: no cover - before the move
    from tripsearch.capacity.workload import build_workload  # type: ignore[no-redef]

START = dt.date(2027, 3, 1)
DAYS = 14
CLOCK = dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc).timestamp()
BATCH = 1000
WAITED = 200  # one-trip writes that wait for their match, with a follower process
SEARCH_FIELDS = ("from", "to", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "options", "min_rating")
RESULTS = Path(__file__).parent / "results" / "alerts.json"


def workload_alerts(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """Return ``n`` alerts: the workload's searches (city pairs by popularity, some filtered), each over 1 to 7 days."""
    trips = list(generate_trips(min(20_000, max(2000, n // 5)), seed, START, DAYS))
    searches = build_workload(trips, n, seed, facets=[]).searches
    rng = np.random.default_rng(seed)
    alerts = []
    for q in searches:
        first = dt.date.fromisoformat(str(q["date"]))
        alert = {k: q[k] for k in SEARCH_FIELDS if k in q}
        alert["date_from"], alert["date_to"] = first.isoformat(), (first + dt.timedelta(days=int(rng.integers(0, 7)))).isoformat()
        alerts.append(alert)
    return alerts


def filled_store(path: Path, n: int) -> tuple[AlertStore, float]:
    """Return a store holding ``n`` workload alerts (1,000 owners) and the seconds it took to save them."""
    store = AlertStore(path, max_per_owner=10**9, clock=lambda: CLOCK)
    alerts = workload_alerts(n)
    started = time.perf_counter()
    for at in range(0, n, 50_000):
        store.import_alerts((f"u-{(at + i) % 1000}", a) for i, a in enumerate(alerts[at : at + 50_000]))
    return store, time.perf_counter() - started


def _ms(xs: list[float], q: float) -> float:
    return round(1000 * float(np.percentile(xs, q)), 3)


def _engines(n_alerts: int, store: AlertStore, work: Path, backend: str | None) -> tuple[Any, Any, Any, Any]:
    """Return the engines with alerts on, off and matched by a follower process (None on a cluster), and a clean-up that removes what they wrote to a cluster."""
    if backend is None:
        on = tripsearch.open(work / f"on-{n_alerts}", refresh_interval=0, alerts=store)
        off = tripsearch.open(work / f"off-{n_alerts}", refresh_interval=0, alerts=False)
        copy = work / f"alerts-{n_alerts}-follower.sqlite"
        with sqlite3.connect(store.path) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        followed = tripsearch.open(work / f"followed-{n_alerts}", refresh_interval=0, alerts=copy, matching="process")
        return on, off, followed, lambda: None
    tag = f"bench-alerts-{os.getpid()}-{n_alerts}"
    # the cluster's own refresh interval: a write is acknowledged once durable, as a worker's or the API's
    on = tripsearch.open(backend, index=f"{tag}-on", alerts=store, number_of_replicas=0, request_timeout=60.0)
    off = tripsearch.open(backend, index=f"{tag}-off", alerts=False, number_of_replicas=0, request_timeout=60.0)

    def drop() -> None:
        from elasticsearch import Elasticsearch

        with Elasticsearch(backend, request_timeout=60) as es:
            for alias in (f"{tag}-on", f"{tag}-off"):
                for index in es.options(ignore_status=404).indices.get_alias(name=alias).body or {}:
                    if index != "error" and index != "status":
                        es.options(ignore_status=404).indices.delete(index=index)

    return on, off, None, drop


def measure(n_alerts: int, single: int, bulk: int, work: Path, backend: str | None = None) -> dict[str, Any]:
    """Return the figures of one alert set size (see the module docstring)."""
    store, saved_s = filled_store(work / f"alerts-{n_alerts}.sqlite", n_alerts)
    started = time.perf_counter()
    index = store.index()
    index_s = time.perf_counter() - started
    # as JSON text, as the API and the broker's worker hand trips to the backend (a Python caller's dicts take longer to parse)
    trips = [orjson.dumps(trip) for trip in generate_trips(single + bulk + WAITED + 200, 11, START, DAYS)]
    warm, ones, waits, batches = trips[:200], trips[200 : 200 + single], trips[200 + single : 200 + single + WAITED], trips[200 + single + WAITED :]
    parsed = [w.trip for w in parse_upserts(ones)[1].values()]
    routes = [w.route for w in parse_upserts(ones)[1].values()]
    # The trips in memory here are the benchmark's, not a writer's (which holds a batch): out of the collector's way.
    gc.collect()
    gc.freeze()
    on, off, followed, drop = _engines(n_alerts, store, work, backend)
    engines = [("off", off), ("on", on)] + ([("followed", followed)] if followed is not None else [])
    try:
        for _, engine in engines:  # compiled kernels, SQLite pages: once per process
            for trip in warm[:100]:
                engine.upsert([trip])
            engine.upsert(warm[100:], refresh=True)
        latency: dict[str, list[float]] = {name: [] for name, _ in engines}
        matcher = []
        for trip, parsed_trip, route in zip(ones, parsed, routes):
            for name, engine in engines:
                t0 = time.perf_counter()
                engine.upsert([trip])
                latency[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            match_trips(store, [parsed_trip], [route])
            matcher.append(time.perf_counter() - t0)
        waited = []
        if followed is not None:
            followed.wait_matched(3600)
            for trip in waits:
                t0 = time.perf_counter()
                followed.upsert([trip], refresh=True)
                waited.append(time.perf_counter() - t0)
                on.upsert([trip])  # the same trips everywhere
                off.upsert([trip])
        busy = {"on": 0.0, "off": 0.0, "followed": 0.0, "matcher": 0.0}
        for at in range(0, len(batches), BATCH):
            batch = batches[at : at + BATCH]
            for name, engine in engines[:2]:
                t0 = time.perf_counter()
                engine.upsert(batch)
                busy[name] += time.perf_counter() - t0
            latest = list(parse_upserts(batch)[1].values())
            t0 = time.perf_counter()
            match_trips(store, [w.trip for w in latest], [w.route for w in latest])
            busy["matcher"] += time.perf_counter() - t0
        if followed is not None:  # alone, as one load: its follower works while the batches are written
            t0 = time.perf_counter()
            for at in range(0, len(batches), BATCH):
                followed.upsert(batches[at : at + BATCH])
            followed.wait_matched(3600)  # the load ends when its last batch is matched
            busy["followed"] = time.perf_counter() - t0
        matches = len(store.matched_pairs())
        if followed is not None:
            assert len(followed.alerts().matched_pairs()) == matches, "the follower process matched what the writes did"
    finally:
        on.close()
        off.close()
        if followed is not None:
            followed.close()
        drop()
        store.close()
        gc.unfreeze()
    return {
        "alerts": n_alerts,
        "saved_s": round(saved_s, 1),
        "index_build_s": round(index_s, 2),
        "index_parts": len(index.parts),
        "index_mb": round(sum(a.nbytes for p in index.parts for a in _arrays(p)) / 1e6, 1),
        "single_writes": len(ones),
        "write_ms": {name: {"p50": _ms(xs, 50), "p99": _ms(xs, 99)} for name, xs in latency.items()},
        **({"write_matched_ms": {"p50": _ms(waited, 50), "p99": _ms(waited, 99)}} if waited else {}),
        "matcher_ms": {"p50": _ms(matcher, 50), "p99": _ms(matcher, 99), "max": _ms(matcher, 100)},
        "bulk_trips": len(batches),
        "bulk_trips_per_s": {name: round(len(batches) / busy[name]) for name, _ in engines},
        "bulk_matcher_us_per_trip": round(1e6 * busy["matcher"] / max(len(batches), 1), 1),
        "matches": matches,
        "matches_per_trip": round(matches / (len(ones) + len(waits) + len(batches)), 2),
    }


def _arrays(part: Any) -> list[Any]:
    """Every array a part of the index holds (its number set's included: it has ``nbytes`` too)."""
    return [v for v in vars(part).values() if isinstance(v, (np.ndarray, NumberSet))] + list(part.terms.cols.values())


def run(sizes: list[int], single: int, bulk: int, backend: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tripsearch-alerts-bench-") as tmp:
        runs = []
        for n in sizes:
            runs.append(measure(n, single, bulk, Path(tmp), backend))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {
        "benchmark": "alerts",
        "backend": "embedded" if backend is None else "elasticsearch",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version()},
        "command": "python -m benchmarks.alerts " + " ".join(sys.argv[1:]),
        "runs": runs,
    }


def table(doc: dict[str, Any]) -> str:
    """Return the Markdown table of a results file."""
    lines = [
        "| alerts | write p50 off / on | write p99 off / on | matcher p50 / p99 | bulk trips/s off / on (ratio) | matcher in bulk | matches per trip | index build |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        w, m, b = r["write_ms"], r["matcher_ms"], r["bulk_trips_per_s"]
        lines.append(
            f"| {r['alerts']:,} | {w['off']['p50']:.2f} / {w['on']['p50']:.2f} ms | {w['off']['p99']:.2f} / {w['on']['p99']:.2f} ms "
            f"| {m['p50']:.3f} / {m['p99']:.3f} ms | {b['off']:,} / {b['on']:,} ({b['on'] / b['off']:.2f}) | {r['bulk_matcher_us_per_trip']:.0f} us/trip "
            f"| {r['matches_per_trip']:.1f} | {r['index_build_s']:.1f} s, {r['index_mb']:.0f} MB |"
        )
    followed = [r for r in doc["runs"] if "followed" in r["write_ms"]]
    if followed:
        lines += [
            "",
            "| alerts | matched by a follower process: write p50 / p99 | p99 added to a write off | write and wait for its match p50 / p99 | bulk trips/s until matched (ratio to off) |",
            "|---|---|---|---|---|",
        ]
    for r in followed:
        w, m, b = r["write_ms"], r["write_matched_ms"], r["bulk_trips_per_s"]
        lines.append(
            f"| {r['alerts']:,} | {w['followed']['p50']:.2f} / {w['followed']['p99']:.2f} ms | {w['followed']['p99'] - w['off']['p99']:.2f} ms "
            f"| {m['p50']:.2f} / {m['p99']:.2f} ms | {b['followed']:,} ({b['followed'] / b['off']:.2f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alerts", description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", default="10000,100000,1000000", help="comma list of alert set sizes (default: %(default)s)")
    parser.add_argument("--single", type=int, default=2000, help="trips written one per call (default: %(default)s)")
    parser.add_argument("--bulk", type=int, default=20000, help=f"trips written in batches of {BATCH} (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (default: %(default)s)")
    parser.add_argument("--backend", help="an Elasticsearch address: measure there instead of the embedded backend (indices of its own, removed after)")
    parser.add_argument("--table", type=Path, help="print the Markdown table of a results JSON and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    doc = run([int(s) for s in args.alerts.split(",") if s.strip()], args.single, args.bulk, args.backend)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
