"""GET /v1/places: prefix autocomplete over real cities."""

from __future__ import annotations

import httpx
import pytest

from tripsearch.data.places import search_places


def test_prefix_finds_paris_first(http: httpx.Client) -> None:
    response = http.get("/v1/places", params={"q": "Par", "limit": "10"})
    assert response.status_code == 200
    places = response.json()["places"]
    assert len(places) == 10
    assert places[0] == {"name": "Paris", "country": "FR", "lat": pytest.approx(48.85, abs=0.05), "lon": pytest.approx(2.35, abs=0.05), "population": places[0]["population"]}
    populations = [p["population"] for p in places]
    assert populations == sorted(populations, reverse=True)


@pytest.mark.parametrize(("q", "name"), [("saint etienne", "Saint-Étienne"), ("SAINT-ÉTIENNE", "Saint-Étienne"), ("zur", "Zürich"), ("koln", "Köln")])
def test_accents_and_case_are_ignored(http: httpx.Client, q: str, name: str) -> None:
    places = http.get("/v1/places", params={"q": q}).json()["places"]
    assert places[0]["name"] == name


def test_answers_are_the_place_module_s(http: httpx.Client) -> None:
    expected = [(p.name, p.country, p.lat, p.lon) for p in search_places("lyo", 7)]
    places = http.get("/v1/places", params={"q": "lyo", "limit": "7"}).json()["places"]
    assert [(p["name"], p["country"], p["lat"], p["lon"]) for p in places] == expected


def test_blank_query_returns_no_places(http: httpx.Client) -> None:
    assert http.get("/v1/places").json() == {"places": []}
    assert http.get("/v1/places", params={"q": "  "}).json() == {"places": []}


@pytest.mark.parametrize(("params", "field"), [({"q": "a", "limit": "0"}, "limit"), ({"q": "a", "limit": "51"}, "limit"), ({"q": "a", "limit": "x"}, "limit"), ({"q": "a" * 101}, "q")])
def test_bad_parameters_are_problems(http: httpx.Client, params: dict[str, str], field: str) -> None:
    response = http.get("/v1/places", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(f"{field}: ")


def test_places_are_cacheable(http: httpx.Client) -> None:
    first = http.get("/v1/places", params={"q": "Ber"})
    assert first.headers["cache-control"] == "public, max-age=3600"
    assert http.get("/v1/places", params={"q": "Ber"}, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
