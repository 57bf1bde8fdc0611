"""The Elasticsearch backend against a real one-node cluster: index layout, the write contract, errors, reindex.

Behaviour is checked against the embedded backend doing the same thing:
the reports of every write, what ``get`` returns, what searches find.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from typing import Any, Callable, Iterator

import orjson
import pytest
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tripsearch
from tripsearch.backend import Backend
from tripsearch.cli import main
from tripsearch.errors import BackendUnavailable, NotFound
from tripsearch.data.fixtures import generate_trips
from tripsearch.index.elastic import ElasticBackend
from tripsearch.index.elastic import reindex as elastic_reindex
from tripsearch.core.columns import TripColumns
from tripsearch.index.elastic.anchors import anchor_fields, anchor_places
from tripsearch.index.elastic.mapping import MAPPING_VERSION
from tripsearch.model import parse_trip

from tripsearch.testing.elastic import Cluster, fresh_alias

pytestmark = pytest.mark.elasticsearch

START = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def trips() -> list[dict[str, Any]]:
    return list(generate_trips(600, 17, START, 2))


@pytest.fixture
def embedded(tmp_path: Any) -> Iterator[Backend]:
    engine = tripsearch.open(tmp_path / "embedded", refresh_interval=0)
    yield engine
    engine.close()


def a_search(trip: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Return a search from a trip's origin to its destination on its day."""
    first, last = trip["stops"][0], trip["stops"][-1]
    return {"from": [first["lat"], first["lon"]], "to": [last["lat"], last["lon"]], "date": first["time"][:10], **extra}


def same_search(a: Backend, b: Backend, query: dict[str, Any]) -> None:
    ra, rb = a.search(query), b.search(query)
    assert (ra.total, [h.to_dict() for h in ra.trips], ra.facets) == (rb.total, [h.to_dict() for h in rb.trips], rb.facets)


# -- the index ------------------------------------------------------------------


def test_versioned_index_behind_an_alias_made_from_a_template(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], caplog: pytest.LogCaptureFixture) -> None:
    alias = fresh_alias()
    with caplog.at_level(logging.WARNING, logger="tripsearch"):
        engine = es_engine(index=alias, number_of_shards=2)
    assert not caplog.records, "a new index has this code's mapping: nothing to warn about"
    with es_cluster.client() as es:
        assert set(es.indices.get_alias(name=alias)) == {f"{alias}-000001"}
        template = es.indices.get_index_template(name=f"tripsearch-{alias}")["index_templates"][0]["index_template"]
        assert template["index_patterns"] == [f"{alias}-*"]
        mapping = es.indices.get_mapping(index=alias)[f"{alias}-000001"]["mappings"]
    assert mapping["_meta"] == {"tripsearch_mapping": MAPPING_VERSION, "tripsearch_anchors": anchor_places().fingerprint}
    assert mapping["properties"]["price"]["type"] == "double"
    stats = engine.stats()
    assert (stats["index"], stats["concrete_index"], stats["shards"], stats["replicas"], stats["trips"]) == (alias, f"{alias}-000001", 2, 0, 0)
    assert stats["elasticsearch_version"].startswith("9.") and stats["health"] in ("green", "yellow")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tripsearch"):
        again = es_engine(index=alias)  # opens what exists: no new index, no warning
    assert not caplog.records and again.stats()["concrete_index"] == f"{alias}-000001"


def test_an_index_in_place_of_the_alias_is_refused(es_cluster: Cluster) -> None:
    name = fresh_alias("plain")
    with es_cluster.client() as es:
        es.indices.create(index=name, settings={"number_of_replicas": 0})
    try:
        with pytest.raises(BackendUnavailable, match="not an alias"):
            tripsearch.open(es_cluster.url, index=name)
    finally:
        with es_cluster.client() as es:
            es.indices.delete(index=name)


def test_an_index_of_another_mapping_version_is_searched_only_after_a_reindex(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], caplog: pytest.LogCaptureFixture) -> None:
    trip = next(iter(generate_trips(1, 3, dt.date(2026, 12, 1), 1)))
    old = es_engine()
    old.upsert([trip], refresh=True)
    with es_cluster.client() as es:  # what an index written by the previous release says of itself
        es.indices.put_mapping(index=old.alias, meta={"tripsearch_mapping": MAPPING_VERSION - 1})
    with caplog.at_level(logging.WARNING, logger="tripsearch"):
        engine = es_engine(index=old.alias)
    assert any("tripsearch reindex" in r.getMessage() for r in caplog.records)
    with pytest.raises(BackendUnavailable, match="run `tripsearch reindex`"):
        engine.search(a_search(trip))
    assert engine.get(trip["id"])["id"] == trip["id"], "reads and writes go on"
    engine.reindex(grace_s=0)
    assert engine.search(a_search(trip)).total == 1


def test_an_index_of_other_anchor_places_is_searched_the_general_way(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], embedded: Backend, trips: list[dict[str, Any]]) -> None:
    """Anchor entries written for another set of places say nothing of these: the search between anchors is not used."""
    old = es_engine()
    old.upsert(trips, refresh=True)
    embedded.upsert(trips, refresh=True)
    anchors = anchor_places()
    parsed = [parse_trip(t) for t in trips[:500]]
    found = anchor_fields(TripColumns.from_trips(parsed))
    i = next(i for i, pairs in enumerate(found.pairs) if pairs and parsed[i].status == "published")
    f, t = found.pairs[i][0].split(">")
    day = next(e["day"] for e in found.entries[i] if e["place"] == f)
    query = {
        "from": [float(anchors.lat[int(f)]), float(anchors.lon[int(f)])],
        "to": [float(anchors.lat[int(t)]), float(anchors.lon[int(t)])],
        "date": (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat(),
        "from_radius_km": 25.0,
        "to_radius_km": 25.0,
        "facets": "all",
    }
    same_search(old, embedded, query)
    assert old.stats()["anchored"] == 1
    with es_cluster.client() as es:
        es.indices.put_mapping(index=old.alias, meta={"tripsearch_mapping": MAPPING_VERSION, "tripsearch_anchors": "another set"})
    engine = es_engine(index=old.alias)
    same_search(engine, embedded, query)
    assert engine.stats()["anchored"] == 0 and engine.search(query).total >= 1


def test_a_missing_alias_is_an_error_when_not_creating(es_cluster: Cluster) -> None:
    with pytest.raises(BackendUnavailable, match="does not exist"):
        tripsearch.open(es_cluster.url, index=fresh_alias(), create=False)


# -- writes and reads, as the embedded backend does them --------------------------


def test_writes_report_as_the_embedded_backend(es_engine: Callable[..., ElasticBackend], embedded: Backend, trips: list[dict[str, Any]]) -> None:
    engine = es_engine()
    t = trips[:6]
    bad = dict(t[5], seats_available=99)
    steps: list[Callable[[Backend], Any]] = [
        lambda e: e.upsert([t[0], t[1], orjson.dumps(t[2]), bad, b"{not json", {**t[0], "version": t[0]["version"] + 2}, {**t[0], "version": t[0]["version"] + 1}], refresh=True),
        lambda e: e.upsert([t[1], {**t[1], "version": t[1]["version"] - 1}]),  # equal, then lower: unchanged
        lambda e: e.delete([t[1]["id"], "nobody", t[1]["id"], ""], refresh=True),
        lambda e: e.upsert([t[1]]),  # the tombstone keeps the version: a late copy does not come back
        lambda e: e.delete([t[1]["id"]]),
        lambda e: e.upsert([{**t[1], "version": t[1]["version"] + 1}], refresh=True),  # a higher one does
        lambda e: e.upsert([{**t[2], "version": 0, "id": "v0"}, {**t[3], "status": "cancelled"}], refresh=True),
        # versioned deletes, as an event stream sends them
        lambda e: e.delete([(t[4]["id"], t[4]["version"] + 5), ("never-seen", 3), (t[0]["id"], 0)]),  # bad versions: tests/test_engine.py
        lambda e: e.upsert([{**t[4], "version": t[4]["version"] + 5}, {**t[2], "id": "never-seen", "version": 3}]),
        lambda e: e.upsert([{**t[2], "id": "never-seen", "version": 4}, {**t[2], "id": "negative", "version": 0}], refresh=True),
        lambda e: e.delete([t[3]["id"], (t[3]["id"], t[3]["version"] + 9), (t[3]["id"], t[3]["version"] + 1), "never-seen"], refresh=True),
    ]
    for step in steps:
        assert step(engine).to_dict() == step(embedded).to_dict()
    for tid in [x["id"] for x in t] + ["v0", "nobody", "never-seen", "negative"]:
        try:
            want = embedded.get(tid)
        except NotFound:
            with pytest.raises(NotFound):
                engine.get(tid)
        else:
            assert engine.get(tid) == want
    with pytest.raises(NotFound):
        engine.get("")
    for x in t:
        same_search(engine, embedded, a_search(x))


def test_deletes_and_cancellations_leave_the_results_after_refresh(es_engine: Callable[..., ElasticBackend], embedded: Backend, trips: list[dict[str, Any]]) -> None:
    engine = es_engine()
    published = [t for t in trips if t["status"] == "published"]
    for e in (engine, embedded):
        e.upsert(trips, refresh=True)
    gone, cancelled = published[0], published[1]
    query_gone, query_cancelled = a_search(gone, limit=100), a_search(cancelled, limit=100)
    assert gone["id"] in {h.id for h in engine.search(query_gone).trips}
    assert cancelled["id"] in {h.id for h in engine.search(query_cancelled).trips}
    for e in (engine, embedded):
        e.delete([gone["id"]])
        e.upsert([{**cancelled, "version": cancelled["version"] + 1, "status": "cancelled"}])
    # refresh_interval=0: nothing shows before a refresh, as in the embedded backend
    assert gone["id"] in {h.id for h in engine.search(query_gone).trips}
    assert engine.get(cancelled["id"])["status"] == "cancelled"  # get is real time
    for e in (engine, embedded):
        e.refresh()
    assert gone["id"] not in {h.id for h in engine.search(query_gone).trips}
    assert cancelled["id"] not in {h.id for h in engine.search(query_cancelled).trips}
    for q in (query_gone, query_cancelled):
        same_search(engine, embedded, q)
    stats = engine.stats()
    assert (stats["trips"], stats["tombstones"]) == (len(trips) - 1, 1)


def test_wait_for_is_elasticsearchs_own_or_a_refresh_where_periodic_refresh_is_off(es_engine: Callable[..., ElasticBackend], trips: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    published = [t for t in trips if t["status"] == "published"]
    sent: list[str | None] = []  # each bulk request's refresh, and each explicit refresh
    bulk = Elasticsearch.bulk
    monkeypatch.setattr(Elasticsearch, "bulk", lambda es, **kw: sent.append(kw.get("refresh")) or bulk(es, **kw))
    for interval, trip in ((0.2, published[0]), (0, published[1])):
        engine = es_engine(refresh_interval=interval)
        sent.clear()
        refresh = engine._connection.refresh
        monkeypatch.setattr(engine._connection, "refresh", lambda refresh=refresh: sent.append("_refresh") or refresh())
        query = a_search(trip, limit=100)
        engine.upsert([trip], refresh="wait_for")
        assert trip["id"] in {h.id for h in engine.search(query).trips}
        engine.delete([trip["id"]], refresh="wait_for")
        assert trip["id"] not in {h.id for h in engine.search(query).trips}
        # with periodic refresh off, Elasticsearch's wait_for would never answer
        assert sent == (["wait_for", "wait_for"] if interval else [None, "_refresh", None, "_refresh"])


@pytest.fixture(scope="module")
def versioned_pair(es_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Backend]]:
    alias = fresh_alias("versions")
    es = tripsearch.open(es_cluster.url, index=alias, number_of_replicas=0, refresh_interval=0)
    emb = tripsearch.open(tmp_path_factory.mktemp("versions"), refresh_interval=0)
    yield es, emb
    es.close()
    emb.close()
    es_cluster.drop(alias)


_example = iter(range(1_000_000))
write = st.one_of(
    st.tuples(st.just("upsert"), st.integers(0, 2), st.integers(0, 6), st.sampled_from(["published", "published", "cancelled", "full"])),
    st.tuples(st.just("delete"), st.integers(0, 2), st.just(0), st.just("")),
    st.tuples(st.just("versioned delete"), st.integers(0, 2), st.integers(0, 6), st.just("")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(write, min_size=1, max_size=6), min_size=1, max_size=5))
def test_the_highest_version_always_wins(versioned_pair: tuple[Backend, Backend], trips: list[dict[str, Any]], batches: list[list[tuple[str, int, int, str]]]) -> None:
    """Out-of-order writes and deletes (plain and versioned), in any batching, end where the embedded backend ends: the highest version."""
    es, emb = versioned_pair
    prefix = f"x{next(_example)}-"
    base = [t for t in trips if t["status"] == "published"][:3]

    def doc(k: int, version: int, status: str) -> dict[str, Any]:
        return {**base[k], "id": f"{prefix}{k}", "version": version, "status": status, "seats_available": min(version % 3, base[k]["seats_total"])}

    for batch in batches:
        upserts = [doc(k, v, s) for kind, k, v, s in batch if kind == "upsert"]
        deletes = [f"{prefix}{k}" if kind == "delete" else (f"{prefix}{k}", v) for kind, k, v, _ in batch if kind != "upsert"]
        assert es.upsert(upserts).to_dict() == emb.upsert(upserts).to_dict()
        assert es.delete(deletes).to_dict() == emb.delete(deletes).to_dict()
    for engine in (es, emb):
        engine.refresh()
    for k in range(3):
        tid = f"{prefix}{k}"
        try:
            want: Any = emb.get(tid)
        except NotFound:
            want = None
        try:
            got: Any = es.get(tid)
        except NotFound:
            got = None
        assert got == want
    same_search(es, emb, a_search(base[0], from_radius_km=30, to_radius_km=30))


# -- unavailable clusters -----------------------------------------------------------


def test_nobody_listening_is_unavailable_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot be reached") as info:
        tripsearch.open(f"http://127.0.0.1:{port}", request_timeout=2)
    assert time.monotonic() - started < 2 and info.value.retry_after > 0


def test_a_cluster_that_does_not_answer_is_unavailable_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel, never answered
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="did not answer within 0.5 s"):
            tripsearch.open(f"http://127.0.0.1:{silent.getsockname()[1]}", request_timeout=0.5, max_retries=1)
        assert time.monotonic() - started < 0.5 * 2 + 1


def test_writes_refused_by_a_write_block_are_unavailable_not_rejected(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], trips: list[dict[str, Any]]) -> None:
    engine = es_engine()
    engine.upsert(trips[:2], refresh=True)
    with es_cluster.client() as es:
        es.indices.put_settings(index=engine.alias, settings={"index.blocks.write": True})
        try:
            with pytest.raises(BackendUnavailable, match="send them again"):
                engine.upsert(trips[2:4])
            with pytest.raises(BackendUnavailable):
                engine.delete([trips[0]["id"]])
            assert engine.search(a_search(trips[0])).total >= 0  # reads go on
        finally:
            es.indices.put_settings(index=engine.alias, settings={"index.blocks.write": False})
    assert engine.upsert(trips[2:4]).stored == 2


# -- reindex ------------------------------------------------------------------------


def test_reindex_swaps_the_alias_without_failing_a_search_or_losing_a_write(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], embedded: Backend, trips: list[dict[str, Any]]) -> None:
    engine = es_engine(index=fresh_alias("reindex"), number_of_shards=1)
    first, later = trips[:400], trips[400:]
    engine.upsert(first, refresh=True)
    embedded.upsert(first, refresh=True)
    stop = threading.Event()
    failures: list[str] = []
    searches = [0]
    acknowledged: list[tuple[str, Any]] = []  # writes in the order the backend acknowledged them
    probe = a_search(first[0], from_radius_km=60, to_radius_km=60)

    def search_all_along() -> None:
        reader = tripsearch.open(es_cluster.url, index=engine.alias)
        while not stop.is_set():
            try:
                reader.search(probe)
                searches[0] += 1
                time.sleep(0.02)
            except Exception as exc:  # any failure is the test failing
                failures.append(repr(exc))
        reader.close()

    paused = [0]

    def write_all_along() -> None:
        writer = tripsearch.open(es_cluster.url, index=engine.alias)
        for i in range(0, len(later), 4):
            ops: list[tuple[str, Any]] = [("upsert", later[i : i + 4]), ("delete", [first[i // 4]["id"]])]
            for kind, arg in ops:
                while True:  # writes are refused while paused: retry, as a client would
                    try:
                        writer.upsert(arg) if kind == "upsert" else writer.delete(arg)
                        acknowledged.append((kind, arg))
                        break
                    except BackendUnavailable as exc:
                        paused[0] += 1
                        time.sleep(min(exc.retry_after, 0.1))
            time.sleep(0.05)
        writer.close()

    threads = [threading.Thread(target=search_all_along), threading.Thread(target=write_all_along)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    before = len(acknowledged)
    report = engine.reindex(number_of_shards=2, grace_s=1.0, batch_size=100)
    during = len(acknowledged) - before
    threads[1].join()
    stop.set()
    threads[0].join()
    assert not failures and searches[0] > 0
    assert during > 0 and paused[0] > 0 and len(acknowledged) == 2 * len(range(0, len(later), 4)), "writes went on during the reindex, and paused"
    assert report["caught_up"] > 0 and report["write_pause_s"] < report["took_s"]
    assert (report["from"], report["to"], report["shards"]) == (f"{engine.alias}-000001", f"{engine.alias}-000002", 2)
    for kind, arg in acknowledged:
        embedded.upsert(arg) if kind == "upsert" else embedded.delete(arg)
    engine.refresh()
    embedded.refresh()
    stats = engine.stats()
    assert (stats["concrete_index"], stats["shards"], stats["trips"]) == (f"{engine.alias}-000002", 2, embedded.stats()["trips"])
    with es_cluster.client() as es:
        assert not es.indices.exists(index=f"{engine.alias}-000001")
    for t in trips[::25]:
        same_search(engine, embedded, a_search(t, from_radius_km=40, to_radius_km=40))
        try:
            want = embedded.get(t["id"])
        except NotFound:
            with pytest.raises(NotFound):
                engine.get(t["id"])
        else:
            assert engine.get(t["id"]) == want


def test_a_failed_reindex_leaves_the_old_index_in_charge(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], trips: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = es_engine()
    engine.upsert(trips[:50], refresh=True)
    calls = [0]
    real = elastic_reindex._catch_up

    def fail_second(*args: Any) -> int:
        calls[0] += 1
        if calls[0] == 2:  # under the write block
            raise BackendUnavailable("lost the cluster")
        return real(*args)

    monkeypatch.setattr(elastic_reindex, "_catch_up", fail_second)
    with pytest.raises(BackendUnavailable, match="lost the cluster"):
        engine.reindex()
    with es_cluster.client() as es:
        assert set(es.indices.get_alias(name=engine.alias)) == {f"{engine.alias}-000001"}
        assert not es.indices.exists(index=f"{engine.alias}-000002")
    assert engine.upsert(trips[50:52]).stored == 2  # writes are unblocked


def test_reindex_command(es_cluster: Cluster, es_engine: Callable[..., ElasticBackend], trips: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    engine = es_engine()
    engine.upsert(trips[:30], refresh=True)
    assert main(["reindex", "--backend", es_cluster.url, "--index", engine.alias, "--shards", "3", "--replicas", "0", "--keep-old", "--quiet"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert (report["to"], report["shards"], report["copied"], report["old_deleted"]) == (f"{engine.alias}-000002", 3, 30, False)
    assert engine.stats()["trips"] == 30
    assert main(["reindex", "--backend", es_cluster.url, "--index", fresh_alias("missing"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
