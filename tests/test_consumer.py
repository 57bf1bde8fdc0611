"""The worker's consuming connection (tripsearch.broker.consumer) against a real RabbitMQ, and on frames cut anywhere."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import aio_pika
import pytest
from pamqp import body as amqp_body
from pamqp import commands, frame
from pamqp import header as amqp_header

from tripsearch.broker.consumer import ConsumerConnection, ConsumerLost, Delivery, open_consumer
from tripsearch.testing.rabbitmq import Broker, run_async

# (body, properties): empty, small, a body the broker splits into several frames (frame_max is 128 KiB), every property set
MESSAGES: list[tuple[bytes, dict[str, object]]] = [
    (b"", {"content_type": "application/json"}),
    (b'{"a": 1}', {}),
    (bytes(random.Random(1).randbytes(300_000)), {"content_type": "application/x-ndjson", "delivery_mode": 2}),
    ("é ✓".encode() * 10, {
        "content_type": "text/plain", "content_encoding": "utf-8", "headers": {"x-reason": "bad", "n": 3, "nested": {"k": True}},
        "delivery_mode": 2, "priority": 5, "correlation_id": "c-1", "reply_to": "r", "message_id": "m-1",
        "timestamp": dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc), "type": "trip.published", "app_id": "tests",
    }),
    (b"x" * 131_072, {"headers": {"only": "headers"}}),
]


def _expected(body: bytes, properties: dict[str, object], routing_key: str) -> tuple[bytes, str | None, object, str]:
    return body, properties.get("content_type"), properties.get("headers") or {}, routing_key  # type: ignore[return-value]


def _seen(d: Delivery) -> tuple[bytes, str | None, object, str]:
    return d.body, d.content_type, d.headers or {}, d.routing_key  # aio-pika sends an empty table when there is none


def test_deliveries_from_a_real_broker_carry_their_body_content_type_headers_and_routing_key(rabbitmq: Broker) -> None:
    queue = f"consumer-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[Delivery], list[Delivery]]:
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(queue, durable=True)
            for body, properties in MESSAGES:
                await channel.default_exchange.publish(aio_pika.Message(body, **properties), routing_key=queue)  # type: ignore[arg-type]
            got: asyncio.Queue[Delivery] = asyncio.Queue()
            consumer = await open_consumer(rabbitmq.url, queue, 10, got.put_nowait)
            first = [await asyncio.wait_for(got.get(), 10) for _ in MESSAGES]
            consumer.ack(first[1].delivery_tag, multiple=True)  # the first two
            await consumer.close()  # the other three go back to the queue, delivered again
            with pytest.raises(ConsumerLost):
                consumer.ack(first[-1].delivery_tag)
            consumer = await open_consumer(rabbitmq.url, queue, 10, got.put_nowait)
            again = [await asyncio.wait_for(got.get(), 10) for _ in MESSAGES[2:]]
            consumer.ack(again[-1].delivery_tag, multiple=True)
            await consumer.cancel()
            await consumer.close()
            left = await channel.declare_queue(queue, durable=True, passive=True)
            assert left.declaration_result.message_count == 0
            await channel.queue_delete(queue)
        return first, again

    first, again = run_async(scenario())
    assert [_seen(d) for d in first] == [_expected(b, p, queue) for b, p in MESSAGES]
    assert [d.redelivered for d in first] == [False] * len(MESSAGES)
    assert [_seen(d) for d in again] == [_expected(b, p, queue) for b, p in MESSAGES[2:]]
    assert all(d.redelivered for d in again)


def test_a_deleted_queue_ends_the_connection_with_the_reason(rabbitmq: Broker) -> None:
    queue = f"consumer-{uuid.uuid4().hex[:8]}"

    async def scenario() -> str:
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue)
            consumer = await open_consumer(rabbitmq.url, queue, 10, lambda d: None)
            await channel.queue_delete(queue)
            with pytest.raises(ConsumerLost) as lost:
                await asyncio.wait_for(asyncio.shield(consumer.closed), 10)
            return str(lost.value)

    assert "cancelled the consumer" in run_async(scenario())


def test_a_queue_that_does_not_exist_is_refused_with_the_broker_reason(rabbitmq: Broker) -> None:
    async def scenario() -> None:
        await open_consumer(rabbitmq.url, f"missing-{uuid.uuid4().hex[:8]}", 10, lambda d: None)

    with pytest.raises(ConsumerLost, match="404"):
        run_async(scenario())


@pytest.mark.parametrize("seed", range(5))
def test_frames_cut_at_any_byte_give_the_same_deliveries(seed: int) -> None:
    """The bytes of deliveries, heartbeats and a rare frame, fed in random pieces (down to one byte): every delivery whole, in order."""
    rng = random.Random(seed)
    stream = bytearray()
    for tag, (body, properties) in enumerate(MESSAGES * 3, start=1):
        stream += frame.marshal(commands.Basic.Deliver(consumer_tag="ctag", delivery_tag=tag, redelivered=tag % 2 == 0, exchange="", routing_key="q"), 1)
        named = {("message_type" if k == "type" else k): v for k, v in properties.items()}  # pamqp's name of "type"
        props = commands.Basic.Properties(**named)  # type: ignore[arg-type]
        stream += frame.marshal(amqp_header.ContentHeader(0, len(body), props), 1)
        for start in range(0, len(body), 4096):
            stream += frame.marshal(amqp_body.ContentBody(body[start : start + 4096]), 1)
        if tag % 4 == 0:
            stream += b"\x08\x00\x00\x00\x00\x00\x00\xce"  # a heartbeat between deliveries
        if tag % 5 == 0:
            stream += frame.marshal(commands.Basic.QosOk(), 1)  # a rare frame, for whoever awaits it

    async def feed() -> tuple[list[Delivery], bool, int]:
        got: list[Delivery] = []
        connection = ConsumerConnection(got.append, heartbeat_s=0)
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 2, 7, 11, 100, 4096, 70_000])
            connection.data_received(bytes(stream[pos : pos + step]))
            pos += step
        return got, connection.closed.done(), connection._replies.qsize()

    got, closed, replies = run_async(feed())
    expected = MESSAGES * 3
    assert not closed and replies == len(expected) // 5
    assert [_seen(d) for d in got] == [_expected(b, p, "q") for b, p in expected]
    assert [d.delivery_tag for d in got] == list(range(1, len(expected) + 1))
    assert [d.redelivered for d in got] == [tag % 2 == 0 for tag in range(1, len(expected) + 1)]


def test_a_frame_out_of_step_ends_the_connection() -> None:
    async def feed() -> BaseException | None:
        connection = ConsumerConnection(lambda d: None, heartbeat_s=0)
        connection.data_received(b"\x03\x00\x01\x00\x00\x00\x02ab\x00")  # a body frame whose end octet is not 0xCE
        return connection.closed.exception()

    error = run_async(feed())
    assert isinstance(error, ConsumerLost) and "end octet" in str(error)
