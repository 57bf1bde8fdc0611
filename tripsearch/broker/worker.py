"""The indexer worker: trip events from a RabbitMQ queue into a backend, nothing lost, nothing applied twice.

Each batch (many events, one write) goes through two stages, one after the other
for a batch, side by side for consecutive batches:

1. on the event loop: take messages as the broker delivers them, at most ``prefetch``
   unacknowledged (the broker's back-pressure), until ``batch_size`` events,
   ``batch_timeout_s`` after the first, or at once when the writer has nothing to write
   (group commit: at a low rate an event is written as it comes, under load the batch
   fills while the writer works), and read each event's envelope; a message that is not
   a valid event is dead-lettered with the reason;
2. in the writer (:mod:`tripsearch.broker.writer`: a thread, or the child process
   `tripsearch worker` starts): write the upserts and the deletes to the backend; a batch
   is done once the write is durable (embedded: committed to SQLite; Elasticsearch:
   every bulk item acknowledged), with a report of the trips rejected (invalid, or not
   the id and version their event names), which are dead-lettered too; then publish
   the dead letters (confirmed by the broker) and acknowledge each message of the batch.

While batch N is written, batch N+1 waits in the writer's queue (so the writer goes from
one to the next without waiting for the event loop) and batch N+2 is collected and
parsed. The writer takes the batches in delivery order, one at a time, and they are
acknowledged in delivery order, so a batch's one ``ack(multiple=True)`` covers exactly
its own messages.

Versions decide what a write changes, so a message delivered again after a crash, or
an older event arriving late, changes nothing. A backend that cannot write now
(:class:`~tripsearch.errors.BackendUnavailable`: Elasticsearch down, a full or read-only
disk) holds the batch, unacknowledged, and the write is retried with backoff; nothing more
arrives meanwhile (prefetch is full) and nothing is dead-lettered. A lost broker connection
is reopened with backoff; what was delivered and not acknowledged comes again.
``stop()`` (SIGTERM) stops taking messages, finishes the batches already delivered,
and returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections import Counter as Tally
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, cast

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, ChannelPreconditionFailed, ProbableAuthenticationError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .. import aio
from ..backend import Backend
from ..errors import BackendUnavailable, TripSearchError
from .consumer import ConsumerConnection, Delivery, open_consumer
from .events import PACKED_CONTENT_TYPE, InvalidEvent, Topology, TripEvent, declare_topology, parse_message
from .writer import BatchWriter, ThreadWriter, Upsert, Written

__all__ = ["WorkerSettings", "Worker", "WorkerMetrics", "WorkerError", "run_worker", "declare_only"]

log = logging.getLogger("tripsearch.worker")

WRITES_IN_FLIGHT = 2  # batches with the writer at a time: one written, the next queued
REASON_HEADER = "x-tripsearch-reason"
FIELD_HEADER = "x-tripsearch-field"


class WorkerError(TripSearchError):
    """A setting or a broker answer that retrying cannot fix (wrong credentials, a queue declared with other arguments)."""


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker consumes: broker address, topology, batching, back-pressure, retries and the metrics port."""

    amqp_url: str
    topology: Topology = field(default_factory=Topology)
    prefetch: int = 2000
    batch_size: int = 500
    batch_timeout_s: float = 0.2
    retry_max_s: float = 30.0  # backoff cap of backend writes and of reconnects
    depth_interval_s: float = 2.0  # how often the queue depth (lag) is read
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no HTTP endpoint

    def __post_init__(self) -> None:
        if self.prefetch < 1:
            raise WorkerError("prefetch must be at least 1")
        if not 1 <= self.batch_size <= self.prefetch:
            raise WorkerError(f"batch_size must be from 1 to prefetch ({self.prefetch}), got {self.batch_size}")
        if self.batch_timeout_s < 0 or self.retry_max_s <= 0:
            raise WorkerError("batch_timeout_s must be >= 0 and retry_max_s > 0")


class WorkerMetrics:
    """The worker's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("tripsearch_worker_events_consumed", "Events taken from the queue (each delivery counts)", registry=r)
        self.applied = Counter("tripsearch_worker_events_applied", "Events that changed the index (stored or deleted)", ["type"], registry=r)
        self.unchanged = Counter("tripsearch_worker_events_unchanged", "Events that changed nothing: a version at least as high was stored", registry=r)
        self.dead_lettered = Counter("tripsearch_worker_events_dead_lettered", "Events sent to the dead-letter queue", ["field"], registry=r)
        self.acked = Counter("tripsearch_worker_events_acked", "Events acknowledged to the broker", registry=r)
        self.batch_size = Histogram("tripsearch_worker_batch_size", "Events per batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000), registry=r)
        self.batch_seconds = Histogram("tripsearch_worker_batch_seconds", "Time from handing a batch to the writer until it is durable (the write of the batch queued before it included), retries included",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.queue_depth = Gauge("tripsearch_worker_queue_depth", "Messages ready in the work queue (the lag)", registry=r)
        self.dead_letter_depth = Gauge("tripsearch_worker_dead_letter_queue_depth", "Messages in the dead-letter queue", registry=r)
        self.in_flight = Gauge("tripsearch_worker_events_in_flight", "Messages (events, or packs of events) delivered to this worker and not yet acknowledged", registry=r)
        # counted in a plain int, read when scraped: a gauge's inc takes a lock, once per message
        self.unacknowledged = 0
        self.in_flight.set_function(lambda: self.unacknowledged)
        self.backend_up = Gauge("tripsearch_worker_backend_up", "1 when the last backend write succeeded, 0 while writes fail", registry=r)
        self.broker_up = Gauge("tripsearch_worker_broker_connected", "1 while connected to the broker and consuming", registry=r)
        self.backend_retries = Counter("tripsearch_worker_backend_retries", "Batch writes retried after the backend was unavailable", registry=r)
        self.reconnects = Counter("tripsearch_worker_reconnects", "Broker connections lost or refused, then retried", registry=r)
        self.backend_up.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ConnectionLost(Exception):
    pass


class _Abandoned(Exception):
    """Stopping while the backend is down: the batch stays unacknowledged and goes back to the queue."""


_Item = tuple[Delivery, bytes, TripEvent]  # an event, its bytes and the message that brought it


@dataclass
class _Batch:
    messages: list[Delivery]
    consumer: ConsumerConnection  # the connection that delivered them, the only one that can acknowledge them
    events: int = 0
    dead: list[tuple[Delivery, bytes, str, str]] = field(default_factory=list)  # (message, the event's bytes, field, reason)
    upserts: list[_Item] = field(default_factory=list)
    deletes: list[_Item] = field(default_factory=list)


class Worker:
    """Consume trip events from the broker into ``backend`` until :meth:`stop`.

    ``backend``: an open backend, written from a thread of the worker, or a
    :class:`~tripsearch.broker.writer.BatchWriter` such as a
    :class:`~tripsearch.broker.writer.WriterProcess`. The worker closes
    neither: their opener does.
    """

    def __init__(self, backend: Backend | BatchWriter, settings: WorkerSettings, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        self._own_writer = not isinstance(backend, BatchWriter)
        self._writer: BatchWriter = backend if isinstance(backend, BatchWriter) else ThreadWriter(backend)
        self._stopping = asyncio.Event()
        self._writer_idle = asyncio.Event()  # no batch with the writer, none waiting for it: the next one goes at once
        self._consuming = False
        self._backend_ok = True
        self._connected_once = False
        self.metrics_port: int | None = None

    @property
    def ready(self) -> bool:
        """Connected, consuming, and the backend takes writes."""
        return self._consuming and self._backend_ok

    def stop(self) -> None:
        """Stop taking messages; the batches already delivered are written and acknowledged first."""
        if not self._stopping.is_set():
            log.info("stopping: finishing the batches already delivered")
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop`, reconnecting with backoff when the broker goes away."""
        server = await self._serve_http() if self.settings.metrics_port is not None else None
        backoff = 0.5
        try:
            while not self._stopping.is_set():
                try:
                    await self._session()
                    backoff = 0.5
                except ProbableAuthenticationError as exc:
                    if not self._connected_once:  # wrong credentials: say so and exit; later, a broker in trouble
                        raise WorkerError(f"the broker refused the credentials: {exc}") from None
                    self._lost(exc)
                    await self._sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self.settings.retry_max_s)
                except _Abandoned:
                    break
                except (AMQPError, ConnectionError, OSError, asyncio.TimeoutError, ChannelInvalidStateError, _ConnectionLost) as exc:
                    if self._stopping.is_set():
                        break
                    self._lost(exc)
                    await self._sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self.settings.retry_max_s)
        finally:
            self._consuming = False
            self.metrics.broker_up.set(0)
            if server is not None:
                server.close()
                await server.wait_closed()
            if self._own_writer:
                self._writer.close()

    def _lost(self, exc: BaseException) -> None:
        self._consuming = False
        self.metrics.broker_up.set(0)
        self.metrics.unacknowledged = 0
        self.metrics.reconnects.inc()
        log.warning("broker connection lost or refused (%s); reconnecting with backoff", exc or type(exc).__name__)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or return early when stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _session(self) -> None:
        """One broker session: declare, consume, write batches; drain and return when stopping.

        Two connections: aio-pika's declares, publishes dead letters and reads the queue depth; the
        consuming connection takes the deliveries and their acknowledgements. Either ending ends the session.
        """
        connection = await aio_pika.connect(self.settings.amqp_url, timeout=10)
        try:
            channel = await connection.channel(publisher_confirms=True)
            try:
                queue, dead = await declare_topology(channel, self.settings.topology)
            except ChannelPreconditionFailed as exc:  # declared elsewhere with other arguments: retrying cannot fix it
                raise WorkerError(f"the broker refused the topology: {exc}") from None
            self._connected_once = True
            inbox: asyncio.Queue[Delivery] = asyncio.Queue()

            def take(message: Delivery) -> None:
                self.metrics.unacknowledged += 1
                inbox.put_nowait(message)

            # Deliveries come on a connection of their own, read frame by frame where they lie in its
            # buffer (tripsearch.broker.consumer): aiormq's frame reading was most of a one-event
            # message's cost.
            consumer = await open_consumer(self.settings.amqp_url, queue.name, self.settings.prefetch, take)
            closed = asyncio.ensure_future(_first_of(asyncio.shield(consumer.closed), asyncio.ensure_future(channel.closed())))
            depth = asyncio.ensure_future(self._watch_depth(connection))
            # While the writer has its batches (_write_batches), the next is collected and parsed here and waits.
            ready: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=1)
            self._writer_idle.set()
            writing = asyncio.ensure_future(self._write_batches(ready, dead))
            self._consuming = True
            self.metrics.broker_up.set(1)
            log.info("consuming %s (prefetch %d, batches of up to %d)", queue.name, self.settings.prefetch, self.settings.batch_size)
            try:
                while not self._stopping.is_set():
                    messages = await self._collect(inbox, closed, writing)
                    _raise_if_ended(closed, writing)
                    if messages:
                        await self._hand_over(ready, self._parse(messages, consumer), closed, writing)
                self._consuming = False
                await consumer.cancel()
                # what was delivered before the cancel is ours to finish
                while not inbox.empty():
                    messages = [inbox.get_nowait() for _ in range(min(inbox.qsize(), self.settings.batch_size))]
                    await self._hand_over(ready, self._parse(messages, consumer), closed, writing)
                await self._hand_over(ready, None, closed, writing)
                await writing
                log.info("drained; stopping")
            finally:
                if writing.done() and not writing.cancelled():
                    writing.exception()  # seen: a writer that failed after the channel closed is no news
                writing.cancel()
                depth.cancel()
                closed.cancel()
                await consumer.close()
        finally:
            self._consuming = False
            self.metrics.unacknowledged = 0  # unacknowledged deliveries go back to the queue with the connection
            try:
                await connection.close()
            except Exception:  # the connection may already be gone; its messages go back to the queue either way
                pass

    async def _collect(self, inbox: asyncio.Queue[Delivery], closed: asyncio.Future[Any], writing: asyncio.Future[None]) -> list[Delivery]:
        """Return messages of up to ``batch_size`` events (one pack may pass it), waiting at most ``batch_timeout_s`` after the first.

        Early: as soon as the writer is idle and no more messages are here (so
        at a low rate a batch waits for nothing; under load the writer is busy
        and batches fill), when stopping, when the channel closes or the writer
        fails.
        """
        loop = asyncio.get_running_loop()
        batch: list[Delivery] = []
        events = 0
        deadline = 0.0
        stopping = asyncio.ensure_future(self._stopping.wait())
        idle: asyncio.Future[Any] | None = None
        try:
            while events < self.settings.batch_size:
                if not inbox.empty():
                    batch.append(inbox.get_nowait())
                    events += _events_in(batch[-1])
                    deadline = deadline or loop.time() + self.settings.batch_timeout_s
                    continue
                if batch and self._writer_idle.is_set():
                    break
                timeout = None if not batch else deadline - loop.time()
                if timeout is not None and timeout <= 0:
                    break
                if batch and idle is None:
                    idle = asyncio.ensure_future(self._writer_idle.wait())
                getter = asyncio.ensure_future(inbox.get())
                await asyncio.wait({getter, stopping, closed, writing, *([idle] if idle else [])}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                batch.append(getter.result())
                events += _events_in(batch[-1])
                deadline = deadline or loop.time() + self.settings.batch_timeout_s
        finally:
            stopping.cancel()
            if idle is not None:
                idle.cancel()
        return batch

    async def _hand_over(self, ready: asyncio.Queue[_Batch | None], batch: _Batch | None, closed: asyncio.Future[Any], writing: asyncio.Future[None]) -> None:
        """Queue ``batch`` for the writer once it has room (None: no more batches); raise if the channel closes or the writer fails first."""
        if batch is not None:
            self._writer_idle.clear()  # here, not when the writer takes it: the next batch must not go out small meanwhile
        putting = asyncio.ensure_future(ready.put(batch))
        try:
            await asyncio.wait({putting, closed, writing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not putting.done():
                putting.cancel()
        if not putting.done() or putting.cancelled():
            _raise_if_ended(closed, writing)
            raise _ConnectionLost("the writer ended before the last batch")  # not reached: it ends only after None

    def _parse(self, messages: list[Delivery], consumer: ConsumerConnection) -> _Batch:
        """Read each event of the messages: upserts, deletes, and the invalid ones as dead letters."""
        batch = _Batch(messages, consumer)
        for message in messages:
            for body, event in parse_message(message.body, message.content_type):
                batch.events += 1
                if isinstance(event, InvalidEvent):
                    batch.dead.append((message, body, event.field, event.reason))
                else:
                    (batch.upserts if event.is_upsert else batch.deletes).append((message, body, event))
        self.metrics.consumed.inc(batch.events)
        self.metrics.batch_size.observe(batch.events)
        return batch

    async def _write_batches(self, ready: asyncio.Queue[_Batch | None], dead: AbstractExchange) -> None:
        """Write, dead-letter and acknowledge the batches in the order they were collected, until None.

        Up to ``WRITES_IN_FLIGHT`` batches are with the writer at a time: it
        writes one while the next waits in its queue. They are settled
        (retried, dead-lettered, acknowledged) in order, each once its own
        write and every earlier one are done.
        """
        in_flight: deque[tuple[_Batch, asyncio.Future[Written], float]] = deque()
        getter: asyncio.Future[_Batch | None] | None = None
        more = True
        try:
            while more or in_flight:
                if more and getter is None and len(in_flight) < WRITES_IN_FLIGHT:
                    getter = asyncio.ensure_future(ready.get())
                waiting = {f for f in (getter, in_flight[0][1] if in_flight else None) if f is not None}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter is not None and getter.done():
                    batch = getter.result()
                    getter = None
                    if batch is None:
                        more = False
                    else:
                        in_flight.append((batch, await self._submit(batch), time.perf_counter()))
                if in_flight and in_flight[0][1].done():
                    await self._handle(*in_flight.popleft(), dead)
                    if not in_flight and ready.empty() and not (getter is not None and getter.done()):
                        self._writer_idle.set()
        finally:
            if getter is not None:
                getter.cancel()

    async def _submit(self, batch: _Batch) -> asyncio.Future[Written]:
        """Hand the batch's upserts and deletes to the writer; return the future of its reports."""
        upserts = cast("list[Upsert]", [(e.trip_id, e.version, e.trip) for _, _, e in batch.upserts])  # an upsert has its trip (TripEvent.is_upsert)
        deletes = [(e.trip_id, e.version) for _, _, e in batch.deletes]
        if not upserts and not deletes:
            nothing: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
            nothing.set_result((None, None))
            return nothing
        # off the event loop: a writer process that must be started again takes a second
        submitted: Future[Written] = await asyncio.to_thread(self._writer.submit, upserts, deletes)
        written = asyncio.wrap_future(submitted)
        # read once here: a batch still with the writer when the session ends fails unobserved, and is delivered again
        written.add_done_callback(lambda f: f.cancelled() or f.exception())
        return written

    async def _handle(self, batch: _Batch, submitted: asyncio.Future[Written], started: float, dead: AbstractExchange) -> None:
        m = self.metrics
        await self._write(batch, submitted)
        m.batch_seconds.observe(time.perf_counter() - started)
        for message, body, field_name, reason in batch.dead:
            headers = dict(message.headers or {})
            headers.update({REASON_HEADER: reason, FIELD_HEADER: field_name, "x-tripsearch-queue": self.settings.topology.queue,
                            "x-tripsearch-routing-key": message.routing_key or ""})
            # An event of a pack goes alone, as a message of its own.
            content_type = "application/json" if message.content_type == PACKED_CONTENT_TYPE else message.content_type
            await dead.publish(aio_pika.Message(body, headers=headers, content_type=content_type,
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=message.routing_key or "")
            m.dead_lettered.labels(field_name or "message").inc()
            log.warning("dead-lettered an event (%s): %s", field_name or "message", reason)
        # Batches are acknowledged in the order they were delivered, one after the other, so every
        # earlier delivery of this channel is acknowledged already: one ack of the last tag with
        # multiple=True acknowledges exactly the messages of this batch, each of them.
        batch.consumer.ack(max(message.delivery_tag for message in batch.messages), multiple=True)
        m.acked.inc(batch.events)
        m.unacknowledged -= len(batch.messages)

    async def _write(self, batch: _Batch, submitted: asyncio.Future[Written]) -> None:
        """Wait for the batch's write, retrying while the backend is unavailable; record rejected trips as dead letters."""
        upserts, deletes = batch.upserts, batch.deletes
        backoff = 0.25
        while True:
            try:
                report, removed = await submitted
                break
            except BackendUnavailable as exc:
                self._backend_ok = False
                self.metrics.backend_up.set(0)
                self.metrics.backend_retries.inc()
                if self._stopping.is_set():
                    log.warning("stopping while the backend is unavailable (%s): %d events go back to the queue", exc.reason, len(batch.messages))
                    raise _Abandoned() from None
                delay = min(max(backoff, min(exc.retry_after, 5.0)), self.settings.retry_max_s) * random.uniform(0.8, 1.0)
                log.warning("backend unavailable (%s); holding %d events, retrying in %.1f s", exc.reason, len(batch.messages), delay)
                await self._sleep(delay)
                backoff = min(backoff * 2, self.settings.retry_max_s)
                submitted = await self._submit(batch)
        self._backend_ok = True
        self.metrics.backend_up.set(1)
        applied: Tally[str] = Tally()  # counted here, one metric update per kind and batch
        unchanged = 0
        if report is not None:
            for (message, body, event), item in zip(upserts, report.items):
                if item.result == "rejected":
                    batch.dead.append((message, body, f"trip.{item.field}" if item.field else "trip", item.reason or "rejected"))
                elif item.result == "stored":
                    applied[event.type] += 1
                else:
                    unchanged += 1
        if removed is not None:
            for (_, _, event), item in zip(deletes, removed.items):
                if item.result == "deleted":
                    applied[event.type] += 1
                else:
                    unchanged += 1
        for kind, count in applied.items():
            self.metrics.applied.labels(kind).inc(count)
        if unchanged:
            self.metrics.unchanged.inc(unchanged)

    async def _watch_depth(self, connection: aio_pika.abc.AbstractConnection) -> None:
        """Read the depth of the work and dead-letter queues every ``depth_interval_s`` (a channel of its own: a failed look closes only it)."""
        topology = self.settings.topology
        channel: AbstractChannel | None = None
        while True:
            try:
                if channel is None or channel.is_closed:
                    channel = await connection.channel()
                work = await channel.declare_queue(topology.queue, passive=True)
                dead = await channel.declare_queue(topology.dead_letter_queue, passive=True)
                self.metrics.queue_depth.set(work.declaration_result.message_count or 0)
                self.metrics.dead_letter_depth.set(dead.declaration_result.message_count or 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the consumer's own channel reports a lost connection; here it is only a missed reading
                log.debug("queue depth not read: %s", exc)
                channel = None
            await asyncio.sleep(self.settings.depth_interval_s)

    async def _serve_http(self) -> asyncio.AbstractServer:
        """Serve ``/metrics`` (Prometheus), ``/ready`` (200 when consuming and the backend writes, else 503) and ``/health``."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                path = request.split(b" ", 2)[1].split(b"?")[0] if request.count(b" ") >= 2 else b""
                if path == b"/metrics":
                    status, body, kind = "200 OK", self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
                elif path == b"/ready":
                    status = "200 OK" if self.ready else "503 Service Unavailable"
                    body, kind = (b"ready\n" if self.ready else b"not ready\n"), "text/plain"
                elif path == b"/health":
                    status, body, kind = "200 OK", b"ok\n", "text/plain"
                else:
                    status, body, kind = "404 Not Found", b"not found: /metrics, /ready, /health\n", "text/plain"
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                await writer.drain()
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(answer, self.settings.metrics_host, self.settings.metrics_port)
        port = server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics, readiness on /ready", self.settings.metrics_host, port)
        self.metrics_port = port
        return server


def _raise_if_ended(closed: asyncio.Future[Any], writing: asyncio.Future[None]) -> None:
    """Raise why the session must end, if it must: the writer's error (an ack on a closed channel, :class:`_Abandoned`), or the closed channel."""
    if writing.done() and not writing.cancelled() and (error := writing.exception()) is not None:
        raise error
    if closed.done():
        raise _ConnectionLost("the channel closed")


def _events_in(message: Delivery) -> int:
    """Return how many events a message carries (at most: blank lines of a pack are skipped)."""
    return message.body.count(b"\n") + 1 if message.content_type == PACKED_CONTENT_TYPE else 1


async def _first_of(*waiting: asyncio.Future[Any]) -> None:
    """Return when the first of ``waiting`` is done, and cancel the others (give shields of futures others wait for too)."""
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()


async def declare_only(settings: WorkerSettings) -> None:
    """Declare the topology and return (``tripsearch worker --declare-only``)."""
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    except (AMQPError, ConnectionError, OSError, asyncio.TimeoutError) as exc:
        raise WorkerError(f"cannot connect to the broker: {exc or type(exc).__name__}") from None
    async with connection:
        channel = await connection.channel()
        try:
            await declare_topology(channel, settings.topology)
        except ChannelPreconditionFailed as exc:
            raise WorkerError(f"the broker refused the topology: {exc}") from None


def run_worker(backend: Backend | BatchWriter, settings: WorkerSettings) -> None:
    """Run a worker until SIGTERM or SIGINT, then drain and return."""

    async def main() -> None:
        worker = Worker(backend, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    aio.run(main())
