"""Tests of tripsearch.data.places: the city table and the prefix autocomplete."""

from __future__ import annotations

import math
import zoneinfo

import pytest

from tripsearch.data.places import Place, load_places, normalize_place_name, search_places

__all__: list[str] = []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Saint-Étienne", "saint etienne"),
        ("  Zürich ", "zurich"),
        ("ZÜRICH", "zurich"),
        ("København", "kobenhavn"),
        ("Straße", "strasse"),
        ("L'Aquila", "l aquila"),
        ("Frankfurt (Oder)", "frankfurt oder"),
        ("Łódź", "lodz"),
        ("---", ""),
        ("", ""),
    ],
)
def test_normalize_place_name(raw: str, expected: str) -> None:
    assert normalize_place_name(raw) == expected


def test_load_places_is_ordered_and_valid() -> None:
    places = load_places()
    assert len(places) > 30_000
    assert places is load_places()  # cached
    keys = [(-p.population, p.name) for p in places]
    assert keys == sorted(keys)
    zones = zoneinfo.available_timezones()
    for p in places:
        assert isinstance(p, Place)
        assert p.population >= 15000
        assert -90 <= p.lat <= 90 and -180 <= p.lon <= 180
        assert len(p.country) == 2 and p.country.isupper()
        assert p.timezone in zones


def test_load_places_threshold_is_a_subset() -> None:
    big = load_places(100_000)
    assert big and all(p.population >= 100_000 for p in big)
    assert set(big) <= set(load_places())


def test_load_places_deduplicates() -> None:
    places = load_places()
    paris = [p for p in places if p.name == "Paris" and p.country == "FR"]
    assert len(paris) == 1
    assert paris[0].timezone == "Europe/Paris"
    # Numbered parts of towns are not towns of their own.
    assert not any(p.name.startswith(("Lyon 0", "Paris 1", "Marseille 0")) for p in places)
    seen: dict[tuple[str, str], list[Place]] = {}
    for p in places:
        twins = seen.setdefault((normalize_place_name(p.name), p.country), [])
        for q in twins:
            km = 6371 * math.dist((math.radians(p.lat), math.radians(p.lon) * math.cos(math.radians(p.lat))),
                                  (math.radians(q.lat), math.radians(q.lon) * math.cos(math.radians(p.lat))))
            assert km >= 9.0, (p, q)
        twins.append(p)


@pytest.mark.parametrize(
    ("query", "name", "country"),
    [
        ("par", "Paris", "FR"),
        ("Par", "Paris", "FR"),
        ("saint etienne", "Saint-Étienne", "FR"),
        ("Saint-Etienne", "Saint-Étienne", "FR"),
        ("SAINT-ÉTIENNE", "Saint-Étienne", "FR"),
        ("zur", "Zürich", "CH"),
        ("zürich", "Zürich", "CH"),
        ("lyon", "Lyon", "FR"),
        ("ber", "Berlin", "DE"),
        ("lon", "London", "GB"),
        ("cologne", "Köln", "DE"),  # an alternate name
        ("wien", "Vienna", "AT"),  # an alternate name typed in full beats "Wiener Neustadt"
        ("Париж", "Paris", "FR"),
    ],
)
def test_search_places_examples(query: str, name: str, country: str) -> None:
    found = search_places(query)
    assert found, query
    assert (found[0].name, found[0].country) == (name, country)


@pytest.mark.parametrize("query", ["", " ", "   ", "-", " ,.- "])
def test_search_places_blank_query(query: str) -> None:
    assert search_places(query) == []


def test_search_places_limit_and_ranking() -> None:
    assert search_places("par", limit=0) == []
    assert len(search_places("a", limit=3)) == 3
    many = search_places("s", limit=60)  # beyond the precomputed short-prefix answers
    assert len(many) == 60
    assert len({(p.name, p.country, p.lat, p.lon) for p in many}) == 60
    found = search_places("mar", limit=25)
    assert len(found) == 25
    # Matches on the name itself come first, biggest first.
    by_name = [p for p in found if normalize_place_name(p.name).startswith("mar")]
    assert found[: len(by_name)] == by_name
    pops = [p.population for p in by_name]
    assert pops == sorted(pops, reverse=True)


def test_search_places_prefix_only() -> None:
    names = [p.name for p in search_places("saint e", limit=20)]
    assert names[0] == "Saint-Étienne"
    assert all(normalize_place_name(n).startswith("saint e") for n in names)
    assert "Saint-Étienne" not in [p.name for p in search_places("etienne")]  # prefix, not substring
    assert search_places("xqzwv") == []
