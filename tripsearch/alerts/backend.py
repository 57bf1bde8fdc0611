"""The seam: a backend wrapper that matches every trip write against the saved alerts.

``tripsearch.open`` returns an :class:`AlertingBackend` around the embedded
backend (alerts in ``DATA/alerts.sqlite``) and around Elasticsearch when an
alert store is configured (``alerts=PATH`` or ``TRIPSEARCH_ALERTS_DB``), so
every writer that opens a backend — the HTTP API, ``tripsearch index``, the
RabbitMQ worker, a Python program — goes through it; none has to remember.

A write, when alerts exist:

1. the trip ids and versions are journalled in the alert store (``pending``);
2. the inner backend writes (durable when it returns);
3. the trips it stored are matched (:func:`~tripsearch.alerts.matcher.match_trips`)
   and the outcomes recorded, clearing their journal entries, in one transaction.

A crash between 2 and 3 leaves the journal entries: the next process that
opens the backend (a restarted worker, an API worker), and every writer
every :data:`REPLAY_AFTER_S` seconds, reads the trips of entries older
than that back from the backend and matches what is stored now. Matching is
idempotent (versions decide, a match already told is not told again), so
replaying an entry whose match was recorded changes nothing. A caller that
retries after the crash gets ``unchanged`` from the backend, and the
journal still has the entry. Writes while no alert exists skip all of this.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..backend import Backend, DeleteReport, ParsedUpserts, Refresh, SearchResult, TripInput, UpsertReport, delete_targets, parse_upserts
from ..errors import InvalidTrip, NotFound
from ..model import gc_paused, parse_trip_route
from ..query.model import Query
from .matcher import match_trips
from .store import AlertStore, TripOutcome

__all__ = ["AlertingBackend", "ALERTS_DB_NAME", "REPLAY_AFTER_S"]

log = logging.getLogger("tripsearch.alerts")

ALERTS_DB_NAME = "alerts.sqlite"
# A journal entry this old is a write whose process died before matching (a live writer takes milliseconds).
REPLAY_AFTER_S = 30.0


class AlertingBackend:
    """A :class:`~tripsearch.backend.Backend` that matches its writes against saved alerts.

    ``alerts`` is the alert store's file, or an open :class:`AlertStore`.
    A file is opened when it exists (the first alert creates it through
    :meth:`alerts`), so a deployment without alerts pays nothing. Every
    other attribute is the inner backend's.
    """

    def __init__(self, inner: Backend, alerts: str | Path | AlertStore, max_per_owner: int | None = None) -> None:
        self.inner = inner
        self.alerts_path = alerts.path if isinstance(alerts, AlertStore) else Path(alerts)
        self._max_per_owner = max_per_owner
        self._store: AlertStore | None = alerts if isinstance(alerts, AlertStore) else None
        self._owns_store = self._store is None  # a store given is the caller's to close
        self._open_lock = threading.Lock()
        self._last_replay = time.monotonic()
        if self._existing_store() is not None:
            self.replay(REPLAY_AFTER_S)

    # -- the alert store ------------------------------------------------------

    def alerts(self) -> AlertStore:
        """Return the alert store, creating its file if needed."""
        with self._open_lock:
            if self._store is None:
                self._store = AlertStore(self.alerts_path) if self._max_per_owner is None else AlertStore(self.alerts_path, self._max_per_owner)
            return self._store

    def existing_alerts(self) -> AlertStore | None:
        """Return the alert store if its file exists (without creating it)."""
        if self._store is None and self.alerts_path.exists():
            return self.alerts()
        return self._store

    _existing_store = existing_alerts

    def _active_store(self) -> AlertStore | None:
        store = self._existing_store()
        if store is None or not store.has_alerts():
            return None
        if time.monotonic() - self._last_replay >= REPLAY_AFTER_S:
            # a writer that died recently (a worker restarted within seconds) left entries too young to replay at open
            self._last_replay = time.monotonic()
            self.replay(REPLAY_AFTER_S)
        return store

    # -- writes ---------------------------------------------------------------

    @gc_paused  # parsed here, written by the inner backend, matched: the trips are freed before the collector runs again
    def upsert(self, trips: Iterable[TripInput] | ParsedUpserts, refresh: Refresh = False) -> UpsertReport:
        """Write through the inner backend, then match the trips it stored against the alerts."""
        store = self._active_store()
        if store is None:
            return self.inner.upsert(trips, refresh)
        parsed, latest = parse_upserts(trips)
        token = store.announce([(tid, w.trip.version) for tid, w in latest.items()])
        report = self.inner.upsert(ParsedUpserts(parsed, latest), refresh)  # parsed once: the backend takes them as they are
        stored = {item.id for item in report.items if item.result == "stored"}
        written = [w for tid, w in latest.items() if tid in stored]
        store.record(match_trips(store, [w.trip for w in written], [w.route for w in written]), set(latest) - stored, token)
        return report

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: Refresh = False) -> DeleteReport:
        """Delete through the inner backend; alerts told of a deleted trip get a cancellation."""
        store = self._active_store()
        if store is None:
            return self.inner.delete(ids, refresh)
        wanted = delete_targets(ids)
        token = store.announce(wanted)
        report = self.inner.delete([tid if version is None else (tid, version) for tid, version in wanted], refresh)
        deleted = {item.id: item.version for item in report.items if item.result == "deleted" and item.id is not None}
        store.record([TripOutcome(tid, version, "deleted", []) for tid, version in deleted.items()], {tid for tid, _ in wanted} - deleted.keys(), token)
        return report

    def replay(self, older_than_s: float = 0.0) -> int:
        """Match again the journalled writes at least ``older_than_s`` old, from what the backend stores now; return how many."""
        store = self._existing_store()
        if store is None:
            return 0
        pending = store.pending(older_than_s)
        if self._match_stored(store, [tid for tid, _ in pending], again=False):
            log.info("matched %d journalled trip writes against alerts", len(pending))
        return len(pending)

    def rematch(self, trip_ids: Iterable[str]) -> int:
        """Match trips as the backend stores them now against the alerts saved now, and record what changed; return how many were matched.

        For operators: alerts saved after a trip was written learn of it, and
        a match is still told only once. A trip the backend does not hold is
        a deletion.
        """
        store = self._existing_store()
        return 0 if store is None else self._match_stored(store, list(trip_ids), again=True)

    def _match_stored(self, store: AlertStore, trip_ids: list[str], again: bool) -> int:
        outcomes: list[TripOutcome] = []
        for tid in trip_ids:
            try:
                trip, route = parse_trip_route(self.inner.get(tid))
            except NotFound:
                # Deleted (or never written): whatever was told about it is cancelled; version unknown.
                outcomes.append(TripOutcome(tid, None, "deleted", []))
                continue
            except InvalidTrip as exc:  # stored by an older release with other rules: it cannot be matched
                log.warning("trip %s not matched against alerts: %s", tid, exc)
                store.settle([tid])
                continue
            outcomes.extend(match_trips(store, [trip], [route]))
        if outcomes:
            store.record(outcomes, again=again)
        return len(outcomes)

    # -- everything else is the inner backend's -------------------------------

    def get(self, trip_id: str) -> dict[str, Any]:
        return self.inner.get(trip_id)

    def search(self, query: Query | Mapping[str, Any]) -> SearchResult:
        return self.inner.search(query)

    def refresh(self) -> None:
        self.inner.refresh()

    def stats(self) -> dict[str, Any]:
        stats = self.inner.stats()
        store = self._existing_store()
        stats["alerts"] = store.count() if store is not None else 0
        return stats

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if self._owns_store and self._store is not None:
                self._store.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> AlertingBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
