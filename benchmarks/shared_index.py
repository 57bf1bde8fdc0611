"""Shared index: restart to first answer, and memory (RSS and PSS) of 1 and N processes over one data directory.

Usage::

    python -m benchmarks.shared_index DATA_DIR [--workers 1,2] [--queries 2000] [--restarts 3] [--verify none] [--json PATH]

``DATA_DIR`` is a data directory (for instance one that ``benchmarks/conftest.py``
built: ``~/.cache/tripsearch/bench/data-1000000-seed42-days30``). Steps:

1. Prepare: open the directory once and write its segment if it has none
   (``engine.snapshot()``), timed: that is the one-off rebuild from SQLite.
   Then, timed: the CRC-32 check of the whole segment (what the background
   check does after an open), and a merge (one trip changed, then
   ``engine.snapshot()`` writes a new segment of the whole index).
2. Restart, ``--restarts`` times, each in a fresh process: the time from
   ``tripsearch.open`` to the answer of the first search (imports not
   counted: they are printed apart), with the segment's pages in the page
   cache ("warm"), then once more after asking the kernel to drop the
   segment file's pages (``posix_fadvise(DONTNEED)`` on that one file:
   "cold"). Then the first 50 searches of the workload against the next
   ``--queries`` (p99 of each), so a slow start shows; then the same
   searches without facets (p50 and p99).
3. Memory: for each count N of ``--workers``, N processes open the
   directory at once and each runs the ``--queries`` searches of the
   workload (all facets), so every page a search touches is mapped; then,
   all N still alive, ``/proc/PID/smaps_rollup`` of each: RSS and PSS
   (shared pages counted once, split between the processes that map
   them), and the anonymous and file-backed parts of PSS. The figures
   after importing the libraries (before opening) are given beside, so the
   index's own share shows.

The queries are the benchmark workload (``tripsearch.capacity.workload``) drawn
from 5,000 trips read from the directory's store. Prints Markdown tables
and writes the raw figures as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tripsearch.capacity.probe import smaps_rollup

_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import tripsearch, numpy, h3, msgspec, orjson, numba
from tripsearch.index.execute import execute  # the libraries' own memory is not the index's
from tripsearch.capacity.probe import smaps_rollup
imported = time.perf_counter() - t0

data, queries_path, mode, verify = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
queries = json.load(open(queries_path))
before = smaps_rollup()
t1 = time.perf_counter()
engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False, verify=verify)
opened = time.perf_counter() - t1
engine.search(queries[0])
first_answer = time.perf_counter() - t1
lat = []
for q in queries[1:]:
    s = time.perf_counter()
    engine.search(q)
    lat.append(time.perf_counter() - s)
lat_none = []  # the same searches without facets, after the ones with (so the first 50 above are the restart's)
for q in queries[51:]:
    s = time.perf_counter()
    engine.search(dict(q, facets=[]))
    lat_none.append(time.perf_counter() - s)
stats = engine.stats()
print(json.dumps({"import_s": imported, "open_s": opened, "first_answer_s": first_answer, "latency_s": lat, "latency_none_s": lat_none, "trips": stats["trips"],
                  "segment": stats["segment"], "segment_bytes": stats["segment_bytes"], "before": before, "pid": os.getpid()}), flush=True)
if mode == "wait":
    sys.stdin.readline()  # the parent reads smaps_rollup of every worker while all are alive
engine.close()
"""


def _memory_of(pid: int) -> dict[str, int]:
    """Return a live worker's RSS and PSS figures (:func:`~tripsearch.capacity.probe.smaps_rollup`)."""
    found = smaps_rollup(pid)
    if found is None:
        raise SystemExit(f"cannot read /proc/{pid}/smaps_rollup")
    return found


def sample_queries(data: Path, n: int) -> list[dict[str, Any]]:
    from tripsearch.capacity.workload import build_workload

    with closing(sqlite3.connect(f"file:{data / 'trips.sqlite'}?mode=ro", uri=True)) as conn:
        total = conn.execute("SELECT MAX(rowid) FROM trips").fetchone()[0] or 0
        step = max(1, total // 5000)
        docs = [orjson.loads(d) for (d,) in conn.execute("SELECT doc FROM trips WHERE deleted = 0 AND rowid % ? = 0 LIMIT 5000", (step,))]
    return build_workload(docs, n, seed=1, facets="all").searches


def drop_file_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_child(data: Path, queries_path: Path, mode: str, verify: str = "none") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(data), str(queries_path), mode, verify], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1000, q)), 2) if values else float("nan")


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shared_index", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--workers", default="1,2", help="comma list of process counts (default 1,2)")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--verify", default="none", choices=["none", "background", "open"], help="the restarts' verify option (default none: the open alone)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import tripsearch

    result: dict[str, Any] = {"data": str(args.data), "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    t0 = time.perf_counter()
    # This process only prepares: it does not map the segment's pages in (warm=False), so the workers' PSS is theirs.
    engine = tripsearch.open(args.data, refresh_interval=0, snapshot_on_close=False, warm=False)
    engine.snapshot()  # type: ignore[attr-defined]
    stats = engine.stats()
    engine.close()
    result["prepare_s"] = round(time.perf_counter() - t0, 2)
    trips, segment = stats["trips"], args.data / "segments" / stats["segment"]
    result.update({"trips": trips, "segment_bytes": stats["segment_bytes"], "segment_bytes_per_trip": round(stats["segment_bytes"] / max(1, trips))})
    sqlite_bytes = sum((args.data / n).stat().st_size for n in ("trips.sqlite", "trips.sqlite-wal") if (args.data / n).exists())
    result["sqlite_bytes_per_trip"] = round(sqlite_bytes / max(1, trips))
    print(f"{trips:,} trips; segment {mib(stats['segment_bytes'])} ({result['segment_bytes_per_trip']:,} bytes/trip), SQLite {result['sqlite_bytes_per_trip']:,} bytes/trip; prepare (open + segment) {result['prepare_s']} s", flush=True)

    # the background check of a segment's checksums, and a merge: one trip changed, then a new segment of the whole index
    engine = tripsearch.open(args.data, refresh_interval=0, snapshot_on_close=False, verify="none", warm=False)
    segment_obj = engine._index.segment  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    segment_obj.verify()
    result["verify_s"] = round(time.perf_counter() - t0, 2)
    del segment_obj
    doc = engine.get(engine.search(sample_queries(args.data, 1)[0]).trips[0].id)
    engine.upsert([dict(doc, version=doc["version"] + 1)], refresh=True)
    t0 = time.perf_counter()
    engine.snapshot()  # type: ignore[attr-defined]
    result["merge_s"] = round(time.perf_counter() - t0, 2)
    segment = args.data / "segments" / engine.stats()["segment"]
    engine.close()
    del engine  # and its mapping of the segment
    print(f"checksums of the whole segment (background check): {result['verify_s']} s; merge of one changed trip into a new segment: {result['merge_s']} s", flush=True)

    queries = sample_queries(args.data, args.queries + 51)
    queries_path = args.data.parent / f".shared-index-queries-{os.getpid()}.json"
    queries_path.write_bytes(orjson.dumps(queries))
    try:
        restarts = []
        for i in range(args.restarts + 1):
            cold = i == args.restarts
            if cold:
                drop_file_pages(segment)
            proc = run_child(args.data, queries_path, "exit", args.verify)
            out, _ = proc.communicate(timeout=600)
            r = json.loads(out)
            lat, lat_none = r.pop("latency_s"), r.pop("latency_none_s")
            r.update({"cold": cold, "first50_p99_ms": ms(lat[:50], 99), "steady_p50_ms": ms(lat[50:], 50), "steady_p99_ms": ms(lat[50:], 99),
                      "no_facets_p50_ms": ms(lat_none, 50), "no_facets_p99_ms": ms(lat_none, 99)})
            r.pop("before")
            restarts.append(r)
            print(f"restart {'cold' if cold else 'warm'}: open {r['open_s']:.3f} s, first answer {r['first_answer_s']:.3f} s (imports {r['import_s']:.2f} s before); "
                  f"p99 first 50 searches {r['first50_p99_ms']} ms, next {len(lat) - 50}: p50 {r['steady_p50_ms']} p99 {r['steady_p99_ms']} ms; "
                  f"the same without facets: p50 {r['no_facets_p50_ms']} p99 {r['no_facets_p99_ms']} ms", flush=True)
        result["restarts"] = restarts

        memory = []
        for n in [int(x) for x in args.workers.split(",") if x.strip()]:
            procs = [run_child(args.data, queries_path, "wait") for _ in range(n)]
            outs = [json.loads(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
            now = [_memory_of(o["pid"]) for o in outs]
            for p in procs:
                p.communicate("\n", timeout=600)
            row = {
                "workers": n,
                "per_worker": [{"after_imports": o["before"], "with_index": s} for o, s in zip(outs, now)],
                "rss_total": sum(s["Rss"] for s in now),
                "pss_total": sum(s["Pss"] for s in now),
                "pss_index_total": sum(s["Pss"] - o["before"]["Pss"] for o, s in zip(outs, now)),
            }
            row["pss_index_bytes_per_trip"] = round(row["pss_index_total"] / max(1, trips))
            memory.append(row)
            for o, s in zip(outs, now):
                print(f"{n} worker(s), pid {o['pid']}: RSS {mib(s['Rss'])} (after imports {mib(o['before']['Rss'])}), PSS {mib(s['Pss'])} "
                      f"(anon {mib(s['Pss_Anon'])}, file {mib(s['Pss_File'])}; after imports {mib(o['before']['Pss'])})", flush=True)
            print(f"{n} worker(s) total: RSS {mib(row['rss_total'])}, PSS {mib(row['pss_total'])}; PSS grown by the index {mib(row['pss_index_total'])} "
                  f"= {row['pss_index_bytes_per_trip']:,} bytes/trip", flush=True)
        result["memory"] = memory
    finally:
        queries_path.unlink(missing_ok=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
