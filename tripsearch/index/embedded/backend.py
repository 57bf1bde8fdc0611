"""The embedded backend: SQLite for durability, memory-mapped segments shared by all processes for search.

Open a data directory with :class:`EmbeddedBackend` (or ``tripsearch.open``).
Several processes may open the same directory: writes go to SQLite, and each
process follows SQLite's change feed every ``refresh_interval`` seconds (and
on :meth:`EmbeddedBackend.refresh`), as an Elasticsearch refresh does.

The index of every trip up to some point of the feed is one immutable
segment file (:mod:`.segments`) that every process maps read-only, so N
workers hold one copy of it between them; each process keeps in memory only
what the feed brought since (:mod:`.shared`). When that delta grows past
``merge_min_rows`` and ``merge_ratio`` of the segment, the process that
sees it first (one at a time, under a lock file) writes a new segment of
everything and switches the manifest to it; every other process picks the
new segment up at its next refresh. Old segment files are unlinked at once:
a process that still maps one keeps reading it (Linux keeps an unlinked
file's pages until the last mapping goes), and moves on at its next refresh.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import orjson

from ...backend import DeleteReport, ItemResult, ParsedUpserts, Refresh, SearchResult, TripInput, UpsertReport, delete_targets, parse_upserts
from ...errors import NotFound, StoreReadOnly, TripSearchError
from ...model import Trip, gc_paused, stored_trip_route, trip_to_json
from ..anchors import Anchors, anchor_places
from ..execute import candidate_days, execute
from ...query.model import Query, parse_query
from .anchored import warm_up_anchored
from .readers import READERS_DIR, ReaderMark, wait_for_readers
from .segments import Manifest, Segment, SegmentError, SegmentMissing, open_segment, read_manifest, write_manifest, write_segment
from .shared import SharedIndex, SharedView
from .store import Change, Store

__all__ = ["EmbeddedBackend", "DB_NAME", "MANIFEST_NAME", "SEGMENTS_DIR", "MERGE_MIN_ROWS", "MERGE_RATIO"]

log = logging.getLogger("tripsearch")

DB_NAME = "trips.sqlite"
MANIFEST_NAME = "index.manifest"
SEGMENTS_DIR = "segments"
WAIT_FOR_TIMEOUT_S = 30.0  # the longest refresh="wait_for" waits for a process that does not refresh (a merge at 10M takes seconds)
# a delta merges into a new segment once it holds max(MERGE_MIN_ROWS, MERGE_RATIO x the segment's rows) rows:
# until then every process keeps it in memory (the capacity plan counts that bound per worker)
MERGE_MIN_ROWS = 50_000
MERGE_RATIO = 0.25
VERIFY_DELAY_S = 5.0  # seconds between opening a segment and the background check of its checksums
WARM_AT_OPEN_S = 1.2  # seconds an opening process spends mapping a segment in before its first search (the rest in a thread)
_LEGACY_SNAPSHOT = "index.snapshot"  # the single snapshot file of earlier versions, removed at the first merge


class EmbeddedBackend:
    """A trip search engine over one data directory.

    ``verify`` says when a mapped segment's checksums are read: ``"background"``
    (default: a thread reads the file once, ``VERIFY_DELAY_S`` after the
    segment is opened, so a restart answers at once; a mismatch logs an error and rebuilds the index
    from SQLite), ``"open"`` (before the first search) or ``"none"``. The
    header, the store id and the file size are always checked at open.

    ``warm`` (default true): the pages of a segment are mapped into the
    process when it is opened (:meth:`Segment.populate`), if the machine's
    available memory can hold the file, so that a restarted worker's first
    searches run as fast as its later ones: at start-up for up to
    ``WARM_AT_OPEN_S`` (a cached segment of 10,000,000 trips, 15 GB, took 1.1 to
    1.3 s here), then in a thread for what is left (a segment not in the page
    cache is read from disk); a segment switched to later, in a thread.

    ``search=False`` opens the directory for writing only, as an indexer
    worker does: no segment is mapped, nothing is refreshed or kept in
    memory (the processes that search follow the change feed and merge), and
    :meth:`search` raises.
    """

    def __init__(
        self,
        path: str | Path,
        refresh_interval: float = 1.0,
        snapshot_on_close: bool = True,
        busy_timeout_s: float = 30.0,
        merge_min_rows: int = MERGE_MIN_ROWS,
        merge_ratio: float = MERGE_RATIO,
        verify: str = "background",
        search: bool = True,
        warm: bool = True,
        anchors: Anchors | None = None,
        anchored: bool = True,
    ) -> None:
        if verify not in ("background", "open", "none"):
            raise ValueError(f"verify must be 'background', 'open' or 'none', not {verify!r}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.refresh_interval = refresh_interval
        self.snapshot_on_close = snapshot_on_close
        self.merge_min_rows = merge_min_rows
        self.merge_ratio = merge_ratio
        self.verify = verify
        self.warm = warm
        self.searchable = search
        self._anchors = anchors
        self.anchored = anchored
        self.anchored_searches = 0  # searches answered from anchor entries
        # how long a write waits for another process's write lock before BackendUnavailable ("the store is busy")
        self._store = Store(self.path / DB_NAME, busy_timeout_s=busy_timeout_s)
        self._segments_dir = self.path / SEGMENTS_DIR
        self._manifest_path = self.path / MANIFEST_NAME
        self._manifest_stat: tuple[int, int, int] | None = None
        self._index = SharedIndex()
        self._refresh_lock = threading.Lock()
        self._own: dict[str, tuple[Trip, np.ndarray]] = {}  # trips this process just wrote (and their routes), to skip reading them again
        self._loaded_seq = 0
        self._last_refresh = time.monotonic()
        self._closed = threading.Event()
        self._verifier: threading.Thread | None = None
        self._warmer: threading.Thread | None = None
        self.merges = 0  # segments this process wrote
        self._seen_generation = 0  # the newest segment generation this process used or found damaged
        self._damaged: str | None = None  # why the manifest's segment was not used, if it was not
        self._mark: ReaderMark | None = None  # how far this process has refreshed, for the writers that wait for it
        self.started_s = self._load() if search else 0.0
        if search:
            self._compile_search()
        self._thread: threading.Thread | None = None
        if refresh_interval > 0 and search:
            self._mark = self._register()
            self._thread = threading.Thread(target=self._refresh_loop, name="tripsearch-refresh", daemon=True)
            self._thread.start()

    @property
    def anchors(self) -> Anchors:
        """The anchor set of the segments this process writes (read at the first merge: the places table takes half a second; a search reads the segment's own)."""
        if self._anchors is None:
            self._anchors = anchor_places()
        return self._anchors

    # -- start-up -------------------------------------------------------------

    def _load(self) -> float:
        started = time.perf_counter()
        with self._refresh_lock:
            segment = self._current_segment(verify=self.verify == "open")
            if segment is not None:
                self._switch(segment, starting=True)
            elif self._damaged is not None:
                self._rebuild_segment()
        self._loaded_seq = self._index.view.seq
        self.refresh()
        return time.perf_counter() - started

    def _current_segment(self, verify: bool) -> Segment | None:
        """Return the segment the manifest names, mapped, or None (logging why) when there is none to trust."""
        self._damaged = None
        for _ in range(5):  # a merge in another process may replace the manifest and unlink its segment meanwhile
            manifest = None
            try:
                self._manifest_stat = _stat_key(self._manifest_path)
                manifest = read_manifest(self._manifest_path)
                if manifest is None:
                    return None
                if manifest.store_id != self._store.store_id:
                    raise SegmentError(f"{MANIFEST_NAME}: manifest of another store")
                return open_segment(self._segments_dir / manifest.segment, self._store.store_id, self._store.max_seq(), verify=verify)
            except SegmentError as exc:
                if isinstance(exc, SegmentMissing) and _stat_key(self._manifest_path) != self._manifest_stat:
                    continue
                self._damaged = str(exc)
                if manifest is not None:  # never go back to it: the rebuilt segment gets a later generation
                    self._seen_generation = max(self._seen_generation, manifest.generation)
                log.error("index segment not used (%s); rebuilding the index from SQLite", exc)
                return None
        return None

    def _compile_search(self) -> None:
        """Run one search so its compiled loops are built (or read from numba's cache) now, not in the first user's search.

        Built, they take seconds on this machine; read from the cache that
        the first build writes next to the package, a fraction of one.
        """
        self.search({"from": [0.0, 0.0], "to": [0.0, 0.1], "date": "2000-01-10", "facets": "all"})
        warm_up_anchored()

    def _register(self) -> ReaderMark | None:
        """Say, under ``readers/``, how far this process has refreshed; None where the directory cannot be written (nor can trips)."""
        try:
            return ReaderMark(self.path / READERS_DIR, self._index.view.seq)
        except OSError as exc:
            log.warning("%s: this process is not registered as a reader (%s); refresh=wait_for elsewhere will not wait for it", self.path, exc)
            return None

    # -- writes ---------------------------------------------------------------

    @gc_paused  # the batch's decoded trips are freed before the collector runs again
    def upsert(self, trips: Iterable[TripInput] | ParsedUpserts, refresh: Refresh = False) -> UpsertReport:
        """Store every valid trip whose version is higher than the stored one; report each by input line.

        Within one call, the highest version of an id wins; its other lines
        are ``unchanged`` (the final state is that of sending them one by
        one; a lower version sent first would have been ``stored``, then replaced).
        """
        parsed, latest = parse_upserts(trips)
        # JSON text decoded strictly is already the stored form; anything else is re-encoded.
        rows = [(w.trip.id, w.trip.version, w.raw.strip() if isinstance(w.raw, bytes) else trip_to_json(w.trip)) for w in latest.values()]
        # Held before the commit, so that a refresh in another thread that reads the commit finds them parsed;
        # those not stored (a version as high is) are dropped after it. A higher version held already stays.
        own = {tid: (w.trip, w.route) for tid, w in latest.items() if (prior := self._own.get(tid)) is None or prior[0].version < w.trip.version} if self.searchable else {}
        self._own.update(own)
        stored: set[str] = set()
        try:
            stored = set(self._store.write(rows)[0]) if rows else set()
        finally:
            for tid, held in own.items():
                if tid not in stored and self._own.get(tid) is held:
                    del self._own[tid]
        positions = {w.pos for tid, w in latest.items() if tid in stored}
        items: list[ItemResult] = []
        for pos, entry in enumerate(parsed):
            if isinstance(entry, ItemResult):
                items.append(entry)
            elif pos in positions:
                items.append(ItemResult(pos + 1, entry.id, "stored", entry.version))
            else:
                items.append(ItemResult(pos + 1, entry.id, "unchanged", entry.version, reason="a version at least as high is stored"))
        self.make_visible(refresh)
        return UpsertReport(tuple(items))

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: Refresh = False) -> DeleteReport:
        """Delete trips by id, or by (id, version) as an event stream sends them.

        A tombstone keeps the version, so a late lower version cannot bring
        the trip back. A versioned delete only applies over a lower stored
        version; it is then ``deleted`` if the trip was live, else
        ``not_found`` (the tombstone is still recorded).
        """
        wanted = delete_targets(ids)
        deleted = set(self._store.write([], wanted)[1])
        items = tuple(ItemResult(pos + 1, tid, "deleted" if tid in deleted else "not_found", version) for pos, (tid, version) in enumerate(wanted))
        self.make_visible(refresh)
        return DeleteReport(items)

    def make_visible(self, refresh: Refresh) -> None:
        """Refresh for ``refresh=True``; for ``"wait_for"``, also wait until every other process has refreshed past the write.

        The other processes are those that refresh on their own, each with a
        file under ``readers/`` saying how far it has (:mod:`.readers`). The
        wait ends once the last of them is past the write, or after
        ``WAIT_FOR_TIMEOUT_S`` (logged) when one of them is stuck.
        """
        if refresh:
            self.refresh()
        if refresh == "wait_for":
            wait_for_readers(self.path / READERS_DIR, self._store.max_seq(), WAIT_FOR_TIMEOUT_S)

    @property
    def change_feed(self) -> Store:
        """The store's change feed (``seq``, ``changes``): what the alerts follow (:mod:`tripsearch.alerts.backend`)."""
        return self._store

    # -- reads ----------------------------------------------------------------

    def get(self, trip_id: str) -> dict[str, Any]:
        """Return the stored document of a trip, or raise :class:`NotFound`."""
        doc = self._store.docs([trip_id]).get(trip_id)
        if doc is None:
            raise NotFound(trip_id)
        return orjson.loads(doc)

    def search(self, query: Query | Mapping[str, Any]) -> SearchResult:
        """Return the matching trips, ranked and paged, with facets."""
        if not self.searchable:
            raise TripSearchError(f"{self.path} was opened for writing only (search=False)")
        started = time.perf_counter()
        q = parse_query(query)
        view = self._index.view
        found = view.query_rows(q, candidate_days(q), self.anchored)
        if found.ends is not None:
            self.anchored_searches += 1
        return execute(q, found.cols, found.rows, self._store.docs, started, found.windows, ends=found.ends)

    # -- refresh --------------------------------------------------------------

    def refresh(self) -> None:
        """Apply every change acknowledged by any process since the last refresh (and move to a newer segment if there is one)."""
        if not self.searchable:
            return
        with self._refresh_lock:
            if _stat_key(self._manifest_path) != self._manifest_stat:
                segment = self._current_segment(verify=self.verify == "open")
                if segment is not None and segment.generation > self._index.view.generation:
                    self._switch(segment)
                elif self._damaged is not None:
                    self._catch_up()
                    self._rebuild_segment()
            self._catch_up()
            self._last_refresh = time.monotonic()
            if self._mark is not None:
                self._mark.publish(self._index.view.seq)
            self._maybe_merge()

    def _switch(self, segment: Segment, written_here: bool = False, starting: bool = False) -> None:
        """Publish a view of ``segment`` plus the change feed after it (the caller holds the refresh lock)."""
        index = SharedIndex(segment)
        self._catch_up(index)
        self._index = index
        self._seen_generation = max(self._seen_generation, segment.generation)
        if self.warm:
            self._warm(segment, WARM_AT_OPEN_S if starting else 0.0)
        if self.verify == "background" and not written_here:  # no need to read back what this process just wrote
            self._verifier = threading.Thread(target=self._verify_in_background, args=(segment,), name="tripsearch-verify", daemon=True)
            self._verifier.start()

    def _catch_up(self, index: SharedIndex | None = None) -> None:
        index = self._index if index is None else index
        for batch in self._store.changes(index.view.seq, self._knows):
            self._apply(batch, index)

    def _knows(self, trip_id: str, version: int) -> bool:
        own = self._own.get(trip_id)
        return own is not None and own[0].version == version

    def _apply(self, changes: list[Change], index: SharedIndex) -> SharedView:
        upserts: list[Trip] = []
        routes: list[np.ndarray | None] = []
        deletes: list[str] = []
        for change in changes:
            if change.doc is None:
                deletes.append(change.id)
                self._own.pop(change.id, None)
                continue
            own = self._own.pop(change.id, None)
            if own is not None and own[0].version == change.version:
                upserts.append(own[0])
                routes.append(own[1])
                continue
            doc: bytes | None = change.doc
            if not doc:
                # A newer local write replaced the trip we were going to reuse; read what the feed says.
                doc = self._store.docs([change.id]).get(change.id)
            if doc:
                trip, route = stored_trip_route(doc)
                upserts.append(trip)
                routes.append(route)
        return index.apply(upserts, deletes, changes[-1].seq, routes)

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self.refresh_interval):
            try:
                self.refresh()
            except Exception:  # keep serving from memory; the next tick retries
                log.exception("refresh failed")

    # -- segments -------------------------------------------------------------

    def _maybe_merge(self) -> None:
        index = self._index
        base = len(index.segment) if index.segment is not None else 0
        if self._store.read_only or index.delta_rows < max(self.merge_min_rows, self.merge_ratio * base):
            return
        try:
            self._merge()
        except OSError as exc:
            log.warning("index segment not written (%s); the delta stays in memory", exc)

    def _merge(self, force: bool = False) -> bool:
        """Write the whole index as a new segment and make it current (the caller holds the refresh lock).

        One process merges at a time; without ``force`` a process that finds
        the lock taken leaves the merge to its holder. A process that finds
        a newer segment than its own once it has the lock moves to it
        instead of writing one.
        """
        self._segments_dir.mkdir(exist_ok=True)
        with open(self._segments_dir / "merge.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if force else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            try:
                manifest = read_manifest(self._manifest_path)
            except SegmentError:
                manifest = None
            if manifest is not None and manifest.generation > self._seen_generation:
                segment = self._current_segment(verify=False)
                if segment is not None:
                    self._switch(segment)
                    return False
            generation = max([self._seen_generation, *_generations(self._segments_dir)]) + 1
            index = self._index
            view = index.view
            started = time.perf_counter()
            path = write_segment(self._segments_dir, generation, self._store.store_id, view.seq, index.segment, index.base_rows(), view.delta, self.anchors)
            write_manifest(self._manifest_path, Manifest(generation, view.seq, self._store.store_id, path.name))
            self._switch(open_segment(path, self._store.store_id, self._store.max_seq()), written_here=True)
            self._manifest_stat = _stat_key(self._manifest_path)
            # Processes that still map the files below keep them until they move on (Linux frees an unlinked file's pages then).
            for old in self._segments_dir.iterdir():
                if old.name not in (path.name, "merge.lock"):
                    old.unlink(missing_ok=True)
            for legacy in (_LEGACY_SNAPSHOT, _LEGACY_SNAPSHOT + ".lock"):
                (self.path / legacy).unlink(missing_ok=True)
            self.merges += 1
            log.info("index segment %s written: %d trips at seq %d in %.2f s", path.name, view.live_count, view.seq, time.perf_counter() - started)
            return True

    def _rebuild_segment(self) -> None:
        """Write a segment of the index this process holds, in place of a damaged one (the caller holds the refresh lock)."""
        self._catch_up()
        if self._store.read_only:
            return
        try:
            self._merge(force=True)
        except OSError as exc:
            log.warning("index segment not written (%s); the index stays in memory", exc)

    def _warm(self, segment: Segment, budget_s: float) -> None:
        """Map the segment's pages in: for up to ``budget_s`` here, the rest in a thread (see ``warm``)."""
        available = _available_memory()
        if available is not None and segment.size > available * 0.9:
            log.info("index segment %s not mapped in ahead: %d MiB, %d MiB of memory available", segment.path.name, segment.size >> 20, available >> 20)
            return
        deadline = time.monotonic() + budget_s
        reached = segment.populate(stop=lambda: time.monotonic() > deadline) if budget_s > 0 else 0
        if reached < segment.size:
            args = (segment, reached)
            self._warmer = threading.Thread(target=self._warm_in_background, args=args, name="tripsearch-warm", daemon=True)
            self._warmer.start()

    def _warm_in_background(self, segment: Segment, start: int) -> None:
        segment.populate(start, stop=lambda: self._closed.is_set() or self._index.segment is not segment)

    def _verify_in_background(self, segment: Segment) -> None:
        # Start a little after the open, so that reading the whole file does not compete with a cold start's first searches.
        if self._closed.wait(VERIFY_DELAY_S):
            return
        try:
            segment.verify(stop=self._closed)
        except SegmentError as exc:
            log.error("index segment failed verification (%s); rebuilding the index from SQLite", exc)
            with self._refresh_lock:
                if self._closed.is_set() or self._index.segment is not segment:
                    return
                self._seen_generation = max(self._seen_generation, segment.generation)
                fresh = SharedIndex()
                self._catch_up(fresh)
                self._index = fresh
                self._rebuild_segment()

    # -- housekeeping ---------------------------------------------------------

    def snapshot(self) -> int:
        """Write the whole index as a new segment now, unless it is one already; return the segment file's size in bytes (0 when opened for writing only)."""
        if not self.searchable:
            return 0
        self.refresh()
        with self._refresh_lock:
            if self._index.delta_rows or self._index.segment is None:
                self._merge(force=True)
            self._loaded_seq = self._index.view.seq
            segment = self._index.segment
            return segment.size if segment is not None else 0

    def _trip_counts(self, view: SharedView) -> dict[str, int]:
        """Return the live trips (one-off and regular) and the regular trips' occurrences, as the Elasticsearch backend counts them."""
        if not self.searchable:
            return {"trips": self._store.count()}
        trips, occurrences = view.trip_counts()
        return {"trips": trips, "occurrences": occurrences}

    def stats(self) -> dict[str, Any]:
        view = self._index.view
        parts = [view.delta.cols] + ([view.segment.cols] if view.segment is not None else [])
        memory = sum(getattr(cols, f).nbytes for cols in parts for f in ("version", "status", "seats_total", "seats_available", "price", "currency", "options", "rating", "offset_s", "vert_start", "vert_lat", "vert_lon", "stop_start", "stop_time", "stop_along", "stop_lat", "stop_lon"))
        postings = list(view.delta.segments) + ([view.segment.postings] if view.segment is not None else [])
        memory += sum(s.keys.nbytes + s.offsets.nbytes + s.rows.nbytes for s in postings)
        return {
            "backend": "embedded",
            "path": str(self.path),
            **self._trip_counts(view),
            "rows": view.rows,
            "route_points": int(sum(len(cols.vert_lat) for cols in parts)),
            "posting_segments": len(postings),
            "postings": int(sum(len(s) for s in postings)),
            "array_bytes": int(memory),
            "segment": view.segment.path.name if view.segment is not None else None,
            "segment_bytes": view.segment.size if view.segment is not None else 0,
            "anchor_entries": len(view.segment.anchored.place) if view.segment is not None and view.segment.anchored is not None else 0,
            "anchored": self.anchored_searches,
            "delta_rows": len(view.delta.cols) + len(view.killed),
            "seq": view.seq,
            "refresh_lag_s": round(time.monotonic() - self._last_refresh, 3),
            "refresh_interval_s": self.refresh_interval,
            "start_s": round(self.started_s, 3),
        }

    def close(self) -> None:
        """Stop refreshing; write a segment if this process holds many changes that are in none."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        if self._mark is not None:
            self._mark.close()
        if self._verifier is not None:
            self._verifier.join()
        if self._warmer is not None:
            self._warmer.join()
        if self.snapshot_on_close and self._index.delta_rows >= 1000 and not self._store.read_only:
            try:
                with self._refresh_lock:
                    self._merge()
            except (OSError, StoreReadOnly) as exc:
                log.warning("index segment not written: %s", exc)
        self._store.close()

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _available_memory() -> int | None:
    """Return the memory the kernel could give without swapping (``MemAvailable``: free memory and reclaimable cache), or None."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced: inode, size, modification time."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _generations(directory: Path) -> list[int]:
    out = []
    if directory.is_dir():
        for f in directory.iterdir():
            if f.name.startswith("seg-") and f.name[4:14].isdigit():
                out.append(int(f.name[4:14]))
    return out
