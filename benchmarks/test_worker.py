"""Indexer workers: events/s from RabbitMQ into each backend with 1 and 2 workers, and latency from publish to searchable.

The broker is the tests' session broker (scripts/rabbitmq); Elasticsearch is
the session's one-node cluster. Each run publishes the events first (with
publisher confirms), then starts ``tripsearch worker`` processes; the rate is
read from their ``/metrics`` over the window in which all of them consume,
so start-up is not counted. The same trips loaded straight into the backend
in batches of the worker's size give the bulk-load rate the worker is
compared with (``extra_info["vs_bulk_load"]``): by a fresh process, as the
worker's writer is one, into a data directory opened for writing only, as
the writer opens it (``benchmarks/bulk_load.py``), once before the workers
and once after (the machine's speed drifts). The CPU per event of the
workers, of their writer processes and of the broker is recorded beside it.

Sizes: ``TRIPSEARCH_BENCH_WORKER_EVENTS`` (default 1,000, so that `make test`
runs it once) and, for the latency, ``TRIPSEARCH_BENCH_WORKER_RATE`` events/s
for ``TRIPSEARCH_BENCH_WORKER_SECONDS``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, cast

import httpx
import numpy as np
import orjson
import pytest

import tripsearch
from tripsearch.testing.elastic import Cluster, es_cluster, es_clusters, fresh_alias  # noqa: F401  (session fixtures)
from tripsearch.testing.rabbitmq import Broker, fresh_topology, publish, rabbitmq, run_async  # noqa: F401  (the session broker)
from tripsearch.testing.server import free_port
from tripsearch.broker.events import Topology, trip_event

from .conftest import dataset_trips

EVENTS = int(os.environ.get("TRIPSEARCH_BENCH_WORKER_EVENTS", "1000"))
RATE = float(os.environ.get("TRIPSEARCH_BENCH_WORKER_RATE", "100"))
SECONDS = float(os.environ.get("TRIPSEARCH_BENCH_WORKER_SECONDS", "1"))
BATCH = 500  # the worker's default batch size


@lru_cache(maxsize=1)
def _base(count: int) -> tuple[dict[str, Any], ...]:
    return tuple(dataset_trips(count))


def _events(count: int, prefix: str) -> list[dict[str, Any]]:
    base = _base(min(EVENTS, 5000))
    return [trip_event(dict(base[i % len(base)], id=f"{prefix}-{i}", version=1)) for i in range(count)]


def _acked(client: httpx.Client, port: int) -> float | None:
    try:
        text = client.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("tripsearch_worker_events_acked_total "):
            return float(line.split()[1])
    return None


def _cpu_s(pid: int) -> float | None:
    """Return the CPU seconds (user + system, all threads) a process has used so far, or None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Return a process's children (the worker's writer process), none where /proc does not list them."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _children_cpu_s(pid: int) -> float:
    """Return the CPU seconds of a process's children, 0 where /proc does not list them."""
    return sum(_cpu_s(c) or 0.0 for c in _children(pid))


def _children_waiting_s(pid: int) -> float:
    """Return the seconds a process's children have spent ready to run but waiting for a core (``/proc/PID/task/TID/schedstat``, second field), 0 where /proc does not show it."""
    total = 0
    for child in _children(pid):
        for stat in Path(f"/proc/{child}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def _broker_cpu_s(broker: Broker) -> float:
    """Return the CPU seconds the broker's Erlang node has used so far (its ``beam.smp`` process, found by the node's name), 0 where /proc does not show it."""
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"beam.smp") and any(broker.name.encode() in a for a in args):
            total += _cpu_s(int(cmdline.parent.name)) or 0.0
    return total


def _bulk_load(trips: list[dict[str, Any]], tag: str, backend: str, target: list[str], tmp_path: Path) -> dict[str, float]:
    """Bulk-load ``trips`` (ids prefixed with ``tag``) in batches of the worker's size in a fresh process, as the worker's writer is one, into a data directory opened as the writer opens it (benchmarks/bulk_load.py); return its figures."""
    path = tmp_path / f"{tag}.ndjson"
    path.write_bytes(b"".join(orjson.dumps(dict(t, id=f"{tag}-{t['id']}")) + b"\n" for t in trips))
    where = ["--data", str(tmp_path / tag), "--write-only"] if backend == "embedded" else target[:4]  # ["--backend", URL, "--index", ALIAS]
    done = subprocess.run([sys.executable, "-m", "benchmarks.bulk_load", str(path), *where, "--batch", str(BATCH)],
                          capture_output=True, cwd=Path(__file__).resolve().parent.parent, timeout=900)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return cast("dict[str, float]", orjson.loads(done.stdout.splitlines()[-1]))


def _workers(broker: Broker, topology: Topology, target: list[str], count: int) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    procs = []
    for _ in range(count):
        port = free_port()
        cmd = [sys.executable, "-m", "tripsearch.cli", "worker", "--amqp", broker.url, *target, "--metrics-port", str(port), "--log-level", "warning",
               "--queue", topology.queue, "--exchange", topology.exchange, "--dead-letter-exchange", topology.dead_letter_exchange, "--dead-letter-queue", topology.dead_letter_queue]
        procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), port))
    try:
        yield procs
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.communicate(timeout=60)


def _target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[list[str], Any, Any]:
    """Return the worker's backend arguments, an engine over the same index, and a clean-up."""
    if backend == "embedded":
        data = tmp_path / "data"
        engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False)
        return ["--data", str(data)], engine, lambda: None
    cluster: Cluster = request.getfixturevalue("es_cluster")
    alias = fresh_alias("bench-worker")
    engine = tripsearch.open(cluster.url, index=alias, number_of_replicas=0, request_timeout=60.0)
    return ["--backend", cluster.url, "--index", alias], engine, lambda: cluster.drop(alias)


@pytest.mark.parametrize("write_in", ["process", "thread"])
@pytest.mark.parametrize("pack", [1, 100], ids=["one-per-message", "packs-of-100"])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("backend", ["embedded", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def test_worker_throughput(benchmark, rabbitmq: Broker, backend: str, workers: int, pack: int, write_in: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:  # type: ignore[no-untyped-def]
    """Events/s from a full queue into the backend, against the same trips bulk-loaded in batches of the worker's size (NDJSON lines, as `tripsearch index` reads them).

    ``pack``: events per message (``EventPublisher(pack=...)``), so the broker's and the AMQP client's per-message work is paid once per pack.
    ``write_in``: `tripsearch worker --write-in` (the default, ``process``, writes in a child process beside the event loop).
    """
    events = _events(EVENTS, f"b{workers}-{pack}")
    trips = [e["trip"] for e in events]
    topology = fresh_topology()
    target, engine, clean = _target(backend, tmp_path, request)
    try:
        # The bulk load is measured before and after the workers, and the two taken together: the machine's speed drifts.
        bulk = [_bulk_load(trips, "bulk-before", backend, target, tmp_path)]
        run_async(publish(rabbitmq, topology, events, pack))
        window: dict[str, float] = {}

        def consume() -> None:
            # One client for every poll: httpx.get makes a client each time, about 23 ms of CPU (its TLS
            # context), which took 0.4 of a core from the workers at a poll every 20 ms.
            with httpx.Client() as client:
                for procs in _workers(rabbitmq, topology, [*target, "--write-in", write_in], workers):
                    counts: list[float | None] = [None] * workers
                    deadline = time.monotonic() + 600
                    while True:
                        for proc, _ in procs:
                            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
                        counts = [_acked(client, port) for _, port in procs]
                        now = time.perf_counter()
                        if "start" not in window and all(c is not None for c in counts):
                            window["start"], window["start_count"] = now, sum(c or 0 for c in counts)
                            window["start_cpu"] = sum(_cpu_s(proc.pid) or 0.0 for proc, _ in procs)
                            window["start_children_cpu"] = sum(_children_cpu_s(proc.pid) for proc, _ in procs)
                            window["start_children_waiting"] = sum(_children_waiting_s(proc.pid) for proc, _ in procs)
                            window["start_broker_cpu"] = _broker_cpu_s(rabbitmq)
                        if "start" in window and sum(c or 0 for c in counts) >= len(events):
                            window["end"], window["end_count"] = now, sum(c or 0 for c in counts)
                            window["end_cpu"] = sum(_cpu_s(proc.pid) or 0.0 for proc, _ in procs)
                            window["end_children_cpu"] = sum(_children_cpu_s(proc.pid) for proc, _ in procs)
                            window["end_children_waiting"] = sum(_children_waiting_s(proc.pid) for proc, _ in procs)
                            window["end_broker_cpu"] = _broker_cpu_s(rabbitmq)
                            return
                        assert time.monotonic() < deadline
                        # Each poll costs the worker's event loop a /metrics answer (about 0.3 ms of its CPU): every
                        # 20 ms that was a tenth of its samples. Poll often only where it sets the window's end.
                        time.sleep(0.01 if sum(c or 0 for c in counts) >= 0.9 * len(events) else 0.1)

        benchmark.pedantic(consume, rounds=1, iterations=1)
        consumed = window["end_count"] - window["start_count"]
        rate = consumed / (window["end"] - window["start"]) if consumed else 0.0
        bulk.append(_bulk_load(trips, "bulk-after", backend, target, tmp_path))
        bulk_rate = sum(b["trips"] for b in bulk) / sum(b["seconds"] for b in bulk)
        bulk_cpu_us = sum(b["cpu_us_per_trip"] for b in bulk) / len(bulk)
        # CPU per event: what a busy machine (other processes on the cores) changes least
        cpu_us = (window["end_cpu"] - window["start_cpu"]) / consumed * 1e6 if consumed and window["end_cpu"] else None
        writer_us = (window["end_children_cpu"] - window["start_children_cpu"]) / consumed * 1e6 if consumed else 0.0
        broker_us = (window["end_broker_cpu"] - window["start_broker_cpu"]) / consumed * 1e6 if consumed else 0.0
        # Where the writers' time goes in the window, as shares of it (summed over the workers): on a core, and
        # ready to run but waiting for one (what the event loops and the broker beside them cost the writers);
        # the bulk load's share on a core beside it.
        # (None when the workers had consumed everything by the first poll: a run of a few events, as in CI)
        seconds = (window["end"] - window["start"]) * workers
        writer_time = {"writer_process_on_cpu": (window["end_children_cpu"] - window["start_children_cpu"]) / seconds if seconds else None,
                       "writer_process_waiting_for_cpu": (window["end_children_waiting"] - window["start_children_waiting"]) / seconds if seconds else None,
                       "bulk_on_cpu": sum(b["cpu_us_per_trip"] * b["trips"] for b in bulk) / 1e6 / sum(b["seconds"] for b in bulk)}
        benchmark.extra_info.update({"events": len(events), "workers": workers, "pack": pack, "write_in": write_in, "events_per_s": round(rate), "measured_events": int(consumed),
                                     "bulk_load_per_s": round(bulk_rate), "bulk_load_per_s_before_after": [round(b["trips_per_s"]) for b in bulk], "vs_bulk_load": round(rate / bulk_rate, 3),
                                     "cpu_us_per_event": None if cpu_us is None else round(cpu_us + writer_us), "writer_process_cpu_us_per_event": round(writer_us), "broker_cpu_us_per_event": round(broker_us), "bulk_cpu_us_per_trip": round(bulk_cpu_us),
                                     **{k: None if v is None else round(v, 2) for k, v in writer_time.items()}})
    finally:
        engine.close()
        clean()


def test_publish_to_searchable_latency(benchmark, rabbitmq: Broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """At a steady rate, the time from a confirmed publish until the trip is in the search index of a reader over the same data directory.

    The reader refreshes every 10 ms, so the figure is the worker's part
    (batching, the durable write) plus at most 10 ms; ``tripsearch serve``
    adds its own refresh interval (1 s by default) on top.
    """
    from tripsearch.broker.events import EventPublisher

    count = max(1, int(RATE * SECONDS))
    events = _events(count, "lat")
    topology = fresh_topology()
    data = tmp_path / "data"
    reader = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False)
    published: list[float] = []
    seen: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and len(seen) < count:
            reader.refresh()
            visible = reader.stats()["trips"]
            now = time.perf_counter()
            seen.extend([now] * (visible - len(seen)))
            time.sleep(0.01)

    async def publish_steadily() -> None:
        async with EventPublisher(rabbitmq.url, topology) as publisher:
            start = time.perf_counter()
            for i, event in enumerate(events):
                await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
                await publisher.publish([event])
                published.append(time.perf_counter())

    def run() -> None:
        run_async(_declare(rabbitmq, topology))
        for procs in _workers(rabbitmq, topology, ["--data", str(data)], 1):
            proc, port = procs[0]
            deadline = time.monotonic() + 120
            with httpx.Client() as client:
                while _acked(client, port) is None:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()[-2000:]
                    time.sleep(0.05)
            watcher = threading.Thread(target=watch)
            watcher.start()
            run_async(publish_steadily())
            watcher.join(timeout=60)
            done.set()

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        done.set()
        reader.close()
    assert len(seen) == count, f"{len(seen)} of {count} trips became searchable"
    # one worker applies the events in publish order, so the i-th trip to show up is the i-th published
    latency = np.array(seen) - np.array(published)
    benchmark.extra_info.update({"events": count, "rate_per_s": RATE, "latency_p50_ms": round(float(np.percentile(latency, 50)) * 1000, 1),
                                 "latency_p99_ms": round(float(np.percentile(latency, 99)) * 1000, 1), "latency_max_ms": round(float(latency.max()) * 1000, 1)})


async def _declare(broker: Broker, topology: Topology) -> None:
    from tripsearch.broker.events import EventPublisher

    async with EventPublisher(broker.url, topology):
        pass
