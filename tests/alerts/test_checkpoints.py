"""The alert store's WAL checkpointed in a thread (the follower's): the commits do not checkpoint, the WAL starts over, nothing is lost."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from tests.api.support import REYKJAVIK, SELFOSS, make_trip
from tripsearch.alerts import AlertStore, match_trips
from tripsearch.alerts.checkpoints import Checkpointer
from tripsearch.model import parse_trip

def _wait(until: float, checkpointer: Checkpointer, count: int) -> None:
    while checkpointer.checkpoints < count:
        assert time.monotonic() < until, "the thread did not checkpoint"
        time.sleep(0.001)


def test_a_wal_checkpointed_in_part_starts_over_at_the_writers_next_transaction(tmp_path: Path) -> None:
    path = tmp_path / "file.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # the commits checkpoint nothing: the thread does
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, blob BLOB)")
    checkpointer: Checkpointer | None = None
    deadline = time.monotonic() + 30

    def write(numbers: range) -> None:
        if checkpointer is not None:
            checkpointer.before_write(db)
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(n, bytes(3000)) for n in numbers])  # a page a row
        db.execute("COMMIT")
        if checkpointer is not None:
            checkpointer.committed()

    write(range(0, 40))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (40,)  # reads the WAL as it is now: what comes after cannot be checkpointed
    checkpointer = Checkpointer(path, restart_pages=64, every_s=0.0)
    write(range(40, 80))
    _wait(deadline, checkpointer, 1)
    assert checkpointer.pages >= 80  # longer than restart_pages, and not all checkpointed: the thread waits for the writer
    reader.execute("COMMIT")
    write(range(80, 81))  # checkpoints the rest first, then starts the WAL over
    _wait(deadline, checkpointer, 2)
    assert checkpointer.pages < 10, f"the WAL has {checkpointer.pages} pages: it did not start over"
    checkpointer.close()
    db.close()
    assert sqlite3.connect(path).execute("SELECT count(*), sum(length(blob)) FROM t").fetchone() == (81, 81 * 3000)


def test_a_store_with_background_checkpoints_checkpoints_in_its_thread_and_keeps_what_it_recorded(tmp_path: Path) -> None:
    when = dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc).timestamp()
    store = AlertStore(tmp_path / "alerts.sqlite", clock=lambda: when, background_checkpoints=True)
    assert store._db(durable=False).execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    assert store._db(durable=True).execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 0  # synced writes as ever
    alert = store.create("u-1", {"from": list(REYKJAVIK), "to": list(SELFOSS), "date_from": "2027-03-01", "date_to": "2027-03-02"})
    trips = [parse_trip(make_trip(f"t-{i}")) for i in range(3)]
    for trip in trips:
        store.record(match_trips(store, [trip]))  # committed without a sync, then checkpointed by the thread
    checkpointer = store._checkpointer
    assert checkpointer is not None
    _wait(time.monotonic() + 60, checkpointer, 1)
    store.close()
    again = AlertStore(tmp_path / "alerts.sqlite", clock=lambda: when)
    assert again.matched_pairs() == {(alert.id, trip.id) for trip in trips}
