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
from typing import Any, Callable, Iterable, NamedTuple

import orjson

from ...backend import DeleteReport, ItemResult, ParsedUpserts, Refresh, TripInput, UpsertReport, delete_targets, parse_upserts
from ...errors import BackendUnavailable
from ...model import Trip, tombstone_version, trip_to_json
from .connection import Connection, error_reason
from .mapping import tombstone_document
from .regular import OccurrenceDocs, index_documents, retire_occurrences, retire_own, row_chunks

__all__ = ["Writes"]

BULK_MAX_TRIPS = 1000
BULK_IN_FLIGHT = 2  # bulk requests sent and not yet answered, per upsert call
DELETE_ATTEMPTS = 3


class _Settle(NamedTuple):
    """What a chunk's writes leave to do: occurrences to retire below a stored version (trip id -> version), and occurrences sent whose master was not stored (trip id -> (version, keys))."""

    retire: dict[str, int]
    own: dict[str, tuple[int, list[str]]]


class Writes:
    """The upserts and deletes of one connection, with the threads that send its bulk requests."""

    def __init__(self, connection: Connection, refresh_interval: Callable[[], float]) -> None:
        self._connection = connection
        self._refresh_interval = refresh_interval  # of the index behind the alias now (seconds, 0 when off)
        self._pool_lock = threading.Lock()
        self._bulk_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None

    def upsert(self, trips: Iterable[TripInput] | ParsedUpserts, refresh: Refresh = False) -> UpsertReport:
        """Store every valid trip whose version is higher than the stored one; report each by input line (see ``ElasticBackend.upsert``)."""
        parsed, latest = parse_upserts(trips)
        winners = [(w.pos, w.trip, w.raw) for w in latest.values()]
        wait_s = self._refresh_interval() if refresh == "wait_for" and winners else 0.0
        results: dict[int, dict[str, Any]] = {}
        settle = _Settle({}, {})
        # Documents are built here while the cluster indexes the chunks before (the request waits
        # without the GIL): the two overlap, and at most BULK_IN_FLIGHT chunks wait at a time.
        in_flight: deque[tuple[list[int], Future[tuple[list[dict[str, Any]], _Settle]]]] = deque()

        def collect(positions: list[int], done: Future[tuple[list[dict[str, Any]], _Settle]]) -> None:
            items, left = done.result()
            results.update(zip(positions, items))
            settle.retire.update(left.retire)
            settle.own.update(left.own)

        try:
            # a chunk holds BULK_MAX_TRIPS index rows at most: a regular trip's documents are built at once, a year of them for a daily trip
            for chunk in row_chunks(winners, lambda w: w[1], BULK_MAX_TRIPS):
                chunk_trips = [t for _, t, _ in chunk]
                # what is stored is read while the documents are built (the read loads each stored source)
                stored = self._reader().submit(self._connection.kinds, [t.id for t in chunk_trips])
                docs, occurrence_docs = index_documents(chunk_trips, [_source(raw, t) for _, t, raw in chunk])
                in_flight.append(([p for p, _, _ in chunk], self._writer().submit(self._write_chunk, chunk_trips, docs, occurrence_docs, stored, wait_s)))
                while len(in_flight) > BULK_IN_FLIGHT:
                    collect(*in_flight.popleft())
            while in_flight:
                collect(*in_flight.popleft())
        finally:
            for _, pending in in_flight:
                pending.cancel()
        retire_own(self._connection, settle.own, wait_s)
        retire_occurrences(self._connection, settle.retire, inclusive=False, wait_s=wait_s)
        items = [entry if isinstance(entry, ItemResult) else _upsert_item(pos + 1, entry, results.get(pos)) for pos, entry in enumerate(parsed)]
        if refresh and winners and (not wait_s or any(items[pos].result != "stored" for pos, _, _ in winners)):
            self._connection.refresh()
        return UpsertReport(tuple(items))

    def _write_chunk(
        self, trips: list[Trip], docs: list[bytes], occurrence_docs: list[OccurrenceDocs], stored_kinds: Future[dict[str, tuple[int, bool, bool]]], wait_s: float
    ) -> tuple[list[dict[str, Any]], _Settle]:
        """Write one chunk of trips (occurrences first, then the documents at the trips' ids); return each trip's bulk result and what is left to retire.

        Punctual trips cost one ``mget`` more than a plain bulk (``stored_kinds``,
        sent while the documents were built): the kind of document each
        replaces says whether occurrences are left to retire.
        """
        stored = stored_kinds.result()
        settle = _Settle({}, {})
        occurrence_ops: list[tuple[dict[str, Any], bytes]] = []
        owners: list[str] = []
        for trip, occurrence in zip(trips, occurrence_docs):
            known = stored.get(trip.id)
            if trip.schedule is None or (known is not None and known[0] >= trip.version):
                continue  # a punctual trip, or one Elasticsearch will refuse below (409): its occurrences would be stale at once
            settle.own[trip.id] = (trip.version, [key for key, _ in occurrence])
            occurrence_ops += [({"index": {"_id": key, "version": trip.version, "version_type": "external"}}, doc) for key, doc in occurrence]
            owners += [trip.id] * len(occurrence)
        refused: dict[str, dict[str, Any]] = {}
        for tid, item in zip(owners, self._connection.bulk(occurrence_ops, "store trips' occurrences", None, wait_s) if occurrence_ops else []):
            if item["status"] >= 300 and item["status"] != 409:
                refused.setdefault(tid, item)  # the trip is refused whole: its master is not written
        ops = [({"index": {"_id": t.id, "version": t.version, "version_type": "external"}}, doc) for t, doc in zip(trips, docs) if t.id not in refused]
        written = iter(self._connection.bulk(ops, "store trips", None, wait_s))
        items = [refused[t.id] if t.id in refused else next(written) for t in trips]
        for trip, item in zip(trips, items):
            known = stored.get(trip.id)
            if item["status"] < 300:
                settle.own.pop(trip.id, None)
                # a version was stored before this one (it may have been regular), or the one replaced was a regular trip's
                if (trip.schedule is not None and item.get("result") == "updated") or (known is not None and known[2]):
                    settle.retire[trip.id] = trip.version
            elif trip.schedule is not None and known == (trip.version, False, True):
                # this very version again: retire again, so that a retry after a failure between master and retire converges
                settle.retire[trip.id] = trip.version
        return items, settle

    def _writer(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._bulk_pool is None:
                self._bulk_pool = ThreadPoolExecutor(max_workers=BULK_IN_FLIGHT, thread_name_prefix="tripsearch-bulk")
            return self._bulk_pool

    def _reader(self) -> ThreadPoolExecutor:
        # not the bulk threads: a chunk's write waits for its read, which must not queue behind it
        with self._pool_lock:
            if self._read_pool is None:
                self._read_pool = ThreadPoolExecutor(max_workers=BULK_IN_FLIGHT + 1, thread_name_prefix="tripsearch-read")
            return self._read_pool

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
        retire: dict[str, int] = {}  # regular trips buried: their occurrences up to the tombstone's version go too
        pending = list(lines)
        for _ in range(DELETE_ATTEMPTS):
            stored = self._connection.kinds(pending)
            plans = {tid: plan for tid in pending if (plan := _tombstone_plan(_state(stored.get(tid)), lines[tid])) is not None}
            ops = [({"index": {"_id": tid, "version": version, "version_type": kind}}, tombstone_document(tid)) for tid, (version, kind, _) in plans.items()]
            pending = []
            for (tid, (version, _, was_live)), item in zip(plans.items(), self._connection.bulk(ops, "delete trips", None, wait_s)):
                if item["status"] < 300:
                    written.add(tid)
                    if was_live:
                        deleted.add(tid)
                    if stored.get(tid, (0, False, False))[2]:
                        retire[tid] = version
                elif item["status"] == 409:
                    pending.append(tid)  # another version was stored meanwhile: decide again over it
                else:
                    raise BackendUnavailable(f"cannot delete trip {tid!r}: Elasticsearch refused the tombstone ({error_reason(item)})")
            if not pending:
                break
        if pending:
            raise BackendUnavailable(f"trips {pending[:5]} changed during the delete {DELETE_ATTEMPTS} times; retry", retry_after=0.1)
        retire_occurrences(self._connection, retire, inclusive=True, wait_s=wait_s)
        items = [ItemResult(pos + 1, tid, "deleted" if tid in deleted else "not_found", version) for pos, (tid, version) in enumerate(wanted)]
        if refresh and (not wait_s or written != set(lines)):
            self._connection.refresh()
        return DeleteReport(tuple(items))

    def close(self) -> None:
        """Wait for the bulk requests in flight and stop their threads."""
        if self._bulk_pool is not None:
            self._bulk_pool.shutdown(wait=True)
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True)


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


def _state(kind: tuple[int, bool, bool] | None) -> tuple[int, bool] | None:
    return None if kind is None else kind[:2]


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
