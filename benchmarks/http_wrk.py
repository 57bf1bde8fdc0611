"""Searches per second over HTTP, measured with wrk (Debian's load generator in C) against a fresh ``tripsearch serve``.

Usage::

    python benchmarks/http_wrk.py DATA_DIR [--workers 2] [--connections 12] [--seconds 15] [--runs 5] [--with-places]

Starts ``tripsearch serve --workers N`` on a free loopback port over
``DATA_DIR``, waits until every worker is ready, warms it up, then runs wrk
``--runs`` times in a row (``benchmarks/wrk.lua`` replaying the capacity
tool's HTTP workload, by default only its city-pair searches with all
facets, page 1) and prints one Markdown row per run and the median: searches
per second, p50 / p99 latency, the workers' CPU per request, and how busy the
machine was. A run with a non-2xx answer or a socket error fails the command.

This is the issue's measurement ("wrk from Debian" on loopback); wrk takes
about half the CPU of ``tripsearch.capacity.loadgen``, which the capacity tool uses
for its open-loop curve. ``apt-get install wrk`` first.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> dict[str, float]:
    """Return requests/s, p50 and p99 (ms), the request count and the errors of a ``wrk --latency`` report."""

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise ValueError(f"wrk printed no {pct}% latency:\n{out}")
        return float(m.group(1)) * _UNITS_MS[m.group(2)]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    count = re.search(r"^\s+(\d+) requests in", out, re.M)
    if rate is None or count is None:
        raise ValueError(f"not a wrk report:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(int(g) for g in sockets.groups()) if sockets else 0)
    return {"rps": float(rate.group(1)), "p50_ms": latency("50"), "p99_ms": latency("99"), "requests": int(count.group(1)), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10, help="seconds of load before the first run")
    parser.add_argument("--with-places", action="store_true", help="replay the whole mix, autocompletes included")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from tripsearch.capacity.datasets import WORKLOAD_SAMPLE, http_calls
    from tripsearch.capacity.server import ApiServer, machine_cpu
    from tripsearch.capacity.probe import cpu_seconds

    paths = [path for _, path, _ in http_calls(2000, WORKLOAD_SAMPLE) if args.with_places or path.startswith("/v1/search")]
    with tempfile.NamedTemporaryFile("w", prefix="tripsearch-wrk-paths-", suffix=".txt") as paths_file:
        paths_file.writelines(p + "\n" for p in paths)
        paths_file.flush()
        server = ApiServer(args.workers, data=args.data)
        try:
            server.start(600)

            def load(seconds: int) -> str:
                cmd = [wrk, "-t1", f"-c{args.connections}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "benchmarks" / "wrk.lua"), server.url, "--", paths_file.name]
                return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

            load(args.warmup)
            what = "requests" if args.with_places else "searches"
            print(f"{len(paths)} paths, {args.workers} workers, {args.connections} connections, {args.seconds} s per run\n")
            print(f"| run (UTC) | {what}/s | p50 / p99 | worker CPU per request | machine busy |")
            print("|---|---:|---:|---:|---:|")
            runs = []
            for _ in range(args.runs):
                at = time.strftime("%H:%M:%S", time.gmtime())
                cpu0, box0 = [cpu_seconds(p) or 0.0 for p in server.pids], machine_cpu()
                run = parse_wrk(load(args.seconds))
                cpu1, box1 = [cpu_seconds(p) or 0.0 for p in server.pids], machine_cpu()
                worker_ms = (sum(cpu1) - sum(cpu0)) * 1000 / max(1, run["requests"])
                busy = f"{(box1[0] - box0[0]) / (box1[1] - box0[1]):.0%}" if box0 and box1 and box1[1] > box0[1] else "?"
                print(f"| {at} | {run['rps']:,.0f} | {run['p50_ms']:.1f} / {run['p99_ms']:.1f} ms | {worker_ms:.2f} ms | {busy} |", flush=True)
                if run["errors"]:
                    print(f"{run['errors']:.0f} requests failed (non-2xx or socket errors)", file=sys.stderr)
                    return 1
                runs.append(run)
            print(
                f"\nmedian of {len(runs)}: {statistics.median(r['rps'] for r in runs):,.0f} {what}/s, "
                f"p50 {statistics.median(r['p50_ms'] for r in runs):.1f} ms, p99 {statistics.median(r['p99_ms'] for r in runs):.1f} ms"
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
