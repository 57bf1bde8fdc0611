"""Measure one index from a fresh process: open time, resident memory and in-process search latency.

Run as ``python -m tripsearch.capacity.probe SPEC.json``; prints one JSON
object. A fresh process is the only honest way to measure what opening an
index costs (nothing is already in memory) and what it keeps resident.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

__all__ = ["rss_bytes", "smaps_rollup", "cpu_seconds", "probe"]

SMAPS_FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Private_Dirty")


def rss_bytes(pid: int | None = None) -> int | None:
    """Return the resident memory of a process (this one by default), from /proc; None where there is no /proc."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def smaps_rollup(pid: int | None = None) -> dict[str, int] | None:
    """Return RSS and PSS of a process in bytes, from ``/proc/PID/smaps_rollup``; None where there is none.

    PSS counts a page shared by k processes as 1/k in each, so the PSS of the
    workers over one memory-mapped segment adds up to one copy of it; RSS
    counts it in full in every process.
    """
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid or 'self'}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except (OSError, ValueError):
        return None
    return {k: out.get(k, 0) for k in SMAPS_FIELDS}


def cpu_seconds(pid: int) -> float | None:
    """Return the user + system CPU seconds a process has used, from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _latency(engine: Any, queries: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    for q in queries[:warmup]:
        engine.search(q)
    walls: list[float] = []
    totals: list[int] = []
    candidates: list[int] = []
    cpu0 = time.process_time()
    for q in queries:
        t0 = time.perf_counter()
        result = engine.search(q)
        walls.append(time.perf_counter() - t0)
        totals.append(result.total)
        candidates.append(result.candidates)
    cpu = time.process_time() - cpu0
    ms = np.asarray(walls) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "n": len(queries),
        "p50_ms": round(float(p50), 3),
        "p90_ms": round(float(p90), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
        "searches_per_s": round(1000.0 / float(ms.mean()), 2),
        "cpu_ms_per_search": round(cpu * 1000.0 / len(queries), 3),
        "mean_total": round(float(np.mean(totals)), 2),
        "mean_candidates": round(float(np.mean(candidates)), 2),
        "candidate_ratio": round(float(np.sum(candidates)) / max(1.0, float(np.sum(totals))), 3),
    }


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Open ``spec["target"]`` and measure it; see the module docstring."""
    import h3  # noqa: F401  - the libraries' own memory is not the index's
    import msgspec  # noqa: F401
    import orjson  # noqa: F401

    import tripsearch
    from tripsearch.core import kernels  # noqa: F401

    before = rss_bytes()
    t0 = time.perf_counter()
    options = spec.get("options") or {}
    engine = tripsearch.open(spec["target"], **options)
    open_s = time.perf_counter() - t0
    opened = rss_bytes()
    stats = engine.stats()
    out: dict[str, Any] = {
        "target": spec["target"],
        "trips": int(stats["trips"]),
        "open_s": round(open_s, 3),
        "rss_before": before,
        "rss_opened": opened,
        "rss_delta": opened - before if opened is not None and before is not None else None,
        "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str)) or v is None},
        "latency": {},
    }
    try:
        for name, queries in (spec.get("queries") or {}).items():
            out["latency"][name] = _latency(engine, queries, int(spec.get("warmup", 20)))
        out["rss_after"] = rss_bytes()
        if spec.get("es_counters"):
            out["stats_after"] = {k: v for k, v in engine.stats().items() if isinstance(v, (int, float, str)) or v is None}
    finally:
        engine.close()
    return out


def main() -> int:
    with open(sys.argv[1], "rb") as f:
        spec = json.load(f)
    sys.stdout.write(json.dumps(probe(spec)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
