"""Close a kept-alive connection after a number of requests, so new connections spread the load over the workers.

``tripsearch serve --workers N`` runs N processes that accept from one
shared socket, and a connection stays with the worker that accepted it.
Clients that open a few long-lived connections at once (a reverse proxy's
keep-alive pool, a load generator) can land them unevenly: in a burst,
one idle worker may accept all of them and the other stays idle for as
long as they live. Measured with 12 connections opened at once on 2
workers, one run in eight put all 12 on one worker and halved the
throughput.

So, like nginx's ``keepalive_requests``, the server answers the N-th
request of a connection with ``Connection: close``. The client reconnects,
and the new connection goes to a worker that is free to accept it, which
is the one with less work: a busy worker is computing, not accepting.
"""

from __future__ import annotations

from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["KeepAliveLimit"]

# Connections tracked at most: a connection that closes before its limit leaves an entry, dropped oldest first.
_MAX_TRACKED = 4096
_CLOSE = (b"connection", b"close")


class KeepAliveLimit:
    """Add ``Connection: close`` to the ``requests``-th response of each client connection.

    A connection is known by the client address and port in the ASGI scope;
    behind a proxy whose ``X-Forwarded-For`` uvicorn trusts, that is the
    forwarded client (port 0), so the count is then per client instead.
    """

    def __init__(self, app: ASGIApp, requests: int) -> None:
        self.app = app
        self.requests = requests
        self._served: OrderedDict[tuple[str, int], int] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or self.requests <= 0 or not client:
            await self.app(scope, receive, send)
            return
        key = (client[0], client[1])
        served = self._served.pop(key, 0) + 1
        if served < self.requests:
            self._served[key] = served
            while len(self._served) > _MAX_TRACKED:
                self._served.popitem(last=False)
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        await self.app(scope, receive, send_closing)
