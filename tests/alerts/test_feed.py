"""The compact match feed: one row per trip write and body, shared by the alerts it tells; and a feed of the older layout moved into it."""

from __future__ import annotations

import datetime as dt
import sqlite3
from array import array
from pathlib import Path

import numpy as np
import orjson
import pytest

import tripsearch
from tests.alerts.test_store import ALERT, Clock
from tests.api.support import make_trip
from tripsearch.alerts import AlertStore
from tripsearch.alerts.index import AlertIndex
from tripsearch.alerts.store import _FEED_ALERT, _alive, _index_events, place_cluster
from tripsearch.errors import BackendUnavailable

# The feed's tables before the compact feed: a row per event and per (alert, trip) told, and the outbox by alert id.
ROWS_FEED = """
CREATE TABLE alert_trips (alert_id TEXT NOT NULL, trip_id TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (alert_id, trip_id)) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, owner TEXT NOT NULL, trip_id TEXT NOT NULL,
    version INTEGER NOT NULL, kind TEXT NOT NULL, at_s REAL NOT NULL, body BLOB NOT NULL
);
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, first_s REAL NOT NULL,
    next_s REAL NOT NULL, lease_s REAL NOT NULL, done_s REAL, last_error TEXT
);
"""


def _feed_rows(path: Path) -> list[tuple[int, str, list[int]]]:
    with sqlite3.connect(path) as db:
        return [(seq, trip, array("q", alerts).tolist()) for seq, trip, alerts in db.execute("SELECT seq, trip_id, alerts FROM feed ORDER BY seq")]


def test_alerts_told_by_one_write_share_a_feed_row_until_the_last_of_them_is_deleted(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite", clock=Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc)))
    first, second = store.create("u-1", ALERT), store.create("u-2", ALERT)
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([make_trip("t-1")])
        [(row, trip, alerts)] = _feed_rows(store.path)
        assert trip == "t-1" and alerts == [first.number, second.number]
        events = store.trip_events("t-1")
        assert [(e.seq, e.alert_id, e.owner, e.kind) for e in events] == [(row, first.id, "u-1", "match"), (row + 1, second.id, "u-2", "match")]
        assert events[0].body == events[1].body and store.last_seq() == row + 1
        assert store.matches("u-2", second.id) == ([events[1]], None) and store.owner_events("u-1", 0) == [events[0]]

        store.delete("u-1", first.id)
        assert _feed_rows(store.path) == [(row, "t-1", [first.number, second.number])], "the row still tells the second alert"
        assert store.trip_events("t-1") == [events[1]] and store.matched_pairs() == {(second.id, "t-1")}
        engine.upsert([{**make_trip("t-1", 2), "status": "full"}])  # full: the second alert is told, the deleted one is not
        assert [(e.alert_id, e.kind, e.body) for e in store.trip_events("t-1")] == [(second.id, "match", events[1].body), (second.id, "unmatch", {"reason": "full"})]
        store.delete("u-2", second.id)
        assert _feed_rows(store.path) == [] and store.matched_pairs() == set()
        assert not store.has_alerts(), "with no alert left, writes need no matching"


def test_a_feed_of_one_row_per_event_is_moved_into_the_compact_feed_when_the_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(path, clock=clock)
    hooked = store.create("u-1", {**ALERT, "webhook_url": "http://localhost:9/hook"}, private_webhooks=True)
    plain = store.create("u-2", ALERT)
    store.close()
    body = {"date": "2027-03-01", "score": 1.0}
    with sqlite3.connect(path) as db:  # the file as the release before wrote it
        db.executescript("DROP TABLE feed; DROP TABLE feed_alert; DROP TABLE trip_alerts; DROP TABLE outbox; DROP TABLE counters; ALTER TABLE alert_terms DROP COLUMN hooked;" + ROWS_FEED)
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, hooked.id, "u-1", "t-1", 1, "match", clock.now, orjson.dumps(body)),
                (2, plain.id, "u-2", "t-1", 1, "match", clock.now, orjson.dumps(body)),
                (5, hooked.id, "u-1", "t-2", 3, "cancel", clock.now, orjson.dumps({"reason": "cancelled"})),
            ],
        )
        db.execute("UPDATE sqlite_sequence SET seq = 7 WHERE name = 'events'")  # events 3, 4, 6 and 7 were of alerts deleted since
        db.executemany("INSERT INTO alert_trips VALUES (?, 't-1', 1)", [(hooked.id,), (plain.id,)])
        db.execute("INSERT INTO deliveries VALUES (5, ?, 'pending', 0, ?, ?, 0, NULL, NULL)", (hooked.id, clock.now, clock.now))

    store = AlertStore(path, clock=clock)
    with sqlite3.connect(path) as db:
        assert not {"events", "alert_trips", "deliveries"} & {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    events, cursor = store.matches("u-1", hooked.id)
    assert [(e.seq, e.trip_id, e.version, e.kind, e.body) for e in events] == [(5, "t-2", 3, "cancel", {"reason": "cancelled"}), (1, "t-1", 1, "match", body)]
    assert cursor is None and [e.seq for e in store.owner_events("u-2", 0)] == [2] and store.last_seq() == 7
    assert [(e.seq, e.alert_id) for e in store.trip_events("t-1")] == [(1, hooked.id), (2, plain.id)]
    assert store.matched_pairs() == {(hooked.id, "t-1"), (plain.id, "t-1")}
    [delivery] = store.claim_deliveries(lease_s=30)
    assert delivery.event == events[0] and delivery.url == "http://localhost:9/hook"
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([{**make_trip("t-1", 2), "status": "full"}])
    later = store.trip_events("t-1")[2:]  # the events after the moved ones are numbered from the old file's last number on
    assert [e.seq for e in later] == [8, 9] and {(e.alert_id, e.kind) for e in later} == {(hooked.id, "unmatch"), (plain.id, "unmatch")}
    store.delivered(delivery.event.seq)
    [delivery] = store.claim_deliveries(lease_s=30)  # the webhook is known to the terms the file had no column for
    assert delivery.event.alert_id == hooked.id and delivery.event.kind == "unmatch" and delivery.event.seq in (8, 9)
    store.close()

    # A process of the earlier release, still running, makes its tables again and numbers its events from 1.
    with sqlite3.connect(path) as db:
        db.executescript(ROWS_FEED)
        db.execute("INSERT INTO events VALUES (1, ?, 'u-2', 't-3', 1, 'match', ?, ?)", (plain.id, clock.now, orjson.dumps(body)))
    store = AlertStore(path, clock=clock)
    assert [(e.seq, e.trip_id) for e in store.matches("u-2", plain.id)[0]][:2] == [(10, "t-3"), (9 if later[1].alert_id == plain.id else 8, "t-1")]
    assert store.last_seq() == 10


def test_each_event_gets_its_alert_entry_whatever_the_alert_numbers() -> None:
    """The entries of a batch go in as one statement (alert numbers below 2^31), else row by row: the same rows either way."""
    db = sqlite3.connect(":memory:")
    db.execute(_FEED_ALERT)
    for alerts, first, clusters in (([5, 3, 5, 2**31 - 1, 1], 10, [7, 9, 7, 0, 2**45]), ([2**40, 5, 7], 2**33, [1, 7, 1])):
        _index_events(db, np.array(alerts, dtype=np.int64), first, np.array(clusters, dtype=np.int64))
    assert db.execute("SELECT cluster, alert, seq FROM feed_alert ORDER BY cluster, alert, seq").fetchall() == sorted(
        [(7, 5, 10), (9, 3, 11), (7, 5, 12), (0, 2**31 - 1, 13), (2**45, 1, 14), (1, 2**40, 2**33), (7, 5, 2**33 + 1), (1, 7, 2**33 + 2)]
    )


def test_entries_keyed_by_alert_alone_are_clustered_when_the_store_opens(tmp_path: Path) -> None:
    """A file of the release before: alert_terms without clusters, feed_alert keyed by (alert, seq); reads after the upgrade are the same."""
    path = tmp_path / "alerts.sqlite"
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(path, clock=clock)
    first, second = store.create("u-1", ALERT), store.create("u-1", {**ALERT, "from": ALERT["to"], "to": ALERT["from"]})
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([make_trip("t-1", 1), make_trip("t-2", 1)])
    before = (store.matches("u-1", first.id), store.matches("u-1", second.id), store.owner_events("u-1", 0))
    assert before[0][0], "the trips match the first alert"
    store.close()
    with sqlite3.connect(path) as db:  # as the release before wrote it
        db.executescript(
            "CREATE TABLE old (alert INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (alert, seq)) WITHOUT ROWID;"
            "INSERT INTO old SELECT alert, seq FROM feed_alert; DROP TABLE feed_alert; ALTER TABLE old RENAME TO feed_alert;"
            "ALTER TABLE alert_terms DROP COLUMN cluster;"
        )
    with pytest.raises(BackendUnavailable, match="earlier release"):
        AlertStore(path, clock=clock, readonly=True)
    store = AlertStore(path, clock=clock)
    assert (store.matches("u-1", first.id), store.matches("u-1", second.id), store.owner_events("u-1", 0)) == before
    with sqlite3.connect(path) as db:
        clusters = dict(db.execute("SELECT seq, cluster FROM alert_terms"))
        assert clusters[first.number] == place_cluster(*first.spec.query.from_point, *first.spec.query.to_point) != clusters[second.number]
        assert {(c, a) for c, a in db.execute("SELECT cluster, alert FROM feed_alert")} == {(clusters[first.number], first.number)}
    store.delete("u-1", first.id)
    assert store.matches("u-1", second.id) == before[1] and _feed_rows(path) == []
    store.close()

def test_the_alerts_the_index_has_not_read_yet_come_from_the_store_with_their_clusters(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite", clock=Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc)))
    first = store.create("u-1", ALERT)
    index = store.index()
    second = store.create("u-1", {**ALERT, "from": ALERT["to"], "to": ALERT["from"]})  # saved after the index looked
    expected = [int(place_cluster(*a.spec.query.from_point, *a.spec.query.to_point)) for a in (first, second)]
    for known in (index, AlertIndex()):
        alive = _alive(store._db(), known, {second.number, first.number, 10**6}, store.clock())
        assert alive.hooked == {first.number: False, second.number: False}
        assert alive.clusters_of(np.array([second.number, first.number])).tolist() == expected[::-1]
    store.close()
