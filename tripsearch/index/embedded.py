"""The embedded backend: SQLite for durability, numpy and H3 postings in memory for search.

Open a data directory with :class:`EmbeddedBackend` (or ``tripsearch.open``).
Several processes may open the same directory: writes go to SQLite, and each
process follows SQLite's change feed every ``refresh_interval`` seconds (and
on :meth:`EmbeddedBackend.refresh`), as an Elasticsearch refresh does.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import msgspec
import numpy as np
import orjson

from ..backend import DeleteReport, ItemResult, SearchResult, TripInput, UpsertReport, delete_targets, parse_upserts
from ..errors import NotFound, StoreReadOnly
from ..model import Trip, trip_to_json
from ..query.execute import candidate_days, execute
from ..query.matching import Windows
from ..query.model import Query, parse_query
from .memory import IndexView, MemoryIndex
from .snapshot import SnapshotError, read_snapshot, snapshot_seq, write_snapshot
from .store import Change, Store

__all__ = ["EmbeddedBackend", "DB_NAME", "SNAPSHOT_NAME"]

log = logging.getLogger("tripsearch")

DB_NAME = "trips.sqlite"
SNAPSHOT_NAME = "index.snapshot"
_trip_decoder = msgspec.json.Decoder(Trip)


class EmbeddedBackend:
    """A trip search engine over one data directory."""

    def __init__(self, path: str | Path, refresh_interval: float = 1.0, snapshot_on_close: bool = True, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.refresh_interval = refresh_interval
        self.snapshot_on_close = snapshot_on_close
        # how long a write waits for another process's write lock before BackendUnavailable ("the store is busy")
        self._store = Store(self.path / DB_NAME, busy_timeout_s=busy_timeout_s)
        self._index = MemoryIndex()
        self._refresh_lock = threading.Lock()
        self._own: dict[str, tuple[Trip, np.ndarray]] = {}  # trips this process just wrote (and their routes), to skip reading them again
        self._loaded_seq = 0
        self._last_refresh = time.monotonic()
        self.started_s = self._load()
        self._compile_search()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if refresh_interval > 0:
            self._thread = threading.Thread(target=self._refresh_loop, name="tripsearch-refresh", daemon=True)
            self._thread.start()

    # -- start-up -------------------------------------------------------------

    def _load(self) -> float:
        started = time.perf_counter()
        snapshot = self.path / SNAPSHOT_NAME
        try:
            seq, cols, alive, segment = read_snapshot(snapshot, self._store.store_id, self._store.max_seq())
        except SnapshotError as exc:
            if snapshot.exists():
                log.warning("snapshot %s not used (%s); rebuilding the index from SQLite", snapshot, exc)
        else:
            self._index.load(cols, alive, segment, seq)
        self._loaded_seq = self._index.view.seq
        self.refresh()
        return time.perf_counter() - started

    def _compile_search(self) -> None:
        """Run one search so its compiled loops are built (or read from numba's cache) now, not in the first user's search.

        Built, they take seconds on this machine; read from the cache that
        the first build writes next to the package, a fraction of one.
        """
        self.search({"from": [0.0, 0.0], "to": [0.0, 0.1], "date": "2000-01-10", "facets": "all"})

    # -- writes ---------------------------------------------------------------

    def upsert(self, trips: Iterable[TripInput], refresh: bool = False) -> UpsertReport:
        """Store every valid trip whose version is higher than the stored one; report each by input line.

        Within one call, the highest version of an id wins; its other lines
        are ``unchanged`` (the final state is that of sending them one by
        one; a lower version sent first would have been ``stored``, then replaced).
        """
        parsed, latest = parse_upserts(trips)
        # JSON text decoded strictly is already the stored form; anything else is re-encoded.
        rows = [(w.trip.id, w.trip.version, w.raw.strip() if isinstance(w.raw, bytes) else trip_to_json(w.trip)) for w in latest.values()]
        stored = set(self._store.write(rows)[0]) if rows else set()
        routes = {w.pos: w.route for tid, w in latest.items() if tid in stored}
        items: list[ItemResult] = []
        for pos, entry in enumerate(parsed):
            if isinstance(entry, ItemResult):
                items.append(entry)
            elif pos in routes:
                self._own[entry.id] = (entry, routes[pos])
                items.append(ItemResult(pos + 1, entry.id, "stored", entry.version))
            else:
                items.append(ItemResult(pos + 1, entry.id, "unchanged", entry.version, reason="a version at least as high is stored"))
        if refresh:
            self.refresh()
        return UpsertReport(tuple(items))

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: bool = False) -> DeleteReport:
        """Delete trips by id, or by (id, version) as an event stream sends them.

        A tombstone keeps the version, so a late lower version cannot bring
        the trip back. A versioned delete only applies over a lower stored
        version; it is then ``deleted`` if the trip was live, else
        ``not_found`` (the tombstone is still recorded).
        """
        wanted = delete_targets(ids)
        deleted = set(self._store.write([], wanted)[1])
        items = tuple(ItemResult(pos + 1, tid, "deleted" if tid in deleted else "not_found", version) for pos, (tid, version) in enumerate(wanted))
        if refresh:
            self.refresh()
        return DeleteReport(items)

    # -- reads ----------------------------------------------------------------

    def get(self, trip_id: str) -> dict[str, Any]:
        """Return the stored document of a trip, or raise :class:`NotFound`."""
        doc = self._store.docs([trip_id]).get(trip_id)
        if doc is None:
            raise NotFound(trip_id)
        return orjson.loads(doc)

    def search(self, query: Query | Mapping[str, Any]) -> SearchResult:
        """Return the matching trips, ranked and paged, with facets."""
        started = time.perf_counter()
        q = parse_query(query)
        view = self._index.view
        found = view.candidates(q.from_point, q.from_radius_km, q.to_point, q.to_radius_km, candidate_days(q))
        return execute(q, view.cols, found.rows, self._store.docs, started, Windows(*found[1:]))

    # -- refresh --------------------------------------------------------------

    def refresh(self) -> None:
        """Apply every change acknowledged by any process since the last refresh."""
        with self._refresh_lock:
            view = self._index.view
            for batch in self._store.changes(view.seq, self._knows):
                self._apply(batch)
            self._last_refresh = time.monotonic()

    def _knows(self, trip_id: str, version: int) -> bool:
        own = self._own.get(trip_id)
        return own is not None and own[0].version == version

    def _apply(self, changes: list[Change]) -> IndexView:
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
                upserts.append(_trip_decoder.decode(doc))
                routes.append(None)
        return self._index.apply(upserts, deletes, changes[-1].seq, routes)

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self.refresh_interval):
            try:
                self.refresh()
            except Exception:  # keep serving from memory; the next tick retries
                log.exception("refresh failed")

    # -- housekeeping ---------------------------------------------------------

    def snapshot(self) -> int:
        """Write the snapshot file now (one process at a time); return its size in bytes."""
        self.refresh()
        lock_path = self.path / (SNAPSHOT_NAME + ".lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            view = self._index.view
            if snapshot_seq(self.path / SNAPSHOT_NAME) >= view.seq:
                # another process (a sibling worker) already saved this state or a later one
                self._loaded_seq = view.seq
                return (self.path / SNAPSHOT_NAME).stat().st_size
            segment = self._index.compacted_segment()
            size = write_snapshot(self.path / SNAPSHOT_NAME, self._store.store_id, view.seq, view.cols, view.alive, segment)
        self._loaded_seq = view.seq
        return size

    def stats(self) -> dict[str, Any]:
        view = self._index.view
        cols = view.cols
        memory = sum(getattr(cols, f).nbytes for f in ("version", "status", "seats_total", "seats_available", "price", "currency", "options", "rating", "offset_s", "vert_start", "vert_lat", "vert_lon", "stop_start", "stop_time", "stop_along", "stop_lat", "stop_lon"))
        memory += sum(s.keys.nbytes + s.offsets.nbytes + s.rows.nbytes for s in view.segments)
        return {
            "backend": "embedded",
            "path": str(self.path),
            "trips": view.live_count,
            "rows": len(cols),
            "route_points": int(len(cols.vert_lat)),
            "posting_segments": len(view.segments),
            "postings": int(sum(len(s) for s in view.segments)),
            "array_bytes": int(memory),
            "seq": view.seq,
            "refresh_lag_s": round(time.monotonic() - self._last_refresh, 3),
            "refresh_interval_s": self.refresh_interval,
            "start_s": round(self.started_s, 3),
        }

    def close(self) -> None:
        """Stop refreshing; write a snapshot if this process saw many changes since the last one."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        if self.snapshot_on_close and self._index.view.seq - self._loaded_seq >= 1000:
            try:
                self.snapshot()
            except (OSError, StoreReadOnly) as exc:
                log.warning("snapshot not written: %s", exc)
        self._store.close()

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

