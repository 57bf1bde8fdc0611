"""A writer SIGKILLed between the trip write and the match loses no match: the change is matched from what is stored."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

import tripsearch
from tests.api.support import REYKJAVIK, SELFOSS, make_trip
from tripsearch.alerts import AlertingBackend, AlertStore
from tripsearch.cli.main import main

ALERT = {"from": list(REYKJAVIK), "to": list(SELFOSS), "date": "2027-03-01"}
OTHER_DAY = dt.date(2027, 3, 2)

# Writes one trip through tripsearch.open, and dies by SIGKILL the moment the backend has stored it, before matching.
_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import orjson
    import tripsearch
    import tripsearch.alerts.backend as seam

    match_trips = seam.match_trips

    def die(store, trips, routes=None):
        if trips:  # the trip written: die before its outcome is recorded
            os.kill(os.getpid(), signal.SIGKILL)
        return match_trips(store, trips, routes)

    seam.match_trips = die
    engine = tripsearch.open(sys.argv[1], refresh_interval=0)
    engine.upsert([orjson.loads(sys.argv[2])])
    """
)


def killed_write(data: Path, trip: dict[str, object]) -> None:
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(data), orjson.dumps(trip).decode()], capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


def test_a_match_lost_to_a_sigkill_is_recorded_after_restart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as engine:
        assert isinstance(engine, AlertingBackend)
        alert = engine.alerts().create("u-1", ALERT)  # the killed write is the first after it: the cursor starts with it

    trip = make_trip("crash-1", 1)
    killed_write(data, trip)
    store = AlertStore(data / "alerts.sqlite")
    assert store.matched_pairs() == set(), "the writer died before recording"
    store.close()
    assert main(["alerts", "count", "--data", str(data)]) == 0
    assert orjson.loads(capsys.readouterr().out)["journalled"] == 1, "operators see the write not matched yet"

    with tripsearch.open(data, refresh_interval=0) as engine:
        assert isinstance(engine, AlertingBackend)
        store = engine.alerts()
        assert engine.get("crash-1")["version"] == 1, "the trip write was durable before the kill"
        # opening followed the feed past the cursor: the change nobody recorded is matched as stored
        assert store.matched_pairs() == {(alert.id, "crash-1")}
        # the retry an indexer (or a redelivered RabbitMQ event) makes changes nothing, and tells nothing again
        assert engine.upsert([trip]).unchanged == 1
        assert engine.replay() == 0
        [event] = store.trip_events("crash-1")
        assert event.kind == "match" and event.version == 1 and event.body["date"] == "2027-03-01"

        # A later version still matches: not told twice. A kill before the cancellation is recorded
        # is caught up by the next write of a process that was open all along.
        engine.upsert([make_trip("crash-1", 2, price=20.0)])
        killed_write(data, {**make_trip("crash-1", 3), "status": "cancelled"})
        assert [e.kind for e in store.trip_events("crash-1")] == ["match"]
        engine.upsert([make_trip("other", 1, day=OTHER_DAY)])
        assert [(e.kind, e.version, e.body.get("reason")) for e in store.trip_events("crash-1")] == [("match", 1, None), ("cancel", 3, "cancelled")]
        assert store.matched_pairs() == set() and engine.replay() == 0


def test_writes_before_the_first_alert_are_not_matched_later(tmp_path: Path) -> None:
    """The cursor starts at the first write after the alert store exists: trips stored before the alerts are not told of."""
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as engine:
        engine.upsert([make_trip("early", 1)])
        alert = engine.alerts().create("u-1", ALERT)  # type: ignore[attr-defined]
        engine.upsert([make_trip("late", 1)])
        engine.alerts().delete("u-1", alert.id)  # type: ignore[attr-defined]
        engine.upsert([make_trip("while-none", 1)])  # no alert: only the cursor moves
        again = engine.alerts().create("u-1", ALERT)  # type: ignore[attr-defined]
        engine.upsert([make_trip("last", 1)])
        assert engine.alerts().matched_pairs() == {(again.id, "last")}  # type: ignore[attr-defined]
