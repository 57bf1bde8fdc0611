"""Crash safety of the API: a server killed with SIGKILL during ``POST /v1/trips/_bulk`` loses no acknowledged trip.

Each round starts ``tripsearch serve`` over the same data directory, sends
bulk requests of 20 to 50 lines from two client threads, and kills the
server's process group with SIGKILL at a random moment while requests are
in flight: after a random number of answered requests (at least one, at
most half of the round's), plus a random part of the time a request takes.
A line counts as acknowledged only once the answer holding it arrived.
The data directory is then checked directly, and again through the
restarted server; requests the kill cut are sent again in the next round,
as an indexer would.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

import tripsearch
from tripsearch.client import Retry, TripSearchClient
from tripsearch.errors import BackendUnavailable
from tripsearch.data.fixtures import generate_trips
from tripsearch.capacity.workload import build_workload
from tripsearch.testing.server import start_server as start_process

from .. import reference
from .conftest import READY_TIMEOUT_S, Server, serve_command
from .support import REFRESH_INTERVAL_S, SECRET, make_token

KILLS = 20
TRIPS = 1000
# One small country: a cold server computes the H3 grid of every 1-degree tile the routes cross
# (Europe: ~950 tiles, seconds per start), and dense trips make searches find more.
MARKET = ("IE",)
PASSES = 4  # rewrites of a random half of the trips per round: ~2,000 lines, so the kill always finds work left
BATCH_LINES = (20, 50)
SENDERS = 2
KILL_DELAY_S = 0.03  # at most this long after the chosen answer: about the time a batch takes
QUERIES = 3
ANSWER_TIMEOUT_S = 60.0

Line = tuple[str, int, bytes]  # trip id, version, NDJSON line


@dataclass
class Load:
    """Bulk requests sent over a few connections; lines are acknowledged only from answers that arrived."""

    url: str
    batches: deque[list[Line]]
    acked: dict[str, int]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Condition = field(init=False)
    answered: int = 0  # batches whose answer arrived
    lost: list[list[Line]] = field(default_factory=list)  # sent, no answer: the outcome is unknown
    interrupted: int = 0  # requests that the kill cut (not merely refused a connection)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.progress = threading.Condition(self.lock)

    def start(self) -> None:
        token = make_token()
        for n in range(SENDERS):
            thread = threading.Thread(target=self._send, args=(token,), name=f"bulk-sender-{n}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def wait_answers(self, count: int) -> bool:
        """Wait until ``count`` batches are answered; False if a sender failed first or it took too long."""
        with self.progress:
            return self.progress.wait_for(lambda: self.answered >= count or bool(self.errors), ANSWER_TIMEOUT_S) and not self.errors

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a sender did not stop after the server was killed"

    def _send(self, token: str) -> None:
        # No retries: after the kill, a request must fail at once instead of waiting for a server that is gone.
        with TripSearchClient(self.url, token=token, retry=Retry(attempts=0), timeout=30) as client:
            while not self.stop.is_set():
                with self.lock:
                    if not self.batches:
                        return
                    batch = self.batches.popleft()
                try:
                    results = client.bulk([line for _, _, line in batch], batch_size=len(batch))
                except BackendUnavailable as exc:
                    with self.lock:
                        self.lost.append(batch)
                        if not self.stop.is_set():
                            self.errors.append(f"the server failed while it should be up: {exc}")
                            self.progress.notify_all()
                        elif not isinstance(exc.__cause__, httpx.ConnectError):
                            self.interrupted += 1
                    return
                except Exception as exc:  # any other failure is a bug of the server or of this test: report it
                    with self.lock:
                        self.lost.append(batch)
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                        self.progress.notify_all()
                    return
                self._acknowledge(batch, results)

    def _acknowledge(self, batch: list[Line], results: list[tripsearch.ItemResult]) -> None:
        with self.lock:
            self.answered += 1
            self.progress.notify_all()
            if len(results) != len(batch):
                self.errors.append(f"{len(results)} results for {len(batch)} lines")
                return
            for result in results:
                tid, version, _ = batch[result.line - 1]
                if result.id != tid or result.version != version or result.result not in ("stored", "unchanged"):
                    self.errors.append(f"line {result.line} ({tid} v{version}) answered {result}")
                    continue
                # "unchanged" means a version at least as high is stored: as good an acknowledgement as "stored"
                self.unchanged += result.result == "unchanged"
                self.acked[tid] = max(self.acked.get(tid, 0), version)


def start_server(data: Path, home: Path, n: int) -> Server:
    """Start ``tripsearch serve`` (one worker, its own session) over ``data`` and wait until it takes writes.

    Not ``/ready``, which also waits for the place index: an indexer writes
    as soon as writes are taken (a trip lookup answers 404, not 503), and the
    kill may land while places load.
    """
    env = {**os.environ, "TRIPSEARCH_JWT_SECRET": SECRET, "TRIPSEARCH_REFRESH_INTERVAL": str(REFRESH_INTERVAL_S)}
    started = start_process(serve_command(data), home, name=f"server-{n}", ready_path="/v1/trips/not-a-trip", ready_status=404, timeout_s=READY_TIMEOUT_S, poll_s=0.05, env=env, cwd=home)
    return Server(started.url, started.process, started.log, data, 1)


def round_batches(base: list[dict[str, Any]], round_no: int, rng: np.random.Generator, sent: dict[str, dict[int, bytes]]) -> list[list[Line]]:
    """Return the round's batches: each pass rewrites a random half of the trips with a higher version and new seats."""
    lines: list[Line] = []
    for pass_no in range(PASSES):
        chosen = rng.choice(len(base), size=len(base) // 2, replace=False)
        for i in chosen.tolist():
            trip = base[i]
            version = trip["version"] + round_no * PASSES + pass_no + 1
            line = orjson.dumps(dict(trip, version=version, seats_available=int(rng.integers(0, trip["seats_total"] + 1))))
            sent.setdefault(trip["id"], {})[version] = line
            lines.append((trip["id"], version, line))
    batches = []
    while lines:
        size = int(rng.integers(BATCH_LINES[0], BATCH_LINES[1] + 1))
        batches.append(lines[:size])
        lines = lines[size:]
    return batches


def check_store(data: Path, acked: dict[str, int], sent: dict[str, dict[int, bytes]], queries: list[dict[str, Any]], round_no: int) -> list[list[str]]:
    """Check the data directory the killed server left; return the ids each query must find, in order."""
    engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False)
    try:
        with closing(sqlite3.connect(data / "trips.sqlite")) as conn:
            rows = conn.execute("SELECT id, version, doc FROM trips WHERE deleted = 0").fetchall()
            deleted = conn.execute("SELECT count(*) FROM trips WHERE deleted != 0").fetchone()[0]
        assert deleted == 0, f"round {round_no}: {deleted} tombstones, but nothing was deleted"
        stored = {tid: version for tid, version, _ in rows}
        for tid, version in acked.items():
            assert stored.get(tid, 0) >= version, f"round {round_no}: {tid} acknowledged at version {version}, stored at {stored.get(tid)}"
            assert engine.get(tid)["version"] == stored[tid]
        # Nothing half-written: every stored document is a whole, valid trip, byte for byte one that was sent.
        for tid, version, doc in rows:
            trip = tripsearch.parse_trip(doc)
            assert (trip.id, trip.version) == (tid, version), f"round {round_no}: row {tid} v{version} holds {trip.id} v{trip.version}"
            assert doc == sent[tid][version], f"round {round_no}: {tid} v{version} is not the document that was sent"
        assert len(rows) == engine.stats()["trips"]
        # The index rebuilt from the store agrees with the brute-force reference on what is stored.
        refs = [reference.make_ref(orjson.loads(doc)) for _, _, doc in rows]
        expected = []
        for q in queries:
            hits, _ = reference.search(refs, q)
            result = engine.search(q)
            assert result.total == len(hits), f"round {round_no}: {q} found {result.total}, the reference {len(hits)}"
            assert [h.id for h in result.trips] == [h.id for h in hits], f"round {round_no}: {q}"
            expected.append([h.id for h in hits])
        return expected
    finally:
        engine.close()


def check_served(server: Server, acked: dict[str, int], queries: list[dict[str, Any]], expected: list[list[str]], rng: np.random.Generator) -> None:
    """Check through the restarted server: acknowledged trips at their version at least, searches as on disk."""
    sample = sorted(acked)
    if len(sample) > 25:
        sample = [sample[i] for i in rng.choice(len(sample), size=25, replace=False).tolist()]
    with TripSearchClient(server.url, timeout=30) as client:
        for tid in sample:
            assert client.get(tid)["version"] >= acked[tid], f"the restarted server serves {tid} below version {acked[tid]}"
        for q, ids in zip(queries, expected):
            result = client.search(q)
            assert (result.total, [h.id for h in result.trips]) == (len(ids), ids), f"the restarted server answers {q} otherwise"


@pytest.mark.slow
def test_sigkill_during_api_bulk_loses_no_acknowledged_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    base = list(generate_trips(TRIPS, 7, dt.date(2026, 12, 1), 5, countries=MARKET))
    data = tmp_path / "data"
    data.mkdir()  # serve starts on an existing directory only
    acked: dict[str, int] = {}
    sent: dict[str, dict[int, bytes]] = {}
    retry: list[list[Line]] = []  # batches cut by the previous kill: an indexer sends them again
    killed_mid_load = unchanged = 0
    server = start_server(data, tmp_path, 0)
    try:
        for round_no in range(KILLS):
            batches = retry + round_batches(base, round_no, rng, sent)
            load = Load(server.url, deque(batches), acked)
            load.start()
            # Kill at a random moment once the round's first batch is acknowledged, with most of its work left.
            answers = int(rng.integers(1, len(batches) // 2 + 1))
            assert load.wait_answers(answers), f"round {round_no}: {load.errors[:5]}\n{server.log.read_text()[-3000:]}"
            time.sleep(float(rng.uniform(0.0, KILL_DELAY_S)))
            load.stop.set()
            server.kill()
            load.join()
            assert not load.errors, f"round {round_no}: {load.errors[:5]}\n{server.log.read_text()[-3000:]}"
            killed_mid_load += load.interrupted > 0
            unchanged += load.unchanged
            retry = load.lost

            queries = [dict(q, limit=100) for q in build_workload(base, QUERIES, seed=round_no, facets=[]).searches]
            expected = check_store(data, acked, sent, queries, round_no)
            server = start_server(data, tmp_path, round_no + 1)
            check_served(server, acked, queries, expected, rng)
    finally:
        server.kill()
    print(f"{killed_mid_load} of {KILLS} kills cut a request in flight; {len(acked)} trips acknowledged, {unchanged} lines answered unchanged")
    assert len(acked) > TRIPS // 2, f"only {len(acked)} trips were ever acknowledged"
    assert killed_mid_load >= KILLS * 3 // 4, f"only {killed_mid_load} of {KILLS} kills cut a request in flight: the test did not exercise crashes"
