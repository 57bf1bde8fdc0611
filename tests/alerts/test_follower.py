"""Matching in a follower process (matching="process"): writes return before matching, nothing is lost when either process dies."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import orjson
import pytest

import tripsearch
from tests.api.support import REYKJAVIK, SELFOSS, make_trip
from tripsearch.alerts import AlertingBackend, AlertStore
from tripsearch.alerts import backend as alerts_backend
from tripsearch.alerts.ahead import MatchAhead
from tripsearch.alerts.follower import LOCK_NAME
from tripsearch.backend import Backend

ALERT = {"from": list(REYKJAVIK), "to": list(SELFOSS), "date": "2027-03-01"}


def eventually(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def lock_is_free(data: Path) -> bool:
    fd = os.open(data / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_writes_return_before_matching_and_the_follower_tells_every_alert(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0, matching="process") as engine:
        assert isinstance(engine, AlertingBackend)
        store = engine.alerts()
        alert = store.create("u-1", ALERT)
        engine.upsert([make_trip("t-1")])  # no refresh: returns once stored
        assert engine.wait_matched()
        assert store.matched_pairs() == {(alert.id, "t-1")}
        engine.upsert([make_trip("t-2")], refresh=True)  # refresh: returns once matched too
        assert store.matched_pairs() == {(alert.id, "t-1"), (alert.id, "t-2")}
        engine.delete(["t-1"], refresh=True)
        assert [e.kind for e in store.trip_events("t-1")] == ["match", "cancel"]
        assert engine.search({"from": list(REYKJAVIK), "to": list(SELFOSS), "date": "2027-03-01"}).total == 1
        follower = engine._follower
        assert follower is not None and not lock_is_free(data)
    assert follower.process.poll() is not None, "close ends the follower"
    assert lock_is_free(data)


def test_a_follower_killed_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0, matching="process") as engine:
        assert isinstance(engine, AlertingBackend)
        store = engine.alerts()
        alert = store.create("u-1", ALERT)
        engine.upsert([make_trip("t-1")], refresh=True)
        assert engine._follower is not None
        engine._follower.process.send_signal(signal.SIGKILL)
        engine._follower.process.wait()
        with caplog.at_level(logging.WARNING, "tripsearch.alerts"):
            engine.upsert([make_trip("t-2"), {**make_trip("t-1", 2), "status": "cancelled"}], refresh=True)
        assert "starting another" in caplog.text
        assert store.matched_pairs() == {(alert.id, "t-2")}
        assert [e.kind for e in store.trip_events("t-1")] == ["match", "cancel"]


def test_with_two_writers_one_follower_works_and_the_other_takes_over(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = tripsearch.open(data, refresh_interval=0, matching="process")
    second = tripsearch.open(data, refresh_interval=0, matching="process")
    assert isinstance(first, AlertingBackend) and isinstance(second, AlertingBackend)
    try:
        alert = first.alerts().create("u-1", ALERT)
        first.upsert([make_trip("t-1")], refresh=True)
        second.upsert([make_trip("t-2")], refresh=True)  # its follower waits for the lock: the first's matches the write
        first.close()
        second.upsert([make_trip("t-3")], refresh=True)  # the second's takes over
        assert second.alerts().matched_pairs() == {(alert.id, f"t-{i}") for i in (1, 2, 3)}
    finally:
        second.close()


# Opens the data directory with a follower, writes one trip without waiting for its match, and dies by SIGKILL.
_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import orjson
    import tripsearch

    engine = tripsearch.open(sys.argv[1], refresh_interval=0, matching="process")
    engine.upsert([orjson.loads(sys.argv[2])])
    print(engine._follower.process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_writer_leaves_its_follower_to_match_what_it_wrote(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as engine:
        alert = engine.alerts().create("u-1", ALERT)  # type: ignore[attr-defined]
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(data), orjson.dumps(make_trip("t-1")).decode()], capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    follower = int(done.stdout)
    store = AlertStore(data / "alerts.sqlite")
    try:
        eventually(lambda: store.matched_pairs() == {(alert.id, "t-1")})
        eventually(lambda: lock_is_free(data) and not Path(f"/proc/{follower}").exists() or _zombie(follower))
    finally:
        store.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_a_deletion_made_during_an_inline_write_is_not_taken_for_the_write(tmp_path: Path) -> None:
    """A writer that does not hold the alert lock (a follower's, or alerts=False) deletes the trip an inline writer has just stored, before it reads the feed."""
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as inline, tripsearch.open(data, refresh_interval=0, alerts=False) as other:
        assert isinstance(inline, AlertingBackend)
        alert = inline.alerts().create("u-1", ALERT)
        store_trips = inline.inner.upsert

        def store_then_deleted_elsewhere(trips: object, refresh: object = False) -> object:
            report = store_trips(trips, refresh)  # type: ignore[arg-type]
            other.delete(["t-1"])  # unversioned: the tombstone keeps version 1, the version just stored
            return report

        inline.inner.upsert = store_then_deleted_elsewhere  # type: ignore[method-assign]
        inline.upsert([make_trip("t-1")])
        assert inline.alerts().matched_pairs() == set(), "the trip is gone: not left matching"
        assert [e.kind for e in inline.alerts().trip_events("t-1")] in ([], ["match", "cancel"])
        del alert


def test_an_inline_writer_far_behind_the_feed_catches_up_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes nobody matched (here written with alerts off) are matched a batch per transaction, so other writers are not kept waiting for them all."""
    monkeypatch.setattr(alerts_backend, "FEED_BATCH", 10)
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as inline, tripsearch.open(data, refresh_interval=0, alerts=False) as other:
        assert isinstance(inline, AlertingBackend)
        store = inline.alerts()
        alert = store.create("u-1", ALERT)
        inline.upsert([make_trip("t-0")])  # the cursor starts
        other.upsert([make_trip(f"t-{i}") for i in range(1, 36)])
        transactions = 0
        following = store.following

        def counted(store_id: str) -> object:
            nonlocal transactions
            transactions += 1
            return following(store_id)

        monkeypatch.setattr(store, "following", counted)
        inline.upsert([make_trip("t-36")])
        assert transactions == 5, "35 changes behind: 4 batches of at most 10, then the write's own transaction"
        assert store.matched_pairs() == {(alert.id, f"t-{i}") for i in range(37)}


@pytest.mark.parametrize("change", [{"status": "draft"}, {"departure_time": "2027-03-01T08:00:00"}], ids=["unknown-status", "naive-time"])
def test_a_stored_trip_that_breaks_a_rule_is_left_out_with_a_warning(tmp_path: Path, change: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """A trip stored by another release under other rules (written to the trip store as it is) is not matched; the writes around it are."""
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as inline:
        assert isinstance(inline, AlertingBackend)
        store = inline.alerts()
        alert = store.create("u-1", ALERT)
        inline.upsert([make_trip("t-0")])
        inline.inner.change_feed.write([("t-bad", 1, orjson.dumps({**make_trip("t-bad"), **change}))])
        with caplog.at_level(logging.WARNING, logger="tripsearch.alerts"):
            inline.upsert([make_trip("t-1")])
        assert "trip t-bad not matched against alerts" in caplog.text
        assert store.matched_pairs() == {(alert.id, "t-0"), (alert.id, "t-1")}
        assert store.feed_cursor(inline.inner.change_feed.store_id) == inline.inner.change_feed.max_seq()


def test_wait_matched_on_an_inline_backend_matches_what_others_left(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as inline, tripsearch.open(data, refresh_interval=0, alerts=False) as other:
        assert isinstance(inline, AlertingBackend)
        assert inline.wait_matched(), "nothing followed yet: nothing to wait for"
        store = inline.alerts()
        alert = store.create("u-1", ALERT)
        inline.upsert([make_trip("t-0")])  # the cursor starts
        other.upsert([make_trip("t-1")])  # alerts off: left after the cursor
        assert store.matched_pairs() == {(alert.id, "t-0")}
        assert inline.wait_matched(timeout_s=0.0)
        assert store.matched_pairs() == {(alert.id, "t-0"), (alert.id, "t-1")}


@contextmanager
def behind_with_helpers(tmp_path: Path) -> Iterator[tuple[AlertingBackend, Backend, AlertStore, str, MatchAhead]]:
    """An inline writer whose feed has 30 changes after the cursor (written with alerts off), and helpers ready to match ahead in batches of 10."""
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as inline, tripsearch.open(data, refresh_interval=0, alerts=False) as other:
        assert isinstance(inline, AlertingBackend)
        store = inline.alerts()
        alert = store.create("u-1", ALERT)
        inline.upsert([make_trip("t-0")])  # the cursor starts
        other.upsert([make_trip(f"t-{i}") for i in range(1, 31)])  # alerts off: left after the cursor
        ahead = MatchAhead(inline.inner.change_feed, inline.inner.path, store, batch=10)  # type: ignore[attr-defined]
        try:
            eventually(ahead.ready, timeout_s=120)
            yield inline, other, store, alert.id, ahead
        finally:
            ahead.close()


def test_matching_ahead_drops_the_batches_another_writer_recorded(tmp_path: Path) -> None:
    with behind_with_helpers(tmp_path) as (inline, other, store, alert_id, ahead):
        cursor = store.feed_cursor(inline.inner.change_feed.store_id)  # type: ignore[attr-defined]
        assert cursor is not None
        first = ahead(cursor)  # the helpers go on with the next two batches
        assert first is not None and first.changes == 10 and {out.trip_id for out in first.outcomes} == {f"t-{i}" for i in range(1, 11)}
        assert inline.follow() == 30  # recorded here meanwhile: the helpers' batches are stale
        other.upsert([make_trip(f"t-{i}") for i in range(31, 46)])
        assert inline.follow(ahead) == 15
        assert ahead.matched == 10 + 15, "the stale batches are dropped, the new changes matched ahead"
        assert store.matched_pairs() == {(alert_id, f"t-{i}") for i in range(46)}
        assert all([e.kind for e in store.trip_events(f"t-{i}")] == ["match"] for i in range(46)), "each told once"


def test_a_matching_helper_killed_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with behind_with_helpers(tmp_path) as (inline, other, store, alert_id, ahead):
        for helper in ahead._helpers:
            helper.process.kill()  # SIGKILL
            helper.process.join()
        with caplog.at_level(logging.WARNING, "tripsearch.alerts"):
            assert inline.follow(ahead) == 30  # matched here
        assert "starting others" in caplog.text
        assert store.matched_pairs() == {(alert_id, f"t-{i}") for i in range(31)}
        eventually(ahead.ready, timeout_s=120)
        other.upsert([make_trip(f"t-{i}") for i in range(31, 51)])
        assert inline.follow(ahead) == 20 and ahead.matched == 20, "the new helpers match"
        assert store.matched_pairs() == {(alert_id, f"t-{i}") for i in range(51)}
