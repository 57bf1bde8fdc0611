"""Bulk-load an NDJSON file of trips in batches, in a process of its own, and print the rate as one line of JSON.

Usage::

    python -m benchmarks.bulk_load FILE (--data DIR [--write-only] | --backend URL --index ALIAS) [--batch 500]

The worker benchmark's reference (benchmarks/test_worker.py): a worker's
writer is a fresh process that opens the backend, moves what the opening
made out of the garbage collector's generations and writes batches, so the
bulk load it is compared with does the same here, not inside the test
process, whose heap (the published events, earlier tests' engines) made
the same load take 48 to 147 us of CPU a trip from one test to the next.
Only the loop over the batches is timed: opening is not.

``--write-only`` opens the data directory as the worker's writer does
(``search=False``: the trips are stored, the processes that search index
them). Without it the directory is opened for search with no refresh
interval, as the reference was until 2026-12-05: every trip written is
kept, parsed, for a refresh that does not come within the timed loop, so
its index is built after it, and the garbage collector walks a heap that
grows with the load (7,000 to 27,000 trips/s for the same 60,000 trips).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import orjson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--data", help="embedded data directory")
    parser.add_argument("--backend", help="Elasticsearch URL")
    parser.add_argument("--index", help="Elasticsearch alias")
    parser.add_argument("--write-only", action="store_true", help="open the data directory with search=False, as the worker's writer does")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if (args.data is None) == (args.backend is None):
        parser.error("give --data or --backend")

    import tripsearch

    lines = [line for line in args.file.read_bytes().split(b"\n") if line]
    if args.data:
        engine = tripsearch.open(args.data, search=False) if args.write_only else tripsearch.open(args.data, refresh_interval=0, snapshot_on_close=False)
    else:
        engine = tripsearch.open(args.backend, index=args.index, number_of_replicas=0, request_timeout=60.0)
    gc.freeze()
    try:
        started, started_cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(lines), args.batch):
            rejected = engine.upsert(lines[i : i + args.batch]).rejected
            if rejected:
                sys.exit(f"{rejected} trips of the batch at line {i + 1} were rejected")
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    finally:
        engine.close()
    print(orjson.dumps({"trips": len(lines), "seconds": seconds, "trips_per_s": len(lines) / seconds, "cpu_us_per_trip": cpu / len(lines) * 1e6}).decode())


if __name__ == "__main__":
    main()
