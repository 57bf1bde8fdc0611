"""The seam: a backend wrapper that matches every trip write against the saved alerts.

``tripsearch.open`` returns an :class:`AlertingBackend` around the embedded
backend (alerts in ``DATA/alerts.sqlite``) and around Elasticsearch when an
alert store is configured (``alerts=PATH`` or ``TRIPSEARCH_ALERTS_DB``), so
every writer that opens a backend — the HTTP API, ``tripsearch index``, the
RabbitMQ worker, a Python program — goes through it; none has to remember.

**A backend with a change feed** (the embedded one: every change of its
trip store has a ``seq``): the alert store keeps a cursor on that feed, and
a write, once the alert store exists,

1. takes the alert store's write lock;
2. writes through the backend (durable when it returns);
3. matches the trips it stored, and every other change of the feed since
   the cursor from what is stored (a deletion, or the write of a process
   that died between its steps 2 and 4);
4. records the outcomes (new matches, lost matches, each trip's version)
   and moves the cursor past every change it has seen, in one transaction,
   which it commits without a sync (a power cut may take it back, and the
   changes are after the cursor again).

The lock makes every change after the cursor that a writer did not make
itself one that nobody recorded, so nothing is matched twice in parallel
and nothing is missed; the next write, or the next process that opens the
backend, records it. The first write followed starts the cursor at the
feed's end: trips stored before it were written before any alert.

**A backend without one** (Elasticsearch): the trip ids and versions are
journalled in the alert store (``pending``, synced) before the write, and
cleared with the outcomes. A crash between the write and the outcomes
leaves the entries: the next process that opens the backend, and every
writer every :data:`REPLAY_AFTER_S` seconds, reads the trips of entries
older than that back from the backend and matches what is stored now. A
caller that retries after the crash gets ``unchanged`` from the backend,
and the journal still has the entry.

Either way matching is idempotent (versions decide, a match already told
is not told again), so recording an outcome twice changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar

import numpy as np

from ..backend import Backend, DeleteReport, Latest, ParsedUpserts, Refresh, SearchResult, TripInput, UpsertReport, delete_targets, parse_upserts
from ..errors import InvalidTrip, NotFound
from ..model import Trip, gc_paused, parse_trip_route, paused_gc, stored_trip_route
from ..query.model import Query
from .matcher import match_trips
from .ahead import Matched
from .follower import Follower
from .store import AlertStore, FeedBatch, TripOutcome

__all__ = ["AlertingBackend", "ALERTS_DB_NAME", "MATCHING", "REPLAY_AFTER_S", "match_changes"]

log = logging.getLogger("tripsearch.alerts")

ALERTS_DB_NAME = "alerts.sqlite"
MATCHING = ("inline", "process")  # where a write is matched: in the write, or by a follower process after it (tripsearch.alerts.follower)
# A journal entry this old is a write whose process died before matching (a live writer takes milliseconds).
REPLAY_AFTER_S = 30.0

FEED_BATCH = 2_000  # changes matched and recorded per transaction when catching up with the feed
WAIT_MATCHED_S = 30.0  # how long a write with refresh waits for the follower process to have matched it

Report = TypeVar("Report", UpsertReport, DeleteReport)


class ChangeFeed(Protocol):
    """What a backend's trip store offers the alerts to follow (the embedded backend's :attr:`change_feed`)."""

    store_id: str

    def max_seq(self) -> int: ...

    def changes(self, after_seq: int, known: Callable[[str, int], bool] | None = None, batch: int = ...) -> Iterator[list[Any]]:
        """Batches of changes with ``seq > after_seq`` in order, each with ``id``, ``version``, ``seq`` and ``doc`` (None for a deletion, empty when ``known``)."""
        ...


def match_changes(store: AlertStore, changes: Sequence[Any]) -> list[TripOutcome]:
    """Return the outcomes of a feed's changes (one per trip): a deletion's, and the matches of the trips as stored."""
    return [TripOutcome(c.id, c.version, "deleted", []) for c in changes if c.doc is None] + _match_stored_docs(store, [c for c in changes if c.doc is not None])


def _match_stored_docs(store: AlertStore, changes: Sequence[Any]) -> list[TripOutcome]:
    """Match the trips of a feed's changes (one per trip) as stored: what searches read (:func:`~tripsearch.model.stored_trip_route`).

    Their rules are not checked again, but a trip stored by an older
    release under other rules may break what matching assumes: when a batch
    fails, its trips are checked one by one and those that break a rule are
    left out, with a warning (the batch fails again if none does).
    """
    trips: list[tuple[Trip, np.ndarray | None]] = []
    for change in changes:
        try:
            trips.append(stored_trip_route(change.doc))
        except InvalidTrip as exc:  # not a trip: searches cannot read it either
            log.warning("trip %s not matched against alerts: %s", change.id, exc)
    try:
        return match_trips(store, [trip for trip, _ in trips], [route for _, route in trips])
    except Exception:
        valid: list[tuple[Trip, np.ndarray | None]] = []
        for trip, route in trips:
            try:
                valid.append(parse_trip_route(trip))
            except InvalidTrip as exc:
                log.warning("trip %s not matched against alerts: %s", trip.id, exc)
        if len(valid) == len(trips):
            raise
        return match_trips(store, [trip for trip, _ in valid], [route for _, route in valid])


class AlertingBackend:
    """A :class:`~tripsearch.backend.Backend` that matches its writes against saved alerts.

    ``alerts`` is the alert store's file, or an open :class:`AlertStore`.
    A file is opened when it exists (the first alert creates it through
    :meth:`alerts`), so a deployment without alerts pays nothing. Every
    other attribute is the inner backend's.
    """

    def __init__(self, inner: Backend, alerts: str | Path | AlertStore, max_per_owner: int | None = None, matching: str = "inline") -> None:
        if matching not in MATCHING:
            raise ValueError(f"matching must be one of {', '.join(MATCHING)}, not {matching!r}")
        self.inner = inner
        self.matching = matching
        self.alerts_path = alerts.path if isinstance(alerts, AlertStore) else Path(alerts)
        self._max_per_owner = max_per_owner
        self._store: AlertStore | None = alerts if isinstance(alerts, AlertStore) else None
        self._owns_store = self._store is None  # a store given is the caller's to close
        self._feed: ChangeFeed | None = getattr(inner, "change_feed", None)
        if matching == "process" and self._feed is None:
            raise ValueError("matching='process' follows a change feed: only the embedded backend has one")
        self._follower: Follower | None = None
        self._follower_lock = threading.Lock()
        self._cursor_started = False
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

    def _journalling_store(self) -> AlertStore | None:
        """The alert store a write without a change feed journals in, if any alert exists."""
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
        feed, store = self._feed, self._existing_store()
        if self.matching == "process" and feed is not None and store is not None:
            self._start_cursor(store, feed)
            return self._told(self.inner.upsert(trips, False), refresh)
        if feed is not None and store is not None:
            parsed, latest = parse_upserts(trips)

            def write() -> tuple[UpsertReport, list[Latest]]:
                report = self.inner.upsert(ParsedUpserts(parsed, latest), False)  # parsed once: the backend takes them as they are
                stored = {item.id for item in report.items if item.result == "stored"}
                return report, [w for tid, w in latest.items() if tid in stored]

            return self._followed(store, feed, write, refresh)
        store = self._journalling_store()
        if store is None:
            return self.inner.upsert(trips, refresh)
        parsed, latest = parse_upserts(trips)
        token = store.announce([(tid, w.trip.version) for tid, w in latest.items()])
        report = self.inner.upsert(ParsedUpserts(parsed, latest), refresh)
        stored = {item.id for item in report.items if item.result == "stored"}
        written = [w for tid, w in latest.items() if tid in stored]
        store.record(match_trips(store, [w.trip for w in written], [w.route for w in written]), set(latest) - stored, token)
        return report

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: Refresh = False) -> DeleteReport:
        """Delete through the inner backend; alerts told of a deleted trip get a cancellation."""
        feed, store = self._feed, self._existing_store()
        if self.matching == "process" and feed is not None and store is not None:
            self._start_cursor(store, feed)
            return self._told(self.inner.delete(ids, False), refresh)
        if feed is not None and store is not None:
            return self._followed(store, feed, lambda: (self.inner.delete(ids, False), []), refresh)  # the deletions are read from the feed
        store = self._journalling_store()
        if store is None:
            return self.inner.delete(ids, refresh)
        wanted = delete_targets(ids)
        token = store.announce(wanted)
        report = self.inner.delete([tid if version is None else (tid, version) for tid, version in wanted], refresh)
        deleted = {item.id: item.version for item in report.items if item.result == "deleted" and item.id is not None}
        store.record([TripOutcome(tid, version, "deleted", []) for tid, version in deleted.items()], {tid for tid, _ in wanted} - deleted.keys(), token)
        return report

    def _followed(self, store: AlertStore, feed: ChangeFeed, write: Callable[[], tuple[Report, list[Latest]]], refresh: Refresh) -> Report:
        """Run ``write`` (a write to the inner backend returning its report and the trips it stored, as parsed) under the alert store's lock, and record what changed."""
        self._start_cursor(store, feed)
        cursor = store.feed_cursor(feed.store_id)
        if cursor is not None and feed.max_seq() - cursor > FEED_BATCH:  # a long way behind (a follower stopped): caught up first, letting other writers in between batches
            self.follow()
        with store.following(feed.store_id) as batch:
            start = batch.cursor
            report, written = write()
            self._catch_up(store, feed, batch, feed.max_seq() if start is None else start, written)  # None: the file was replaced meanwhile
        self._make_visible(refresh)  # once the lock is released: "wait_for" may wait a while
        return report

    def _make_visible(self, refresh: Refresh) -> None:
        make_visible = getattr(self.inner, "make_visible", None)  # the embedded backend's: a backend with a feed has it
        if make_visible is not None:
            make_visible(refresh)

    def _start_cursor(self, store: AlertStore, feed: ChangeFeed) -> None:
        """Before this process's first write followed, start the cursor (synced) where the feed ends: the trips stored already were written before the alerts."""
        if not self._cursor_started:
            store.start_cursor(feed.store_id, feed.max_seq())
            self._cursor_started = True

    def _told(self, report: Report, refresh: Refresh) -> Report:
        """After a write the follower process matches: wake it; with ``refresh``, wait until it has recorded the write."""
        if not refresh:
            self._wake_follower()
        elif not self.wait_matched():
            log.warning("the write is not matched against alerts yet: the follower could not start, or did not match it within %.0f s", WAIT_MATCHED_S)
        self._make_visible(refresh)
        return report

    def wait_matched(self, timeout_s: float = WAIT_MATCHED_S) -> bool:
        """Wait until every change of the feed so far is matched (by this process's follower, or another); return whether it was within ``timeout_s``."""
        store, feed = self._existing_store(), self._feed
        if store is None or feed is None or store.feed_cursor(feed.store_id) is None:  # nothing followed yet
            return True
        if self.matching != "process":
            self.follow()
            return True
        written, deadline = feed.max_seq(), time.monotonic() + timeout_s
        if not self._wake_follower():  # none can start: the changes wait for the next write's
            return False
        while (store.feed_cursor(feed.store_id) or 0) < written:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
            follower = self._follower
            if follower is not None and follower.process.poll() is not None:  # it died: another takes over
                self._wake_follower()
        return True

    def _wake_follower(self) -> bool:
        """Wake this process's follower, starting it if needed; return whether one runs (else the write waits after the cursor for the next)."""
        with self._follower_lock:  # the API writes from a pool of threads
            try:
                if self._follower is None:
                    self._follower = Follower(Path(getattr(self.inner, "path")), self.alerts_path)
                self._follower.wake()
                return True
            except OSError as exc:
                log.error("cannot start the alerts follower of %s (%s); the write is matched by the next one", getattr(self.inner, "path", "?"), exc)
                return False

    def _catch_up(self, store: AlertStore, feed: ChangeFeed, batch: FeedBatch, start: int, written: Sequence[Latest] = (), limit: int | None = None) -> int:
        """Record the outcomes of the feed's changes after ``start`` (``written``: those of this process, as parsed) and move the cursor past them; return how many others there were.

        ``limit``: only the first that many changes (the cursor moves past them only; to the feed's end when there is no alert).
        """
        ours = {(w.trip.id, w.trip.version) for w in written}
        if not store.has_alerts():  # nobody to tell: only the cursor moves, to the feed's end
            batch.move(max(start, feed.max_seq()))
            return 0
        outcomes = match_trips(store, [w.trip for w in written], [w.route for w in written])
        seen, others_seen = start, 0
        for changes in feed.changes(start, known=(lambda tid, version: (tid, version) in ours) if ours else None, batch=limit or FEED_BATCH):
            seen = changes[-1].seq
            others = [c for c in changes if c.doc is None or (c.id, c.version) not in ours]  # a deletion is never ours (it keeps the version)
            others_seen += len(others)
            outcomes.extend(match_changes(store, others))
            batch.record(outcomes)  # a feed batch at a time: the outcomes of a long catch-up are not all held at once
            outcomes = []
            if limit is not None:
                break
        batch.record(outcomes)
        batch.move(seen)
        return others_seen

    def replay(self, older_than_s: float = 0.0) -> int:
        """Record the writes whose writer died before recording them; return how many.

        With a change feed: the changes after the cursor (:meth:`follow`).
        Else: the journalled writes at least ``older_than_s`` old, as the
        backend stores them now.
        """
        store = self._existing_store()
        if store is None:
            return 0
        replayed = self.follow()
        pending = store.pending(older_than_s)  # entries of an earlier release, or of a backend without a feed
        self._match_stored(store, [tid for tid, _ in pending], again=False)
        replayed += len(pending)
        if replayed:
            log.info("matched %d trip writes against alerts that were not matched when written", replayed)
        return replayed

    def follow(self, ahead: Callable[[int], Matched | None] | None = None) -> int:
        """Match and record the changes of the change feed after the alert store's cursor, and move it; return how many (0 without a feed).

        ``ahead(cursor)``, if given, returns the changes after ``cursor``
        matched meanwhile by another process (None: match them here), which
        then records them as its own matches (:class:`~tripsearch.alerts.ahead.MatchAhead`).
        """
        store, feed, done = self._existing_store(), self._feed, 0
        if store is None or feed is None:
            return 0
        while (cursor := store.feed_cursor(feed.store_id)) is not None and feed.max_seq() > cursor:  # else nothing to lock for
            matched = ahead(cursor) if ahead is not None else None
            # a transaction per FEED_BATCH changes: the lock is let go between them; the batch's trips are freed before the collector runs again
            with paused_gc(), store.following(feed.store_id) as batch:
                start = batch.cursor  # read again under the lock
                start = cursor if start is None else start
                if matched is not None and matched.start == start:  # else another writer recorded them meanwhile
                    batch.record(matched.outcomes)
                    batch.move(matched.seen)
                    done += matched.changes
                else:
                    done += self._catch_up(store, feed, batch, start, limit=FEED_BATCH)
        return done

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
            with self._follower_lock:
                if self._follower is not None:
                    self._follower.close()  # it matches what this process wrote, then exits
                    self._follower = None
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
