"""Writes: upserts through pipelined ``_bulk`` requests, deletes as versioned tombstones.

The trip version is the document version (``version_type=external``), so
Elasticsearch itself keeps the highest one: an upsert reports ``stored``
when the document was written, ``unchanged`` on a version conflict (409) and
``rejected`` with Elasticsearch's reason otherwise. A delete leaves a
tombstone document at a version decided from the stored one
(:func:`_tombstone_plan`), so a late lower version cannot bring the trip
back. docs/elasticsearch.md ("Writes, versions and deletes") has the rules.

``refresh="wait_for"`` is Elasticsearch's own: each bulk request answers
once a periodic refresh made its writes searchable. An index whose periodic
refresh is off would never answer, so it is refreshed instead, as with
``refresh=True`` (the embedded backend with ``refresh_interval=0`` does the same).
So is an index where a trip of the call was not written (a version already
stored, nothing to delete): Elasticsearch waits only for what a request
writes, and the trip's state may come from an earlier write not yet
searchable.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable

import orjson

from ...backend import DeleteReport, ItemResult, ParsedUpserts, Refresh, TripInput, UpsertReport, delete_targets, parse_upserts
from ...errors import BackendUnavailable
from ...model import Trip, tombstone_version, trip_to_json
from .connection import Connection, chunks, error_reason
from .mapping import tombstone_document, trips_to_documents

__all__ = ["Writes"]

BULK_MAX_TRIPS = 1000
BULK_IN_FLIGHT = 2  # bulk requests sent and not yet answered, per upsert call
DELETE_ATTEMPTS = 3


class Writes:
    """The upserts and deletes of one connection, with the threads that send its bulk requests."""

    def __init__(self, connection: Connection, refresh_interval: Callable[[], float]) -> None:
        self._connection = connection
        self._refresh_interval = refresh_interval  # of the index behind the alias now (seconds, 0 when off)
        self._pool_lock = threading.Lock()
        self._bulk_pool: ThreadPoolExecutor | None = None

    def upsert(self, trips: Iterable[TripInput] | ParsedUpserts, refresh: Refresh = False) -> UpsertReport:
        """Store every valid trip whose version is higher than the stored one; report each by input line (see ``ElasticBackend.upsert``)."""
        parsed, latest = parse_upserts(trips)
        winners = [(w.pos, w.trip, w.raw) for w in latest.values()]
        wait_s = self._refresh_interval() if refresh == "wait_for" and winners else 0.0
        results: dict[int, dict[str, Any]] = {}
        # Documents are built here while the cluster indexes the chunks before (the request waits
        # without the GIL): the two overlap, and at most BULK_IN_FLIGHT chunks wait at a time.
        in_flight: deque[tuple[list[int], Future[list[dict[str, Any]]]]] = deque()
        try:
            for chunk in chunks(winners, BULK_MAX_TRIPS):
                docs = trips_to_documents([t for _, t, _ in chunk], [_source(raw, t) for _, t, raw in chunk])
                ops = [({"index": {"_id": t.id, "version": t.version, "version_type": "external"}}, doc) for (_, t, _), doc in zip(chunk, docs)]
                in_flight.append(([p for p, _, _ in chunk], self._writer().submit(self._connection.bulk, ops, "store trips", None, wait_s)))
                while len(in_flight) > BULK_IN_FLIGHT:
                    positions, done = in_flight.popleft()
                    results.update(zip(positions, done.result()))
            while in_flight:
                positions, done = in_flight.popleft()
                results.update(zip(positions, done.result()))
        finally:
            for _, pending in in_flight:
                pending.cancel()
        items = [entry if isinstance(entry, ItemResult) else _upsert_item(pos + 1, entry, results.get(pos)) for pos, entry in enumerate(parsed)]
        if refresh and winners and (not wait_s or any(items[pos].result != "stored" for pos, _, _ in winners)):
            self._connection.refresh()
        return UpsertReport(tuple(items))

    def _writer(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._bulk_pool is None:
                self._bulk_pool = ThreadPoolExecutor(max_workers=BULK_IN_FLIGHT, thread_name_prefix="tripsearch-bulk")
            return self._bulk_pool

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: Refresh = False) -> DeleteReport:
        """Delete trips by id, or by (id, version), with versioned tombstones (see ``ElasticBackend.delete``)."""
        wanted = delete_targets(ids)
        wait_s = self._refresh_interval() if refresh == "wait_for" else 0.0
        lines: dict[str, list[int | None]] = {}
        for tid, version in wanted:
            if tid:
                lines.setdefault(tid, []).append(version)
        deleted: set[str] = set()
        written: set[str] = set()  # a tombstone was written: Elasticsearch's wait_for covers it
        pending = list(lines)
        for _ in range(DELETE_ATTEMPTS):
            stored = self._connection.versions(pending)
            plans = {tid: plan for tid in pending if (plan := _tombstone_plan(stored.get(tid), lines[tid])) is not None}
            ops = [({"index": {"_id": tid, "version": version, "version_type": kind}}, tombstone_document(tid)) for tid, (version, kind, _) in plans.items()]
            pending = []
            for (tid, (_, _, was_live)), item in zip(plans.items(), self._connection.bulk(ops, "delete trips", None, wait_s)):
                if item["status"] < 300:
                    written.add(tid)
                    if was_live:
                        deleted.add(tid)
                elif item["status"] == 409:
                    pending.append(tid)  # another version was stored meanwhile: decide again over it
                else:
                    raise BackendUnavailable(f"cannot delete trip {tid!r}: Elasticsearch refused the tombstone ({error_reason(item)})")
            if not pending:
                break
        if pending:
            raise BackendUnavailable(f"trips {pending[:5]} changed during the delete {DELETE_ATTEMPTS} times; retry", retry_after=0.1)
        items = [ItemResult(pos + 1, tid, "deleted" if tid in deleted else "not_found", version) for pos, (tid, version) in enumerate(wanted)]
        if refresh and (not wait_s or written != set(lines)):
            self._connection.refresh()
        return DeleteReport(tuple(items))

    def close(self) -> None:
        """Wait for the bulk requests in flight and stop their threads."""
        if self._bulk_pool is not None:
            self._bulk_pool.shutdown(wait=True)


def _tombstone_plan(stored: tuple[int, bool] | None, versions: list[int | None]) -> tuple[int, str, bool] | None:
    """Return the tombstone that the delete lines of one id leave over its stored (version, deleted), or None.

    The lines apply in order, by the rule of every backend
    (:func:`~tripsearch.model.tombstone_version`). Returns the tombstone's
    version, the version type that writes it only over what was read
    (``external_gte`` to keep the stored version, ``external`` to raise it)
    and whether a live trip was deleted. A version below 0 is never written:
    no upsert can be below it, so such a tombstone has no effect.
    """
    state = stored
    was_live = False
    for wanted in versions:
        version = tombstone_version(state, wanted)
        if version is None:
            continue
        was_live = was_live or (state is not None and not state[1])
        state = (version, True)
    if state is None or state == stored or state[0] < 0:
        return None
    return state[0], "external_gte" if stored is not None and state[0] == stored[0] else "external", was_live


def _upsert_item(line: int, trip: Trip, result: dict[str, Any] | None) -> ItemResult:
    """Return the fate of one upserted line from its bulk result (None: another line of its id won)."""
    if result is not None and result["status"] < 300:
        return ItemResult(line, trip.id, "stored", trip.version)
    if result is not None and result["status"] != 409:
        return ItemResult(line, trip.id, "rejected", trip.version, reason=f"Elasticsearch refused it: {error_reason(result)}")
    return ItemResult(line, trip.id, "unchanged", trip.version, reason="a version at least as high is stored")


def _source(raw: TripInput, trip: Trip) -> bytes:
    """Return the trip as ``get`` will return it: JSON text as given (as the embedded store keeps it), anything else encoded."""
    if isinstance(raw, bytes):
        text = raw.strip()
        if b"\n" not in text and b"\r" not in text:  # a _bulk line must stay one line
            return text
        return orjson.dumps(orjson.loads(text))
    return trip_to_json(trip)
