"""Crash safety: a bulk load killed with SIGKILL at random moments loses no acknowledged trip."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import orjson
import pytest

import tripsearch
from tripsearch.data.fixtures import generate_trips
from tripsearch.capacity.workload import build_workload

from . import reference

KILLS = 20


def read_acks(path: Path) -> dict[str, int]:
    acked: dict[str, int] = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            tid, version = line.decode().split("\t")
            acked[tid] = max(acked.get(tid, 0), int(version))
    return acked


@pytest.mark.slow
def test_sigkill_during_bulk_load_loses_no_acknowledged_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    base = list(generate_trips(1500, 5, dt.date(2026, 12, 1), 5))
    data = tmp_path / "data"
    acks = tmp_path / "acks.tsv"
    killed_mid_load = 0
    for round_no in range(KILLS):
        # Each round rewrites a random half of the trips with a higher version, so the state keeps moving.
        chosen = rng.choice(len(base), size=len(base) // 2, replace=False)
        lines = []
        for i in chosen.tolist():
            trip = dict(base[i], version=base[i]["version"] + round_no + 1, seats_available=int(rng.integers(0, base[i]["seats_total"] + 1)))
            lines.append(orjson.dumps(trip))
        source = tmp_path / f"round-{round_no}.ndjson"
        source.write_bytes(b"\n".join(lines) + b"\n")
        before = acks.stat().st_size if acks.exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "tripsearch.cli", "index", str(source), "--data", str(data), "--batch-size", "50", "--ack-log", str(acks), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Kill at a random moment once the load is under way (after its first acknowledged batch).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and (not acks.exists() or acks.stat().st_size == before):
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed_mid_load += 1
        proc.wait()

        acked = read_acks(acks)
        engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False)
        try:
            for tid, version in acked.items():
                assert engine.get(tid)["version"] >= version, f"round {round_no}: {tid} lost version {version}"
            # nothing half-written: every stored document is a whole, valid trip
            with closing(sqlite3.connect(data / "trips.sqlite")) as conn:
                docs = [row[0] for row in conn.execute("SELECT doc FROM trips WHERE deleted = 0")]
            stored = [tripsearch.parse_trip(doc) for doc in docs]
            assert len(stored) == engine.stats()["trips"]
            # and searches agree with the brute-force reference on what is stored
            refs = [reference.make_ref(orjson.loads(doc)) for doc in docs]
            for q in build_workload(base, 5, seed=round_no, facets=[]).searches:
                expected, _ = reference.search(refs, q)
                assert engine.search(q).total == len(expected)
        finally:
            engine.close()
    assert killed_mid_load >= KILLS // 2, "the writer finished before most kills: the test did not exercise crashes"
