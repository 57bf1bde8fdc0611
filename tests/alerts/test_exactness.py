"""Alerts are exact: a trip write matches an alert if and only if ``search`` with the alert's fields returns the trip.

Random alerts around random trips, in one engine, in every region of
tests/geometry.py's awkward places (Europe, the antimeridian, both poles,
the Arctic, the equator; far-flung UTC offsets, night trips over
midnight), then rounds of random writes: inserts, updates that move the
route or the time, cancellations, deletes. After each round, for every
(alert, trip) pair, the alert store's "matches now" must equal what the
searches of the alert's days return, and the feed must hold exactly one
``match`` for every pair that became a match, one ``cancel``/``unmatch``
for every pair that stopped, and nothing for pairs that did not change.
After the last round a sample of alerts is also checked against the
brute-force reference.

Thousands of alerts and trip writes on the embedded backend, where a
search is a function call; fewer on Elasticsearch, where each is a round
trip, to keep the test near a minute and a half.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tests import reference
from tests.geometry import random_queries, random_trips, regular_trips
from tripsearch.alerts import AlertingBackend, AlertStore
from tripsearch.alerts.ahead import MatchAhead
from tripsearch.backend import Backend

# The random trips depart around 2026-12-01: alerts are created as if it were a month before.
CLOCK = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp()
ALERT_FIELDS = ("from", "to", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "options", "min_rating")


def random_alerts(trips: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """Return alerts built from random queries around the trips, over one to four days."""
    rng = np.random.default_rng(seed)
    alerts = []
    for q in random_queries(trips, n, seed):
        first = dt.date.fromisoformat(q["date"]) - dt.timedelta(days=int(rng.integers(0, 2)))
        span = int(rng.integers(0, 4))
        alert = {k: q[k] for k in ALERT_FIELDS if k in q}
        if span == 0 and rng.random() < 0.5:
            alert["date"] = first.isoformat()
        else:
            alert["date_from"], alert["date_to"] = first.isoformat(), (first + dt.timedelta(days=span)).isoformat()
        alerts.append(alert)
    return alerts


def alert_days(alert: dict[str, Any]) -> list[str]:
    first = dt.date.fromisoformat(alert.get("date_from", alert.get("date")))
    last = dt.date.fromisoformat(alert.get("date_to", alert.get("date")))
    return [(first + dt.timedelta(days=d)).isoformat() for d in range((last - first).days + 1)]


def searched_pairs(engine: Backend, alerts: dict[str, dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Return every (alert id, trip id) that a search of one of the alert's days returns, with the hit (a regular trip's first occurrence)."""
    found: dict[tuple[str, str], Any] = {}
    for alert_id, alert in alerts.items():
        fields = {k: v for k, v in alert.items() if k in ALERT_FIELDS}
        for day in alert_days(alert):
            cursor = None
            while True:
                page = engine.search({**fields, "date": day, "facets": [], "limit": 100, **({"cursor": cursor} if cursor else {})})
                for hit in page.trips:
                    seen = found.get((alert_id, hit.id))
                    assert seen is None or hit.occurrence is not None, "a punctual trip picks up on one local day only"
                    if seen is None or hit.occurrence < seen.occurrence:
                        found[(alert_id, hit.id)] = hit
                cursor = page.next_cursor
                if cursor is None:
                    break
    return found


def reference_pairs(engine: Backend, alerts: dict[str, dict[str, Any]], live: set[str]) -> set[tuple[str, str]]:
    """Return every (alert id, trip id) that the brute-force reference matches."""
    refs = [ref for tid in sorted(live) for ref in reference.make_refs(engine.get(tid))]
    return {(alert_id, ref.doc["id"].split("\x1f")[0]) for alert_id, alert in alerts.items() for ref in refs if reference.alert_day(ref, alert) is not None}


def moved(trip: dict[str, Any], donor: dict[str, Any], version: int) -> dict[str, Any]:
    """Return ``trip`` at ``version`` with the route, stops and times of ``donor`` (an update that moves it)."""
    out = {**donor, "id": trip["id"], "version": version}
    return out


def shifted(trip: dict[str, Any], version: int, hours: float) -> dict[str, Any]:
    """Return ``trip`` at ``version`` departing ``hours`` later (an update that moves the time)."""
    delta = dt.timedelta(hours=hours)
    stops = [{**s, "time": (dt.datetime.fromisoformat(s["time"]) + delta).isoformat()} for s in trip["stops"]]
    return {**trip, "version": version, "stops": stops, "departure_time": stops[0]["time"]}


def write_rounds(trips: list[dict[str, Any]], donors: list[dict[str, Any]], seed: int) -> list[tuple[list[dict[str, Any]], list[str]]]:
    """Return rounds of (upserts, deletes): first every trip, then random moves, time shifts, seat changes, cancellations, deletes."""
    rng = np.random.default_rng(seed)
    current = {t["id"]: t for t in trips}
    rounds: list[tuple[list[dict[str, Any]], list[str]]] = [(list(trips), [])]
    for _ in range(3):
        upserts: list[dict[str, Any]] = []
        deletes: list[str] = []
        for tid in sorted(current):
            trip = current[tid]
            roll = rng.random()
            version = trip["version"] + 1
            if roll < 0.15:
                new = moved(trip, donors[int(rng.integers(0, len(donors)))], version)
            elif roll < 0.3:
                new = shifted(trip, version, float(rng.choice([-30, -6, -1, 1, 5, 24])))
            elif roll < 0.38:
                new = {**trip, "version": version, "status": "cancelled"}
            elif roll < 0.44:
                new = {**trip, "version": version, "status": "published", "seats_available": int(rng.integers(0, trip["seats_total"] + 1))}
            elif roll < 0.5:
                new = {**trip, "version": version, "status": "published"}  # a cancelled trip comes back; the rest is an update that changes nothing
            elif roll < 0.55:
                deletes.append(tid)
                continue
            else:
                continue
            upserts.append(new)
            current[tid] = new
        for tid in deletes:
            del current[tid]
        rounds.append((upserts, deletes))
    return rounds


def assert_feeds_read_whole(store: AlertStore, owners: dict[str, str], trip_ids: set[str]) -> None:
    """Every alert's feed, page after page, and every owner's stream hold exactly the events the trips' feed rows give them.

    The rows are found by the alerts' places and days (``feed_places``):
    this checks that those entries miss none of an alert's events.
    """
    told: dict[str, list[Any]] = defaultdict(list)
    for tid in sorted(trip_ids):
        for event in store.trip_events(tid):
            told[event.alert_id].append(event)
    assert sum(map(len, told.values())) > 0
    for alert_id, owner in owners.items():
        read, cursor = store.matches(owner, alert_id, limit=7)
        while cursor is not None:
            page, cursor = store.matches(owner, alert_id, cursor, limit=7)
            read += page
        assert read == sorted(told[alert_id], key=lambda e: -e.seq), alert_id
    for owner in set(owners.values()):
        assert store.owner_events(owner, 0, limit=10**6) == sorted((e for a, o in owners.items() if o == owner for e in told[a]), key=lambda e: e.seq)


REGIONS = ["europe", "antimeridian", "north_pole", "south_pole", "arctic", "equator"]
# (alerts, trips) by backend; the rounds write about 1.8 times the trips.
SIZES = {"embedded": (3000, 1800), "elasticsearch": (300, 360)}
REFERENCE_SAMPLE = 40


def test_alerts_match_exactly_what_search_returns(make_engine: Callable[..., Backend], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    n_alerts, n_trips = SIZES[request.node.callspec.params["make_engine"]]
    store = AlertStore(tmp_path / "alerts.sqlite", max_per_owner=10**6, clock=lambda: CLOCK)
    engine = make_engine(alerts=store)
    check_rounds(engine, store, n_alerts, n_trips, engine.upsert, engine.delete)


@pytest.mark.parametrize("make_engine", ["embedded"], indirect=True)
def test_alerts_matched_from_the_change_feed_match_exactly_what_search_returns(make_engine: Callable[..., Backend], tmp_path: Path) -> None:
    """What a follower process does (tripsearch.alerts.follower): trips written without matching, then matched from the feed."""
    n_alerts, n_trips = SIZES["embedded"]
    store = AlertStore(tmp_path / "alerts.sqlite", max_per_owner=10**6, clock=lambda: CLOCK)
    engine = make_engine(alerts=store)
    assert isinstance(engine, AlertingBackend)
    store.start_cursor(engine.inner.change_feed.store_id, 0)  # type: ignore[attr-defined]
    check_rounds(engine, store, n_alerts, n_trips, followed(engine, engine.inner.upsert), followed(engine, engine.inner.delete))


@pytest.mark.parametrize("make_engine", ["embedded"], indirect=True)
def test_alerts_matched_ahead_by_helper_processes_match_exactly_what_search_returns(make_engine: Callable[..., Backend], tmp_path: Path) -> None:
    """What a follower far behind does (MatchAhead): helper processes match the feed's next batches while it records."""
    n_alerts, n_trips = SIZES["embedded"]
    store = AlertStore(tmp_path / "alerts.sqlite", max_per_owner=10**6, clock=lambda: CLOCK)
    engine = make_engine(alerts=store)
    assert isinstance(engine, AlertingBackend)
    feed = engine.inner.change_feed  # type: ignore[attr-defined]
    store.start_cursor(feed.store_id, 0)
    ahead = MatchAhead(feed, engine.inner.path, store, batch=40)  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 120
        while not ahead.ready():
            assert time.monotonic() < deadline, "the helpers did not start"
            time.sleep(0.05)
        check_rounds(engine, store, n_alerts, n_trips, followed(engine, engine.inner.upsert, ahead), followed(engine, engine.inner.delete, ahead))
        assert ahead.matched > n_trips, "the helpers matched most changes"
    finally:
        ahead.close()


def followed(engine: AlertingBackend, write: Callable[..., Any], ahead: MatchAhead | None = None) -> Callable[..., Any]:
    """``write`` (the inner backend's: nothing matched), then what a follower does: the changes matched from the feed (ahead by helpers, if given)."""

    def write_then_follow(items: list[Any], refresh: bool) -> Any:
        report = write(items, refresh)
        assert engine.follow(ahead) > 0
        return report

    return write_then_follow


def check_rounds(engine: Backend, store: AlertStore, n_alerts: int, n_trips: int, upsert: Callable[..., Any], delete: Callable[..., Any]) -> None:
    """Write random trips in rounds (``upsert``, ``delete``); after each, every (alert, trip) pair is matched iff the alert's search returns the trip, and the feed tells each change once."""
    trips = [t for i, region in enumerate(REGIONS) for t in random_trips(region, n_trips // len(REGIONS), seed=i)]
    donors = [t for i, region in enumerate(REGIONS) for t in random_trips(region, n_trips // len(REGIONS) // 2, seed=100 + i)]
    fields = random_alerts(trips + donors, n_alerts, 7)
    alerts = dict(zip(store.import_alerts((f"owner-{i % 7}", f) for i, f in enumerate(fields)), fields))

    before: set[tuple[str, str]] = set()
    live: set[str] = set()
    seen_events = 0
    writes = 0
    for upserts, deletes in write_rounds(trips, donors, 7):
        if upserts:
            report = upsert(upserts, True)
            assert report.rejected == 0
        if deletes:
            assert delete(deletes, True).deleted == len(deletes)
        writes += len(upserts) + len(deletes)
        live = (live | {t["id"] for t in upserts}) - set(deletes)

        expected = searched_pairs(engine, alerts)
        now = store.matched_pairs()
        assert now == set(expected), (sorted(now - set(expected))[:5], sorted(set(expected) - now)[:5])

        events = [e for tid in sorted({t["id"] for t in upserts} | set(deletes)) for e in store.trip_events(tid) if e.seq > seen_events]
        kinds = Counter((e.alert_id, e.trip_id, e.kind) for e in events)
        for pair in now - before:
            assert kinds.pop((*pair, "match")) == 1
            event = next(e for e in events if (e.alert_id, e.trip_id) == pair)
            hit = expected[pair]
            assert event.body["pickup"] == hit.pickup.to_dict() and event.body["dropoff"] == hit.dropoff.to_dict()
            assert event.body["date"] == hit.pickup.time[:10] and event.body["score"] == hit.score
        gone_trips = set(deletes) | {t["id"] for t in upserts if t["status"] == "cancelled"}
        for alert_id, trip_id in before - now:
            assert kinds.pop((alert_id, trip_id, "cancel" if trip_id in gone_trips else "unmatch")) == 1
        assert not kinds, f"events for pairs that did not change: {sorted(kinds)[:5]}"
        seen_events = max([seen_events, *(e.seq for e in events)])
        before = now
    sample = dict(list(alerts.items())[:REFERENCE_SAMPLE])
    assert {p for p in before if p[0] in sample} == reference_pairs(engine, sample, live)
    assert_feeds_read_whole(store, {a: f"owner-{i % 7}" for i, a in enumerate(alerts)}, {t["id"] for t in trips + donors})
    assert writes >= 1.5 * n_trips and len(before) >= n_alerts // 10, f"{writes} writes made {len(before)} matches: the test proves too little"


REGULAR_SIZES = {"embedded": (600, 80), "elasticsearch": (150, 40)}  # (alerts, regular trips)


def test_alerts_of_regular_trips_match_what_search_returns(make_engine: Callable[..., Backend], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A regular trip matches an alert when one of its occurrences does; the match tells the first; a new schedule matches anew."""
    n_alerts, n_trips = REGULAR_SIZES[request.node.callspec.params["make_engine"]]
    trips = regular_trips("europe", n_trips, seed=21) + random_trips("europe", n_trips // 2, seed=22)
    occurrences = [o for t in trips for o in reference.occurrence_docs(t)]
    rng = np.random.default_rng(23)
    store = AlertStore(tmp_path / "alerts.sqlite", max_per_owner=10**6, clock=lambda: dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc).timestamp())
    engine = make_engine(alerts=store)
    fields = random_alerts(occurrences, n_alerts, 24)
    alerts = dict(zip(store.import_alerts((f"owner-{i % 5}", f) for i, f in enumerate(fields)), fields))
    week = lambda t: str(dt.date.fromisoformat(t["schedule"]["valid_from"]) + dt.timedelta(days=6))  # noqa: E731
    later = lambda times: {d: f"{(int(v[:2]) + 1) % 24:02d}{v[2:]}" for d, v in times.items()}  # noqa: E731
    rounds = [
        (trips, []),
        (
            [dict(t, version=t["version"] + 1, schedule=dict(t["schedule"], valid_to=week(t), exceptions=[])) for t in trips[: n_trips // 3]]
            + [dict(t, version=t["version"] + 1, schedule=dict(t["schedule"], times=later(t["schedule"]["times"]))) for t in trips[n_trips // 3 : n_trips // 2]]
            + [dict(t, version=t["version"] + 1, status="cancelled") for t in trips[n_trips // 2 : n_trips * 2 // 3]],
            [t["id"] for t in trips[n_trips * 2 // 3 : n_trips * 3 // 4]],
        ),
    ]
    before: set[tuple[str, str]] = set()
    live: set[str] = set()
    for upserts, deletes in rounds:
        assert engine.upsert(upserts, refresh=True).rejected == 0
        if deletes:
            engine.delete(deletes, refresh=True)
        live = (live | {t["id"] for t in upserts}) - set(deletes)
        expected = searched_pairs(engine, alerts)
        now = store.matched_pairs()
        assert now == set(expected), (sorted(now - set(expected))[:5], sorted(set(expected) - now)[:5])
        for event in (e for tid in sorted({t["id"] for t in upserts}) for e in store.trip_events(tid)):
            pair = (event.alert_id, event.trip_id)
            if event.kind == "match" and pair in now - before:
                hit = expected[pair]
                assert event.body.get("occurrence") == hit.occurrence and event.body["pickup"] == hit.pickup.to_dict()
        before = now
    assert sum(1 for _, tid in before if tid.startswith("reg-")) >= n_alerts // 20, "few regular trips match: the test proves little"
    sample = dict(list(alerts.items())[:REFERENCE_SAMPLE])
    assert {p for p in before if p[0] in sample} == reference_pairs(engine, sample, live)
    assert_feeds_read_whole(store, {a: f"owner-{i % 5}" for i, a in enumerate(alerts)}, {t["id"] for t in trips})
