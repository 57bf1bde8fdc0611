"""Webhook delivery: each alert event POSTed to the alert's URL, signed, retried with backoff, in order per alert.

The events to send are rows of the store's outbox, written in the same
transaction as the events, so an event cannot exist without its delivery
(at least once, never lost). Any number of senders (one per API worker)
may run over one store: a sender leases what it sends.

The signature follows Stripe's scheme: the header
``Tripsearch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the
HMAC is computed with the alert's secret over ``f"{t}.".encode() + body``.
Receivers check it and refuse timestamps older than a few minutes (replays).

>>> header = sign(b'{"seq":1}', "whsec_test", 1700000000)
>>> header.startswith("t=1700000000,v1="), verify(b'{"seq":1}', header, "whsec_test", now=1700000010)
(True, True)
>>> verify(b'{"seq":2}', header, "whsec_test", now=1700000010), verify(b'{"seq":1}', header, "whsec_test", now=1700009999)
(False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from typing import Callable

import httpx
import orjson

from .store import AlertStore, Delivery, webhook_address_refused

__all__ = ["WebhookSender", "sign", "verify", "SIGNATURE_HEADER", "EVENT_ID_HEADER"]

log = logging.getLogger("tripsearch.alerts")

SIGNATURE_HEADER = "Tripsearch-Signature"
EVENT_ID_HEADER = "Tripsearch-Event-Id"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """Return the signature header value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(body: bytes, header: str, secret: str, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """Return whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now`` (what a receiver does)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookSender:
    """Send due webhook deliveries of a store; retry failures with exponential backoff; give up after ``give_up_s``.

    A delivery succeeds on any 2xx answer. Retries wait ``retry_first_s``,
    then twice as long each time, at most ``retry_max_s``; a delivery still
    failing ``give_up_s`` after its event is marked failed (shown in
    ``GET /v1/alerts/{id}``) and the alert's next event goes. Unless
    ``allow_private``, a URL whose host now resolves to a non-public
    address is not called (the attempt fails with the reason), as a host
    that pointed elsewhere when the alert was saved may point inside now.
    """

    def __init__(
        self,
        store: Callable[[], AlertStore | None],
        retry_first_s: float = 1.0,
        retry_max_s: float = 600.0,
        give_up_s: float = 86_400.0,
        timeout_s: float = 10.0,
        poll_s: float = 0.2,
        allow_private: bool = False,
    ) -> None:
        self._store = store
        self.allow_private = allow_private
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.give_up_s = give_up_s
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, headers={"User-Agent": "tripsearch-webhooks"})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send_due(self) -> int:
        """Send what is due now; return how many were attempted."""
        store = self._store()
        if store is None:
            return 0
        due = store.claim_deliveries(lease_s=self.timeout_s + 5.0)
        for delivery in due:
            self._send(store, delivery)
        return len(due)

    def _send(self, store: AlertStore, delivery: Delivery) -> None:
        event = delivery.event
        body = orjson.dumps(event.to_dict())
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: str(event.seq), SIGNATURE_HEADER: sign(body, delivery.secret, int(time.time()))}
        error = None if self.allow_private else webhook_address_refused(delivery.url)
        if error is None:
            try:
                response = self._client.post(delivery.url, content=body, headers=headers)
                error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        if error is None:
            store.delivered(event.seq)
            return
        now = store.clock()
        wait = min(self.retry_first_s * 2**delivery.attempts, self.retry_max_s)
        give_up = now + wait > delivery.first_s + self.give_up_s
        store.delivery_failed(event.seq, error, None if give_up else now + wait)
        log.info("webhook %s for event %d failed (%s); %s", delivery.url, event.seq, error, "giving up" if give_up else f"retrying in {wait:.1f} s")

    def start(self) -> None:
        """Send in a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._run, name="tripsearch-webhooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.send_due()
            except Exception:  # a store or network fault: keep the loop alive, the next round retries
                log.exception("webhook delivery round failed")
                sent = 0
            if not sent:
                self._stop.wait(self.poll_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
        self._client.close()
