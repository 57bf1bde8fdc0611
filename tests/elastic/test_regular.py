"""Regular trips on Elasticsearch (issue 22): one search document per occurrence, versions that replace them all, parity with the embedded engine.

The write tests read the index itself (which occurrence documents are live,
at which version) besides searching: a stale occurrence that no search of
the test happens to find is still a failure. The parity test runs a few
hundred random searches over regular trips around daylight-saving changes
(with exception dates that skip, move or change seats) among punctual ones,
on two shards with small candidate pages, and compares every result with
the embedded engine's.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import tripsearch
from tripsearch.backend import Backend
from tripsearch.errors import NotFound
from tripsearch.index.elastic import ElasticBackend
from tripsearch.index.elastic.regular import row_chunks
from tripsearch.model import parse_trip
from tripsearch.occurrences import occurrences
from tests import reference
from tests.elastic.conftest import anchored_queries
from tests.elastic.test_parity import assert_same
from tests.geometry import random_queries, random_trips, regular_trips, time_queries


pytestmark = pytest.mark.elasticsearch

LYON = (45.764, 4.8357)
GRENOBLE = (45.1885, 5.7245)


def commuter(version: int, valid_to: str = "2027-04-09", **schedule: Any) -> dict[str, Any]:
    """Return version ``version`` of a weekday commute Lyon-Grenoble across the spring change in Europe/Paris (2027-03-28)."""
    return {
        "id": "c-1",
        "version": version,
        "departure_time": "2027-03-26T07:45:00+01:00",
        "stops": [
            {"name": "Lyon", "lat": LYON[0], "lon": LYON[1], "time": "2027-03-26T07:45:00+01:00"},
            {"name": "Grenoble", "lat": GRENOBLE[0], "lon": GRENOBLE[1], "time": "2027-03-26T09:00:00+01:00"},
        ],
        "seats_total": 3,
        "seats_available": 3,
        "price": {"amount": 8.0},
        "schedule": {
            "timezone": "Europe/Paris",
            "valid_from": "2027-03-22",
            "valid_to": valid_to,
            "times": {"MON": "07:45", "TUE": "07:45", "WED": "07:45", "THU": "07:45", "FRI": "07:45"},
            **schedule,
        },
    }


def punctual(version: int) -> dict[str, Any]:
    """Return version ``version`` of the same trip id as a one-off trip on 2027-03-30."""
    doc = commuter(version)
    del doc["schedule"]
    doc["departure_time"] = "2027-03-30T18:00:00+02:00"
    doc["stops"] = [dict(doc["stops"][0], time="2027-03-30T18:00:00+02:00"), dict(doc["stops"][1], time="2027-03-30T19:15:00+02:00")]
    return doc


def live_documents(engine: ElasticBackend) -> dict[str, int]:
    """Return every live search document (and master) of the index: id -> version, read from the index after a refresh."""
    engine.refresh()
    with engine._connection.translate("test"):
        hits = engine._connection.hits({"query": {"term": {"deleted": False}}, "size": 1000, "version": True, "_source": False})
    return {h["_id"]: int(h["_version"]) for h in hits}


def expected_documents(doc: dict[str, Any] | None) -> dict[str, int]:
    """Return the live documents a stored trip should leave: its id, and its occurrences' keys, at its version."""
    if doc is None:
        return {}
    return {o.id: doc["version"] for o in occurrences(parse_trip(doc))} | {doc["id"]: doc["version"]}


DATES = [(dt.date(2027, 3, 20) + dt.timedelta(days=k)).isoformat() for k in range(24)]


def searches() -> list[dict[str, Any]]:
    """Return searches on every date the versions of the commute run: between two anchors (in the shards) and off them (the general path)."""
    out = []
    for date in DATES:
        out.append({"from": list(LYON), "to": list(GRENOBLE), "date": date, "facets": "all"})
        out.append({"from": [45.70, 4.90], "to": [45.20, 5.70], "date": date, "from_radius_km": 15.0, "to_radius_km": 15.0, "facets": ["dates", "seats_available"]})
    return out


def assert_state(engine: ElasticBackend, embedded: Backend, stored: dict[str, Any] | None) -> None:
    """Assert the index holds exactly the documents of ``stored`` (the trip's winning version, None when deleted) and answers as the embedded engine."""
    assert live_documents(engine) == expected_documents(stored)
    if stored is None:
        with pytest.raises(NotFound):
            engine.get("c-1")
    else:
        got = engine.get("c-1")
        assert got == embedded.get("c-1")
        assert (got["version"], got.get("schedule") is not None) == (stored["version"], "schedule" in stored)
    for q in searches():
        assert_same(engine.search(q), embedded.search(q), q)


def test_writes_build_a_bounded_number_of_rows_at_a_time() -> None:
    """A chunk holds at most so many index rows: a regular trip counts its master and every occurrence."""
    trips = [parse_trip(commuter(1)), parse_trip(punctual(1)), parse_trip(commuter(1, valid_to="2027-03-23"))]
    assert [len(occurrences(t)) for t in trips] == [15, 1, 2]
    assert [[t.version for t in chunk] for chunk in row_chunks(trips, lambda t: t, 16)] == [[1], [1, 1]]
    assert [len(chunk) for chunk in row_chunks(trips, lambda t: t, 4)] == [1, 2]  # a trip of more rows is a chunk of its own


def test_versions_replace_every_occurrence(es_engine: Callable[..., ElasticBackend], tmp_path: Path) -> None:
    """Grow, shrink, out-of-order and duplicate versions, regular to punctual and back, deletes: the index holds the winning version's documents only."""
    engine = es_engine()
    embedded = tripsearch.open(tmp_path / "embedded", refresh_interval=0)

    def both(call: str, *args: Any) -> list[str]:
        got = getattr(engine, call)(*args, refresh=True)
        want = getattr(embedded, call)(*args, refresh=True)
        assert got.to_dict() == want.to_dict(), args
        return [i.result for i in got.items]

    try:
        v1 = commuter(1)
        assert both("upsert", [v1]) == ["stored"]
        assert_state(engine, embedded, v1)
        assert engine.search({"from": list(LYON), "to": list(GRENOBLE), "date": "2027-03-29"}).trips[0].trip["departure_time"] == "2027-03-29T07:45:00+02:00"
        # shorter, and an exception that skips a date and one that moves another onto a Saturday
        v2 = commuter(2, valid_to="2027-03-31", exceptions=[{"date": "2027-03-24", "skip": True}, {"date": "2027-03-27", "time": "02:30", "seats_available": 1}])
        assert both("upsert", [v2]) == ["stored"]
        assert_state(engine, embedded, v2)
        assert both("upsert", [v1]) == ["unchanged"]  # late
        assert both("upsert", [v2]) == ["unchanged"]  # duplicate
        assert_state(engine, embedded, v2)
        v3 = commuter(3, valid_to="2027-04-12")  # longer
        v4 = punctual(4)
        assert both("upsert", [v4, v3]) == ["stored", "unchanged"]  # the higher version of the call wins
        assert_state(engine, embedded, v4)
        assert both("upsert", [v3]) == ["unchanged"]
        v5 = commuter(5, valid_from="2027-03-25", valid_to="2027-04-02")
        assert both("upsert", [v5]) == ["stored"]  # punctual to regular
        assert_state(engine, embedded, v5)
        assert both("delete", ["c-1"]) == ["deleted"]
        assert_state(engine, embedded, None)
        assert both("upsert", [v5]) == ["unchanged"]  # a late copy stays buried
        assert_state(engine, embedded, None)
        v6 = commuter(6, valid_to="2027-03-23")
        assert both("upsert", [v6]) == ["stored"]  # a higher version brings it back
        assert_state(engine, embedded, v6)
        assert both("delete", [("c-1", 9)]) == ["deleted"]  # a versioned delete
        assert both("upsert", [commuter(8)]) == ["unchanged"]
        assert_state(engine, embedded, None)
        v10 = commuter(10)
        assert both("upsert", [v10]) == ["stored"]
        assert_state(engine, embedded, v10)
        assert both("delete", ["c-1", "c-1"]) == ["deleted", "deleted"]  # one id, one tombstone
        assert_state(engine, embedded, None)
        assert engine.stats()["occurrences"] == 0
    finally:
        embedded.close()


def test_a_writer_that_loses_the_race_retires_its_own_occurrences(es_engine: Callable[..., ElasticBackend], monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that read no stored version sends its occurrences, then finds a higher master stored: it tombstones what it sent."""
    engine = es_engine()
    v3 = commuter(3, valid_to="2027-03-26")
    engine.upsert([v3], refresh=True)
    connection = engine._connection
    real_kinds = connection.kinds
    calls = []

    def stale_read(ids: list[str], index: str | None = None) -> dict[str, tuple[int, bool, bool]]:
        calls.append(ids)
        return {} if len(calls) == 1 else real_kinds(ids, index)  # the first read is from before v3 was stored

    monkeypatch.setattr(connection, "kinds", stale_read)
    report = engine.upsert([commuter(2, valid_to="2027-04-09")], refresh=True)
    assert [i.result for i in report.items] == ["unchanged"]
    assert len(calls) == 2  # the pre-read, then the check of the master after the 409
    assert live_documents(engine) == expected_documents(v3)


def test_a_retry_after_a_failure_before_the_retire_converges(es_engine: Callable[..., ElasticBackend], monkeypatch: pytest.MonkeyPatch) -> None:
    """A shorter version stored whose retire failed leaves stale occurrences until the same batch is sent again."""
    from tripsearch.index.elastic import writes

    engine = es_engine()
    engine.upsert([commuter(1)], refresh=True)
    v2 = commuter(2, valid_to="2027-03-24")
    with monkeypatch.context() as m:
        m.setattr(writes, "retire_occurrences", lambda *args, **kwargs: 0)
        engine.upsert([v2], refresh=True)
    assert live_documents(engine) != expected_documents(v2)
    assert [i.result for i in engine.upsert([v2], refresh=True).items] == ["unchanged"]
    assert live_documents(engine) == expected_documents(v2)


def test_reindex_carries_regular_trips(es_engine: Callable[..., ElasticBackend]) -> None:
    """A reindex rebuilds every occurrence from its master; tombstones stay, so a late version stays out."""
    engine = es_engine()
    v2 = commuter(2, valid_to="2027-03-31", exceptions=[{"date": "2027-03-24", "skip": True}])
    engine.upsert([commuter(1)], refresh=True)
    engine.upsert([v2, {**punctual(1), "id": "p-1"}], refresh=True)
    before = live_documents(engine)
    q = {"from": list(LYON), "to": list(GRENOBLE), "date": "2027-03-30", "facets": "all"}
    want = engine.search(q)
    engine.reindex(grace_s=0)
    assert live_documents(engine) == before
    assert_same(engine.search(q), want, q)
    assert [i.result for i in engine.upsert([commuter(1)], refresh=True).items] == ["unchanged"]
    assert live_documents(engine) == before


# -- parity with the embedded engine --------------------------------------------

PARITY_QUERIES = 300


@pytest.fixture(scope="module")
def regular_data() -> list[dict[str, Any]]:
    """Return 160 regular trips (Europe/Paris, America/New_York, ... around the changes of 2026-10-25, 2026-11-01, 2027-03-14 and 2027-03-28) among 100 punctual ones."""
    return random_trips("europe", 100, seed=31) + regular_trips("europe", 160, seed=32)


def test_same_results_as_embedded_with_regular_trips(es_engine: Callable[..., ElasticBackend], tmp_path: Path, regular_data: list[dict[str, Any]], record_property: Callable[[str, Any], None]) -> None:
    """A few hundred random searches (days, around a time, between anchors) over regular and punctual trips: the same results, pages and facets."""
    engine = es_engine(number_of_shards=2, page_size=200)
    embedded = tripsearch.open(tmp_path / "embedded", refresh_interval=0)
    try:
        for backend in (engine, embedded):
            report = backend.upsert(copy.deepcopy(regular_data), refresh=True)
            assert report.stored == len(regular_data), report.to_dict()["items"][:3]
        occurrence_docs = [o for t in regular_data for o in reference.occurrence_docs(t) if "schedule" in t]
        assert engine.stats()["occurrences"] == len(occurrence_docs)
        rng = np.random.default_rng(33)
        queries = random_queries(occurrence_docs, PARITY_QUERIES // 6, seed=34) + time_queries(occurrence_docs, PARITY_QUERIES // 6, seed=35)
        for q in queries:
            q["facets"] = "all" if rng.random() < 0.5 else []
        queries += stop_queries(occurrence_docs, PARITY_QUERIES // 3, rng)
        renamed = [dict(o, id=o["id"].replace("\x1f", "@")) for o in occurrence_docs]  # anchored_queries parses them as trips
        queries += anchored_queries(renamed, PARITY_QUERIES // 3, seed=36)
        anchored_before = engine.stats()["anchored"]
        with_hits = occurrence_hits = 0
        for n, query in enumerate(queries):
            q = dict(query, limit=min(query.get("limit", 20), 5)) if n % 3 == 0 else dict(query)
            for _ in range(3 if n % 3 == 0 else 1):
                got, want = engine.search(q), embedded.search(q)
                assert_same(got, want, q)
                with_hits += bool(got.trips)
                occurrence_hits += sum(h.occurrence is not None for h in got.trips)
                if got.next_cursor is None:
                    break
                q = {**q, "cursor": got.next_cursor}
        anchored = engine.stats()["anchored"] - anchored_before
        record_property("regular_parity", {"queries": len(queries), "with_hits": with_hits, "occurrence_hits": occurrence_hits, "anchored": anchored})
        assert with_hits > len(queries) * 0.25
        assert occurrence_hits > len(queries) // 3
        assert anchored > PARITY_QUERIES // 6
    finally:
        embedded.close()


def stop_queries(occurrence_docs: list[dict[str, Any]], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Return ``n`` searches from a stop of an occurrence to a later one, on its local date or days around it: each finds that occurrence at least."""
    queries = []
    published = [o for o in occurrence_docs if o["status"] == "published"]
    for _ in range(n):
        doc = published[int(rng.integers(0, len(published)))]
        stops = doc["stops"]
        i = int(rng.integers(0, len(stops) - 1))
        j = int(rng.integers(i + 1, len(stops)))
        q: dict[str, Any] = {
            "from": [stops[i]["lat"], stops[i]["lon"]],
            "to": [stops[j]["lat"], stops[j]["lon"]],
            "date": stops[i]["time"][:10],
            "from_radius_km": float(rng.choice([1.0, 5.0, 10.0, 30.0])),
            "to_radius_km": float(rng.choice([1.0, 5.0, 10.0, 30.0])),
            "sort": str(rng.choice(["relevance", "departure", "price", "pickup_distance"])),
            "limit": int(rng.choice([1, 5, 20])),
            "facets": "all" if rng.random() < 0.7 else ["dates", "seats_available"],
        }
        if rng.random() < 0.3:
            q["departure_time"] = stops[i]["time"][11:16]
            q["time_delta"] = int(rng.choice([1800, 7200, 43200]))
            if rng.random() < 0.5:
                q["sort"] = "time_distance"
        if rng.random() < 0.2:
            q["date_from"], q["date_to"] = q.pop("date"), (dt.date.fromisoformat(stops[i]["time"][:10]) + dt.timedelta(days=int(rng.integers(1, 4)))).isoformat()
        if rng.random() < 0.15:
            q["seats"] = int(rng.integers(1, 4))
        queries.append(q)
    return queries
