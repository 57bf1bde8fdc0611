"""A consuming AMQP 0-9-1 connection: deliveries read straight from the socket's bytes, acknowledged by tag.

aio-pika (on aiormq) stays the worker's client for everything else: the
topology, dead letters published with confirms, the queue depth. What runs
once per message is here. aiormq reads each frame with three awaits, parses
it with pamqp, and passes it through two asyncio queues, and a delivery is
three frames (method, content header, body): about 48 of the 70 us the
worker's event loop spent on a one-event message. This connection parses
the three frames of a delivery with ``struct`` where they lie in its
buffer, in ``data_received``, and calls back with a :class:`Delivery`. The
rare frames (the handshake, qos, consume, cancel, close) go through pamqp.

One connection, one channel, one consumer. It ends (:attr:`ConsumerConnection.closed`
fails with :class:`ConsumerLost`) when the socket closes, when the broker
closes the connection or the channel, cancels the consumer, or stops
answering heartbeats; unacknowledged deliveries then go back to the queue, as
on any AMQP connection.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from pamqp import commands, frame, header, heartbeat
from pamqp import decode as amqp_decode

__all__ = ["Delivery", "ConsumerConnection", "ConsumerLost", "open_consumer"]

_CHANNEL = 1
_FRAME_END = 0xCE
_HEAD = struct.Struct(">BHI")  # frame type, channel, payload size
_DELIVER = b"\x00\x3c\x00\x3c"  # Basic.Deliver: class 60, method 60
_CONTENT = struct.Struct(">HHQH")  # class, weight, body size, property flags
_ACK = struct.Struct(">BHIHHQBB")  # a whole Basic.Ack frame
_HEARTBEAT = frame.marshal(heartbeat.Heartbeat(), 0)
# Basic's properties, in the order of their flag bits (15 down to 2): how each is encoded.
_PROPERTIES = (
    "shortstr", "shortstr", "table", "octet", "octet", "shortstr", "shortstr", "shortstr",
    "shortstr", "longlong", "shortstr", "shortstr", "shortstr", "shortstr",
)


class ConsumerLost(ConnectionError):
    """The consuming connection ended: its unacknowledged deliveries go back to the queue."""


@dataclass(slots=True)
class Delivery:
    """One message delivered: what the worker reads of it, and its tag to acknowledge."""

    delivery_tag: int
    redelivered: bool
    routing_key: str
    content_type: str | None
    headers: dict[str, Any] | None
    body: bytes


class ConsumerConnection(asyncio.Protocol):
    """An AMQP connection that consumes one queue (see the module's docstring); open it with :func:`open_consumer`."""

    def __init__(self, on_delivery: Callable[[Delivery], None], heartbeat_s: int) -> None:
        self._on_delivery = on_delivery
        self._heartbeat_s = heartbeat_s
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._replies: asyncio.Queue[Any] = asyncio.Queue()  # the rare frames a caller awaits
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.consumer_tag = ""
        # the delivery being read: its method's fields, then its properties, then its body
        self._tag = 0
        self._redelivered = False
        self._routing_key = ""
        self._content_type: str | None = None
        self._headers: dict[str, Any] | None = None
        self._size = 0
        self._parts: list[bytes] = []
        self._have = 0
        self._last_read = self._loop.time()
        self._beat: asyncio.TimerHandle | None = None

    # -- what the worker calls --------------------------------------------

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (and, with ``multiple``, every earlier one of this connection)."""
        if self.closed.done() or self._transport is None:
            raise ConsumerLost("acknowledging on a closed connection: the deliveries go back to the queue")
        self._transport.write(_ACK.pack(1, _CHANNEL, 13, 60, 80, delivery_tag, int(multiple), _FRAME_END))

    async def cancel(self, timeout: float = 10.0) -> None:
        """Stop the consumer; deliveries already on the way still arrive, before the broker's answer."""
        self._send(commands.Basic.Cancel(consumer_tag=self.consumer_tag))
        await self._reply(commands.Basic.CancelOk, timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Close the connection (politely if it is still open); unacknowledged deliveries go back to the queue."""
        if not self.closed.done() and self._transport is not None:
            try:
                self._send(commands.Connection.Close(reply_code=200, reply_text="closing", class_id=0, method_id=0), channel=0)
                await self._reply(commands.Connection.CloseOk, timeout)
            except (ConsumerLost, asyncio.TimeoutError):
                pass
        self._lose(ConsumerLost("closed by the worker"))

    # -- the handshake ------------------------------------------------------

    async def _open(self, user: str, password: str, vhost: str, queue: str, prefetch: int, timeout: float) -> None:
        assert self._transport is not None
        self._transport.write(header.ProtocolHeader().marshal())
        await self._reply(commands.Connection.Start, timeout)
        self._send(commands.Connection.StartOk(
            client_properties={"product": "tripsearch worker", "capabilities": {"authentication_failure_close": True, "consumer_cancel_notify": True}},
            mechanism="PLAIN", response=f"\0{user}\0{password}", locale="en_US"), channel=0)
        tune = await self._reply(commands.Connection.Tune, timeout)
        beat = min(self._heartbeat_s, tune.heartbeat) if tune.heartbeat else self._heartbeat_s
        self._send(commands.Connection.TuneOk(channel_max=tune.channel_max or 65535, frame_max=tune.frame_max, heartbeat=beat), channel=0)
        self._send(commands.Connection.Open(virtual_host=vhost), channel=0)
        await self._reply(commands.Connection.OpenOk, timeout)
        if beat:
            self._heartbeat_s = beat
            self._beat = self._loop.call_later(beat / 2, self._heartbeat)
        self._send(commands.Channel.Open())
        await self._reply(commands.Channel.OpenOk, timeout)
        self._send(commands.Basic.Qos(prefetch_count=prefetch))
        await self._reply(commands.Basic.QosOk, timeout)
        self._send(commands.Basic.Consume(queue=queue, no_ack=False))
        self.consumer_tag = (await self._reply(commands.Basic.ConsumeOk, timeout)).consumer_tag

    def _send(self, command: Any, channel: int = _CHANNEL) -> None:
        if self.closed.done() or self._transport is None:
            raise ConsumerLost("the consuming connection is closed")
        self._transport.write(frame.marshal(command, channel))

    async def _reply(self, kind: type, timeout: float) -> Any:
        """Wait for the next rare frame, which must be a ``kind``."""
        getter = asyncio.ensure_future(self._replies.get())
        done, _ = await asyncio.wait({getter, self.closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            if self.closed.done():
                self.closed.result()  # raises why
            raise asyncio.TimeoutError(f"the broker did not answer with {kind.__name__}")
        reply = getter.result()
        if not isinstance(reply, kind):
            raise ConsumerLost(f"the broker answered {type(reply).__name__}, expected {kind.__name__}")
        return reply

    def _heartbeat(self) -> None:
        if self.closed.done() or self._transport is None:
            return
        if self._loop.time() - self._last_read > 2 * self._heartbeat_s:
            self._transport.abort()
            self._lose(ConsumerLost(f"no frame from the broker in {2 * self._heartbeat_s} s (heartbeats missed)"))
            return
        self._transport.write(_HEARTBEAT)
        self._beat = self._loop.call_later(self._heartbeat_s / 2, self._heartbeat)

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(ConsumerLost(f"the broker connection closed: {exc}" if exc else "the broker closed the connection"))

    def _lose(self, exc: ConsumerLost) -> None:
        if self._beat is not None:
            self._beat.cancel()
        if not self.closed.done():
            self.closed.set_exception(exc)
            self.closed.exception()  # retrieved: a caller that never looks is not an error
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        try:
            while end - pos >= 8:
                kind, channel, size = _HEAD.unpack_from(buf, pos)
                stop = pos + 7 + size
                if stop >= end:
                    break
                if buf[stop] != _FRAME_END:
                    raise ConsumerLost("a frame without its end octet: the stream is out of step")
                if kind == 3:
                    self._body(bytes(buf[pos + 7 : stop]))
                elif kind == 1 and buf[pos + 7 : pos + 11] == _DELIVER:
                    self._deliver_method(buf, pos + 11)
                elif kind == 2:
                    self._content_header(buf, pos + 7)
                elif kind != 8:  # a heartbeat only proves the broker is there
                    self._rare(channel, bytes(buf[pos : stop + 1]))
                pos = stop + 1
        except ConsumerLost as exc:
            self._lose(exc)
        except Exception as exc:  # noqa: BLE001 - a frame that cannot be read ends the connection, never the loop
            self._lose(ConsumerLost(f"an unreadable frame from the broker: {exc!r}"))
        del buf[:pos]

    def _deliver_method(self, buf: bytearray, p: int) -> None:
        p += 1 + buf[p]  # consumer tag
        self._tag = int.from_bytes(buf[p : p + 8], "big")
        self._redelivered = bool(buf[p + 8] & 1)
        p += 9
        p += 1 + buf[p]  # exchange
        n = buf[p]
        self._routing_key = buf[p + 1 : p + 1 + n].decode()
        self._content_type, self._headers, self._parts, self._have = None, None, [], 0

    def _content_header(self, buf: bytearray, p: int) -> None:
        _, _, self._size, flags = _CONTENT.unpack_from(buf, p)
        p += _CONTENT.size
        if flags & 0x8000:
            n = buf[p]
            self._content_type = buf[p + 1 : p + 1 + n].decode()
        if flags & 0x2000:
            p = _skip(buf, p, flags, 13)
            self._headers = amqp_decode.field_table(bytes(buf[p : p + 4 + int.from_bytes(buf[p : p + 4], "big")]))[1]
        if self._size == 0:
            self._complete()

    def _body(self, part: bytes) -> None:
        self._parts.append(part)
        self._have += len(part)
        if self._have >= self._size:
            self._complete()

    def _complete(self) -> None:
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = []
        self._on_delivery(Delivery(self._tag, self._redelivered, self._routing_key, self._content_type, self._headers, body))

    def _rare(self, channel: int, data: bytes) -> None:
        _, _, command = frame.unmarshal(data)
        if isinstance(command, commands.Connection.Close):
            self._transport.write(frame.marshal(commands.Connection.CloseOk(), 0))  # type: ignore[union-attr]
            raise ConsumerLost(f"the broker closed the connection: {command.reply_code} {command.reply_text}")
        if isinstance(command, commands.Channel.Close):
            self._send(commands.Channel.CloseOk())
            raise ConsumerLost(f"the broker closed the channel: {command.reply_code} {command.reply_text}")
        if isinstance(command, commands.Basic.Cancel):
            raise ConsumerLost("the broker cancelled the consumer (the queue was deleted?)")
        self._replies.put_nowait(command)


def _skip(buf: bytearray, p: int, flags: int, upto: int) -> int:
    """Return where property bit ``upto`` begins, from ``p`` where the properties begin, past those before it that ``flags`` holds."""
    for bit in range(15, upto, -1):
        if flags & (1 << bit):
            kind = _PROPERTIES[15 - bit]
            if kind == "shortstr":
                p += 1 + buf[p]
            elif kind == "octet":
                p += 1
            elif kind == "longlong":
                p += 8
            else:
                p += 4 + int.from_bytes(buf[p : p + 4], "big")
    return p


async def open_consumer(url: str, queue: str, prefetch: int, on_delivery: Callable[[Delivery], None], *, timeout: float = 10.0, heartbeat_s: int = 60) -> ConsumerConnection:
    """Connect to the broker at ``url`` (``amqp://user:password@host:port/vhost``, or ``amqps://``) and consume ``queue``, ``prefetch`` unacknowledged deliveries at most."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URL: {url!r}")
    secure = parts.scheme == "amqps"
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if secure else 5672)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    loop = asyncio.get_running_loop()
    connection = ConsumerConnection(on_delivery, heartbeat_s)
    await asyncio.wait_for(loop.create_connection(lambda: connection, host, port, ssl=ssl.create_default_context() if secure else None), timeout)
    try:
        await connection._open(unquote(parts.username or "guest"), unquote(parts.password or "guest"), vhost, queue, prefetch, timeout)
    except BaseException:
        await connection.close(timeout=1.0)
        raise
    return connection
