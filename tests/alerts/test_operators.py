"""``tripsearch alerts``: what operators count, list and match again, from the command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

import tripsearch
from tests.alerts.test_store import ALERT, Clock
from tests.api.support import make_trip
from tripsearch.alerts import ALERTS_DB_NAME, AlertingBackend, AlertStore
from tripsearch.cli import main


def _files(data: Path) -> tuple[int, int, int]:
    """The store's file (time and size) and what its write-ahead log holds (a reader of a WAL file may leave an empty one, and its index)."""
    wal = data / f"{ALERTS_DB_NAME}-wal"
    return (data / ALERTS_DB_NAME).stat().st_mtime_ns, (data / ALERTS_DB_NAME).stat().st_size, wal.stat().st_size if wal.exists() else 0


def test_operators_count_list_and_match_a_trip_again_against_alerts_saved_after_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with tripsearch.open(data, refresh_interval=0) as engine:
        engine.upsert([make_trip("t-1"), make_trip("t-2", price=99.0)])
    assert main(["alerts", "count", "--data", str(data)]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"active": 0, "expired": 0, "owners": 0, "webhooks": 0, "events": 0, "journalled": 0}
    assert not (data / ALERTS_DB_NAME).exists(), "counting made no alert store"

    with tripsearch.open(data, refresh_interval=0) as engine:
        assert isinstance(engine, AlertingBackend)
        cheap = engine.alerts().create("u-1", {**ALERT, "max_price": 50})
        engine.alerts().create("u-2", ALERT)
    unchanged = _files(data)
    assert main(["alerts", "list", "u-1", "--data", str(data)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{cheap.id}  active ") and "2027-03-01..2027-03-02" in line
    assert main(["alerts", "list", "u-1", "--json", "--data", str(data)]) == 0
    assert [a["id"] for a in orjson.loads(capsys.readouterr().out)] == [cheap.id]
    assert _files(data) == unchanged, "listing wrote nothing"

    # The trips were written before the alerts: matching them again tells the alerts, once.
    for _ in range(2):
        assert main(["alerts", "replay", "t-1", "t-2", "gone", "--json", "--data", str(data)]) == 0
        out, err = capsys.readouterr()
        assert err.strip() == "gone: not in the index (alerts told of it are told it is cancelled)"
        events = [orjson.loads(line) for line in out.splitlines()]
        assert sorted((e["trip_id"], e["kind"], e["alert_id"] == cheap.id) for e in events) == [("t-1", "match", False), ("t-1", "match", True), ("t-2", "match", False)]
    assert main(["alerts", "count", "--data", str(data)]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"active": 2, "expired": 0, "owners": 2, "webhooks": 0, "events": 3, "journalled": 0}
    with tripsearch.open(data, refresh_interval=0) as engine:  # looked for before it was written: its first write, at version 0, is matched
        engine.upsert([make_trip("gone", 0)])
        assert [e.kind for e in engine.alerts().trip_events("gone")] == ["match", "match"]


def test_matching_again_tells_an_expired_alert_nothing(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(tmp_path / "alerts.sqlite", clock=clock)
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        assert isinstance(engine, AlertingBackend)
        alert = store.create("u-1", ALERT)
        engine.upsert([make_trip("t-1")])
        clock.now = dt.datetime(2027, 3, 4, tzinfo=dt.timezone.utc).timestamp()  # the alert's days are over
        assert engine.rematch(["t-1"]) == 1
        assert [(e.alert_id, e.kind) for e in store.trip_events("t-1")] == [(alert.id, "match")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["alerts", "count", "--backend", "http://127.0.0.1:9"], "--alerts-db"),
        (["alerts", "list", "u-1", "--data", "missing"], "no data directory"),
        (["alerts", "replay", "t-1", "--data", "."], "no index in"),
        (["alerts", "replay", " ", "--data", "."], "empty trip id"),
        (["alerts", "list", "u-1", "--backend", "http://127.0.0.1:9", "--alerts-db", "typo.sqlite"], "no alert store at typo.sqlite"),
    ],
)
def test_alerts_commands_refuse_what_they_cannot_use_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIPSEARCH_ALERTS_DB", raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tripsearch alerts: error: ") and message in err and len(err.splitlines()) == 1
