"""The durable store of the embedded backend: SQLite in WAL mode.

SQLite is the source of truth. Each row is the latest state of one trip:
its version, its document (normalised JSON) or a tombstone after a delete,
and ``seq``, a number that grows with every write across all processes.
Readers follow the change feed ``seq > last_seen`` to refresh their
in-memory index, which is how several processes over one data directory see
each other's writes.

Writes are serialised by SQLite (``BEGIN IMMEDIATE``), so ``seq`` is
assigned in commit order and a reader never sees a later change before an
earlier one. ``synchronous=FULL``: an acknowledged write survives a crash
of the process and of the machine.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, NamedTuple

from ...errors import BackendUnavailable, StoreReadOnly
from ...model import tombstone_version

__all__ = ["Store", "StoredRow", "Change"]


def _read_only_fs(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trips (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc BLOB
);
CREATE INDEX IF NOT EXISTS trips_seq ON trips (seq);
"""
_CHUNK = 500  # ids per IN (...) lookup, under SQLite's parameter limit
# A write of this many trips or more (a bulk load's batch) runs with a page cache of _BULK_CACHE_KIB.
_BULK_ROWS = 1000
_BULK_CACHE_KIB = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoredRow:
    version: int
    deleted: bool


class Change(NamedTuple):
    """A change of the feed (a tuple: a catch-up makes one per trip changed)."""

    id: str
    version: int
    seq: int
    doc: bytes | None  # None for a delete


class Store:
    """One SQLite database file, shared by every process that opens the data directory."""

    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        # A store on a read-only file system still serves reads; writes then fail with StoreReadOnly.
        self.read_only = not os.access(path.parent, os.W_OK) or _read_only_fs(path.parent)
        with self._translate("open the store"):
            conn = self._conn()
            if not self.read_only:
                conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            if row is None:
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
                row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            self.store_id: str = row[0]

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not be shared across threads.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.read_only:
                # immutable: SQLite reads the file as it is, without the WAL's shared memory it cannot create here
                conn = sqlite3.connect(f"{self.path.as_uri()}?immutable=1", uri=True, isolation_level=None, check_same_thread=True)
                self._local.conn = conn
                return conn
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
        return conn

    class _translate:
        """Turn SQLite's errors into the project's: a full or read-only disk refuses writes, nothing else is lost."""

        def __init__(self, action: str) -> None:
            self.action = action

        def __enter__(self) -> None:
            return None

        def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
            if exc is None or not isinstance(exc, sqlite3.Error):
                return None
            message = str(exc)
            lowered = message.lower()
            if "readonly" in lowered or "read-only" in lowered or "full" in lowered or "disk i/o" in lowered:
                raise StoreReadOnly(f"cannot {self.action}: the data directory refuses writes ({message})", retry_after=5.0) from None
            if "locked" in lowered or "busy" in lowered:
                raise BackendUnavailable(f"cannot {self.action}: the store is busy ({message})", retry_after=1.0) from None
            raise BackendUnavailable(f"cannot {self.action}: {message}") from None

    def write(self, upserts: list[tuple[str, int, bytes]], deletes: Iterable[tuple[str, int | None]] = ()) -> tuple[list[str], list[str]]:
        """Apply a batch in one transaction; return (ids stored, ids deleted).

        An upsert is applied only if its version is higher than the stored
        one, checked inside the transaction so concurrent writers cannot
        interleave. A delete leaves a tombstone that keeps a version, so a
        late lower version cannot bring the trip back
        (:func:`~tripsearch.model.tombstone_version` says which version).
        """
        deletes = list(deletes)
        if self.read_only:
            raise StoreReadOnly(f"cannot write trips: the data directory {self.path.parent} is read-only", retry_after=30.0)
        conn = self._conn()
        with self._translate("write trips"), self._bulk_cache(conn, len(upserts) >= _BULK_ROWS):
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._versions_in(conn, [u[0] for u in upserts] + [d[0] for d in deletes])
                seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM trips").fetchone()[0]
                rows = []
                stored = []
                for tid, version, doc in upserts:
                    old = current.get(tid)
                    if old is not None and version <= old.version:
                        continue
                    seq += 1
                    rows.append((tid, version, seq, doc))
                    current[tid] = StoredRow(version, False)
                    stored.append(tid)
                conn.executemany(
                    "INSERT INTO trips (id, version, seq, deleted, doc) VALUES (?, ?, ?, 0, ?) "
                    "ON CONFLICT (id) DO UPDATE SET version = excluded.version, seq = excluded.seq, deleted = 0, doc = excluded.doc",
                    rows,
                )
                deleted = []
                for tid, wanted in deletes:
                    old = current.get(tid)
                    tombstone = tombstone_version(None if old is None else (old.version, old.deleted), wanted)
                    if tombstone is None:
                        continue
                    seq += 1
                    conn.execute(
                        "INSERT INTO trips (id, version, seq, deleted, doc) VALUES (?, ?, ?, 1, NULL) "
                        "ON CONFLICT (id) DO UPDATE SET version = excluded.version, seq = excluded.seq, deleted = 1, doc = NULL",
                        (tid, tombstone, seq),
                    )
                    was_live = old is not None and not old.deleted
                    current[tid] = StoredRow(tombstone, True)
                    if was_live:
                        deleted.append(tid)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return stored, deleted

    @staticmethod
    @contextmanager
    def _bulk_cache(conn: sqlite3.Connection, bulk: bool) -> Iterator[None]:
        """Give a large write a page cache that holds the B-tree pages it touches; the connection's usual cache after."""
        if not bulk:
            yield
            return
        usual = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute(f"PRAGMA cache_size = {-_BULK_CACHE_KIB}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA cache_size = {int(usual)}")

    @staticmethod
    def _versions_in(conn: sqlite3.Connection, ids: list[str]) -> dict[str, StoredRow]:
        out: dict[str, StoredRow] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for tid, version, deleted in conn.execute(f"SELECT id, version, deleted FROM trips WHERE id IN ({marks})", chunk):
                out[tid] = StoredRow(version, bool(deleted))
        return out

    def docs(self, ids: list[str]) -> dict[str, bytes]:
        """Return the documents of live trips by id."""
        conn = self._conn()
        out: dict[str, bytes] = {}
        with self._translate("read trips"):
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for tid, doc in conn.execute(f"SELECT id, doc FROM trips WHERE deleted = 0 AND id IN ({marks})", chunk):
                    out[tid] = doc
        return out

    def max_seq(self) -> int:
        with self._translate("read the change feed"):
            return int(self._conn().execute("SELECT COALESCE(MAX(seq), 0) FROM trips").fetchone()[0])

    def count_after(self, seq: int) -> int:
        """Return how many changes the feed holds after ``seq``."""
        with self._translate("read the change feed"):
            return int(self._conn().execute("SELECT COUNT(*) FROM trips WHERE seq > ?", (seq,)).fetchone()[0])

    def count(self) -> int:
        with self._translate("count trips"):
            return int(self._conn().execute("SELECT COUNT(*) FROM trips WHERE deleted = 0").fetchone()[0])

    def changes(self, after_seq: int, known: Callable[[str, int], bool] | None = None, batch: int = 20_000) -> Iterator[list[Change]]:
        """Yield, in seq order and in batches, every change with ``seq > after_seq``.

        Documents the caller already holds (``known(id, version)`` is true) are
        not read again; their ``doc`` is ``b""``. Each batch is read in one
        transaction, so versions and documents agree.
        """
        conn = self._conn()
        last = after_seq
        while True:
            with self._translate("read the change feed"):
                conn.execute("BEGIN")
                try:
                    if known is None:  # every document: read with the changes
                        rows = conn.execute("SELECT id, version, seq, deleted, doc FROM trips WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)).fetchall()
                        docs = {tid: doc for tid, _, _, deleted, doc in rows if not deleted}
                    else:
                        rows = conn.execute("SELECT id, version, seq, deleted, NULL FROM trips WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)).fetchall()
                        wanted = [tid for tid, version, _, deleted, _ in rows if not deleted and not known(tid, version)]
                        docs = {}
                        for i in range(0, len(wanted), _CHUNK):
                            chunk = wanted[i : i + _CHUNK]
                            docs.update(conn.execute(f"SELECT id, doc FROM trips WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
                finally:
                    conn.execute("COMMIT")
            if not rows:
                return
            yield [Change(tid, version, seq, None if deleted else docs.get(tid, b"")) for tid, version, seq, deleted, _ in rows]
            last = rows[-1][2]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
