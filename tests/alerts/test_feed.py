"""The compact match feed: one row per trip write and body, shared by the alerts it tells, found by their places; and feeds of older layouts moved into it."""

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
from tripsearch.alerts import AlertRecord, AlertStore
from tripsearch.alerts.index import AlertIndex
from tripsearch.alerts.store import RETENTION, _alive, places_key
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


def _entries(path: Path) -> list[tuple[int, int, int | None]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT places, seq, day FROM feed_places ORDER BY seq, places").fetchall()


def _places(alert: AlertRecord) -> int:
    q = alert.spec.query
    return int(places_key(*q.from_point, q.from_radius_km, *q.to_point, q.to_radius_km))


def test_alerts_told_by_one_write_share_a_feed_row_purged_when_the_last_of_them_has_expired(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(tmp_path / "alerts.sqlite", clock=clock)
    first, second = store.create("u-1", ALERT), store.create("u-2", {**ALERT, "date_to": "2027-03-05"})
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([make_trip("t-1")])
        [(row, trip, alerts)] = _feed_rows(store.path)
        assert trip == "t-1" and alerts == [first.number, second.number]
        assert _entries(store.path) == [(_places(first), row, (dt.date(2027, 3, 1) - dt.date(1970, 1, 1)).days)], "one entry: the alerts share their places"
        events = store.trip_events("t-1")
        assert [(e.seq, e.alert_id, e.owner, e.kind) for e in events] == [(row, first.id, "u-1", "match"), (row + 1, second.id, "u-2", "match")]
        assert events[0].body == events[1].body and store.last_seq() == row + 1
        assert store.matches("u-2", second.id) == ([events[1]], None) and store.owner_events("u-1", 0) == [events[0]]

        store.delete("u-1", first.id)
        assert _feed_rows(store.path) == [(row, "t-1", [first.number, second.number])], "the row still tells the second alert"
        assert store.trip_events("t-1") == [events[1]] and store.matched_pairs() == {(second.id, "t-1")}
        assert store.owner_events("u-1", 0) == [] and store.owner_events("u-2", 0) == [events[1]]
        engine.upsert([{**make_trip("t-1", 2), "status": "full"}])  # full: the second alert is told, the deleted one is not
        assert [(e.alert_id, e.kind, e.body) for e in store.trip_events("t-1")] == [(second.id, "match", events[1].body), (second.id, "unmatch", {"reason": "full"})]
        assert [(e.seq, e.kind) for e in store.matches("u-2", second.id)[0]] == [(row + 2, "unmatch"), (row + 1, "match")]
        assert _entries(store.path)[-1] == (_places(second), row + 2, None), "an unmatch is not of one day"
        store.delete("u-2", second.id)
        assert store.trip_events("t-1") == [] and store.matched_pairs() == set() and len(_feed_rows(store.path)) == 2
        assert not store.has_alerts(), "with no alert left, writes need no matching"
    # the rows go when the last alert they told would have been purged: the second's last day has ended everywhere, and RETENTION passed
    clock.now = (dt.datetime(2027, 3, 6, 12, tzinfo=dt.timezone.utc) + RETENTION).timestamp() - 1
    store.create("u-3", {**ALERT, "date_from": "2027-03-20", "date_to": "2027-03-20"})
    assert len(_feed_rows(store.path)) == 2
    clock.now += 1
    store.create("u-3", {**ALERT, "date_from": "2027-03-20", "date_to": "2027-03-20"})
    assert _feed_rows(store.path) == [] and _entries(store.path) == []
    store.close()


def test_a_feed_of_one_row_per_event_is_moved_into_the_compact_feed_when_the_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(path, clock=clock)
    hooked = store.create("u-1", {**ALERT, "webhook_url": "http://localhost:9/hook"}, private_webhooks=True)
    plain = store.create("u-2", ALERT)
    store.close()
    body = {"date": "2027-03-01", "score": 1.0}
    with sqlite3.connect(path) as db:  # the file as the release before wrote it
        db.executescript(
            "DROP TABLE feed; DROP TABLE feed_places; DROP TABLE trip_alerts; DROP TABLE outbox; DROP TABLE counters;"
            "ALTER TABLE alert_terms DROP COLUMN hooked; ALTER TABLE alert_terms DROP COLUMN places;" + ROWS_FEED
        )
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
    assert _entries(path) == [(_places(hooked), 1, None), (_places(plain), 2, None), (_places(hooked), 5, None)]
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


def test_alerts_of_the_same_places_share_a_key_that_survives_float64() -> None:
    disks = np.array([[64.1, -21.9, 5.0, 63.9, -21.0, 5.0], [64.1, -21.9, 5.0, 63.9, -21.0, 5.0], [64.1, -21.9, 5.0, 63.9, -21.0, 2.0], [63.9, -21.0, 5.0, 64.1, -21.9, 5.0]])
    keys = places_key(*disks.T)
    assert keys[0] == keys[1] and len(set(keys.tolist())) == 3 and keys.min() >= 0 and keys.max() < 2**52
    assert (keys.astype(np.float64).astype(np.int64) == keys).all() and int(places_key(*disks[2])) == keys[2]


@pytest.mark.parametrize("release", ["entries by cluster", "entries by alert"])
def test_a_feed_with_an_entry_per_event_gets_entries_by_places_when_the_store_opens(tmp_path: Path, release: str) -> None:
    """Files of the releases before: feed_alert with an entry per event, keyed by (cluster, alert, seq) or (alert, seq); reads after the upgrade are the same."""
    path = tmp_path / "alerts.sqlite"
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(path, clock=clock)
    first, second = store.create("u-1", ALERT), store.create("u-1", {**ALERT, "from": ALERT["to"], "to": ALERT["from"]})
    gone = store.create("u-2", ALERT)
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([make_trip("t-1", 1), make_trip("t-2", 1)])
    before = (store.matches("u-1", first.id), store.matches("u-1", second.id), store.owner_events("u-1", 0))
    assert before[0][0], "the trips match the first alert"
    rows = _feed_rows(path)
    store.delete("u-2", gone.id)
    store.close()
    with sqlite3.connect(path) as db:  # as the release before wrote it: an entry per event of an alert that exists
        key = "cluster INTEGER NOT NULL, alert INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (cluster, alert, seq)" if release == "entries by cluster" else "alert INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (alert, seq)"
        db.execute(f"CREATE TABLE feed_alert ({key}) WITHOUT ROWID")
        values = "(7, ?, ?)" if release == "entries by cluster" else "(?, ?)"
        db.executemany(f"INSERT INTO feed_alert VALUES {values}", [(a, seq + i) for seq, _, alerts in rows for i, a in enumerate(alerts) if a != gone.number])
        db.executescript(
            "DROP TABLE feed_places; DROP INDEX feed_until; ALTER TABLE feed DROP COLUMN until_s; ALTER TABLE feed DROP COLUMN places;"
            "ALTER TABLE alert_terms DROP COLUMN places;" + ("ALTER TABLE alert_terms ADD COLUMN cluster INTEGER NOT NULL DEFAULT 7;" if release == "entries by cluster" else "")
        )
    with pytest.raises(BackendUnavailable, match="earlier release"):
        AlertStore(path, clock=clock, readonly=True)
    store = AlertStore(path, clock=clock)
    assert (store.matches("u-1", first.id), store.matches("u-1", second.id), store.owner_events("u-1", 0)) == before
    assert {(k, seq) for k, seq, _ in _entries(path)} == {(_places(first), seq) for seq, _, _ in rows}, "the second alert's places match no trip"
    with sqlite3.connect(path) as db:
        assert "cluster" not in {row[1] for row in db.execute("PRAGMA table_info(alert_terms)")}
        assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'feed_alert'").fetchall()
        assert {seq: until for seq, until in db.execute("SELECT seq, until_s FROM feed")} == {seq: first.expires.timestamp() for seq, _, _ in rows}
    AlertStore(path, clock=clock, readonly=True).close()
    store.close()
    entries = _entries(path)
    with sqlite3.connect(path) as db:  # a process of that release, still running, makes its (empty) table again
        db.execute("CREATE TABLE feed_alert (cluster INTEGER NOT NULL, alert INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (cluster, alert, seq)) WITHOUT ROWID")
    store = AlertStore(path, clock=clock)
    assert (store.matches("u-1", first.id), store.matches("u-1", second.id), store.owner_events("u-1", 0)) == before and _entries(path) == entries
    store.close()


def test_the_alerts_the_index_has_not_read_yet_come_from_the_store(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite", clock=Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc)))
    first = store.create("u-1", ALERT)
    index = store.index()
    second = store.create("u-1", {**ALERT, "from": ALERT["to"], "to": ALERT["from"], "date_to": "2027-03-04"})  # saved after the index looked
    for known in (index, AlertIndex()):
        alive = _alive(store._db(), known, np.array([second.number, first.number, 10**6, first.number]), store.clock())
        assert alive.numbers.tolist() == [first.number, second.number] and alive.has(np.array([10**6, second.number])).tolist() == [False, True]
        of = alive.of(np.array([second.number, first.number]))
        assert of["hooked"].tolist() == [0, 0]
        assert of["places"].tolist() == [_places(second), _places(first)]
        assert of["day_to"].tolist() == [second.spec.day_to, first.spec.day_to]
        assert of["expires_s"].tolist() == [second.expires.timestamp(), first.expires.timestamp()]
    store.close()


def test_a_match_body_is_stored_packed_and_a_feed_row_of_json_text_reads_the_same(tmp_path: Path) -> None:
    """Match bodies are packed numbers (tripsearch.alerts.bodies), said when read; a row an earlier release wrote as JSON text reads as it is."""
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(tmp_path / "alerts.sqlite", clock=clock)
    alert = store.create("u-1", ALERT)
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([make_trip("t-1"), make_trip("t-2", hour=10)], refresh=True)
        hits = {hit.id: hit for hit in engine.search({**{k: v for k, v in ALERT.items() if k in ("from", "to")}, "date": "2027-03-01"}).trips}
    events = store.matches("u-1", alert.id)[0]
    assert [e.trip_id for e in events] == ["t-2", "t-1"] and set(hits) == {"t-1", "t-2"}
    for event in events:
        hit = hits[event.trip_id]
        assert event.body == {"date": "2027-03-01", "score": hit.score, "pickup": hit.pickup.to_dict(), "dropoff": hit.dropoff.to_dict()}
    with sqlite3.connect(store.path) as db:
        assert all(body[:1] == b"\x01" for (body,) in db.execute("SELECT body FROM feed")), "packed, tagged"
        db.execute("UPDATE feed SET body = ? WHERE trip_id = 't-1'", (orjson.dumps(events[1].body),))  # as an earlier release wrote it
    assert store.matches("u-1", alert.id)[0] == events and store.owner_events("u-1", 0) == events[::-1]
    with sqlite3.connect(store.path) as db:
        [(body,)] = db.execute("SELECT body FROM feed WHERE trip_id = 't-2'")
        db.execute("UPDATE feed SET body = ? WHERE trip_id = 't-2'", (b"\x02" + body[1:],))  # a format of a later release
    with pytest.raises(ValueError, match="unknown format"):
        store.matches("u-1", alert.id)
