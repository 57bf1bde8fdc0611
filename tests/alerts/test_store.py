"""The alert store on its own: expiry, the per-owner limit, purging, and a deployment without alerts paying nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import tripsearch
from tests.api.support import REYKJAVIK, SELFOSS, make_trip
from tripsearch.alerts import AlertingBackend, AlertStore, match_trips, parse_alert
from tripsearch.alerts.model import expires_at
from tripsearch.errors import AlertLimitReached, AlertNotFound, InvalidAlert
from tripsearch.model import parse_trip

ALERT = {"from": list(REYKJAVIK), "to": list(SELFOSS), "date_from": "2027-03-01", "date_to": "2027-03-02"}


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def test_an_alert_expires_when_its_last_day_has_ended_everywhere() -> None:
    spec = parse_alert(ALERT)
    assert expires_at(spec) == dt.datetime(2027, 3, 3, 12, tzinfo=dt.timezone.utc)  # 2027-03-02 ends last at UTC-12
    with pytest.raises(InvalidAlert) as passed:
        parse_alert(ALERT, now=dt.datetime(2027, 3, 3, 12, tzinfo=dt.timezone.utc))
    assert passed.value.field == "date_to"
    parse_alert(ALERT, now=dt.datetime(2027, 3, 3, 11, 59, tzinfo=dt.timezone.utc))


def test_expired_alerts_free_the_limit_match_nothing_and_are_purged(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    store = AlertStore(tmp_path / "alerts.sqlite", max_per_owner=2, clock=clock)
    first = store.create("u-1", {"from": list(REYKJAVIK), "to": list(SELFOSS), "date": "2027-02-02"})
    second = store.create("u-1", ALERT)
    with pytest.raises(AlertLimitReached):
        store.create("u-1", ALERT)
    store.create("u-2", ALERT)  # the limit is per owner

    clock.now = dt.datetime(2027, 2, 3, 12, tzinfo=dt.timezone.utc).timestamp()  # the first one's day is over everywhere
    assert store.get("u-1", first.id).to_dict(store.now())["status"] == "expired"
    assert store.count() == 2
    on_first_day, later = match_trips(store, [parse_trip(make_trip("t-1", day=dt.date(2027, 2, 2))), parse_trip(make_trip("t-2"))])
    assert on_first_day.matches == {}  # the expired alert matches nothing
    assert set(later.matches) == {second.id} | {a.id for a in store.owner_alerts("u-2")}
    third = store.create("u-1", ALERT)  # the expired one no longer counts

    clock.now = dt.datetime(2027, 2, 11, 12, tzinfo=dt.timezone.utc).timestamp()  # 7 days after expiry: purged at the next creation
    store.create("u-3", ALERT)
    with pytest.raises(AlertNotFound):
        store.get("u-1", first.id)
    assert {a.id for a in store.owner_alerts("u-1")} == {second.id, third.id}


def test_writes_without_alerts_create_nothing(tmp_path: Path) -> None:
    with tripsearch.open(tmp_path / "data", refresh_interval=0) as engine:
        assert isinstance(engine, AlertingBackend)
        assert engine.upsert([make_trip("quiet-1")]).stored == 1
        assert engine.delete(["quiet-1"]).deleted == 1
        assert engine.existing_alerts() is None and not (tmp_path / "data" / "alerts.sqlite").exists()
        assert engine.stats()["alerts"] == 0
    with tripsearch.open(tmp_path / "off", refresh_interval=0, alerts=False) as engine:
        assert not isinstance(engine, AlertingBackend)
