"""Shared, memory-mapped segments: merges change no result, readers never see a mix, crashes and damage are survived."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import tripsearch
from tripsearch.data.fixtures import generate_trips
from tripsearch.capacity.workload import build_workload

from . import reference
from .geometry import REGIONS, random_queries, random_trips, regular_trips
from .test_engine import QUERY, paris_lyon
from .test_reference import check_against_reference, engine_facets, latest_versions

ROOT = Path(__file__).resolve().parent.parent


def full_result(engine: tripsearch.Backend, q: dict[str, Any]) -> list[Any]:
    """Every page of a query with all facets: ids, order, totals, facets and cursors."""
    pages: list[Any] = []
    cursor = None
    for _ in range(100):
        page = engine.search({**q, "facets": "all", **({"cursor": cursor} if cursor else {})})
        pages.append(([(h.id, h.occurrence) for h in page.trips], [h.sort for h in page.trips], page.total, engine_facets(page), page.next_cursor))
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("pagination did not end")


def test_every_result_is_the_same_before_and_after_a_merge(tmp_path: Path) -> None:
    """Thousands of random queries: same ids, order, totals, facets and cursors from segment + delta, after the merge, and in a new process."""
    trips = [t for region in sorted(REGIONS) for t in random_trips(region, 150, seed=zlib.crc32(region.encode()) % 1000)]
    regular = regular_trips("europe", 80, seed=4)  # a regular trip is a row per occurrence: a new version replaces them all
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    engine = tripsearch.open(data, refresh_interval=0, merge_min_rows=10**9)
    engine.upsert(trips + regular, refresh=True)
    engine.snapshot()  # type: ignore[attr-defined]
    # the delta: new versions of a third of the trips (moved in time or price; regular trips' schedules cut to a week), new trips, deletes
    changed = [dict(t, version=t["version"] + 1, price={"amount": float(rng.integers(5, 60)), "currency": t["price"]["currency"]}) for t in trips if rng.random() < 0.33]
    shrunk = [dict(t, version=t["version"] + 1, schedule=dict(t["schedule"], valid_to=str(dt.date.fromisoformat(t["schedule"]["valid_from"]) + dt.timedelta(days=6)), exceptions=[])) for t in regular if rng.random() < 0.33]
    fresh = [dict(t, id=f"new-{t['id']}") for t in trips + regular if rng.random() < 0.1]
    engine.upsert(changed + shrunk + fresh, refresh=True)
    deleted = {t["id"] for t in trips + regular if rng.random() < 0.05}
    engine.delete(sorted(deleted), refresh=True)
    stats = engine.stats()
    assert stats["segment"] and stats["delta_rows"] > 100
    queries = random_queries(trips, 2000, seed=11) + random_queries([o for t in regular for o in reference.occurrence_docs(t)], 300, seed=12)
    before = [full_result(engine, q) for q in queries]
    live = [t for t in latest_versions(trips + regular + changed + shrunk + fresh) if t["id"] not in deleted]
    check_against_reference(engine, live, queries[2000:2100])  # the old occurrences of a replaced regular trip are gone from the segment
    counts = (len(live), sum(len(reference.occurrence_docs(t)) for t in live if "schedule" in t))
    assert (engine.stats()["trips"], engine.stats()["occurrences"]) == counts
    assert sum(r[0][2] > 0 for r in before) > len(queries) * 0.15, "most queries match nothing: the test would prove little"
    assert sum(len(r) > 1 for r in before) > 10, "no query has a second page"
    engine.snapshot()  # type: ignore[attr-defined]
    assert engine.stats()["delta_rows"] == 0 and engine.stats()["segment"] != stats["segment"]
    assert (engine.stats()["trips"], engine.stats()["occurrences"]) == counts
    after = [full_result(engine, q) for q in queries]
    engine.close()
    for q, a, b in zip(queries, before, after):
        assert a == b, q
    reopened = tripsearch.open(data, refresh_interval=0, verify="open")
    try:
        assert [full_result(reopened, q) for q in queries[:500]] == before[:500]
    finally:
        reopened.close()


_READER = """
import json, sys, time
import tripsearch
data, seconds, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
engine = tripsearch.open(data, refresh_interval=0.01, snapshot_on_close=False)
query = json.loads(sys.argv[4])
seen, searches, bad = set(), 0, []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    r = engine.search(query)
    seen.add(engine.stats()["segment"])
    searches += 1
    prices = r.facets["price"]["currencies"]
    ids = [h.id for h in r.trips]
    # one write sets every trip to one price: a view of one segment and its delta has n trips at that price
    if r.total != n or len(set(ids)) != len(ids) or len(prices) != 1 or prices[0]["min"] != prices[0]["max"] or prices[0]["count"] != n:
        bad.append({"total": r.total, "ids": len(ids), "distinct": len(set(ids)), "prices": prices})
anchored = engine.stats()["anchored"]
engine.close()
print(json.dumps({"segments": len(seen), "searches": searches, "bad": bad[:5], "n_bad": len(bad), "anchored": anchored}))
"""

_WRITER = """
import json, sys, time
import tripsearch
data, seconds = sys.argv[1], float(sys.argv[2])
trips = json.loads(sys.argv[3])
engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False, merge_min_rows=len(trips), merge_ratio=0.0)
rounds = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    rounds += 1
    batch = [dict(t, version=rounds + 1, price={"amount": float(10 + rounds), "currency": "EUR"}) for t in trips]
    engine.upsert(batch, refresh=True)  # one transaction; the refresh merges into a new segment every round
engine.close()
print(json.dumps({"rounds": rounds, "merges": engine.merges}))
"""


# Paris and Lyon at the coordinates of the places table: a search between two anchors, read from the segment's anchor entries.
ANCHORED_QUERY = {"from": [48.85341, 2.3488], "to": [45.74906, 4.84789], "date": "2026-12-01"}


@pytest.mark.parametrize("between", ["points", "anchors"])
def test_readers_see_the_old_or_the_new_segment_never_a_mix(tmp_path: Path, between: str) -> None:
    """A writer process rewrites every trip and merges a new segment each round; reader processes check every view is whole."""
    n = 40
    trips = [paris_lyon(f"t-{i}") for i in range(n)]
    data = tmp_path / "data"
    seed = tripsearch.open(data, refresh_interval=0)
    seed.upsert(trips, refresh=True)
    seed.snapshot()  # type: ignore[attr-defined]
    seed.close()
    query = json.dumps({**(QUERY if between == "points" else ANCHORED_QUERY), "limit": 50, "facets": ["price"]})
    seconds = "8"
    readers = [subprocess.Popen([sys.executable, "-c", _READER, str(data), seconds, str(n), query], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    writer = subprocess.run([sys.executable, "-c", _WRITER, str(data), seconds, json.dumps(trips)], capture_output=True, text=True, check=True)
    wrote = json.loads(writer.stdout)
    for reader in readers:
        out, _ = reader.communicate(timeout=120)
        assert reader.returncode == 0
        got = json.loads(out)
        assert got["n_bad"] == 0, got
        assert got["segments"] >= 3, (got, wrote)  # the reader did switch segments while searching
        assert (got["anchored"] > 0) == (between == "anchors"), got
    assert wrote["merges"] >= 3
    # old segments were unlinked once replaced: one segment file is left (plus the lock)
    assert sorted(p.name for p in (data / "segments").iterdir() if p.name.endswith(".tseg")) == [json.loads((data / "index.manifest").read_text())["segments"][0]]


_MERGER = """
import sys, orjson
import tripsearch
data, source, acks = sys.argv[1], sys.argv[2], sys.argv[3]
engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False, merge_min_rows=10**9, verify="none")
lines = open(source, "rb").read().splitlines()
with open(acks, "a") as log:
    for i in range(0, len(lines), 200):
        report = engine.upsert(lines[i : i + 200], refresh=True)
        for item in report.items:
            if item.result == "stored":
                log.write(f"{item.id}\\t{item.version}\\n")
        log.flush()
    print("merging", flush=True)
    engine.snapshot()
    print("merged", flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_a_merge_loses_no_write_and_the_directory_opens(tmp_path: Path) -> None:
    base = list(generate_trips(6000, 5, dt.date(2026, 12, 1), 5))
    data = tmp_path / "data"
    first = tripsearch.open(data, refresh_interval=0)
    first.upsert(base, refresh=True)
    first.snapshot()  # type: ignore[attr-defined]
    first.close()
    rng = np.random.default_rng(4)
    acks = tmp_path / "acks.tsv"
    killed_in_merge = 0
    for round_no in range(6):
        chosen = rng.choice(len(base), size=600, replace=False)
        lines = [orjson.dumps(dict(base[i], version=base[i]["version"] + round_no + 1, seats_available=int(rng.integers(0, base[i]["seats_total"] + 1)))) for i in chosen.tolist()]
        source = tmp_path / f"round-{round_no}.ndjson"
        source.write_bytes(b"\n".join(lines) + b"\n")
        proc = subprocess.Popen([sys.executable, "-c", _MERGER, str(data), str(source), str(acks)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "merging"
        # the segment file is written under a temporary name: kill while it is there
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not any(".tmp-" in p.name for p in (data / "segments").iterdir()):
            time.sleep(0.001)
        time.sleep(float(rng.uniform(0.0, 0.05)))
        if proc.poll() is None:
            killed_in_merge += any(".tmp-" in p.name for p in (data / "segments").iterdir())
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        acked: dict[str, int] = {}
        for line in acks.read_text().splitlines():
            tid, version = line.split("\t")
            acked[tid] = max(acked.get(tid, 0), int(version))
        engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False, verify="open")
        try:
            # every acknowledged write is there, in the store and in the index
            for tid, version in acked.items():
                assert engine.get(tid)["version"] >= version
            assert engine.stats()["trips"] == len(base)
            # and the index answers as one rebuilt from SQLite alone
            rebuilt_dir = tmp_path / f"rebuilt-{round_no}"
            rebuilt_dir.mkdir()
            with closing(sqlite3.connect(data / "trips.sqlite")) as src, closing(sqlite3.connect(rebuilt_dir / "trips.sqlite")) as dst:
                src.backup(dst)  # the database with its write-ahead log
            rebuilt = tripsearch.open(rebuilt_dir, refresh_interval=0, snapshot_on_close=False)
            try:
                for q in build_workload(base, 40, seed=round_no).searches:
                    a, b = engine.search(q), rebuilt.search(q)
                    assert ([h.id for h in a.trips], a.total, a.facets) == ([h.id for h in b.trips], b.total, b.facets), q
            finally:
                rebuilt.close()
        finally:
            engine.close()
    assert killed_in_merge >= 3, "most kills missed the merge: the test did not exercise crashes during one"


def test_a_segment_damaged_on_disk_is_found_in_the_background_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    engine = tripsearch.open(data, refresh_interval=0)
    engine.upsert([paris_lyon(f"t-{i}") for i in range(30)], refresh=True)
    engine.snapshot()  # type: ignore[attr-defined]
    name = engine.stats()["segment"]
    engine.close()
    path = data / "segments" / name
    raw = bytearray(path.read_bytes())
    raw[(65536 + len(raw)) // 2] ^= 0x01  # one bit, amid the arrays (after the 64 KiB header): the header and the size still look right
    path.write_bytes(bytes(raw))
    caplog.set_level(logging.INFO, logger="tripsearch")
    reopened = tripsearch.open(data, refresh_interval=0.05, verify="background")
    try:
        assert reopened.started_s < 5
        deadline = time.monotonic() + 30
        while reopened.stats()["segment"] == name and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "failed verification" in caplog.text and "checksum mismatch" in caplog.text and "rebuilding the index from SQLite" in caplog.text
        assert reopened.stats()["segment"] != name
        assert reopened.search(QUERY).total == 30
    finally:
        reopened.close()
    again = tripsearch.open(data, refresh_interval=0, verify="open")
    try:
        assert again.search(QUERY).total == 30
    finally:
        again.close()


def _mapped_kib(path: Path) -> int:
    """Return how much of ``path`` this process has mapped in (the ``Rss`` of its mappings in /proc/self/smaps, KiB)."""
    rss, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss


def test_a_segment_is_mapped_in_ahead_after_open_unless_asked_not_to(tmp_path: Path) -> None:
    """The warm-up thread faults every page of the segment into a process that opens it (so its first searches are not slower), and warm=False leaves them to the searches."""
    data = tmp_path / "data"
    engine = tripsearch.open(data, refresh_interval=0, alerts=False)
    engine.upsert(list(generate_trips(3000, 5, dt.date(2026, 12, 1), 14)), refresh=True)
    engine.close()  # writes the segment
    mapped = {}
    for warm in (False, True):
        engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False, verify="none", warm=warm, alerts=False)
        segment = engine._index.segment  # type: ignore[attr-defined]
        if engine._warmer is not None:  # type: ignore[attr-defined]
            engine._warmer.join(60)  # type: ignore[attr-defined]  (what the time at open left)
        mapped[warm] = (_mapped_kib(segment.path), -(-segment.size // 4096) * 4)
        engine.close()
    assert mapped[True][0] >= mapped[True][1]
    assert mapped[False][0] < mapped[False][1] // 2
