"""Out-of-order and duplicate events through the HTTP API and the Python client: the highest version of each trip wins, on both backends.

The engine half of this claim is
``tests/test_properties.py::test_highest_version_wins_whatever_the_order``.
Here the same event streams go through :class:`TripSearchClient` to a real
``tripsearch serve``, over the embedded store or over Elasticsearch. The
server lives for the module, so every hypothesis example writes trips of
its own (an id prefix) on a day of its own in Iceland, where the fixtures
have no trips: a search of that day must find exactly the example's trips.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import tripsearch
from tripsearch.backend import ItemResult
from tripsearch.client import Refresh, TripSearchClient
from tripsearch.errors import NotFound

from tripsearch.testing.elastic import Cluster, fresh_alias
from ..test_properties import IDS, events, expected_state
from .conftest import Server
from .support import iceland_query, make_token, make_trip

Event = tuple[str, int, str]  # (trip id, version, kind), as in tests/test_properties.py

BACKENDS = ["embedded", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]
STATUS = {"publish": "published", "cancel": "cancelled", "full": "full"}
FIRST_DAY = dt.date(2028, 1, 1)
# Every example ends with a ``wait_for`` write, which waits one refresh interval: keep it short.
REFRESH_INTERVAL_S = 0.25
_days = itertools.count()

upsert_events = events.map(lambda evts: [e for e in evts if e[2] != "delete"]).filter(bool)


@dataclass(frozen=True)
class Delivery:
    """Events as a queue delivers them: ``stream`` is ``events`` shuffled, with duplicates, sent ``chunk`` events per request."""

    events: list[Event]
    stream: list[Event]
    chunk: int
    one_by_one: bool  # upserts with client.upsert rather than client.bulk


@st.composite
def deliveries(draw: st.DrawFn, evts: st.SearchStrategy[list[Event]]) -> Delivery:
    drawn = draw(evts)
    duplicated = drawn + draw(st.lists(st.sampled_from(drawn), max_size=10))
    return Delivery(drawn, draw(st.permutations(duplicated)), draw(st.integers(1, 8)), draw(st.booleans()))


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, start_api: Callable[..., Server]) -> Iterator[Server]:
    """Return a server of one backend over a store of its own: a copy of the fixture data, or a fresh index of the session's cluster."""
    if request.param == "embedded":
        server = start_api(TRIPSEARCH_REFRESH_INTERVAL=str(REFRESH_INTERVAL_S))
        yield server
        server.stop()
        return
    cluster: Cluster = request.getfixturevalue("es_cluster")
    alias = fresh_alias("event-order")
    # created here without replicas, which the one-node cluster could never allocate
    tripsearch.open(cluster.url, index=alias, number_of_replicas=0, refresh_interval=REFRESH_INTERVAL_S, request_timeout=30.0).close()
    server = start_api(TRIPSEARCH_BACKEND_URL=cluster.url, TRIPSEARCH_BACKEND_INDEX=alias)
    yield server
    server.stop()
    cluster.drop(alias)


@pytest.fixture
def client(served: Server) -> Iterator[TripSearchClient]:
    with TripSearchClient(served.url, token=make_token()) as c:
        yield c


@dataclass
class Example:
    """One hypothesis example's trips: their ids and their day, shared with no other example."""

    prefix: str
    day: dt.date

    @classmethod
    def fresh(cls) -> Example:
        return cls(f"order-{uuid.uuid4().hex[:12]}-", FIRST_DAY + dt.timedelta(days=next(_days)))

    def trip(self, tid: str, version: int, kind: str) -> dict[str, Any]:
        trip = make_trip(self.prefix + tid, version, day=self.day)
        trip["status"] = STATUS[kind]
        if kind == "full":
            trip["seats_available"] = 0
        return trip


def send(client: TripSearchClient, ex: Example, delivery: Delivery) -> None:
    """Send the stream in requests of ``chunk`` events; check what each write reports; the last one waits until it is searchable."""
    note(f"trips {ex.prefix}* on {ex.day}: {delivery}")
    requests: list[list[Event]] = []
    for i in range(0, len(delivery.stream), delivery.chunk):
        for deletes, run in itertools.groupby(delivery.stream[i : i + delivery.chunk], key=lambda e: e[2] == "delete"):
            requests += [[e] for e in run] if deletes or delivery.one_by_one else [list(run)]
    applied: dict[str, int] = {}  # highest version of each id sent so far, deletes included
    for n, group in enumerate(requests):
        refresh: Refresh = "wait_for" if n == len(requests) - 1 else False
        tid, version, kind = group[0]
        if kind == "delete":
            result = client.delete(ex.prefix + tid, refresh=refresh, version=version)
            assert (result.id, result.result) in {(ex.prefix + tid, "deleted"), (ex.prefix + tid, "not_found")}, result
        elif len(group) == 1 and delivery.one_by_one:
            check_upserts(group, [client.upsert(ex.trip(*group[0]), refresh=refresh)], applied, ex)
        else:
            check_upserts(group, client.bulk([ex.trip(*e) for e in group], refresh=refresh), applied, ex)
        for tid, version, _ in group:
            applied[tid] = max(applied.get(tid, -1), version)


def check_upserts(group: list[Event], results: list[ItemResult], applied: dict[str, int], ex: Example) -> None:
    """Check one request's answers: never ``stored`` at or under a version already sent; its highest version of an id ``stored`` exactly once if new.

    A lower version of an id in the same request may be ``stored`` (applied
    in order) or ``unchanged`` (the request's highest wins at once).
    """
    assert [(r.line, r.id) for r in results] == [(i + 1, ex.prefix + e[0]) for i, e in enumerate(group)]
    top: dict[str, int] = {}
    for tid, version, _ in group:
        top[tid] = max(top.get(tid, -1), version)
    stored_top = dict.fromkeys(top, 0)
    for (tid, version, _), result in zip(group, results):
        assert result.result in ("stored", "unchanged"), result
        if result.result == "stored":
            assert version > applied.get(tid, -1), f"{result} over version {applied.get(tid)}"
            assert result.version == version, result
            stored_top[tid] += version == top[tid]
    assert stored_top == {tid: int(version > applied.get(tid, -1)) for tid, version in top.items()}, (group, results)


def check_state(client: TripSearchClient, ex: Example, evts: list[Event]) -> None:
    expected = expected_state(evts)
    for tid in IDS:
        latest = expected.get(tid)
        if latest is None or latest[1] == "delete":
            with pytest.raises(NotFound):
                doc = client.get(ex.prefix + tid)
                raise AssertionError(f"{tid} should be absent, latest event {latest}, got version {doc['version']} {doc['status']}")
        else:
            doc = client.get(ex.prefix + tid)
            assert (doc["version"], doc["status"]) == (latest[0], STATUS[latest[1]]), tid
    searchable = sorted(ex.prefix + tid for tid, (_, kind) in expected.items() if kind == "publish")
    found = client.search(iceland_query(ex.day))
    assert (found.total, sorted(h.id for h in found.trips)) == (len(searchable), searchable)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delivery=deliveries(upsert_events))
# The last write changes nothing (the version is stored): it still answers once the trip is searchable.
@example(delivery=Delivery([("a", 1, "publish")], [("a", 1, "publish"), ("a", 1, "publish")], 1, False))
def test_highest_version_wins_through_the_client(client: TripSearchClient, delivery: Delivery) -> None:
    ex = Example.fresh()
    send(client, ex, delivery)
    check_state(client, ex, delivery.events)


def _in_order(*evts: Event) -> Delivery:
    return Delivery(list(evts), list(evts), 1, False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delivery=deliveries(events))
@example(delivery=_in_order(("a", 2, "delete"), ("a", 1, "publish")))
@example(delivery=_in_order(("a", 2, "publish"), ("a", 1, "delete")))
def test_deletes_in_any_order_through_the_client(client: TripSearchClient, delivery: Delivery) -> None:
    ex = Example.fresh()
    send(client, ex, delivery)
    check_state(client, ex, delivery.events)
