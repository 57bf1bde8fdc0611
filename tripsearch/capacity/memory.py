"""The embedded backend's memory on one machine: one shared segment, plus each worker's private memory.

The workers over a data directory map one immutable segment file read-only
(:mod:`tripsearch.index.embedded.segments`): its pages sit once in the page cache,
however many workers map them. What each worker holds alone is its base
(Python, numba, libraries, buffers) and its in-memory delta: the trips
written since the segment, which every worker applies from the change feed
until a merge writes a new segment. A merge comes once the delta holds
``max(MERGE_MIN_ROWS, MERGE_RATIO × trips)`` rows, so that is its bound.

    memory per machine = trips × segment bytes per trip
                         + workers × (private base + delta rows × delta bytes per trip)

The delta counts only where the index takes writes. The figures come from
measurements: the shared-index benchmark (``python -m benchmarks.shared_index
--json``: segment size, and RSS and PSS of 1 and 2 workers from
``/proc/PID/smaps_rollup``), or ``tripsearch capacity measure`` (the segment
of each data directory, the PSS of each HTTP worker, the delta's bytes per
trip from its writes step).

>>> m = MemoryModel(1600.0, "s", 150 * 2**20, "p", 1800.0, "d", 1_000_000)
>>> m.delta_rows(100_000), m.delta_rows(1_000_000)
(50000, 250000)
>>> m.trips_that_fit(m.machine_bytes(3_000_000, 2, writes=True), 2, writes=True)
3000000
>>> parse_size("24GiB"), parse_size("1.5 GB"), parse_size("512M")
(25769803776, 1500000000, 536870912)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..index.embedded import MERGE_MIN_ROWS, MERGE_RATIO
from .data import Measurements, read_json
from .errors import CapacityError

__all__ = ["MemoryModel", "memory_model", "load_shared_index", "parse_size", "DEFAULT_SHARED_INDEX"]

DEFAULT_SHARED_INDEX = Path("benchmarks") / "results" / "shared_index_1m.json"

_UNITS = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "kb": 10**3, "m": 2**20, "mib": 2**20, "mb": 10**6,
          "g": 2**30, "gib": 2**30, "gb": 10**9, "t": 2**40, "tib": 2**40, "tb": 10**12}


def parse_size(text: str, option: str = "--memory") -> int:
    """Return the bytes a size such as ``24GiB``, ``16G`` (binary), ``1.5 GB`` (decimal) or ``2000000`` says."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise CapacityError(f"{option}: expected a size such as 24GiB, 16G or 512MiB, got {text!r}")
    value = round(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise CapacityError(f"{option}: the size must be above 0, got {text!r}")
    return value


@dataclass(frozen=True)
class MemoryModel:
    """Bytes per trip of the shared segment, private bytes per worker, and the bytes per trip of a worker's delta; each with where it comes from."""

    segment_bytes_per_trip: float
    segment_source: str
    worker_private_bytes: float
    private_source: str
    delta_bytes_per_trip: float | None
    delta_source: str
    measured_trips: int  # the biggest index the private memory was measured with
    merge_min_rows: int = MERGE_MIN_ROWS
    merge_ratio: float = MERGE_RATIO

    def delta_rows(self, trips: float) -> int:
        """Return the most rows a worker's delta holds before a merge, over ``trips`` trips."""
        return max(self.merge_min_rows, math.ceil(self.merge_ratio * trips))

    def delta_bytes(self, trips: float, writes: bool) -> float:
        """Return the bound of one worker's delta: 0 without writes."""
        if not writes:
            return 0.0
        if self.delta_bytes_per_trip is None:
            raise CapacityError("the measurements have no bytes per trip of the in-memory delta: run `tripsearch capacity measure` (its writes step)")
        return self.delta_rows(trips) * self.delta_bytes_per_trip

    def worker_bytes(self, trips: float, writes: bool) -> float:
        """Return one worker's private memory: its base and, with writes, its delta's bound."""
        return self.worker_private_bytes + self.delta_bytes(trips, writes)

    def machine_bytes(self, trips: float, workers: int, writes: bool) -> float:
        """Return the memory of a machine whose ``workers`` serve ``trips`` trips: the segment once, the private memory per worker."""
        return trips * self.segment_bytes_per_trip + workers * self.worker_bytes(trips, writes)

    def trips_that_fit(self, memory: float, workers: int, writes: bool) -> int:
        """Return the most trips whose :meth:`machine_bytes` is within ``memory`` (0 if not even the workers' base fits).

        ``machine_bytes`` is linear in trips on each side of the point where
        ``merge_ratio × trips`` overtakes ``merge_min_rows``; solve each side.
        """
        s, b, n = self.segment_bytes_per_trip, self.worker_private_bytes, workers
        if not writes:
            trips = (memory - n * b) / s
        else:
            d = self.delta_bytes_per_trip
            if d is None:
                self.delta_bytes(0, True)  # raises, saying what is missing
                raise AssertionError("unreachable")
            trips = (memory - n * (b + d * self.merge_min_rows)) / s
            if self.merge_ratio * trips > self.merge_min_rows:
                trips = (memory - n * b) / (s + n * d * self.merge_ratio)
        best = max(0, math.floor(trips))
        # floor of the exact solution; the ceil inside delta_rows can cost a row's bytes, so step back until it fits
        while best > 0 and self.machine_bytes(best, workers, writes) > memory:
            best -= 1
        return best


def load_shared_index(path: Path) -> dict[str, Any]:
    """Return the JSON ``python -m benchmarks.shared_index --json PATH`` wrote, checked for what the memory model reads."""
    doc = read_json(
        path,
        f"--memory-measurements {path}: no such file (write one with `python -m benchmarks.shared_index DATA_DIR --json {path}`)",
        f"--memory-measurements {path}: not valid JSON",
    )
    try:
        trips = int(doc["trips"])
        ok = trips > 0 and float(doc["segment_bytes"]) > 0 and any(
            w["with_index"]["Pss"] > 0 and "Pss_File" in w["after_imports"] for row in doc["memory"] for w in row["per_worker"])
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CapacityError(f"--memory-measurements {path}: not a shared-index benchmark result (needs trips, segment_bytes and memory rows with PSS per worker)")
    return dict(doc)


def _from_shared_index(doc: dict[str, Any], path: Path | None) -> tuple[float, str, float, str, int]:
    trips = int(doc["trips"])
    seg = float(doc["segment_bytes"]) / trips
    seg_how = f"segment file of {trips:,} trips ({float(doc['segment_bytes']) / 2**20:,.0f} MiB), shared-index benchmark {path or ''} ({doc.get('at', '?')})"
    # a worker's own memory: its PSS with the index, minus its share of the segment's pages: the file-backed PSS
    # grown since it imported the libraries, but no more than the segment ÷ the workers (files it mapped later, such
    # as numba's cache, are its own)
    private: list[tuple[float, int, int]] = []
    for row in doc["memory"]:
        share = float(doc["segment_bytes"]) / int(row["workers"])
        for w in row["per_worker"]:
            with_index, before = w["with_index"], w["after_imports"]
            private.append((with_index["Pss"] - min(with_index["Pss_File"] - before["Pss_File"], share), int(row["workers"]), with_index["Pss"]))
    top = max(private)
    how = (f"the largest of {len(private)} workers' PSS after the benchmark's searches minus their share of the segment's pages (Pss_File grown since imports, at most the segment ÷ workers): "
           f"{top[2] / 2**20:,.0f} MiB PSS with {top[1]} worker(s) over {trips:,} trips, shared-index benchmark {path or ''}")
    return seg, seg_how, top[0], how, trips


def _from_capacity_run(meas: Measurements) -> tuple[float, str, float, str, int] | None:
    segments = {d["trips"]: d for d in meas.data_dirs() if d.get("segment_bytes")}
    best: tuple[float, int, int, float] | None = None  # (private per worker, workers, trips, PSS)
    for c in meas.curves("embedded"):
        smaps = [s for s in c.data.get("worker_smaps") or [] if s]
        seg = c.data.get("segment_bytes") or segments.get(c.trips, {}).get("segment_bytes")
        if not smaps or not seg:
            continue
        segments.setdefault(c.trips, {"trips": c.trips, "segment_bytes": seg})
        pss = sum(s["Pss"] for s in smaps)
        # the workers' PSS less the segment (at most the file-backed part of it: libraries are file-backed too)
        private = (pss - min(sum(s["Pss_File"] for s in smaps), seg)) / len(smaps)
        if best is None or private > best[0]:
            best = (private, len(smaps), c.trips, pss)
    if best is None or not segments:
        return None
    big = segments[max(segments)]
    seg_per_trip = big["segment_bytes"] / big["trips"]
    private, workers, trips, pss = best
    return (seg_per_trip, f"segment file of {big['trips']:,} trips, capacity measurement {meas.path or ''}",
            private, f"HTTP workers' PSS after load ({workers} worker(s), {trips:,} trips: {pss / 2**20:,.1f} MiB in total) minus the segment, ÷ {workers}; "
            f"capacity measurement {meas.path or ''}", trips)


def _delta(meas: Measurements | None) -> tuple[float | None, str]:
    writes = meas.one("writes", "embedded") if meas is not None else None
    if writes and writes.get("delta_bytes_per_trip"):
        return float(writes["delta_bytes_per_trip"]), (
            f"measured: a worker applying {writes['delta_trips']:,} trips from the change feed into its delta: "
            f"max({writes['delta_array_bytes_per_trip']:,.0f} bytes of arrays, {writes['delta_rss_bytes_per_trip']:,.0f} bytes of RSS growth) per trip")
    fit = meas.worker_memory() if meas is not None else None
    if fit is not None and not any(d.get("segment_bytes") for d in meas.data_dirs()):  # type: ignore[union-attr]
        # measured before segments: each worker then held the whole index in memory, in the structures a delta uses
        return fit[1], f"bytes per trip of the whole in-memory index per worker, measured before segments ({fit[2]}); the delta holds the same structures"
    return None, "not measured (a capacity run's writes step records it)"


def memory_model(meas: Measurements | None, shared_index: dict[str, Any] | None = None, shared_index_path: Path | None = None) -> MemoryModel:
    """Return the memory model from the shared-index benchmark's JSON if given, else from a capacity run that recorded PSS."""
    if shared_index is not None:
        seg, seg_how, private, how, trips = _from_shared_index(shared_index, shared_index_path)
    else:
        found = _from_capacity_run(meas) if meas is not None else None
        if found is None:
            raise CapacityError("no measurement of the shared index's memory: give --memory-measurements PATH (from `python -m benchmarks.shared_index DATA_DIR --json PATH`) "
                                "or measure again with `tripsearch capacity measure` (it records each worker's PSS)")
        seg, seg_how, private, how, trips = found
    delta, delta_how = _delta(meas)
    return MemoryModel(seg, seg_how, private, how, delta, delta_how, trips)
