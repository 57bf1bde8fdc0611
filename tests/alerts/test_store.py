"""The alert store on its own: expiry, the per-owner limit, purging, and a deployment without alerts paying nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import tripsearch
from tests.api.support import REYKJAVIK, SELFOSS, make_trip
from tripsearch.alerts import AlertingBackend, AlertStore, match_trips, parse_alert
from tripsearch.alerts.delivery import WebhookSender
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
    assert on_first_day.matches == []  # the expired alert matches nothing
    assert set(later.matched().tolist()) == {second.number} | {a.number for a in store.owner_alerts("u-2")}
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


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:10.1.2.3]/hook", "private"),
        ("https://10.0.0.7/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://100.64.0.1/hook", "not a public"),
        ("http://224.0.0.1/hook", "multicast"),
    ],
)
def test_a_webhook_into_the_servers_own_network_is_refused_unless_allowed(tmp_path: Path, url: str, kind: str) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite", clock=Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc)))
    with pytest.raises(InvalidAlert) as refused:
        store.create("u-1", {**ALERT, "webhook_url": url})
    assert refused.value.field == "webhook_url" and kind in refused.value.reason and "public addresses only" in refused.value.reason
    assert store.owner_alerts("u-1") == []
    allowed = store.create("u-1", {**ALERT, "webhook_url": url}, private_webhooks=True)
    assert allowed.webhook is not None and allowed.webhook["url"] == url


def test_the_sender_does_not_call_a_host_that_now_resolves_inside(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite", clock=Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc)))
    alert = store.create("u-1", {**ALERT, "webhook_url": "http://localhost:9/hook"}, private_webhooks=True)
    with tripsearch.open(tmp_path / "data", refresh_interval=0, alerts=store) as engine:
        engine.upsert([make_trip("t-1")])
    sender = WebhookSender(lambda: store, give_up_s=0.0)
    assert sender.send_due() == 1
    webhook = store.get("u-1", alert.id).webhook
    assert webhook is not None and webhook["failed"] == 1 and "loopback" in webhook["last_failure"]["error"]


def test_alerts_saved_or_deleted_by_another_process_count_from_the_next_write(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    writer = AlertStore(tmp_path / "alerts.sqlite", clock=clock)
    other = AlertStore(tmp_path / "alerts.sqlite", clock=clock)  # another process's store on the same file
    trip = parse_trip(make_trip("t-1"))
    assert match_trips(writer, [trip])[0].matches == []
    first = other.create("u-1", ALERT)
    assert set(match_trips(writer, [trip])[0].matched().tolist()) == {first.number}
    second = other.create("u-2", ALERT)
    third = other.create("u-2", {**ALERT, "max_price": 5})  # the trip costs 12
    other.delete("u-1", first.id)
    assert set(match_trips(writer, [trip])[0].matched().tolist()) == {second.number}
    assert len(writer.index()) == 2 and third.number not in match_trips(writer, [trip])[0].matched()
