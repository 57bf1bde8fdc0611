"""A writer SIGKILLed between the trip write and the match loses no match: the journal is replayed from what is stored."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

import tripsearch
from tests.api.support import REYKJAVIK, SELFOSS, make_trip
from tripsearch.alerts import AlertingBackend

ALERT = {"from": list(REYKJAVIK), "to": list(SELFOSS), "date": "2027-03-01"}

# Writes one trip through tripsearch.open, and dies by SIGKILL the moment the backend has stored it, before matching.
_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import orjson
    import tripsearch
    import tripsearch.alerts.backend as seam

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    seam.match_trips = die
    engine = tripsearch.open(sys.argv[1], refresh_interval=0)
    engine.upsert([orjson.loads(sys.argv[2])])
    """
)


def killed_write(data: Path, trip: dict[str, object]) -> None:
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(data), orjson.dumps(trip).decode()], capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


def test_a_match_lost_to_a_sigkill_is_recorded_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as engine:
        assert isinstance(engine, AlertingBackend)
        alert = engine.alerts().create("u-1", ALERT)

    trip = make_trip("crash-1", 1)
    killed_write(data, trip)

    with tripsearch.open(data, refresh_interval=0) as engine:
        assert isinstance(engine, AlertingBackend)
        store = engine.alerts()
        assert engine.get("crash-1")["version"] == 1, "the trip write was durable before the kill"
        assert store.matched_pairs() == set() and store.pending() == [("crash-1", 1)]
        # The retry an indexer (or a redelivered RabbitMQ event) makes changes nothing in the backend...
        assert engine.upsert([trip]).unchanged == 1
        # ...and the journal, replayed once it is old enough that its writer is surely dead, finds the match.
        assert engine.replay(older_than_s=0) == 1
        assert store.matched_pairs() == {(alert.id, "crash-1")}
        assert engine.replay(older_than_s=0) == 0 and store.pending() == []
        [event] = store.trip_events("crash-1")
        assert event.kind == "match" and event.version == 1 and event.body["date"] == "2027-03-01"

        # A later version still matches: not told twice; a kill before the cancellation is matched is replayed too.
        engine.upsert([make_trip("crash-1", 2, price=20.0)])
    killed_write(data, {**make_trip("crash-1", 3), "status": "cancelled"})
    with tripsearch.open(data, refresh_interval=0) as engine:
        store = engine.alerts()  # type: ignore[attr-defined]
        engine.replay(older_than_s=0)  # type: ignore[attr-defined]
        engine.replay(older_than_s=0)  # type: ignore[attr-defined]
        assert [(e.kind, e.version, e.body.get("reason")) for e in store.trip_events("crash-1")] == [("match", 1, None), ("cancel", 3, "cancelled")]
        assert store.matched_pairs() == set()
