"""Durable storage of alerts, their postings, the match state and the match feed: one SQLite file.

Tables:

- ``alerts``: one row per saved search (owner, fields as JSON, day range);
- ``alert_terms``: each alert's fields as numbers (places, radii, days,
  filters), under the alert's *number* (``seq``, in order of creation,
  never reused), from which each process builds its
  :class:`~tripsearch.alerts.index.AlertIndex` in memory and then reads
  only the alerts created since; ``alert_drops`` numbers the deletions, so
  that index also learns which alerts are gone. Everything below names an
  alert by its number;
- ``trip_state``: the last version of each trip matched, so a late or
  replayed write never undoes a newer one;
- ``trip_alerts``: one row per trip, the numbers of the alerts it matches
  now (told), so an update that still matches does not alert twice and a
  cancellation reaches exactly the alerts that were told; written with the
  trip's state, so a trip without a state has told nobody;
- ``feed`` and ``feed_places``: the match feed (``match``, ``unmatch``,
  ``cancel``). Events are numbered by one sequence shared by every alert
  (``counters``). A ``feed`` row holds what the events of one trip write
  with the same body say, once (a match's packed, :mod:`tripsearch.alerts.bodies`;
  another's, or a match of an earlier release, as JSON text), and the numbers of their alerts: its
  ``seq`` is its first event's number, and its n alerts' events are
  ``seq`` to ``seq + n - 1`` in the order of ``alerts``. ``feed_places``
  has an entry per row and places key of its alerts (:func:`places_key`:
  the alerts of a match event share their From and To, so a match row has
  one), with the match's day. An alert's feed is read from the rows of its
  places and days, newest first, keeping those whose ``alerts`` hold it; an
  owner's, from the rows of its alerts' places. A trip that matches 76
  alerts (a popular city pair at a million alerts) writes one feed row and
  one entry, not 76 of either. A row goes when the last alert it tells
  has been expired for :data:`RETENTION` (its ``until_s``);
- ``outbox``: the webhook deliveries, one row per event of an alert with a
  webhook, written in the event's transaction (:mod:`tripsearch.alerts.delivery` sends them);
- ``feed_cursor``: how far along a trip store's change feed (by its store
  id) every change has been matched, moved in the transaction that records
  the outcomes (the embedded backend: see :mod:`tripsearch.alerts.backend`);
- ``pending``: trip writes announced but not matched yet, for a backend
  without a change feed (Elasticsearch): the journal that makes a crash
  between the trip write and the match harmless.

Several processes may share the file (WAL mode, a busy timeout); every
change is one transaction. What a trip write records (outcomes, events,
deliveries, the cursor, cleared journal entries) is committed without a
sync of its own (``synchronous=NORMAL``), since what it records can be
recorded again from the trip store: a power cut loses at most the last
such transactions, whole, and the trips they came from are then after the
cursor, or journalled, again. Everything else (alerts saved or deleted,
journal entries) is synced at its commit.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import math
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import numpy as np
import orjson
from numpy.typing import NDArray

from ..errors import AlertLimitReached, AlertNotFound, BackendUnavailable, InvalidAlert
from ..model import paused_gc
from ..query.matching import option_mask
from .bodies import day_of, said
from .checkpoints import Checkpointer
from .index import TERM_FIELDS, AlertIndex, AlertTerms
from .model import AlertSpec, expires_at, parse_alert
from .numbers import NumberSet

__all__ = ["AlertStore", "AlertRecord", "Delivery", "FeedBatch", "MatchEvent", "TripOutcome", "DEFAULT_MAX_PER_OWNER", "RETENTION", "SUMMARY_FIELDS", "WEBHOOK_FIELD", "webhook_address_refused"]

WEBHOOK_FIELD = "webhook_url"  # the one alert field that is not a search field

DEFAULT_MAX_PER_OWNER = 100
CACHE_KIB = 64 * 1024  # SQLite page cache of each connection to the store, at most
# Pages of WAL between checkpoints (SQLite's default: 1,000). A checkpoint syncs the file: rare ones keep
# the syncs off most trip writes (about 5 pages each), a bulk batch of 1,000 trips writes about 500.
CHECKPOINT_PAGES = 10_000
RETENTION = dt.timedelta(days=7)  # an expired alert (and its feed) is kept this long, then purged
SUMMARY_FIELDS = ("active", "expired", "owners", "webhooks", "events", "journalled")  # what AlertStore.summary counts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, fields BLOB NOT NULL,
    day_from INTEGER NOT NULL, day_to INTEGER NOT NULL, created_s INTEGER NOT NULL, expires_s INTEGER NOT NULL,
    webhook_url TEXT, webhook_secret TEXT
);
CREATE INDEX IF NOT EXISTS alerts_owner ON alerts (owner, created_s);
DROP TABLE IF EXISTS alert_cells;
CREATE TABLE IF NOT EXISTS alert_terms (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL UNIQUE,
    from_lat REAL NOT NULL, from_lon REAL NOT NULL, from_r REAL NOT NULL, to_lat REAL NOT NULL, to_lon REAL NOT NULL, to_r REAL NOT NULL,
    day_from INTEGER NOT NULL, day_to INTEGER NOT NULL, expires_s REAL NOT NULL, time_from INTEGER NOT NULL, time_to INTEGER NOT NULL,
    max_price REAL NOT NULL, options INTEGER NOT NULL, min_rating REAL NOT NULL, seats INTEGER NOT NULL, hooked INTEGER NOT NULL DEFAULT 0,
    places INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alert_drops (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trip_state (trip_id TEXT PRIMARY KEY, version INTEGER NOT NULL, live INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trip_alerts (trip_id TEXT PRIMARY KEY, told BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed (
    seq INTEGER PRIMARY KEY, trip_id TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, at_s REAL NOT NULL,
    body BLOB NOT NULL, alerts BLOB NOT NULL, until_s REAL NOT NULL DEFAULT 0, places BLOB NOT NULL DEFAULT x''
);
CREATE INDEX IF NOT EXISTS feed_trip ON feed (trip_id);
CREATE TABLE IF NOT EXISTS feed_places (places INTEGER NOT NULL, seq INTEGER NOT NULL, day INTEGER, PRIMARY KEY (places, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO counters VALUES ('event', 1);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, alert INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, first_s REAL NOT NULL,
    next_s REAL NOT NULL, lease_s REAL NOT NULL, done_s REAL, last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_alert ON outbox (alert, state, seq);
CREATE TABLE IF NOT EXISTS pending (trip_id TEXT PRIMARY KEY, version INTEGER, since_s REAL NOT NULL, token TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_cursor (store_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert: its id, owner, what it looks for, when it was made, and its number in the store."""

    id: str
    owner: str
    spec: AlertSpec
    created: dt.datetime
    expires: dt.datetime
    number: int  # the store's name for it (what TripOutcome.matches and the feed use); never shown
    webhook: dict[str, Any] | None = None  # url and delivery state; the secret only right after creation

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        out = {
            "id": self.id,
            "owner": self.owner,
            **self.spec.to_dict(),
            "created_at": _iso(self.created),
            "expires_at": _iso(self.expires),
            "status": "expired" if self.expired(now) else "active",
        }
        if self.webhook is not None:
            out["webhook"] = self.webhook
        return out


@dataclass(frozen=True)
class MatchEvent:
    """One entry of an alert's match feed."""

    seq: int
    alert_id: str
    owner: str
    trip_id: str
    version: int
    kind: str  # match, unmatch, cancel
    at: float
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "alert_id": self.alert_id, "trip_id": self.trip_id, "version": self.version, "kind": self.kind, "at": _iso(_utc(self.at)), **self.body}


@dataclass(frozen=True)
class Delivery:
    """A webhook POST to make: the event, where to, with which secret, and how many tries it took so far."""

    event: MatchEvent
    url: str
    secret: str
    attempts: int
    first_s: float


@dataclass(frozen=True)
class TripOutcome:
    """What a trip write means for alerts: the trip's version, whether it is live, and the alerts it matches now.

    ``matches`` holds the alerts it matches now in groups, each with what
    the group's match events say (day, pickup, dropoff; packed, as
    :mod:`tripsearch.alerts.bodies` says) and its alerts' numbers (:attr:`AlertRecord.number`); an alert is in one group at most.
    ``status`` is the trip's status, or ``deleted``. A deletion of unknown
    version (``version`` None) applies over whatever is recorded.
    """

    trip_id: str
    version: int | None
    status: str
    matches: list[tuple[bytes, NDArray[np.int64]]]

    def matched(self) -> NDArray[np.int64]:
        """Return the numbers of the alerts it matches now."""
        return np.concatenate([alerts for _, alerts in self.matches]) if self.matches else _NO_ALERTS


class AlertStore:
    """Alerts and their feeds in one SQLite file, shared by every process of a deployment."""

    def __init__(
        self, path: str | Path, max_per_owner: int = DEFAULT_MAX_PER_OWNER, clock: Callable[[], float] = time.time, busy_timeout_s: float = 30.0, readonly: bool = False,
        index: AlertIndex | None = None, background_checkpoints: bool = False,
    ) -> None:  # fmt: skip
        """Open (or create) the store at ``path``; ``readonly`` opens an existing one to read, changing nothing (what operators' commands use).

        ``index``: the alerts index of this file read already (by the process this one was forked from), brought up to date from there.
        ``background_checkpoints``: the WAL that this process's unsynced commits write is checkpointed in a thread
        (:class:`~tripsearch.alerts.checkpoints.Checkpointer`), not in the commit that takes it past :data:`CHECKPOINT_PAGES`.
        """
        self.path = Path(path)
        self.max_per_owner = max_per_owner
        self.clock = clock
        self.readonly = readonly
        self._local = threading.local()
        self._busy_timeout_s = busy_timeout_s
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._index = AlertIndex() if index is None else index
        self._checkpointer: Checkpointer | None = None
        try:
            if readonly:
                if not self.path.is_file():
                    raise BackendUnavailable(f"no alert store at {self.path}")
                if _has_table(self._db(), "events") or _has_table(self._db(), "feed_alert") or "places" not in _columns(self._db(), "alert_terms"):
                    raise BackendUnavailable(f"the alert store {self.path} was written by an earlier release: a writer (tripsearch serve, worker or index) converts it when it opens it")
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db().executescript(_SCHEMA)  # idempotent; executescript commits on its own
            self._upgrade()
            if background_checkpoints:  # the WAL can start over 2 x CHECKPOINT_PAGES on (see Checkpointer)
                self._checkpointer = Checkpointer(self.path, 2 * CHECKPOINT_PAGES)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"the alert store {self.path} cannot be opened ({exc})") from None

    def _upgrade(self) -> None:
        """Bring a file of an earlier release up to date; each step is checked again in its transaction (another process may have taken it)."""
        db = self._db()
        if "hooked" not in _columns(db, "alert_terms"):  # before the compact feed: which alerts have a webhook, among the terms
            with self._write() as db:
                if "hooked" not in _columns(db, "alert_terms"):
                    db.execute("ALTER TABLE alert_terms ADD COLUMN hooked INTEGER NOT NULL DEFAULT 0")
                    db.execute("UPDATE alert_terms SET hooked = 1 WHERE alert_id IN (SELECT id FROM alerts WHERE webhook_url IS NOT NULL)")
        if "places" not in _columns(db, "alert_terms"):  # before the feed entries by places: each alert's places key
            with self._write() as db:
                if "places" not in _columns(db, "alert_terms"):
                    db.execute("ALTER TABLE alert_terms ADD COLUMN places INTEGER NOT NULL DEFAULT 0")
                    seq, *disks = np.array(db.execute(f"SELECT seq, {', '.join(_PLACES_FIELDS)} FROM alert_terms").fetchall(), dtype=np.float64).reshape(-1, 7).T
                    db.executemany("UPDATE alert_terms SET places = ? WHERE seq = ?", zip(places_key(*disks).tolist(), seq.astype(np.int64).tolist()))
                if "cluster" in _columns(db, "alert_terms"):  # what the release before keyed its entries by
                    db.execute("ALTER TABLE alert_terms DROP COLUMN cluster")
        if "until_s" not in _columns(db, "feed"):
            with self._write() as db:
                if "until_s" not in _columns(db, "feed"):
                    db.execute("ALTER TABLE feed ADD COLUMN until_s REAL NOT NULL DEFAULT 0")
                    db.execute("ALTER TABLE feed ADD COLUMN places BLOB NOT NULL DEFAULT x''")
        missing = "SELECT id, fields, expires_s, webhook_url IS NOT NULL FROM alerts WHERE id NOT IN (SELECT alert_id FROM alert_terms)"
        if db.execute(missing).fetchone() is not None:  # the first release: no terms at all
            with self._write() as db:
                db.executemany(_INSERT_TERMS, [(i, *_terms(parse_alert(orjson.loads(f)), e, hooked)) for i, f, e, hooked in db.execute(missing).fetchall()])
        if _has_table(db, "events"):  # before the compact feed: a row per event
            with self._write() as db:
                if _has_table(db, "events"):
                    _move_rows_feed(db)
        if _has_table(db, "feed_alert"):  # before the feed entries by places: an entry per event (and alert)
            with self._write() as db:
                if _has_table(db, "feed_alert"):
                    _index_feed_rows(db)
                    db.execute("DROP TABLE feed_alert")
        db.execute("CREATE INDEX IF NOT EXISTS feed_until ON feed (until_s)")

    # -- connections ----------------------------------------------------------

    def _db(self, durable: bool = True) -> sqlite3.Connection:
        """This thread's connection: one whose commits are synced (``durable``), and one whose commits wait for a checkpoint."""
        name = "db" if durable or self.readonly else "db_unsynced"
        db: sqlite3.Connection | None = getattr(self._local, name, None)
        if db is None:
            if self.readonly:
                db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
            else:
                db = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")  # NORMAL: the WAL is synced at checkpoints
                db.execute(f"PRAGMA wal_autocheckpoint={0 if self._checkpointer is not None and not durable else CHECKPOINT_PAGES}")
            # the feed and its entries by places take each batch's rows at many places: with SQLite's 2 MB default,
            # a million alerts' feed no longer fits and inserts read pages back (a cap, allocated only as used)
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            setattr(self._local, name, db)
            with self._lock:
                self._connections.append(db)
        return db

    def _write(self, durable: bool = True) -> _Transaction:
        return _Transaction(self._db(durable), None if durable else self._checkpointer)

    def now(self) -> dt.datetime:
        return _utc(self.clock())

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- alerts ---------------------------------------------------------------

    def create(self, owner: str, fields: Any, max_per_owner: int | None = None, private_webhooks: bool = False) -> AlertRecord:
        """Store an alert for ``owner``; raise :class:`InvalidAlert` or :class:`AlertLimitReached`.

        ``fields`` may hold ``webhook_url`` (http or https): every event of
        the alert is then also POSTed there, signed with a secret that only
        this call returns (``webhook.secret``). Its host must resolve to
        public addresses only, unless ``private_webhooks`` (see
        :func:`webhook_address_refused`). ``max_per_owner`` overrides the
        store's limit of active alerts per owner.
        """
        limit = self.max_per_owner if max_per_owner is None else max_per_owner
        if not owner:
            raise InvalidAlert("owner", "is required (the sub of the caller's token)")
        now = self.now()
        if isinstance(fields, dict) and WEBHOOK_FIELD in fields:
            fields = dict(fields)
            url = _webhook_url(fields.pop(WEBHOOK_FIELD), private_webhooks)
        else:
            url = None
        spec = parse_alert(fields, now=now)
        secret = "whsec_" + secrets.token_urlsafe(24) if url else None
        webhook = {"url": url, "secret": secret} if url else None
        record = AlertRecord(uuid.uuid4().hex, owner, spec, now, expires_at(spec), 0, webhook)
        with self._write() as db:
            self._purge(db, now)
            active = db.execute("SELECT count(*) FROM alerts WHERE owner = ? AND expires_s > ?", (owner, now.timestamp())).fetchone()[0]
            if active >= limit:
                raise AlertLimitReached(limit)
            db.execute(
                "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, owner, orjson.dumps(spec.to_dict()), spec.day_from, spec.day_to, int(now.timestamp()), int(record.expires.timestamp()), url, secret),
            )
            number = db.execute(_INSERT_TERMS, (record.id, *_terms(spec, record.expires.timestamp(), url is not None))).lastrowid
        assert number is not None  # the row just inserted
        return replace(record, number=number)

    def import_alerts(self, alerts: Iterable[tuple[str, Any]]) -> list[str]:
        """Store many (owner, fields) alerts in one transaction, with no per-owner limit and no webhook; return their ids.

        For operators moving alerts in and for benchmarks: the fields are
        checked as :meth:`create` checks them.
        """
        now = self.now()
        rows = []
        for owner, fields in alerts:
            if not owner:
                raise InvalidAlert("owner", "is required")
            spec = parse_alert(fields, now=now)
            rows.append((uuid.uuid4().hex, owner, spec, expires_at(spec).timestamp()))
        with self._write() as db:
            db.executemany(
                "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [(i, o, orjson.dumps(spec.to_dict()), spec.day_from, spec.day_to, int(now.timestamp()), int(e)) for i, o, spec, e in rows],
            )
            keys = places_key(*np.array([_disks(spec) for _, _, spec, _ in rows], dtype=np.float64).reshape(-1, 6).T).tolist()
            db.executemany(_INSERT_TERMS, [(i, *_terms(spec, e, False, key)) for (i, _, spec, e), key in zip(rows, keys)])
        return [r[0] for r in rows]

    def owner_alerts(self, owner: str) -> list[AlertRecord]:
        """Return the owner's alerts, newest first."""
        db = self._db()
        rows = db.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner = ? ORDER BY created_s DESC, id", (owner,)).fetchall()
        return [_record(db, row) for row in rows]

    def get(self, owner: str, alert_id: str) -> AlertRecord:
        """Return one of the owner's alerts, or raise :class:`AlertNotFound` (also for another owner's)."""
        db = self._db()
        row = db.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ? AND owner = ?", (alert_id, owner)).fetchone()
        if row is None:
            raise AlertNotFound(alert_id)
        return _record(db, row)

    def delete(self, owner: str, alert_id: str) -> None:
        """Delete one of the owner's alerts, its postings and webhook deliveries; its feed can no longer be read (:func:`_drop`)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM alerts WHERE id = ? AND owner = ?", (alert_id, owner)).fetchone() is None:
                raise AlertNotFound(alert_id)
            _drop(db, [alert_id])

    def count(self) -> int:
        """Return the number of active alerts."""
        return int(self._db().execute("SELECT count(*) FROM alerts WHERE expires_s > ?", (self.clock(),)).fetchone()[0])

    def summary(self, unfollowed: int = 0) -> dict[str, int]:
        """Return what an operator counts (:data:`SUMMARY_FIELDS`): active and expired alerts, their owners, webhooks, events so far, trip writes journalled and not matched yet.

        ``unfollowed``: the changes of a trip store's feed after its cursor (:meth:`feed_cursor`), counted with the journalled writes.
        """
        db = self._db()
        active, expired, owners, webhooks = db.execute(
            "SELECT coalesce(sum(expires_s > ?), 0), coalesce(sum(expires_s <= ?), 0), count(DISTINCT owner), count(webhook_url) FROM alerts", (self.clock(), self.clock())
        ).fetchone()
        pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
        return dict(zip(SUMMARY_FIELDS, (active, expired, owners, webhooks, self.last_seq(), pending + unfollowed), strict=True))

    def _purge(self, db: sqlite3.Connection, now: dt.datetime) -> None:
        """Delete the alerts expired for :data:`RETENTION`, and the feed rows whose alerts all are."""
        cutoff = (now - RETENTION).timestamp()
        gone = [r[0] for r in db.execute("SELECT id FROM alerts WHERE expires_s <= ?", (cutoff,))]
        if gone:
            _drop(db, gone)
        rows = db.execute("SELECT seq, places FROM feed WHERE until_s <= ?", (cutoff,)).fetchall()
        db.executemany("DELETE FROM feed_places WHERE places = ? AND seq = ?", [(key, seq) for seq, keys in rows for key in _numbers(keys)])
        db.executemany("DELETE FROM feed WHERE seq = ?", [(seq,) for seq, _ in rows])

    # -- matching -------------------------------------------------------------

    def index(self) -> AlertIndex:
        """Return the alerts index of this process, brought up to date with the alerts created and deleted since it last looked."""
        index = self._index
        with index.lock:
            db = self._db()
            rows = db.execute(f"SELECT {', '.join(TERM_FIELDS)} FROM alert_terms WHERE seq > ? ORDER BY seq", (index.last_seq,)).fetchall()
            drops = db.execute("SELECT seq, alert_seq FROM alert_drops WHERE seq > ? ORDER BY seq", (index.last_drop,)).fetchall()
            if rows or drops:
                index.update(AlertTerms.from_rows(rows), np.array([d[1] for d in drops], dtype=np.int64))
                index.last_drop = max([index.last_drop, *(d[0] for d in drops)])
        return index

    def has_alerts(self) -> bool:
        """Return whether any alert exists (else a trip write needs no matching: nobody is left to tell)."""
        db = self._db()
        return db.execute("SELECT 1 FROM alerts LIMIT 1").fetchone() is not None

    def announce(self, writes: Iterable[tuple[str, int | None]]) -> str:
        """Journal trip writes about to happen, so that a crash before :meth:`record` leaves them to replay; return the writer's token.

        An entry already journalled (a writer that died, or one still at
        work) is kept as it is: only :meth:`record` or a replay clears it,
        never the :meth:`settle` of a write that turned out ``unchanged``
        (the retry of a write whose writer died before matching it).
        """
        now = self.clock()
        token = uuid.uuid4().hex
        with self._write() as db:
            db.executemany("INSERT OR IGNORE INTO pending VALUES (?, ?, ?, ?)", [(tid, version, now, token) for tid, version in writes])
        return token

    def pending(self, older_than_s: float = 0.0) -> list[tuple[str, int | None]]:
        """Return journalled writes not matched yet (announced at least ``older_than_s`` ago)."""
        rows = self._db().execute("SELECT trip_id, version FROM pending WHERE since_s <= ? ORDER BY since_s", (self.clock() - older_than_s,))
        return [(tid, version) for tid, version in rows]

    def settle(self, trip_ids: Iterable[str], token: str | None = None) -> None:
        """Forget journalled writes that turned out to change nothing (only those ``token`` announced, when given)."""
        with self._write() as db:
            _settle(db, trip_ids, token)

    def record(self, outcomes: Sequence[TripOutcome], unchanged: Iterable[str] = (), token: str | None = None, again: bool = False) -> int:
        """Apply trip outcomes in one transaction: new matches, matches lost, cancellations; return the number of events written.

        An outcome older than the recorded version of its trip changes
        nothing, and one at the same version only if it is a deletion (so a
        replay is harmless) or ``again`` (a trip matched again as stored
        now, against alerts saved since: what was told is not told twice).
        Each outcome also clears the trip's journal entry, unless that entry
        announced a higher version. ``unchanged`` are settled in the same
        transaction (see :meth:`settle`).
        """
        index = self.index()  # brought up to date before the write lock: building or merging it can take seconds
        with self._write(durable=False) as db:
            return self._record(db, index, outcomes, unchanged, token, again)

    @contextmanager
    def following(self, store_id: str) -> Iterator[FeedBatch]:
        """Hold the store's write lock across a write to the trip store ``store_id`` names, to record what it changed and move its cursor (:class:`FeedBatch`).

        Every writer of that trip store that matches holds this lock from
        before its trip write until its outcomes are recorded, so a change
        after the cursor that the holder did not make itself is one whose
        writer died before recording it (or one written without alerts).
        """
        index = self.index()  # as in record: before the lock
        with self._write(durable=False) as db:
            yield FeedBatch(self, db, index, store_id)

    def start_cursor(self, store_id: str, seq: int) -> None:
        """Start the cursor of the trip store ``store_id`` names at ``seq``, unless it has started (synced: a follower process reads it)."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO feed_cursor VALUES (?, ?)", (store_id, seq))

    def feed_cursor(self, store_id: str) -> int | None:
        """Return how far along the change feed of the trip store ``store_id`` every change is matched (None: not followed yet)."""
        if self.readonly and not _has_table(self._db(), "feed_cursor"):  # a file of an earlier release, read only (a writer's open creates the table)
            return None
        row = self._db().execute("SELECT seq FROM feed_cursor WHERE store_id = ?", (store_id,)).fetchone()
        return None if row is None else int(row[0])

    def _record(self, db: sqlite3.Connection, index: AlertIndex, outcomes: Sequence[TripOutcome], unchanged: Iterable[str], token: str | None, again: bool) -> int:
        now = self.clock()
        ids = orjson.dumps(sorted({out.trip_id for out in outcomes}))
        with paused_gc():  # a tuple or two per group of matches, none in a cycle
            _settle(db, unchanged, token)
            # what is recorded of these trips, read at once; kept up to date below as outcomes apply in order
            states = {t: (v, live) for t, v, live in db.execute("SELECT trip_id, version, live FROM trip_state WHERE trip_id IN (SELECT value FROM json_each(?))", (ids,))}
            # a trip that told alerts has a state (both are written in one transaction): a load's new trips are not looked up again
            told = {t: np.frombuffer(blob, dtype=np.int64) for t, blob in db.execute("SELECT trip_id, told FROM trip_alerts WHERE trip_id IN (SELECT value FROM json_each(?))", (orjson.dumps(sorted(states)),))} if states else {}
            # an alert deleted since it matched, or expired, is left out (and told nothing more)
            matched = np.concatenate([_NO_ALERTS, *(a for out in outcomes for _, a in out.matches)])
            alive = _alive(db, index, np.concatenate([matched, *told.values()]), now)
            all_alive = bool(alive.has(matched).all())  # as when nothing was deleted since the matcher looked: no need to ask per group
            cleared, new_states, retold = [], {}, set()
            feed: list[tuple[str, int, str, bytes | dict[str, Any], NDArray[np.int64]]] = []  # (trip, version, kind, body, alerts): the events, in order
            for out in outcomes:
                state = states.get(out.trip_id)
                live = out.status != "deleted"
                version = out.version if out.version is not None else (state[0] if state else 0)
                # a journal entry of a higher version is another writer's, still to be matched (or replayed)
                cleared.append((out.trip_id, version if out.version is not None else 2**63 - 1))
                if state is not None and (version < state[0] or (version == state[0] and not again and (live or not state[1]))):
                    continue
                before = told.get(out.trip_id, _NO_ALERTS)
                if state is None and out.version is None and not len(before):
                    continue  # a trip never matched, gone: nothing to tell, and no state that would hide its first write
                if len(before):
                    still = NumberSet(np.sort(out.matched())).has(before)
                    gone, before = before[~still], before[still]
                    told_before = NumberSet(np.sort(before))
                    new = [(body, alerts[alive.has(alerts) & ~told_before.has(alerts)]) for body, alerts in out.matches]
                else:  # nobody told yet (a new trip): most outcomes of a load
                    gone = _NO_ALERTS
                    new = out.matches if all_alive else [(body, alerts[alive.has(alerts)]) for body, alerts in out.matches]
                new = [(body, alerts) for body, alerts in new if len(alerts)]
                feed.extend((out.trip_id, version, "match", body, alerts) for body, alerts in new)
                if len(gone) and len(told_gone := gone[alive.has(gone)]):
                    kind = "cancel" if out.status in ("cancelled", "deleted") else "unmatch"
                    feed.append((out.trip_id, version, kind, {"reason": out.status if kind == "cancel" else _unmatch_reason(out.status)}, told_gone))
                if new or len(gone):
                    told[out.trip_id] = np.concatenate([before, *(alerts for _, alerts in new)])
                    retold.add(out.trip_id)
                states[out.trip_id] = new_states[out.trip_id] = (version, live)
            # each trip's told alerts as they end, one row a trip
            db.executemany("DELETE FROM trip_alerts WHERE trip_id = ?", [(t,) for t in retold if not len(told[t])])
            db.executemany("INSERT OR REPLACE INTO trip_alerts VALUES (?, ?)", [(t, told[t].tobytes()) for t in retold if len(told[t])])
            if db.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None:  # a journal is kept only without a change feed
                db.executemany("DELETE FROM pending WHERE trip_id = ? AND (version IS NULL OR version <= ?)", cleared)
            db.executemany("INSERT OR REPLACE INTO trip_state VALUES (?, ?, ?)", [(t, v, int(live)) for t, (v, live) in new_states.items()])
            return _append_feed(db, feed, now, alive)

    # -- webhook deliveries ---------------------------------------------------

    def claim_deliveries(self, lease_s: float, limit: int = 20) -> list[Delivery]:
        """Return due webhook deliveries, each the oldest undelivered event of its alert, leased for ``lease_s`` to this caller.

        One event per alert at a time keeps each alert's events in order;
        the lease keeps other processes from sending the same one meanwhile.
        """
        now = self.clock()
        with self._write() as db:
            rows = db.execute(
                f"""SELECT d.seq, d.attempts, d.first_s, a.webhook_url, a.webhook_secret,
                          t.alert_id, a.owner, f.trip_id, f.version, f.kind, f.at_s, f.body
                   FROM outbox d JOIN alert_terms t ON t.seq = d.alert JOIN alerts a ON a.id = t.alert_id JOIN feed f ON f.seq = {_FEED_ROW.format("d.seq")}
                   WHERE d.state = 'pending' AND d.next_s <= ? AND d.lease_s <= ?
                     AND d.seq = (SELECT min(seq) FROM outbox WHERE alert = d.alert AND state = 'pending')
                   ORDER BY d.seq LIMIT ?""",
                (now, now, limit),
            ).fetchall()
            db.executemany("UPDATE outbox SET lease_s = ? WHERE seq = ?", [(now + lease_s, row[0]) for row in rows])
        return [Delivery(event, row[3], row[4], row[1], row[2]) for row, event in zip(rows, _match_events([(row[0], *row[5:]) for row in rows]))]

    def delivered(self, seq: int) -> None:
        """Mark a webhook delivery done."""
        with self._write() as db:
            db.execute("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, done_s = ?, lease_s = 0, last_error = NULL WHERE seq = ?", (self.clock(), seq))

    def delivery_failed(self, seq: int, error: str, retry_at: float | None) -> None:
        """Record a failed attempt: retry at ``retry_at``, or give up (None)."""
        with self._write() as db:
            if retry_at is None:
                db.execute("UPDATE outbox SET state = 'failed', attempts = attempts + 1, done_s = ?, lease_s = 0, last_error = ? WHERE seq = ?", (self.clock(), error[:500], seq))
            else:
                db.execute("UPDATE outbox SET attempts = attempts + 1, next_s = ?, lease_s = 0, last_error = ? WHERE seq = ?", (retry_at, error[:500], seq))

    # -- feeds ----------------------------------------------------------------

    def matches(self, owner: str, alert_id: str, cursor: str | None = None, limit: int = 50) -> tuple[list[MatchEvent], str | None]:
        """Return a page of the alert's feed, newest first, and the cursor of the next page (None at the end).

        The rows of the alert's places (``feed_places``) are read newest
        first, those of other days than the alert's left out by their
        entries; each row tells the alert or not (its ``alerts``).
        """
        alert = self.get(owner, alert_id)
        before = _decode_cursor(cursor) if cursor else 2**63 - 1
        db = self._db()
        terms = db.execute("SELECT places, day_from, day_to FROM alert_terms WHERE seq = ?", (alert.number,)).fetchone()
        events: list[tuple[Any, ...]] = []
        bound = before
        while terms is not None and len(events) <= limit:
            rows = db.execute(
                """SELECT f.seq, f.trip_id, f.version, f.kind, f.at_s, f.body, f.alerts FROM feed_places e JOIN feed f ON f.seq = e.seq
                   WHERE e.places = ? AND e.seq < ? AND (e.day IS NULL OR e.day BETWEEN ? AND ?) ORDER BY e.seq DESC LIMIT ?""",
                (terms[0], bound, terms[1], terms[2], _ROWS_A_READ),
            ).fetchall()
            for seq, *rest, alerts in rows:
                told = np.flatnonzero(np.frombuffer(alerts, dtype=np.int64) == alert.number)
                if len(told) and seq + int(told[0]) < before:  # an event at or after the cursor was on an earlier page
                    events.append((seq + int(told[0]), alert_id, owner, *rest))
            if len(rows) < _ROWS_A_READ:
                break
            bound = rows[-1][0]
        page = _match_events(events[:limit])
        return page, (_encode_cursor(page[-1].seq) if len(events) > limit and page else None)

    def owner_events(self, owner: str, after_seq: int, limit: int = 500) -> list[MatchEvent]:
        """Return the owner's events after ``after_seq``, oldest first (for a stream that resumes)."""
        db = self._db()
        terms = db.execute("SELECT t.seq, t.alert_id, t.places FROM alerts a JOIN alert_terms t ON t.alert_id = a.id WHERE a.owner = ?", (owner,)).fetchall()
        if not terms:
            return []
        mine = {number: alert_id for number, alert_id, _ in terms}
        keys = orjson.dumps(sorted({key for *_, key in terms}))
        # from the row that holds event after_seq + 1: its later events may be the owner's
        start = db.execute("SELECT coalesce(max(seq), 0) FROM feed WHERE seq <= ?", (after_seq + 1,)).fetchone()[0]
        events: list[tuple[Any, ...]] = []
        while len(events) < limit:
            rows = db.execute(
                """SELECT DISTINCT f.seq, f.trip_id, f.version, f.kind, f.at_s, f.body, f.alerts FROM feed_places e JOIN feed f ON f.seq = e.seq
                   WHERE e.places IN (SELECT value FROM json_each(?)) AND e.seq >= ? ORDER BY f.seq LIMIT ?""",
                (keys, start, _ROWS_A_READ),
            ).fetchall()
            for seq, *rest, alerts in rows:
                events.extend((seq + at, mine[alert], owner, *rest) for at, alert in enumerate(_numbers(alerts)) if alert in mine and seq + at > after_seq)
            if len(rows) < _ROWS_A_READ:
                break
            start = rows[-1][0] + 1
        return _match_events(events[:limit])

    def last_seq(self) -> int:
        """Return the number of the latest event (0 before the first)."""
        return _next_event(self._db()) - 1

    def trip_events(self, trip_id: str) -> list[MatchEvent]:
        """Return every event about a trip of an alert that still exists, oldest first (for operators and tests)."""
        db = self._db()
        rows = db.execute("SELECT seq, trip_id, version, kind, at_s, body, alerts FROM feed WHERE trip_id = ? ORDER BY seq", (trip_id,)).fetchall()
        named = _names(db, {a for row in rows for a in _numbers(row[-1])})
        return _match_events([(seq + i, *named[alert], *rest) for seq, *rest, alerts in rows for i, alert in enumerate(_numbers(alerts)) if alert in named])

    def matched_pairs(self) -> set[tuple[str, str]]:
        """Return every (alert id, trip id) that matches now."""
        db = self._db()
        told = [(t, _numbers(blob)) for t, blob in db.execute("SELECT trip_id, told FROM trip_alerts")]
        named = _names(db, {a for _, alerts in told for a in alerts})
        return {(named[a][0], t) for t, alerts in told for a in alerts if a in named}


class FeedBatch:
    """The open transaction of :meth:`AlertStore.following`: record outcomes, read and move the cursor of one trip store's change feed."""

    def __init__(self, store: AlertStore, db: sqlite3.Connection, index: AlertIndex, store_id: str) -> None:
        self.store, self.db, self.index, self.store_id = store, db, index, store_id

    @property
    def cursor(self) -> int | None:
        """How far along the feed every change is matched; None before the first write followed."""
        row = self.db.execute("SELECT seq FROM feed_cursor WHERE store_id = ?", (self.store_id,)).fetchone()
        return None if row is None else int(row[0])

    def move(self, seq: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO feed_cursor VALUES (?, ?)", (self.store_id, seq))

    def record(self, outcomes: Sequence[TripOutcome], again: bool = False) -> int:
        """:meth:`AlertStore.record` in this transaction."""
        return self.store._record(self.db, self.index, outcomes, (), None, again)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``), with SQLite's errors translated, and the WAL checkpointed by ``checkpointer`` if given."""

    def __init__(self, db: sqlite3.Connection, checkpointer: Checkpointer | None = None) -> None:
        self.db, self.checkpointer = db, checkpointer

    def __enter__(self) -> sqlite3.Connection:
        try:
            if self.checkpointer is not None:
                self.checkpointer.before_write(self.db)
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise BackendUnavailable(f"the alert store is busy or unavailable ({exc})") from None
        return self.db

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
                if self.checkpointer is not None:
                    self.checkpointer.committed()
                return
            except sqlite3.Error as error:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise BackendUnavailable(f"the alert store could not commit ({error})") from None
        self.db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise BackendUnavailable(f"the alert store failed ({exc})") from None


def _settle(db: sqlite3.Connection, trip_ids: Iterable[str], token: str | None) -> None:
    if token is None:
        db.executemany("DELETE FROM pending WHERE trip_id = ?", [(tid,) for tid in trip_ids])
    else:
        db.executemany("DELETE FROM pending WHERE trip_id = ? AND token = ?", [(tid, token) for tid in trip_ids])


def _drop(db: sqlite3.Connection, ids: list[str]) -> None:
    """Delete alerts, their terms and outbox rows; their events are read no more (a feed row goes when the last alert it tells expires, :meth:`AlertStore._purge`)."""
    numbers = [n for (n,) in db.execute("SELECT seq FROM alert_terms WHERE alert_id IN (SELECT value FROM json_each(?))", (orjson.dumps(ids),))]
    listed = orjson.dumps(numbers)
    db.executemany("INSERT INTO alert_drops (alert_seq) VALUES (?)", [(n,) for n in numbers])
    for table, column in (("outbox", "alert"), ("alert_terms", "seq")):
        db.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))", (listed,))
    db.execute("DELETE FROM alerts WHERE id IN (SELECT value FROM json_each(?))", (orjson.dumps(ids),))
    # trip_alerts and feed rows may still name them: a number is never reused, and what is not alive is left out where it is read


_INSERT_TERMS = f"INSERT INTO alert_terms (alert_id, {', '.join(TERM_FIELDS[1:])}) VALUES ({', '.join('?' * len(TERM_FIELDS))})"


def _terms(spec: AlertSpec, expires_s: float, hooked: bool, places: int | None = None) -> tuple[Any, ...]:
    """Return an alert's :data:`~tripsearch.alerts.index.TERM_FIELDS` but ``seq``, as :func:`~tripsearch.core.kernels.filter_failures` reads the search's.

    ``places``: :func:`places_key` of its places, when the caller has it already (a batch computes them at once).
    """
    q = spec.query
    disks = _disks(spec)
    return (
        *disks, spec.day_from, spec.day_to, expires_s,
        0 if q.time_from is None else q.time_from, 24 * 60 - 1 if q.time_to is None else q.time_to,
        math.inf if q.max_price is None else float(q.max_price), option_mask(q.options),
        -math.inf if q.min_rating is None else float(q.min_rating), q.seats, int(hooked),
        int(places_key(*disks)) if places is None else places,
    )  # fmt: skip


_PLACES_FIELDS = ("from_lat", "from_lon", "from_r", "to_lat", "to_lon", "to_r")  # what places_key reads, in its order


def _disks(spec: AlertSpec) -> tuple[float, ...]:
    q = spec.query
    return (*q.from_point, q.from_radius_km, *q.to_point, q.to_radius_km)


def places_key(from_lat: Any, from_lon: Any, from_r: Any, to_lat: Any, to_lon: Any, to_r: Any) -> NDArray[np.int64]:
    """Return the key of alerts' From and To disks (centres in degrees and radii in km; scalars or arrays): a hash of the six numbers, below 2^52.

    Alerts between the same places with the same radii share it, and so
    the feed rows that tell them (``feed_places``). It decides where an
    alert's events are looked for, never whether one is its: a feed row
    tells the alerts its ``alerts`` list. Below 2^52, it survives the
    float64 columns of :class:`~tripsearch.alerts.index.AlertTerms`.
    """
    words = [np.atleast_1d(np.asarray(v, dtype=np.float64)).view(np.uint64) for v in (from_lat, from_lon, from_r, to_lat, to_lon, to_r)]
    key = np.full(words[0].shape, 0xCBF29CE484222325, dtype=np.uint64)
    for word in words:
        key = (key ^ word) * np.uint64(0x9E3779B97F4A7C15)
        key ^= key >> np.uint64(31)
    return (key >> np.uint64(12)).astype(np.int64).reshape(np.shape(from_lat))


_ROWS_A_READ = 200  # feed rows a read of an alert's or an owner's feed takes at a time

# the feed row that holds event number {} (its first event's number is the largest at or below it)
_FEED_ROW = "(SELECT max(seq) FROM feed WHERE seq <= {})"
_NO_ALERTS = np.zeros(0, dtype=np.int64)


def _numbers(blob: bytes) -> list[int]:
    """Return the alert numbers of a ``feed.alerts`` or ``trip_alerts.told`` blob (int64, native order)."""
    return array("q", blob).tolist()


def _blob(numbers: Iterable[int]) -> bytes:
    """Return the blob of alert numbers that :func:`_numbers` reads."""
    return array("q", numbers).tobytes()


_ALIVE_FIELDS = ("hooked", "places", "expires_s", "day_from", "day_to")  # what a transaction reads of the alerts it tells


class _Alive:
    """The alerts that exist and have not expired, among those a transaction looks at."""

    def __init__(self, numbers: NDArray[np.int64], fields: dict[str, NDArray[Any]]) -> None:
        self._set = NumberSet(numbers)
        self.fields = fields  # their _ALIVE_FIELDS

    @property
    def numbers(self) -> NDArray[np.int64]:
        """Their numbers, sorted."""
        return self._set.numbers

    def has(self, numbers: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Return which alerts of ``numbers`` are among them."""
        return self._set.has(numbers)

    def of(self, numbers: NDArray[np.int64]) -> dict[str, NDArray[Any]]:
        """Return the fields of each alert of ``numbers`` (each among them)."""
        at = self._set.index(numbers)
        return {name: column[at] for name, column in self.fields.items()}


def _alive(db: sqlite3.Connection, index: AlertIndex, numbers: NDArray[np.int64], now: float) -> _Alive:
    """Return the alerts of ``numbers`` that exist and have not expired at ``now``, with what the feed needs of them (:data:`_ALIVE_FIELDS`).

    ``index`` answers for the alerts it has read (the store's, brought up to
    date just before the caller's transaction); in the transaction, the
    deletions since it last looked are taken out and the alerts saved since
    are read.
    """
    last_seq, last_drop = index.last_seq, index.last_drop  # before asking it: it may only know more
    alive, fields = index.alive(numbers, now, _ALIVE_FIELDS)
    if len(newer := np.unique(numbers[numbers > last_seq])):
        rows = db.execute(
            f"SELECT seq, {', '.join(_ALIVE_FIELDS)} FROM alert_terms WHERE expires_s > ? AND seq IN (SELECT value FROM json_each(?))",
            (now, orjson.dumps(newer, option=orjson.OPT_SERIALIZE_NUMPY)),
        ).fetchall()
        if rows:
            alive = np.concatenate((alive, np.array([r[0] for r in rows], dtype=np.int64)))
            fields = {name: np.concatenate((fields[name], np.array([r[i] for r in rows], dtype=fields[name].dtype))) for i, name in enumerate(_ALIVE_FIELDS, 1)}
            alive, first = np.unique(alive, return_index=True)  # the index may have read some of them meanwhile
            fields = {name: column[first] for name, column in fields.items()}
    dropped = np.array(db.execute("SELECT alert_seq FROM alert_drops WHERE seq > ?", (last_drop,)).fetchall(), dtype=np.int64).reshape(-1)
    if len(dropped):
        keep = ~np.isin(alive, dropped)
        alive, fields = alive[keep], {name: column[keep] for name, column in fields.items()}
    return _Alive(alive, fields)


def _names(db: sqlite3.Connection, numbers: set[int]) -> dict[int, tuple[str, str]]:
    """Return the id and owner of each alert of ``numbers`` that exists."""
    if not numbers:
        return {}
    rows = db.execute(
        "SELECT t.seq, t.alert_id, a.owner FROM alert_terms t JOIN alerts a ON a.id = t.alert_id WHERE t.seq IN (SELECT value FROM json_each(?))",
        (orjson.dumps(sorted(numbers)),),
    )
    return {n: (alert_id, owner) for n, alert_id, owner in rows}


def _next_event(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM counters WHERE name = 'event'").fetchone()[0])


def _append_feed(db: sqlite3.Connection, feed: list[tuple[str, int, str, bytes | dict[str, Any], NDArray[np.int64]]], now: float, alive: _Alive) -> int:
    """Append (trip, version, kind, body, alerts) rows to the feed, numbering their events, with the outbox rows of the alerts that have a webhook; return how many events.

    A match's body is packed (:mod:`tripsearch.alerts.bodies`) and stored as
    it is; another's is a dict, stored as JSON.

    Every alert of the rows is among ``alive``. Each row gets a
    ``feed_places`` entry per places key of its alerts (one, for a match:
    the alerts of a body share their places), with the day of a match when
    every alert of the row takes that day (so a read of an alert's feed
    skips the rows of days outside its own), and ``until_s``, when the last
    of its alerts expires (:meth:`AlertStore._purge`).
    """
    if not feed:
        return 0
    first = seq = _next_event(db)
    # every event's alert, in the order of their numbers: the events of a row are numbered one after the other
    counts = [len(alerts) for *_, alerts in feed]
    told = np.concatenate([alerts for *_, alerts in feed])
    starts = np.cumsum([0, *counts[:-1]])
    of = alive.of(told)
    places = of["places"]
    until = np.maximum.reduceat(of["expires_s"], starts).tolist()
    day_from, day_to = np.maximum.reduceat(of["day_from"], starts).tolist(), np.minimum.reduceat(of["day_to"], starts).tolist()
    rows: list[tuple[Any, ...]] = []
    entries: list[tuple[int, int, int | None]] = []
    outbox: list[tuple[int, int, float, float]] = []
    uniform = np.logical_and.reduceat(places == np.repeat(places[starts], counts), starts).tolist()  # rows whose alerts share one places key
    hooked = of["hooked"] != 0
    some_hooked = bool(hooked.any())
    # the rows' blobs (int64, as _numbers reads them) cut from two whole ones, and a row of one places key takes its first
    told_blob, place_blob, first_key = told.astype(np.int64, copy=False).tobytes(), places.astype(np.int64, copy=False).tobytes(), places[starts].tolist()
    for i, (trip_id, version, kind, body, alerts) in enumerate(feed):
        at, count = seq - first, counts[i]
        if uniform[i]:
            keys, key_blob = [first_key[i]], place_blob[8 * at : 8 * at + 8]
        else:
            distinct = np.unique(places[at : at + count])
            keys, key_blob = distinct.tolist(), distinct.astype(np.int64, copy=False).tobytes()
        day = None
        if isinstance(body, bytes):  # a match
            day = day_of(body)
            day = day if day_from[i] <= day <= day_to[i] else None
        rows.append((seq, trip_id, version, kind, now, body if isinstance(body, bytes) else orjson.dumps(body), told_blob[8 * at : 8 * (at + count)], until[i], key_blob))
        entries.extend((key, seq, day) for key in keys)
        if some_hooked:
            outbox.extend((seq + j, int(told[at + j]), now, now) for j in np.flatnonzero(hooked[at : at + count]).tolist())
        seq += count
    db.executemany("INSERT INTO feed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    entries.sort(key=lambda e: e[:2])  # in key order: the B-tree's pages visited once each
    db.executemany("INSERT INTO feed_places VALUES (?, ?, ?)", entries)
    # the webhook outbox rows commit with the events, so a delivery cannot be lost between them
    db.executemany("INSERT INTO outbox VALUES (?, ?, 'pending', 0, ?, ?, 0, NULL, NULL)", outbox)
    db.execute("UPDATE counters SET value = ? WHERE name = 'event'", (seq,))
    return seq - first


def _index_feed_rows(db: sqlite3.Connection) -> None:
    """Give every feed row that has none its ``until_s``, its places and their ``feed_places`` entries, in the caller's transaction; such a row that tells no alert any more goes.

    For a file of an earlier release, whose ``feed_alert`` had an entry per
    event. Its rows' entries get no day: a read of an alert's feed looks at
    them whatever its days. The rows of this release are left as they are
    (a process of the earlier release still running makes ``feed_alert``
    again, and the next open comes here again).
    """
    terms = np.array(db.execute("SELECT seq, places, expires_s FROM alert_terms ORDER BY seq").fetchall(), dtype=np.float64).reshape(-1, 3)
    numbers, places, expires = NumberSet(terms[:, 0].astype(np.int64)), terms[:, 1].astype(np.int64), terms[:, 2]
    updates: list[tuple[float, bytes, int]] = []
    entries: list[tuple[int, int]] = []
    gone: list[tuple[int]] = []
    for seq, blob in db.execute("SELECT seq, alerts FROM feed WHERE places = x''"):  # a row at a time (rows change only after)
        alerts = np.frombuffer(blob, dtype=np.int64)
        at = numbers.index(alerts)
        known = at[at >= 0]
        if not len(known):
            gone.append((seq,))
            continue
        keys = np.unique(places[known])
        updates.append((float(expires[known].max()), keys.tobytes(), seq))
        entries.extend((key, seq) for key in keys.tolist())
    db.executemany("UPDATE feed SET until_s = ?, places = ? WHERE seq = ?", updates)
    db.executemany("DELETE FROM feed WHERE seq = ?", gone)
    db.executemany("INSERT INTO feed_places VALUES (?, ?, NULL)", sorted(entries))


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _move_rows_feed(db: sqlite3.Connection) -> None:
    """Move a feed of one row per event (``events``, ``alert_trips``, ``deliveries``, by alert id) into the compact feed, in the caller's transaction.

    In SQL, row by row: a file of millions of events is not read into
    memory. A process of the earlier release still running would recreate
    those tables and number its events from 1 again: such events, found at
    a later open, are numbered after the events already here, and its
    alerts' webhooks marked among the terms.
    """
    db.create_function("int64s", 1, lambda n: _blob([n]), deterministic=True)
    db.create_aggregate("int64_list", 1, _Int64List)  # type: ignore[arg-type]  # typeshed has finalize return int; SQLite takes bytes
    db.execute("UPDATE alert_terms SET hooked = 1 WHERE hooked = 0 AND alert_id IN (SELECT id FROM alerts WHERE webhook_url IS NOT NULL)")
    first, last = db.execute("SELECT min(seq), max(seq) FROM events").fetchone()
    counted = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    shift = 0 if first is None or db.execute("SELECT 1 FROM feed LIMIT 1").fetchone() is None else max(0, _next_event(db) - first)
    events = "FROM events e JOIN alert_terms t ON t.alert_id = e.alert_id"  # the events of alerts that exist
    db.execute(f"INSERT INTO feed SELECT e.seq + ?, e.trip_id, e.version, e.kind, e.at_s, e.body, int64s(t.seq), t.expires_s, int64s(t.places) {events}", (shift,))
    db.execute(f"INSERT INTO feed_places SELECT t.places, e.seq + ?, NULL {events}", (shift,))
    db.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'event'", (max(last or 0, counted[0] if counted else 0) + shift + 1,))
    db.execute("INSERT OR REPLACE INTO trip_alerts SELECT a.trip_id, int64_list(t.seq) FROM alert_trips a JOIN alert_terms t ON t.alert_id = a.alert_id GROUP BY a.trip_id")
    # that release wrote a trip's state with its matches; made sure of here, as _record reads the told alerts of trips with a state only
    db.execute("INSERT OR IGNORE INTO trip_state SELECT trip_id, max(version), 1 FROM alert_trips GROUP BY trip_id")
    db.execute(
        "INSERT INTO outbox SELECT d.seq + ?, t.seq, d.state, d.attempts, d.first_s, d.next_s, d.lease_s, d.done_s, d.last_error FROM deliveries d JOIN alert_terms t ON t.alert_id = d.alert_id",
        (shift,),
    )
    for table in ("events", "alert_trips", "deliveries"):
        db.execute(f"DROP TABLE {table}")


class _Int64List:
    """SQLite aggregate: the numbers of a group as one blob (:func:`_blob`)."""

    def __init__(self) -> None:
        self.numbers: list[int] = []

    def step(self, number: int) -> None:
        self.numbers.append(number)

    def finalize(self) -> bytes:
        return _blob(self.numbers)


def _webhook_url(value: Any, private: bool) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise InvalidAlert(WEBHOOK_FIELD, "must be a URL of at most 2000 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidAlert(WEBHOOK_FIELD, f"must be an http or https URL with a host, got {value[:60]!r}")
    refused = None if private else webhook_address_refused(value)
    if refused:
        raise InvalidAlert(WEBHOOK_FIELD, refused)
    return value


def webhook_address_refused(url: str) -> str | None:
    """Return why a webhook may not be sent to ``url`` (its host resolves to a non-public address, or not at all), or None.

    Loopback, private (RFC 1918, unique local), link-local (cloud metadata
    at 169.254.169.254), shared, reserved, multicast and unspecified
    addresses are refused, so an alert cannot make the server call into its
    own network (server-side request forgery).

    >>> webhook_address_refused("http://169.254.169.254/latest/meta-data")
    'its host 169.254.169.254 is a link-local address; webhooks go to public addresses only'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        return f"its host {host!r} cannot be resolved ({exc})"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
            if getattr(address, f"is_{kind}"):
                return f"its host {host} is a {kind.replace('_', '-')} address; webhooks go to public addresses only"
        if not address.is_global:
            return f"its host {host} is not a public address; webhooks go to public addresses only"
    return None


def _webhook_state(db: sqlite3.Connection, alert: int, url: str) -> dict[str, Any]:
    """Return what GET shows of an alert's webhook: the URL and how its deliveries fare (never the secret)."""
    counts = dict(db.execute("SELECT state, count(*) FROM outbox WHERE alert = ? GROUP BY state", (alert,)).fetchall())
    failure = db.execute("SELECT seq, done_s, last_error FROM outbox WHERE alert = ? AND state = 'failed' ORDER BY seq DESC LIMIT 1", (alert,)).fetchone()
    retrying = db.execute(
        "SELECT attempts, last_error FROM outbox WHERE alert = ? AND state = 'pending' AND attempts > 0 ORDER BY seq LIMIT 1", (alert,)
    ).fetchone()
    state: dict[str, Any] = {
        "url": url,
        "delivered": counts.get("delivered", 0),
        "pending": counts.get("pending", 0),
        "failed": counts.get("failed", 0),
        "status": "failing" if retrying else ("failed" if failure else "ok"),
    }
    if retrying:
        state["retrying"] = {"attempts": retrying[0], "last_error": retrying[1]}
    if failure:
        state["last_failure"] = {"seq": failure[0], "gave_up_at": _iso(_utc(failure[1])), "error": failure[2]}
    return state


def _unmatch_reason(status: str) -> str:
    return "full" if status == "full" else "changed"


_ALERT_COLUMNS = "id, owner, fields, created_s, expires_s, (SELECT seq FROM alert_terms WHERE alert_id = id), webhook_url"


def _record(db: sqlite3.Connection, row: tuple[Any, ...]) -> AlertRecord:
    alert_id, owner, fields, created_s, expires_s, number, url = row
    webhook = _webhook_state(db, number, url) if url else None
    return AlertRecord(alert_id, owner, parse_alert(orjson.loads(fields)), _utc(created_s), _utc(expires_s), number, webhook)


def _match_events(rows: Sequence[tuple[Any, ...]]) -> list[MatchEvent]:
    """Return the events of (seq, alert id, owner, trip id, version, kind, at_s, body) rows, their bodies said at once."""
    return [MatchEvent(seq, alert_id, owner, trip_id, version, kind, at_s, body) for (seq, alert_id, owner, trip_id, version, kind, at_s, _), body in zip(rows, said([row[-1] for row in rows]))]


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"before": seq})).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["before"]
    except (ValueError, KeyError, TypeError):
        raise InvalidAlert("cursor", "is not a cursor of this feed") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAlert("cursor", "is not a cursor of this feed")
    return value

