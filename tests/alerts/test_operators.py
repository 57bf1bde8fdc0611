"""``tripsearch alerts``: what operators count, list and match again, from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import tripsearch
from tests.alerts.test_store import ALERT
from tests.api.support import make_trip
from tripsearch.alerts import ALERTS_DB_NAME, AlertingBackend
from tripsearch.cli import main


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
    assert main(["alerts", "list", "u-1", "--data", str(data)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{cheap.id}  active ") and "2027-03-01..2027-03-02" in line
    assert main(["alerts", "list", "u-1", "--json", "--data", str(data)]) == 0
    assert [a["id"] for a in orjson.loads(capsys.readouterr().out)] == [cheap.id]

    # The trips were written before the alerts: matching them again tells the alerts, once.
    for _ in range(2):
        assert main(["alerts", "replay", "t-1", "t-2", "gone", "--json", "--data", str(data)]) == 0
        events = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert sorted((e["trip_id"], e["kind"], e["alert_id"] == cheap.id) for e in events) == [("t-1", "match", False), ("t-1", "match", True), ("t-2", "match", False)]
    assert main(["alerts", "count", "--data", str(data)]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"active": 2, "expired": 0, "owners": 2, "webhooks": 0, "events": 3, "journalled": 0}


@pytest.mark.parametrize(
    "args, message",
    [
        (["alerts", "count", "--backend", "http://127.0.0.1:9"], "--alerts-db"),
        (["alerts", "list", "u-1", "--data", "missing"], "no data directory"),
        (["alerts", "replay", "t-1", "--data", "."], "no index in"),
    ],
)
def test_alerts_commands_refuse_what_they_cannot_use_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIPSEARCH_ALERTS_DB", raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tripsearch alerts: error: ") and message in err and len(err.splitlines()) == 1
