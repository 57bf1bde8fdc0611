"""GET and POST /v1/search against a real server: the engine's answers, its errors as problems, caching, gzip."""

from __future__ import annotations

import gzip
from typing import Any, Mapping

import httpx
import orjson
import pytest

import tripsearch

from .conftest import InProcess, Server
from .support import LONDON_READING


def _engine_answer(api: Server, query: Mapping[str, Any]) -> dict[str, Any]:
    engine = tripsearch.open(api.data, refresh_interval=0, snapshot_on_close=False)
    try:
        answer = engine.search(query).to_dict()
    finally:
        engine.close()
    answer.pop("took_ms")
    return answer


def test_get_search_returns_the_engine_answer(api: Server, http: httpx.Client) -> None:
    response = http.get("/v1/search", params=LONDON_READING)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"total", "trips", "facets", "next_cursor"}
    assert body["total"] >= 3
    assert body == _engine_answer(api, LONDON_READING)
    assert response.headers["server-timing"].startswith("engine;dur=")


def test_hits_name_the_city_nearest_to_pickup_and_dropoff(http: httpx.Client) -> None:
    from tripsearch.data.places import nearest_place

    trips = http.get("/v1/search", params=LONDON_READING).json()["trips"]
    assert trips
    for hit in trips:
        for point in (hit["pickup"], hit["dropoff"]):
            near = nearest_place(point["lat"], point["lon"])
            assert point["place"] == {"name": near.name, "country": near.country}
    assert {hit["pickup"]["place"]["name"] for hit in trips} & {"London", "City of London", "City of Westminster"}, trips[0]["pickup"]


def test_post_search_takes_the_same_fields_as_json(http: httpx.Client) -> None:
    get = http.get("/v1/search", params=LONDON_READING).json()
    body = {"from": [51.5074, -0.1278], "to": "51.4543,-0.9781", "date": "2026-12-13", "facets": ["price", "dates"]}
    post = http.post("/v1/search", json=body)
    assert post.status_code == 200, post.text
    assert post.json()["trips"] == get["trips"]
    assert set(post.json()["facets"]) == {"price", "dates"}
    assert "etag" not in post.headers


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "2", "sort": "price"},
        {"options": "pets", "facets": "options"},
        {"options": ["pets", "instant_booking"], "facets": "options"},
        {"facets": ""},
        {"time_from": "06:00", "time_to": "22:30", "seats": "1", "max_price": "100", "min_rating": "0"},
        {"from_radius_km": "25", "to_radius_km": "25", "price_interval": "2.5", "cell_resolution": "5"},
        {"date": None, "date_from": "2026-12-12", "date_to": "2026-12-15", "departure_time": "08:00", "time_delta": "3600", "sort": "time_distance"},
    ],
)
def test_every_query_field_is_a_parameter(api: Server, http: httpx.Client, params: dict[str, Any]) -> None:
    query = {k: v for k, v in {**LONDON_READING, **params}.items() if v is not None}
    response = http.get("/v1/search", params=query)
    assert response.status_code == 200, response.text
    engine_query = {k: ",".join(v) if isinstance(v, list) else v for k, v in query.items()}
    assert response.json() == _engine_answer(api, engine_query)


def test_post_search_around_a_time_over_days(http: httpx.Client) -> None:
    body = {"from": [51.5074, -0.1278], "to": "51.4543,-0.9781", "date_from": "2026-12-12", "date_to": "2026-12-14", "departure_time": "08:00", "time_delta": 7200, "sort": "time_distance", "facets": ["dates"]}
    post = http.post("/v1/search", json=body)
    assert post.status_code == 200, post.text
    answer = post.json()
    assert [d["date"] for d in answer["facets"]["dates"]] == [f"2026-12-{day:02d}" for day in range(9, 18)]
    assert sum(d["count"] for d in answer["facets"]["dates"][3:6]) == answer["total"]
    get = http.get("/v1/search", params={**{k: str(v) if not isinstance(v, list) else ",".join(map(str, v)) for k, v in body.items()}, "from": "51.5074,-0.1278"}).json()
    assert get == answer


def test_cursor_pages_through_the_results(http: httpx.Client) -> None:
    everything = http.get("/v1/search", params={**LONDON_READING, "limit": "100", "facets": ""}).json()
    seen: list[str] = []
    cursor = None
    while True:
        params = {**LONDON_READING, "limit": "1", "facets": "", **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/search", params=params).json()
        seen += [hit["id"] for hit in page["trips"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [hit["id"] for hit in everything["trips"]]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "91,0"}, "from.lat", "at most 90"),
        ({"to": "45.7,200"}, "to.lon", "at most 180"),
        ({"from": "paris"}, "from", "LAT,LON"),
        ({"date": "2026-13-01"}, "date", "YYYY-MM-DD"),
        ({"date": "13/12/2026"}, "date", "YYYY-MM-DD"),
        ({"from_radius_km": "500"}, "from_radius_km", "at most 100"),
        ({"limit": "1000"}, "limit", "from 1 to 100"),
        ({"limit": "ten"}, "limit", "integer"),
        ({"sort": "cheapest"}, "sort", "must be one of"),
        ({"facets": "colour"}, "facets", "unknown facet"),
        ({"options": "dogs"}, "options", "unknown option"),
        ({"cursor": "not-a-cursor"}, "cursor", "not a cursor"),
        ({"time_from": "25:00"}, "time_from", "23:59"),
        ({"colour": "red"}, "colour", "not a query field"),
        ({"seats": ["1", "2"]}, "seats", "more than once"),
        ({"date_from": "2026-12-12", "date_to": "2026-12-14"}, "date_from", "cannot be given with date"),
        ({"date": "", "date_from": "2026-12-12", "date_to": "2026-12-19"}, "date_to", "more than 7 days"),
        ({"date": "", "date_from": "2026-12-12", "date_to": "2026-12-11"}, "date_to", "before date_from"),
        ({"departure_time": "08:00", "time_to": "09:00"}, "time_to", "cannot be given with departure_time"),
        ({"departure_time": "8 am"}, "departure_time", "HH:MM"),
        ({"departure_time": "08:00", "time_delta": "86400"}, "time_delta", "from 0 to 43200"),
        ({"time_delta": "900"}, "time_delta", "needs departure_time"),
        ({"sort": "time_distance"}, "sort", "give departure_time"),
    ],
)
def test_invalid_queries_are_problems_naming_the_field(http: httpx.Client, params: dict[str, Any], field: str, words: str) -> None:
    response = http.get("/v1/search", params={**LONDON_READING, **params})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field
    assert problem["status"] == 400 and problem["title"] == "Bad Request" and problem["type"] == "about:blank"
    assert field in problem["detail"] and words in problem["detail"]
    assert "Traceback" not in response.text


def test_missing_required_fields_are_named(http: httpx.Client) -> None:
    response = http.get("/v1/search", params={"from": LONDON_READING["from"]})
    assert response.status_code == 400
    assert response.json()["field"] == "to"


def test_a_cursor_of_another_query_is_refused(http: httpx.Client) -> None:
    cursor = http.get("/v1/search", params={**LONDON_READING, "limit": "1"}).json()["next_cursor"]
    assert cursor
    response = http.get("/v1/search", params={**LONDON_READING, "limit": "1", "sort": "price", "cursor": cursor})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_query"),
        (b'{"from": [1, 2, 3], "to": "1,1", "date": "2026-12-13"}', 400, "invalid_query"),
        (b'{"from": "1,1", "to": "1,1", "date": "2026-12-13", "facets": ' + b"[" * 40 + b"]" * 40 + b"}", 422, "too_deep"),
        (b"[" * 5000 + b"]" * 5000, 422, "too_deep"),
    ],
)
def test_bad_post_bodies_are_4xx(http: httpx.Client, body: bytes, status: int, code: str) -> None:
    response = http.post("/v1/search", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_oversized_search_body_is_413(http: httpx.Client) -> None:
    response = http.post("/v1/search", content=b" " * (1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_responses_carry_cache_validators_and_304(http: httpx.Client) -> None:
    first = http.get("/v1/search", params=LONDON_READING)
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert first.headers["cache-control"] == "public, max-age=5"
    again = http.get("/v1/search", params=LONDON_READING)
    assert again.headers["etag"] == etag  # same answer, same tag (the engine's time is in a header)
    cached = http.get("/v1/search", params=LONDON_READING, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    stale = http.get("/v1/search", params=LONDON_READING, headers={"If-None-Match": 'W/"0000"'})
    assert stale.status_code == 200
    other = http.get("/v1/search", params={**LONDON_READING, "limit": "1"})
    assert other.headers["etag"] != etag


@pytest.mark.anyio
async def test_cache_max_age_is_configurable(in_process: InProcess) -> None:
    async with in_process(cache_max_age=30) as client:
        response = await client.get("/v1/search", params=LONDON_READING)
    assert response.headers["cache-control"] == "public, max-age=30"


def test_responses_are_gzipped_when_asked(api: Server) -> None:
    raw = httpx.get(f"{api.url}/v1/search", params=LONDON_READING, headers={"Accept-Encoding": "gzip"})
    # httpx decodes; look at the raw bytes through a stream instead.
    with httpx.stream("GET", f"{api.url}/v1/search", params=LONDON_READING, headers={"Accept-Encoding": "gzip"}) as streamed:
        assert streamed.headers["content-encoding"] == "gzip"
        compressed = b"".join(streamed.iter_raw())
    assert orjson.loads(gzip.decompress(compressed)) == raw.json()
    assert "Accept-Encoding" in raw.headers["vary"]
    plain = httpx.get(f"{api.url}/v1/search", params=LONDON_READING, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == raw.json()
