"""tripsearch.client against a real server, and its retries against a scripted transport."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Callable, Iterator

import httpx
import orjson
import pytest

import tripsearch
from tripsearch.client import APIError, AsyncTripSearchClient, PlaceSuggestion, Retry, TripSearchClient
from tripsearch.errors import BackendUnavailable, InvalidCursor, InvalidQuery, InvalidTrip, NotFound

from .conftest import Server
from .support import LONDON_READING, iceland_query, make_token, make_trip

FAST = Retry(attempts=3, backoff_s=0.001, max_backoff_s=0.01)


def _id() -> str:
    return f"client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(api: Server) -> Iterator[TripSearchClient]:
    with TripSearchClient(api.url, token=make_token()) as c:
        yield c


def test_search_returns_the_engine_values(client: TripSearchClient, api: Server) -> None:
    result = client.search(LONDON_READING, limit=2, facets=["price", "dates"])
    assert isinstance(result, tripsearch.SearchResult)
    assert result.total >= 3 and len(result.trips) == 2
    assert isinstance(result.trips[0].pickup, tripsearch.Point)
    assert set(result.facets) == {"price", "dates"}
    assert result.took_ms > 0
    following = client.search(LONDON_READING, limit=2, facets=["price", "dates"], cursor=result.next_cursor)
    assert not {h.id for h in following.trips} & {h.id for h in result.trips}
    same = client.search(from_=(51.5074, -0.1278), to={"lat": 51.4543, "lon": -0.9781}, date="2026-12-13", limit=2, facets=["price", "dates"])
    assert [h.id for h in same.trips] == [h.id for h in result.trips]


def test_search_raises_the_engine_errors(client: TripSearchClient) -> None:
    with pytest.raises(InvalidQuery) as error:
        client.search(LONDON_READING, limit=1000)
    assert error.value.field == "limit" and "1 to 100" in error.value.reason
    with pytest.raises(InvalidCursor):
        client.search(LONDON_READING, cursor="junk")


def test_places(client: TripSearchClient) -> None:
    places = client.places("saint etienne", limit=1)
    assert places == [PlaceSuggestion("Saint-Étienne", "FR", places[0].lat, places[0].lon, places[0].population)]


def test_upsert_get_delete(client: TripSearchClient) -> None:
    trip_id = _id()
    stored = client.upsert(make_trip(trip_id), refresh=True)
    assert (stored.id, stored.result, stored.version) == (trip_id, "stored", 1)
    assert client.upsert(orjson.dumps(make_trip(trip_id))).result == "unchanged"
    assert client.get(trip_id)["id"] == trip_id
    assert trip_id in {h.id for h in client.search(iceland_query()).trips}
    assert client.delete(trip_id, refresh="wait_for").result == "deleted"
    assert client.delete(trip_id).result == "not_found"
    with pytest.raises(NotFound):
        client.get(trip_id)
    with pytest.raises(InvalidTrip) as error:
        client.upsert({**make_trip(trip_id, version=5), "seats_total": 0})
    assert error.value.field == "seats_total"


def test_writes_without_a_token_raise_api_errors(api: Server) -> None:
    with TripSearchClient(api.url) as anonymous:
        with pytest.raises(APIError) as error:
            anonymous.upsert(make_trip(_id()))
    assert error.value.status == 401 and error.value.code == "unauthorized"


def test_bulk_streams_batches_and_numbers_lines(client: TripSearchClient) -> None:
    ids = [_id() for _ in range(7)]
    trips: list[object] = [make_trip(i) for i in ids]
    trips[2] = b"{broken"
    trips[4] = "   "  # blank: answered by the client
    trips[5] = orjson.dumps(make_trip(ids[5]), option=orjson.OPT_INDENT_2)  # line breaks inside the JSON
    results = client.bulk(iter(trips), batch_size=3, refresh=True)  # type: ignore[arg-type]
    assert [r.line for r in results] == list(range(1, 8))
    assert [r.result for r in results] == ["stored", "stored", "rejected", "stored", "rejected", "stored", "stored"]
    assert results[4].reason == "is an empty line"
    assert all(r.to_dict().keys() >= {"line", "result"} for r in results)
    assert client.bulk([make_trip(ids[0])])[0].result == "unchanged"


def test_bulk_halves_batches_the_server_finds_too_large(api: Server) -> None:
    # 25 lines of 600 kB (whitespace inside the JSON) are over the server's 10 MiB; halves of them are not.
    day = dt.date(2027, 4, 1)  # away from the other tests' searches
    lines = [b"{" + b" " * 600_000 + orjson.dumps(make_trip(_id(), day=day))[1:] for _ in range(25)]
    with TripSearchClient(api.url, token=make_token()) as c:
        results = c.bulk(lines, batch_size=25, max_batch_bytes=1 << 30)
    assert [r.result for r in results] == ["stored"] * 25
    assert [r.line for r in results] == list(range(1, 26))


def _scripted(answers: list[Callable[[httpx.Request], httpx.Response]]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)(request)

    return httpx.MockTransport(handler), seen


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _busy(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "the store is busy", "code": "backend_unavailable"})


def _bulk_ok(request: httpx.Request) -> httpx.Response:
    lines = [line for line in request.content.split(b"\n") if line]
    items = [{"line": n, "id": orjson.loads(line)["id"], "result": "stored", "version": 1} for n, line in enumerate(lines, 1)]
    return httpx.Response(200, json={"stored": len(items), "unchanged": 0, "rejected": 0, "items": items})


def test_bulk_retries_connection_errors_and_503() -> None:
    transport, seen = _scripted([_refuse, _busy, _bulk_ok])
    with TripSearchClient("http://api.test", token="t", retry=FAST, transport=transport) as c:
        results = c.bulk([make_trip("a"), make_trip("b")])
    assert [r.result for r in results] == ["stored", "stored"]
    assert len(seen) == 3
    assert seen[-1].headers["authorization"] == "Bearer t"
    assert seen[-1].headers["content-type"] == "application/x-ndjson"


def test_gives_up_after_the_retries() -> None:
    transport, seen = _scripted([_refuse] * 4)
    with TripSearchClient("http://api.test", retry=FAST, transport=transport) as c:
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            c.get("x")
    assert len(seen) == 4
    transport, seen = _scripted([_busy] * 4)
    with TripSearchClient("http://api.test", retry=FAST, transport=transport) as c:
        with pytest.raises(BackendUnavailable, match="busy"):
            c.get("x")


def test_retry_delays_grow_and_honour_retry_after() -> None:
    retry = Retry(attempts=5, backoff_s=0.5, max_backoff_s=4)
    assert [0.25 <= retry.delay(0) <= 0.5, 1 <= retry.delay(2) <= 2, 2 <= retry.delay(9) <= 4] == [True] * 3
    assert retry.delay(0, retry_after=3) == 3
    assert retry.delay(0, retry_after=60) == 4


@pytest.mark.anyio
async def test_async_client(api: Server) -> None:
    trip_id = _id()

    async def trips() -> object:
        yield make_trip(trip_id)
        yield b"not json"

    async with AsyncTripSearchClient(api.url, token=make_token()) as c:
        results = await c.bulk(trips(), refresh=True)  # type: ignore[arg-type]
        assert [r.result for r in results] == ["stored", "rejected"]
        assert (await c.get(trip_id))["id"] == trip_id
        assert trip_id in {h.id for h in (await c.search(iceland_query())).trips}
        assert (await c.places("par"))[0].name == "Paris"
        assert (await c.upsert(make_trip(trip_id, version=2))).result == "stored"
        assert (await c.delete(trip_id)).result == "deleted"
        with pytest.raises(InvalidQuery):
            await c.search(LONDON_READING, sort="nope")


@pytest.mark.anyio
async def test_async_client_retries() -> None:
    transport_calls: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        transport_calls.append(1)
        if len(transport_calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"places": []})

    async with AsyncTripSearchClient("http://api.test", retry=FAST, transport=httpx.MockTransport(handler)) as c:
        assert await c.places("x") == []
    assert len(transport_calls) == 2
