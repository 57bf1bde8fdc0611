"""The indexer worker on a real RabbitMQ broker (scripts/rabbitmq) and a real backend.

Every test publishes trip events with publisher confirms to a topology of its
own, lets a worker consume them, and compares the index with the expected
state: each trip at its highest version (absent when that event deletes it),
the same as applying the events once, in version order, directly to a backend.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, cast

import aio_pika
import httpx
import orjson
import pytest

import tripsearch
from tripsearch.alerts import ALERTS_DB_NAME, AlertStore
from tripsearch.alerts.follower import LOCK_NAME
from tripsearch.backend import Backend
from tripsearch.errors import BackendUnavailable, NotFound
from tripsearch.broker.events import EventPublisher, Topology, delete_event, trip_event
from tripsearch.data.fixtures import generate_trips
from tripsearch.index.elastic import ElasticBackend
from tripsearch.index.elastic.connection import ID_BATCH, chunks
from tripsearch.index.embedded import DB_NAME
from tripsearch.broker.worker import FIELD_HEADER, REASON_HEADER, Worker, WorkerSettings
from tripsearch.broker.writer import WriterProcess, WriterProcessError
from tripsearch.model import parse_trip
from tripsearch.occurrences import occurrences, split_key

from tripsearch.testing.rabbitmq import Broker, fresh_topology, publish, run_async
from tripsearch.testing.server import free_port

from api.occurrence_seats import with_occurrence_seats

from .api.support import REYKJAVIK, SELFOSS, make_trip
from .geometry import regular_trips

# The 100,000 events on each backend (TRIPSEARCH_WORKER_TEST_EVENTS sets another size).
EVENTS = int(os.environ.get("TRIPSEARCH_WORKER_TEST_EVENTS", "100000"))
KILLS = 10

Expected = dict[str, tuple[int, int | None]]  # id -> (version, seats_available), None when the last event deletes it


@lru_cache(maxsize=1)
def _base_trips() -> tuple[dict[str, Any], ...]:
    return tuple(generate_trips(200, 19, dt.date(2026, 12, 1), 5))


def make_events(count: int, seed: int, duplicates: float = 0.2, deletes: float = 0.15) -> tuple[list[dict[str, Any]], Expected]:
    """Return about ``count`` events (versions 1 to 4 of each trip, some ending in a cancel or delete), shuffled, and the expected state.

    Duplicates repeat lower versions only, so every trip's last event exists
    once: losing any of them would show in the final state.
    """
    rng = random.Random(seed)
    base = _base_trips()
    per_trip = 2.5 * (1 + duplicates)
    events: list[dict[str, Any]] = []
    expected: Expected = {}
    lower: list[dict[str, Any]] = []
    for n in range(max(1, int(count / per_trip))):
        trip = dict(base[n % len(base)], id=f"w{seed}-{n}")
        trip.pop("route", None)  # smaller messages: the stops make the route
        versions = rng.randint(1, 4)
        for version in range(1, versions + 1):
            seats = rng.randint(0, trip["seats_total"])
            last = version == versions
            if last and rng.random() < deletes:
                event = delete_event(trip["id"], version, type=rng.choice(["trip.cancelled", "trip.deleted"]))
                expected[trip["id"]] = (version, None)
            else:
                event = trip_event(dict(trip, version=version, seats_available=seats), type="trip.published" if version == 1 else "trip.updated")
                if last:
                    expected[trip["id"]] = (version, seats)
            events.append(event)
            if not last:
                lower.append(event)
    events += rng.sample(lower, min(len(lower), int(len(events) * duplicates)))
    rng.shuffle(events)
    return events, expected


def state_of(backend: Backend, ids: list[str]) -> Expected:
    out: Expected = {}
    for tid in ids:
        try:
            doc = backend.get(tid)
        except NotFound:
            continue
        out[tid] = (doc["version"], doc["seats_available"])
    return out


def elastic_state_of(backend: ElasticBackend, ids: list[str]) -> Expected:
    """:func:`state_of` read from Elasticsearch ``ID_BATCH`` trips a request, as the backend reads versions (``get`` one by one costs a millisecond of CPU each)."""
    out: Expected = {}
    for chunk in chunks(ids, ID_BATCH):
        for tid, doc in backend._connection.fetch_docs(chunk).items():
            out[tid] = (doc["version"], doc["seats_available"])
    return out


def live(expected: Expected) -> Expected:
    return {tid: v for tid, v in expected.items() if v[1] is not None}


def apply_in_version_order(backend: Backend, events: list[dict[str, Any]]) -> None:
    """The reference: each distinct event once, lowest version first, straight into the backend."""
    for version in sorted({e["version"] for e in events}):
        same = [e for e in events if e["version"] == version]
        backend.upsert([e["trip"] for e in same if "trip" in e])
        backend.delete([(e["trip_id"], version) for e in same if "trip" not in e])


def publish_sync(broker: Broker, topology: Topology, events: list[Any], pack: int = 1) -> None:
    run_async(publish(broker, topology, events, pack))


async def queue_counts(broker: Broker, name: str) -> tuple[int, int]:
    """Return (messages ready, consumers) of a queue."""
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0


async def run_worker(backend: Backend, broker: Broker, topology: Topology, during: Callable[[Worker], Awaitable[None]] | None = None,
                     timeout: float = 180, **options: Any) -> Worker:
    """Run a worker in this process until its queue is empty and nothing is in flight (after ``during``), then stop it."""
    settings = WorkerSettings(broker.url, topology, depth_interval_s=0.2, retry_max_s=2.0, **options)
    worker = Worker(backend, settings)
    task = asyncio.create_task(worker.run())
    try:
        if during is not None:
            await during(worker)
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"the queue was not drained within {timeout} s"
            await asyncio.sleep(0.1)
            ready, _ = await queue_counts(broker, topology.queue)
            quiet = quiet + 1 if worker._consuming and ready == 0 and worker.metrics.unacknowledged == 0 else 0
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
    return worker


def counter(worker: Worker, name: str, sample: str = "_total") -> float:
    """Return a metric's value summed over its labels: a counter's total, or (``sample="_count"``) how many a histogram observed."""
    return sum(s.value for m in worker.metrics.registry.collect() if m.name == name for s in m.samples if s.name.endswith(sample))


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    opened: list[Backend] = []

    def factory(name: str = "data", **options: Any) -> Backend:
        engine = tripsearch.open(tmp_path / name, refresh_interval=0, **options)
        opened.append(engine)
        return engine

    yield factory
    for engine in opened:
        engine.close()


@pytest.mark.parametrize("pack", [1, 100], ids=["one-per-message", "packs-of-100"])
def test_duplicates_and_shuffled_versions_end_at_the_highest_version(rabbitmq: Broker, embedded: Callable[..., Backend], pack: int) -> None:
    events, expected = make_events(EVENTS if pack == 1 else EVENTS // 5, seed=1)  # packs: the same rules, a fifth of the size
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events, pack)
    backend = embedded()
    worker = run_async(run_worker(backend, rabbitmq, topology))
    ids = sorted(expected)
    assert state_of(backend, ids) == live(expected)
    reference = embedded("reference")
    apply_in_version_order(reference, events)
    assert state_of(reference, ids) == live(expected)
    assert counter(worker, "tripsearch_worker_events_consumed") == len(events)
    assert counter(worker, "tripsearch_worker_events_applied") + counter(worker, "tripsearch_worker_events_unchanged") == len(events)
    assert counter(worker, "tripsearch_worker_events_dead_lettered") == 0


def test_a_batch_waits_for_more_events_only_while_the_writer_is_busy(rabbitmq: Broker, embedded: Callable[..., Backend]) -> None:
    """Group commit: with a batch timeout of a minute, an event published to an idle worker is written at once; a full queue still goes in full batches."""
    events, expected = make_events(2000, seed=5, duplicates=0)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    backend = embedded()
    lone = dict(_base_trips()[1], id="lone-1", version=1)
    took: list[float] = []

    async def lone_event(worker: Worker) -> None:
        deadline = time.monotonic() + 120
        while counter(worker, "tripsearch_worker_events_acked") < len(events):  # the full queue first
            assert time.monotonic() < deadline, "the queue was not drained"
            await asyncio.sleep(0.05)
        batches = counter(worker, "tripsearch_worker_batch_size", "_count")
        await publish(rabbitmq, topology, [trip_event(lone)])
        start = time.monotonic()
        while counter(worker, "tripsearch_worker_events_acked") < len(events) + 1:
            assert time.monotonic() - start < 30, "the lone event waited for the batch timeout"
            await asyncio.sleep(0.01)
        took.append(time.monotonic() - start)
        assert counter(worker, "tripsearch_worker_batch_size", "_count") == batches + 1

    worker = run_async(run_worker(backend, rabbitmq, topology, lone_event, batch_size=200, batch_timeout_s=60.0))
    assert state_of(backend, sorted(expected)) == live(expected)
    assert backend.get("lone-1")["version"] == 1
    assert took[0] < 10  # seconds; the batch timeout is 60
    # 2,000 events in batches of up to 200: the first batch goes out with what had arrived, then the writer is busy
    assert counter(worker, "tripsearch_worker_batch_size", "_count") <= 2000 // 200 * 3


def regular_trip_versions(trip: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the documents of a regular trip's life, versions 1 to 6, as the platform's write path makes them.

    Each version is the whole trip: seats of one date (with the API's PATCH
    helper), seats of another, a cancelled date, another weekly time, then
    the first date's seats again. Every version's searches differ from the
    last one's (a date hidden or found, another seat count, another time), so
    an index left at any earlier version shows.
    """
    first = dict(trip, version=1, status="published", seats_total=max(trip["seats_total"], 3))
    first["seats_available"] = first["seats_total"]
    a, b, c = dates_of(first)[:3]
    times = first["schedule"]["times"]
    later = "05:55" if "05:55" not in times.values() else "06:05"
    docs = [first]
    docs.append(with_occurrence_seats(docs[-1], a, 0))
    docs.append(with_occurrence_seats(docs[-1], b, 1))
    schedule = docs[-1]["schedule"]
    cancelled = [e for e in schedule["exceptions"] if e["date"] != c.isoformat()] + [{"date": c.isoformat(), "skip": True}]
    docs.append(dict(docs[-1], version=4, schedule=dict(schedule, exceptions=cancelled)))
    docs.append(dict(docs[-1], version=5, schedule=dict(docs[-1]["schedule"], times={day: later for day in times})))
    docs.append(with_occurrence_seats(docs[-1], a, 2))
    return docs


def dates_of(doc: dict[str, Any]) -> list[dt.date]:
    """Return the dates a regular trip's document runs on."""
    return [dt.date.fromisoformat(cast(str, split_key(o.id)[1])) for o in occurrences(parse_trip(doc))]


def occurrence_answers(backend: Backend, lives: list[list[dict[str, Any]]]) -> dict[str, dict[str, list[tuple[str, str | None, int, Any]]]]:
    """Return, for each trip, the hits (id, occurrence, seats, pickup time) of a search from its first stop to its last on each date any of its versions runs."""
    backend.refresh()
    answers: dict[str, dict[str, list[tuple[str, str | None, int, Any]]]] = {}
    for docs in lives:
        start, end = docs[0]["stops"][0], docs[0]["stops"][-1]
        answers[docs[0]["id"]] = by_date = {}
        for date in sorted({d.isoformat() for doc in docs for d in dates_of(doc)}):
            result = backend.search({"from": [start["lat"], start["lon"]], "to": [end["lat"], end["lon"]], "date": date, "limit": 100, "facets": []})
            by_date[date] = [(h.id, h.occurrence, h.trip["seats_available"], h.pickup.time) for h in result.trips]
    return answers


def stored(backend: Backend, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Return the stored documents of those trips that exist."""
    out = {}
    for tid in ids:
        try:
            out[tid] = backend.get(tid)
        except NotFound:
            pass
    return out


def test_regular_trips_seat_changes_as_full_documents_end_at_the_highest_version(rabbitmq: Broker, embedded: Callable[..., Backend]) -> None:
    """Seat changes of one occurrence travel as trip.updated events with the whole regular trip: duplicated and shuffled, they end as the last version.

    Each trip's document, and every search on one of its dates (the
    occurrences found, their seats and times), equal those of an engine
    that stored each trip's highest version directly, and of one that
    applied the events once in version order. One trip ends with
    trip.cancelled: none of its dates is found.
    """
    trips = [t for t in regular_trips("europe", 40, seed=19) if len(dates_of(t)) >= 3][:6]
    assert len(trips) == 6
    ids = [t["id"] for t in trips]
    lives = [regular_trip_versions(t) for t in trips]
    events = [trip_event(doc, type="trip.published" if doc["version"] == 1 else "trip.updated") for docs in lives for doc in docs]
    events.append(delete_event(ids[-1], 7, type="trip.cancelled"))
    rng = random.Random(19)
    events += rng.sample(events[:-1], len(events) // 2)  # some versions twice; each trip's last event once, so losing it would show
    rng.shuffle(events)
    highest: dict[str, int] = {}
    late = set()  # trips with an event published after a higher version of theirs
    for event in events:
        if event["version"] < highest.get(event["trip_id"], 0):
            late.add(event["trip_id"])
        highest[event["trip_id"]] = max(event["version"], highest.get(event["trip_id"], 0))
    assert late == set(ids)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    backend = embedded()
    worker = run_async(run_worker(backend, rabbitmq, topology, batch_size=4))  # small batches: a trip's versions come in several
    assert counter(worker, "tripsearch_worker_events_dead_lettered") == 0

    reference = embedded("reference")
    reference.upsert([docs[-1] for docs in lives[:-1]])
    reference.delete([(ids[-1], 7)])
    in_order = embedded("in-order")
    apply_in_version_order(in_order, events)
    assert set(stored(reference, ids)) == set(ids[:-1])
    assert stored(backend, ids) == stored(reference, ids) == stored(in_order, ids)
    expected = occurrence_answers(reference, lives)
    assert occurrence_answers(backend, lives) == expected
    assert occurrence_answers(in_order, lives) == expected
    for docs in lives[:-1]:  # the searches find each live trip on every date it runs with a seat left, with that date's seats
        tid = docs[-1]["id"]
        found = {(date, seats) for hits in expected[tid].values() for hit_id, date, seats, _ in hits if hit_id == tid}
        assert found == {(split_key(o.id)[1], o.seats_available) for o in occurrences(parse_trip(docs[-1])) if o.seats_available > 0}
    assert not any(hit[0] == ids[-1] for hits in expected[ids[-1]].values() for hit in hits)
    for version in range(1, 6):  # the test can fail: an index left at any earlier version of a trip answers otherwise for that trip
        earlier = embedded(f"version-{version}")
        earlier.upsert([docs[version - 1] for docs in lives])
        answers = occurrence_answers(earlier, lives)
        for tid in ids:
            assert answers[tid] != expected[tid], (tid, version)


@pytest.mark.parametrize("pack", [1, 7], ids=["one-per-message", "packs-of-7"])
def test_bad_events_are_dead_lettered_with_the_reason_and_good_ones_around_them_applied(rabbitmq: Broker, embedded: Callable[..., Backend], pack: int) -> None:
    """Each bad event is dead-lettered alone, as a message of its own, also from inside a pack of good ones."""
    events, expected = make_events(300, seed=2, duplicates=0)
    trip = dict(_base_trips()[0], id="bad-1", version=1)
    bad: list[tuple[Any, str, str]] = [  # (message, field, words in the reason)
        (b"{not json", "", "not JSON"),
        (b"[1, 2]", "", "must be a JSON object"),
        (dict(trip_event(trip), schema="tripsearch.trip-event/9"), "schema", "must be 'tripsearch.trip-event/1'"),
        (dict(trip_event(trip), type="trip.exploded"), "type", "must be one of"),
        (delete_event("bad-2", 1) | {"version": "7"}, "version", "must be an integer"),
        (trip_event(trip) | {"trip_id": "other"}, "trip.id", "must equal trip_id"),
        (trip_event(trip) | {"version": 2}, "trip.version", "must equal version 2"),
        (trip_event(dict(trip, seats_available=trip["seats_total"] + 1)), "trip.seats_available", "seats_total"),
        (trip_event(dict(trip, stops=trip["stops"][:1])), "trip.stops", "must have 2 to 20 stops"),
    ]
    mixed: list[Any] = list(events)
    for i, (message, _, _) in enumerate(bad):
        mixed.insert(i * len(events) // len(bad), message)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, mixed, pack)
    backend = embedded()
    worker = run_async(run_worker(backend, rabbitmq, topology, batch_size=50))
    assert state_of(backend, sorted(expected)) == live(expected)
    assert counter(worker, "tripsearch_worker_events_dead_lettered") == len(bad)

    async def dead_letters() -> list[aio_pika.abc.AbstractIncomingMessage]:
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(topology.dead_letter_queue, passive=True)
            got = []
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                got.append(message)
            return got

    got = {m.body: m.headers for m in run_async(dead_letters())}
    assert len(got) == len(bad)
    for message, field, words in bad:
        headers = got[message if isinstance(message, bytes) else orjson.dumps(message)]
        assert headers[FIELD_HEADER] == field, headers
        assert words in str(headers[REASON_HEADER]), headers
        assert headers["x-tripsearch-queue"] == topology.queue
    assert run_async(queue_counts(rabbitmq, topology.queue))[0] == 0  # acknowledged, not retried


def test_a_message_returned_again_and_again_is_dead_lettered_by_the_queue(rabbitmq: Broker) -> None:
    """The safety net for a message that kills every worker: the quorum queue's delivery limit."""
    topology = fresh_topology(delivery_limit=2)

    async def main() -> tuple[int, int, dict[str, Any]]:
        await publish(rabbitmq, topology, [delete_event("poison", 1)])
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(topology.queue, passive=True)
            returned = 0
            for _ in range(10):
                message = await queue.get(fail=False, timeout=5)
                if message is None:
                    await asyncio.sleep(0.2)
                    message = await queue.get(fail=False, timeout=5)
                    if message is None:
                        break
                await message.nack(requeue=True)  # as a worker killed mid-batch gives it back
                returned += 1
            dead = await channel.declare_queue(topology.dead_letter_queue, passive=True)
            for _ in range(50):
                letter = await dead.get(fail=False, no_ack=True)
                if letter is not None:
                    return returned, dead.declaration_result.message_count or 0, dict(letter.headers)
                await asyncio.sleep(0.1)
            raise AssertionError("nothing reached the dead-letter queue")

    returned, _, headers = run_async(main())
    assert returned == 3  # the first delivery and two more, then the queue gave up on it
    assert headers["x-death"][0]["reason"] == "delivery_limit"


def test_a_locked_store_pauses_the_worker_without_acks_or_dead_letters_then_it_finishes(rabbitmq: Broker, embedded: Callable[..., Backend], tmp_path: Path) -> None:
    events, expected = make_events(2000, seed=3)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    backend = embedded(busy_timeout_s=0.2)
    lock = sqlite3.connect(tmp_path / "data" / DB_NAME, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")  # another process's write transaction: SQLite refuses the worker's writes with "database is locked"
    seen: dict[str, Any] = {}

    async def during(worker: Worker) -> None:
        deadline = time.monotonic() + 30
        while counter(worker, "tripsearch_worker_backend_retries") < 3:
            assert time.monotonic() < deadline, "the worker never met the locked store"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as http:
            seen["ready"] = (await http.get(f"http://127.0.0.1:{worker.metrics_port}/ready")).status_code
            seen["metrics"] = (await http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
        seen["acked"] = counter(worker, "tripsearch_worker_events_acked")
        seen["dead"] = counter(worker, "tripsearch_worker_events_dead_lettered")
        seen["ready_in_queue"], _ = await queue_counts(rabbitmq, topology.queue)
        seen["in_flight"] = worker.metrics.unacknowledged
        seen["in_flight_metric"] = float(seen["metrics"].split("\ntripsearch_worker_events_in_flight ", 1)[1].split()[0])
        lock.execute("ROLLBACK")
        lock.close()

    worker = run_async(run_worker(backend, rabbitmq, topology, during, prefetch=500, batch_size=200, metrics_port=0))
    assert seen["ready"] == 503
    assert "tripsearch_worker_backend_up 0.0" in seen["metrics"]
    assert seen["acked"] == 0 and seen["dead"] == 0
    assert seen["in_flight"] <= 500 and seen["ready_in_queue"] + seen["in_flight"] == len(events)  # prefetch holds the rest back in the queue
    assert seen["in_flight_metric"] == seen["in_flight"]  # nothing moves while the store is locked
    assert state_of(backend, sorted(expected)) == live(expected)
    assert worker.metrics.backend_up._value.get() == 1
    assert counter(worker, "tripsearch_worker_events_dead_lettered") == 0


def test_a_writer_process_killed_during_a_load_is_replaced_and_no_event_is_lost(rabbitmq: Broker, embedded: Callable[..., Backend], tmp_path: Path) -> None:
    events, expected = make_events(6000, seed=6)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    writer = WriterProcess(tmp_path / "data", search=False)
    killed: list[int] = []

    async def during(worker: Worker) -> None:
        deadline = time.monotonic() + 120
        for kill in range(3):
            while counter(worker, "tripsearch_worker_events_acked") < 1000 * (kill + 1) or writer.pid in killed or writer.pid is None:
                assert time.monotonic() < deadline, "the load ended before the writer process was killed three times"
                await asyncio.sleep(0.01)
            pid = writer.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        worker = run_async(run_worker(writer, rabbitmq, topology, during, batch_size=200))
    finally:
        writer.close()
    assert len(killed) == 3 and counter(worker, "tripsearch_worker_backend_retries") >= 1
    assert counter(worker, "tripsearch_worker_events_dead_lettered") == 0
    assert state_of(embedded(), sorted(expected)) == live(expected)


def test_a_writer_process_that_cannot_open_its_backend_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    writer = WriterProcess(tmp_path / "file" / "data", search=False)
    with pytest.raises(WriterProcessError, match="cannot open .*file/data"):  # a setting: the worker stops with it
        writer.start()
    writer.close()
    # a cluster that cannot be reached now is the backend being unavailable: the worker holds its batch and retries
    down = WriterProcess(f"http://127.0.0.1:{free_port()}", index="trips")
    failed = down.submit([("t", 1, b"{}")], [])
    with pytest.raises(BackendUnavailable, match="cannot be reached"):
        failed.result(timeout=60)
    down.close()
    with pytest.raises(WriterProcessError, match="closed"):
        down.submit([("t", 1, b"{}")], []).result(timeout=5)


def test_a_writer_process_left_open_does_not_keep_its_parent_from_exiting(tmp_path: Path) -> None:
    code = "import sys\nfrom tripsearch.broker.writer import WriterProcess\nw = WriterProcess(sys.argv[1], search=False)\nw.start()\nprint(w.pid)"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")], capture_output=True, text=True, timeout=25)  # close() would kill it after 30 s
    assert done.returncode == 0, done.stderr
    child = int(done.stdout)
    deadline = time.monotonic() + 5
    while _running(child):
        assert time.monotonic() < deadline, "the writer process outlived its parent"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        return b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return False


@pytest.mark.parametrize("write_in", ["thread", "process"])
def test_a_broker_restart_during_a_load_is_survived(rabbitmq: Broker, embedded: Callable[..., Backend], tmp_path: Path, write_in: str) -> None:
    events, expected = make_events(5000, seed=4)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    # the session that ends with the connection drops the batches it waits for; a writer process answers them anyway
    backend = embedded() if write_in == "thread" else WriterProcess(tmp_path / "data", search=False)

    left: list[int] = []

    async def during(worker: Worker) -> None:
        while counter(worker, "tripsearch_worker_events_acked") < 500:
            await asyncio.sleep(0.02)
        left.append((await queue_counts(rabbitmq, topology.queue))[0])
        await asyncio.to_thread(rabbitmq.restart)

    try:
        worker = run_async(run_worker(backend, rabbitmq, topology, during, batch_size=100, prefetch=300))
    finally:
        if isinstance(backend, WriterProcess):
            backend.close()
    assert left[0] > 0, "the load ended before the restart: nothing was tested"
    assert counter(worker, "tripsearch_worker_reconnects") >= 1
    assert state_of(embedded() if write_in == "process" else backend, sorted(expected)) == live(expected)


@pytest.fixture
def spawn(rabbitmq: Broker, tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int, Path]]]:
    """Return a function that starts `tripsearch worker` processes (stderr to a file); any still running after the test is killed."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(topology: Topology, data: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
        port = free_port()
        log = tmp_path / f"worker-{len(procs)}.log"
        cmd = [sys.executable, "-m", "tripsearch.cli", "worker", "--amqp", rabbitmq.url, "--data", str(data), "--metrics-port", str(port),
               "--exchange", topology.exchange, "--queue", topology.queue, "--dead-letter-exchange", topology.dead_letter_exchange,
               "--dead-letter-queue", topology.dead_letter_queue, *args]
        with open(log, "wb") as err:
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
        return procs[-1], port, log

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def metric(port: int, name: str) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_metric(proc: subprocess.Popen[bytes], port: int, log: Path, name: str, at_least: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = metric(port, name)
        if value is not None and value >= at_least:
            return value
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"{name} did not reach {at_least} within {timeout} s: {log.read_text()[-2000:]}"
        time.sleep(0.05)


def stored_versions(data: Path) -> dict[str, int]:
    with sqlite3.connect(data / DB_NAME) as conn:
        return dict(conn.execute("SELECT id, version FROM trips WHERE deleted = 0"))


def test_sigterm_drains_the_batches_in_flight_and_exits_cleanly(rabbitmq: Broker, spawn: Callable[..., Any], tmp_path: Path) -> None:
    events = [trip_event(dict(_base_trips()[i % 200], id=f"s-{i}", version=1)) for i in range(6000)]
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    data = tmp_path / "data"
    proc, port, log = spawn(topology, data, "--batch-size", "100", "--prefetch", "1000", "--batch-timeout", "0.5")
    wait_metric(proc, port, log, "tripsearch_worker_events_acked_total", 1)
    assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for name in ("events_consumed_total", "events_applied_total", "events_unchanged_total", "events_dead_lettered_total", "batch_size_bucket", "batch_seconds_bucket", "queue_depth"):
        assert f"tripsearch_worker_{name}" in text
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    err = log.read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "drained" in err
    ready, consumers = run_async(queue_counts(rabbitmq, topology.queue))
    stored = stored_versions(data)
    assert consumers == 0
    assert 0 < len(stored) < len(events), "SIGTERM came after the load: nothing was drained"
    assert len(stored) + ready == len(events)  # every delivered event written and acknowledged; the rest still queued, none held


def test_sigkill_at_random_points_loses_no_event(rabbitmq: Broker, embedded: Callable[..., Backend], spawn: Callable[..., Any], tmp_path: Path) -> None:
    events, expected = make_events(40000, seed=5)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events)
    data = tmp_path / "killed"
    rng = random.Random(5)
    for trial in range(KILLS):
        # Small batches and prefetch, and a kill within 0.05 s of the first delivery: a trial takes a few thousand
        # events at most even on a quiet machine (a worker applies up to about 16,000 a second), so all ten kill mid-load.
        ready, _ = run_async(queue_counts(rabbitmq, topology.queue))
        assert ready > 0, f"the load ended before kill {trial + 1}"
        proc, port, log = spawn(topology, data, "--batch-size", "50", "--prefetch", "200")
        wait_metric(proc, port, log, "tripsearch_worker_events_consumed_total", 1)
        time.sleep(rng.uniform(0, 0.05))
        proc.kill()
        proc.wait()
    ready, _ = run_async(queue_counts(rabbitmq, topology.queue))
    assert ready > 0, "the load ended before the last kill"
    backend = embedded("killed")
    run_async(run_worker(backend, rabbitmq, topology))
    ids = sorted(expected)
    assert state_of(backend, ids) == live(expected)
    reference = embedded("reference")
    apply_in_version_order(reference, events)
    assert state_of(backend, ids) == state_of(reference, ids)


def test_a_worker_matches_its_writes_against_alerts_in_a_follower_process(rabbitmq: Broker, spawn: Callable[..., Any], tmp_path: Path) -> None:
    day = dt.date.today() + dt.timedelta(days=30)
    data = tmp_path / "data"
    store = AlertStore(data / ALERTS_DB_NAME)
    alert = store.create("u-1", {"from": list(REYKJAVIK), "to": list(SELFOSS), "date_from": day.isoformat(), "date_to": day.isoformat()})
    store.close()
    trips = [make_trip(f"w-{i}", day=day, hour=6 + i % 12) for i in range(40)] + [make_trip(f"x-{i}", day=day + dt.timedelta(days=1)) for i in range(10)]
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, [trip_event(trip) for trip in trips])
    proc, port, log = spawn(topology, data)
    wait_metric(proc, port, log, "tripsearch_worker_events_acked_total", len(trips))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert (data / LOCK_NAME).exists()  # a follower process matched them
    store = AlertStore(data / ALERTS_DB_NAME, readonly=True)
    assert store.matched_pairs() == {(alert.id, f"w-{i}") for i in range(40)}  # the worker's close waited for its follower: all matched, the next day's none
    store.close()


def test_declare_only_is_idempotent_and_a_conflicting_declaration_is_a_clear_error(rabbitmq: Broker) -> None:
    topology = fresh_topology()
    names = ["--exchange", topology.exchange, "--queue", topology.queue, "--dead-letter-exchange", topology.dead_letter_exchange, "--dead-letter-queue", topology.dead_letter_queue]
    cmd = [sys.executable, "-m", "tripsearch.cli", "worker", "--declare-only", "--amqp", rabbitmq.url, *names]
    for _ in range(2):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"queue {topology.queue}" in done.stdout
    assert run_async(queue_counts(rabbitmq, topology.queue)) == (0, 0)
    done = subprocess.run([*cmd, "--queue-type", "classic"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "PRECONDITION_FAILED" in done.stderr and "Traceback" not in done.stderr


def test_publish_replays_an_ndjson_file_of_trips(rabbitmq: Broker, embedded: Callable[..., Backend], tmp_path: Path) -> None:
    trips = [dict(t, id=f"p-{i}") for i, t in enumerate(_base_trips()[:50])]
    source = tmp_path / "trips.ndjson"
    source.write_bytes(b"\n".join(orjson.dumps(t) for t in trips) + b"\nnot json\n")
    topology = fresh_topology()
    names = ["--exchange", topology.exchange, "--queue", topology.queue, "--dead-letter-exchange", topology.dead_letter_exchange, "--dead-letter-queue", topology.dead_letter_queue]
    done = subprocess.run([sys.executable, "-m", "tripsearch.cli", "publish", str(source), "--amqp", rabbitmq.url, *names], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "published 50 events" in done.stdout and "line 51: skipped" in done.stderr
    backend = embedded()
    run_async(run_worker(backend, rabbitmq, topology))
    assert {tid: v for tid, (v, _) in state_of(backend, [t["id"] for t in trips]).items()} == {t["id"]: t["version"] for t in trips}


@pytest.mark.elasticsearch
def test_elasticsearch_duplicates_shuffled_versions_and_a_cluster_stopped_mid_load(rabbitmq: Broker, embedded: Callable[..., Backend]) -> None:
    """On Elasticsearch: every trip ends at its highest version, and the cluster stopped mid-load pauses the worker until it is started again.

    The cluster is one of this test's own (the session's are shared): its
    node is stopped (SIGTERM, as an operator or a crash stops it) and
    started again on the same port and data. The events go in packs of 50:
    one event per message is tested on the embedded backend, and publishing
    100,000 messages one by one takes the broker about 20 s.
    """
    from tripsearch.testing.elastic import own_cluster

    events, expected = make_events(EVENTS, seed=6)
    topology = fresh_topology()
    publish_sync(rabbitmq, topology, events, pack=50)
    seen: dict[str, float] = {}
    with own_cluster("worker") as cluster:

        async def main() -> None:
            backend = await asyncio.to_thread(tripsearch.open, cluster.url, number_of_replicas=0, request_timeout=10.0)
            try:

                async def during(worker: Worker) -> None:
                    while counter(worker, "tripsearch_worker_events_acked") < 1000:
                        await asyncio.sleep(0.02)
                    stopped = await asyncio.to_thread(cluster.script, "stop")
                    assert stopped.returncode == 0, stopped.stderr
                    deadline = time.monotonic() + 60
                    while worker.metrics.backend_up._value.get() == 1:
                        assert time.monotonic() < deadline, "the worker never noticed the cluster was gone"
                        await asyncio.sleep(0.05)
                    seen["acked_when_cut"] = counter(worker, "tripsearch_worker_events_acked")
                    await asyncio.sleep(3)
                    seen["acked_while_cut"] = counter(worker, "tripsearch_worker_events_acked")
                    seen["dead_while_cut"] = counter(worker, "tripsearch_worker_events_dead_lettered")
                    started = await asyncio.to_thread(cluster.script, "start")
                    assert started.returncode == 0, started.stderr

                worker = await run_worker(backend, rabbitmq, topology, during, prefetch=1000)
                seen["retries"] = counter(worker, "tripsearch_worker_backend_retries")
                seen["acked"] = counter(worker, "tripsearch_worker_events_acked")
                await asyncio.to_thread(backend.refresh)
                assert isinstance(backend, ElasticBackend)
                seen["state_ok"] = float(await asyncio.to_thread(elastic_state_of, backend, sorted(expected)) == live(expected))
            finally:
                await asyncio.to_thread(backend.close)

        run_async(main())
    assert seen["acked_when_cut"] < len(events), "the load ended before the cut: nothing was tested"
    assert seen["acked_while_cut"] == seen["acked_when_cut"] and seen["dead_while_cut"] == 0  # paused: no acks, no dead letters
    assert seen["retries"] >= 1
    assert seen["acked"] == len(events)
    assert seen["state_ok"] == 1.0
