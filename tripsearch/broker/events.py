"""Trip events on RabbitMQ: the event schema, the broker topology and a publisher with confirms.

One JSON object per message, schema ``tripsearch.trip-event/1``::

    {"schema": "tripsearch.trip-event/1", "type": "trip.published",
     "trip_id": "t-1", "version": 3, "trip": {...the full trip document...}}
    {"schema": "tripsearch.trip-event/1", "type": "trip.cancelled",
     "trip_id": "t-1", "version": 4}

``trip.published`` and ``trip.updated`` carry the full trip (its ``id`` and
``version`` equal ``trip_id`` and ``version``); ``trip.cancelled`` and
``trip.deleted`` carry the id and the version only and remove the trip from
search (a tombstone that keeps the version). The routing key of a message is
its ``type``. Optional ``event_id`` and ``occurred_at`` (strings) are kept
for tracing and otherwise ignored. Versions decide: an event applies only
over a lower stored version, so duplicates and late events change nothing.

A message may also carry several events, one JSON object per line, with
content type ``application/x-ndjson`` (:data:`PACKED_CONTENT_TYPE`) and
routing key ``trip.packed``: what a publisher sends when it has many events
at once (``EventPublisher(pack=N)``, ``tripsearch publish --pack N``), so
that the broker's and the client's per-message work is paid once per pack.
Each event of a pack is still decided on its own: applied, unchanged, or
dead-lettered alone with its reason; the message is acknowledged when all of
its events are (a redelivered pack applies again, and versions make that
harmless).

>>> parse_event(b'{"schema": "tripsearch.trip-event/1", "type": "trip.deleted", "trip_id": "t-1", "version": 2}')
TripEvent(type='trip.deleted', trip_id='t-1', version=2, trip=None)
>>> parse_event(b'{"schema": "tripsearch.trip-event/2"}')
Traceback (most recent call last):
...
tripsearch.broker.events.InvalidEvent: schema: must be 'tripsearch.trip-event/1', got 'tripsearch.trip-event/2'
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import aio_pika
import msgspec
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from ..errors import InvalidInput

__all__ = [
    "SCHEMA",
    "EVENT_TYPES",
    "UPSERT_TYPES",
    "DELETE_TYPES",
    "InvalidEvent",
    "TripEvent",
    "parse_event",
    "parse_message",
    "PACKED_CONTENT_TYPE",
    "trip_event",
    "delete_event",
    "Topology",
    "declare_topology",
    "EventPublisher",
]

SCHEMA = "tripsearch.trip-event/1"
UPSERT_TYPES = ("trip.published", "trip.updated")
DELETE_TYPES = ("trip.cancelled", "trip.deleted")
EVENT_TYPES = UPSERT_TYPES + DELETE_TYPES
PACKED_CONTENT_TYPE = "application/x-ndjson"
PACKED_ROUTING_KEY = "trip.packed"
_KNOWN_FIELDS = {"schema", "type", "trip_id", "version", "trip", "event_id", "occurred_at"}


class InvalidEvent(InvalidInput):
    """A message that is not a valid trip event: names the field and the reason."""


@dataclass(frozen=True, slots=True)
class TripEvent:
    """A parsed event: ``trip`` is the JSON text of an upsert's trip document (not yet validated as a trip), None for a delete."""

    type: str
    trip_id: str
    version: int
    trip: bytes | None = None

    @property
    def is_upsert(self) -> bool:
        return self.trip is not None


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """A well-formed event, decoded in one pass with its trip left as JSON text; anything else takes the checks that name the field."""

    schema: str
    type: str
    trip_id: str
    version: int
    # A bare Raw: msgspec takes ``Raw | None`` as "null only", so every upsert missed this path.
    trip: msgspec.Raw = msgspec.Raw(b"")
    event_id: str = ""  # null is not a string: the checks below name the field
    occurred_at: str = ""


_fast = msgspec.json.Decoder(_Envelope)
_envelope = msgspec.json.Decoder(dict[str, msgspec.Raw])


def parse_event(body: bytes | str) -> TripEvent:
    """Return the event in a message body, or raise :class:`InvalidEvent` naming the field.

    The trip document of an upsert is kept as its JSON text, not read here:
    the worker's writer parses it as a bulk load does, checks it against the
    trip model and checks that its ``id`` and ``version`` are the event's
    (``parse_upserts(..., expect=...)``); the worker dead-letters a trip
    that fails with that field and reason.
    """
    try:
        fast = _fast.decode(body)
    except msgspec.MsgspecError:
        pass
    else:
        text = bytes(fast.trip)
        if fast.schema == SCHEMA and fast.type in DELETE_TYPES and fast.trip_id and 0 <= fast.version < 2**63 and not text:
            return TripEvent(fast.type, fast.trip_id, fast.version)
        if fast.schema == SCHEMA and fast.type in UPSERT_TYPES and fast.trip_id and 0 <= fast.version < 2**63 and text[:1] == b"{":
            return TripEvent(fast.type, fast.trip_id, fast.version, text)
    try:
        data = _envelope.decode(body)
    except msgspec.ValidationError:
        raise InvalidEvent("", f"the message must be a JSON object, got {type(msgspec.json.decode(body)).__name__}") from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent("", f"the message is not JSON ({exc})") from None
    value = {name: msgspec.json.decode(raw) for name, raw in data.items() if name != "trip"}
    if value.get("schema") != SCHEMA:
        raise InvalidEvent("schema", f"must be {SCHEMA!r}, got {value.get('schema')!r}")
    unknown = sorted(set(data) - _KNOWN_FIELDS)
    if unknown:
        raise InvalidEvent(unknown[0], "is not a field of a trip event")
    kind = value.get("type")
    if kind not in EVENT_TYPES:
        raise InvalidEvent("type", f"must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    trip_id = value.get("trip_id")
    if not isinstance(trip_id, str) or not trip_id:
        raise InvalidEvent("trip_id", "must be a non-empty string")
    version = value.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**63:
        raise InvalidEvent("version", "must be an integer from 0 to 2^63-1")
    for name in ("event_id", "occurred_at"):
        if name in value and not isinstance(value[name], str):
            raise InvalidEvent(name, "must be a string")
    raw = bytes(data["trip"]) if "trip" in data else b"null"
    trip = raw if raw.strip() != b"null" else None
    if kind in DELETE_TYPES:
        if trip is not None:
            raise InvalidEvent("trip", f"must be absent from a {kind} event (it carries trip_id and version only)")
        return TripEvent(kind, trip_id, version)
    if trip is None or trip.lstrip()[:1] != b"{":
        raise InvalidEvent("trip", f"a {kind} event must carry the trip document as an object")
    return TripEvent(kind, trip_id, version, trip)


def parse_message(body: bytes, content_type: str | None) -> list[tuple[bytes, TripEvent | InvalidEvent]]:
    """Return each event of a message with its own bytes: one for a JSON message, one per non-empty line of a packed one.

    >>> [type(e).__name__ for _, e in parse_message(b'{"schema": "tripsearch.trip-event/1", "type": "trip.deleted", "trip_id": "t", "version": 1}\\nnot json\\n', PACKED_CONTENT_TYPE)]
    ['TripEvent', 'InvalidEvent']
    """
    parts = [line for line in body.split(b"\n") if line.strip()] if content_type == PACKED_CONTENT_TYPE else [body]
    out: list[tuple[bytes, TripEvent | InvalidEvent]] = []
    for part in parts:
        try:
            out.append((part, parse_event(part)))
        except InvalidEvent as exc:
            out.append((part, exc))
    return out


def trip_event(trip: Mapping[str, Any], type: str = "trip.published", **extra: str) -> dict[str, Any]:
    """Return the event that publishes (or updates) a trip document.

    >>> trip_event({"id": "t-1", "version": 2})["trip_id"]
    't-1'
    """
    if type not in UPSERT_TYPES:
        raise InvalidEvent("type", f"must be one of {', '.join(UPSERT_TYPES)}, got {type!r}")
    return {"schema": SCHEMA, "type": type, "trip_id": trip.get("id"), "version": trip.get("version"), "trip": dict(trip), **extra}


def delete_event(trip_id: str, version: int, type: str = "trip.deleted", **extra: str) -> dict[str, Any]:
    """Return the event that cancels or deletes a trip at a version."""
    if type not in DELETE_TYPES:
        raise InvalidEvent("type", f"must be one of {', '.join(DELETE_TYPES)}, got {type!r}")
    return {"schema": SCHEMA, "type": type, "trip_id": trip_id, "version": version, **extra}


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRIPSEARCH_AMQP_{name}", default)


@dataclass(frozen=True)
class Topology:
    """The names and kinds of what the worker declares; each is a setting (``TRIPSEARCH_AMQP_*``).

    ``exchange`` (topic) takes the events by routing key = event type;
    ``queue`` (quorum by default: replicated, and it counts deliveries) is
    bound to it for every ``trip.*`` key; a message that the worker refuses is
    republished to ``dead_letter_exchange`` (fanout) and lands in
    ``dead_letter_queue``. The queue also dead-letters by itself a message
    delivered ``delivery_limit`` times without an acknowledgement (a message
    that kills every worker that takes it), so nothing is retried forever.
    """

    exchange: str = field(default_factory=lambda: _env("EXCHANGE", "tripsearch.events"))
    queue: str = field(default_factory=lambda: _env("QUEUE", "tripsearch.index"))
    dead_letter_exchange: str = field(default_factory=lambda: _env("DEAD_LETTER_EXCHANGE", "tripsearch.events.dead"))
    dead_letter_queue: str = field(default_factory=lambda: _env("DEAD_LETTER_QUEUE", "tripsearch.index.dead"))
    queue_type: str = field(default_factory=lambda: _env("QUEUE_TYPE", "quorum"))
    delivery_limit: int = field(default_factory=lambda: int(_env("DELIVERY_LIMIT", "20")))

    def __post_init__(self) -> None:
        if self.queue_type not in ("quorum", "classic"):
            raise InvalidInput("queue_type", f"must be quorum or classic, got {self.queue_type!r}")
        if self.delivery_limit < 1:
            raise InvalidInput("delivery_limit", "must be at least 1")
        for name in ("exchange", "queue", "dead_letter_exchange", "dead_letter_queue"):
            if not getattr(self, name):
                raise InvalidInput(name, "must not be empty")

    def queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": self.queue_type, "x-dead-letter-exchange": self.dead_letter_exchange}
        if self.queue_type == "quorum":
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments


async def declare_topology(channel: AbstractChannel, topology: Topology) -> tuple[AbstractQueue, AbstractExchange]:
    """Declare the exchanges, queues and bindings (idempotent); return the work queue and the dead-letter exchange.

    Declaring what exists with the same arguments changes nothing; with other
    arguments RabbitMQ refuses (PRECONDITION_FAILED) and nothing is changed.
    """
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_exchange(topology.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(topology.dead_letter_queue, durable=True, arguments={"x-queue-type": topology.queue_type})
    await dead_queue.bind(dead, routing_key="#")
    queue = await channel.declare_queue(topology.queue, durable=True, arguments=topology.queue_arguments())
    await queue.bind(exchange, routing_key="trip.*")
    return queue, dead


def _message(body: bytes, routing_key: str, content_type: str = "application/json") -> aio_pika.Message:
    return aio_pika.Message(body, content_type=content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, type=routing_key)


class EventPublisher:
    """Publish trip events with publisher confirms: :meth:`publish` returns once the broker has the events on disk.

    >>> async def main():                                                   # doctest: +SKIP
    ...     async with EventPublisher("amqp://guest:guest@127.0.0.1/") as publisher:
    ...         await publisher.publish([trip_event(trip)])
    """

    def __init__(self, url: str, topology: Topology | None = None, window: int = 1000, declare: bool = True, pack: int = 1) -> None:
        if pack < 1:
            raise InvalidInput("pack", "must be at least 1")
        self.url = url
        self.topology = topology or Topology()
        self.window = window
        self.pack = pack
        self.declare = declare
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def __aenter__(self) -> EventPublisher:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        # on_return_raises: an event that no queue takes (no binding) is an error, not a silent loss
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        if self.declare:
            await declare_topology(channel, self.topology)
        self._exchange = await channel.get_exchange(self.topology.exchange, ensure=False)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def publish(self, events: Iterable[Mapping[str, Any] | bytes]) -> int:
        """Publish events (dicts, or bytes sent as they are) in order; return how many the broker confirmed.

        Up to ``window`` messages are in flight at once; any message that the
        broker does not confirm raises (``aio_pika.exceptions.DeliveryError``).
        A dict's routing key is its ``type``; raw bytes go with ``trip.raw``
        unless they parse to an object with a ``type``. With ``pack`` above 1,
        up to ``pack`` consecutive events go in one message (one per line;
        bytes must then hold no line break).
        """
        assert self._exchange is not None, "connect() first"
        sent = 0
        pending: list[Any] = []
        counts: list[int] = []
        for body, key, content_type, count in self._messages(events):
            pending.append(self._exchange.publish(_message(body, key, content_type), routing_key=key))
            counts.append(count)
            if len(pending) >= self.window:
                await asyncio.gather(*pending)
                sent += sum(counts)
                pending, counts = [], []
        if pending:
            await asyncio.gather(*pending)
            sent += sum(counts)
        return sent

    def _messages(self, events: Iterable[Mapping[str, Any] | bytes]) -> Iterable[tuple[bytes, str, str, int]]:
        """Yield (body, routing key, content type, events) of each message to publish."""
        if self.pack == 1:
            for event in events:
                yield (event if isinstance(event, bytes) else orjson.dumps(event)), _routing_key(event), "application/json", 1
            return
        lines: list[bytes] = []
        for event in events:
            line = event if isinstance(event, bytes) else orjson.dumps(event)
            if b"\n" in line:
                raise InvalidEvent("", "an event published in a pack must be one line of JSON")
            lines.append(line)
            if len(lines) == self.pack:
                yield b"\n".join(lines), PACKED_ROUTING_KEY, PACKED_CONTENT_TYPE, len(lines)
                lines = []
        if lines:
            yield b"\n".join(lines), PACKED_ROUTING_KEY, PACKED_CONTENT_TYPE, len(lines)


def _routing_key(event: Mapping[str, Any] | bytes) -> str:
    data: Any = event
    if isinstance(event, bytes):
        try:
            data = orjson.loads(event)
        except orjson.JSONDecodeError:
            return "trip.raw"
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) and kind.startswith("trip.") and kind.count(".") == 1 else "trip.raw"
