"""Tests of tripsearch.data.places: the city table and the prefix autocomplete."""

from __future__ import annotations

import math
import unicodedata
import zoneinfo
from typing import Callable

import numpy as np
import pytest

from tripsearch.data.places import Place, load_places, nearest_place, nearest_places, normalize_place_name, search_places

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
    assert "Saint-Étienne" not in [p.name for p in search_places("tienne")]  # prefix of a word, not substring
    assert search_places("xqzwv") == []


def test_a_word_of_the_name_matches_after_the_whole_name() -> None:
    found = search_places("york", limit=20)
    names = [(p.name, p.country) for p in found]
    assert names[0] == ("York", "GB")
    assert ("New York City", "US") in names
    # Every place whose own name starts with "york" comes before New York City.
    new_york = names.index(("New York City", "US"))
    assert all(normalize_place_name(p.name).startswith("york") for p in found[:new_york] if p.name != "Warner Robins"), names
    assert search_places("etienne")[0].name == "Saint-Étienne"


def _matched_by_name(query: str, place: Place) -> bool:
    prefix = normalize_place_name(query)
    words = normalize_place_name(place.name).split(" ")
    return any(" ".join(words[cut:]).startswith(prefix) for cut in range(len(words)))


def test_a_name_beats_a_distant_alternate_spelling() -> None:
    # GeoNames knows Ljubljana as "Lyoubyana" and Liubotyn as "Lyobotin":
    # three letters of nine are not enough to offer them.
    found = search_places("Lyo", limit=10)
    assert found[0].name == "Lyon"
    assert all(_matched_by_name("Lyo", p) for p in found), [p.name for p in found]
    assert not {"Ljubljana", "Hillside", "Liubotyn"} & {p.name for p in found}
    # Half an alternate name is enough; the name itself still comes first.
    assert [p.name for p in search_places("cologn")] == ["Cologno Monzese", "Köln"]
    assert search_places("Lyoubyana")[0].name == "Ljubljana"  # typed in full


def _strip_accents(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


def _sample_names() -> list[Place]:
    """Return a few hundred real places: every 40th of the table, half of them with letters beyond ASCII."""
    places = load_places()
    plain = [p for p in places[::40] if p.name.isascii()][:150]
    accented = [p for p in places[::7] if not p.name.isascii() and _strip_accents(p.name).isascii()][:150]
    return plain + accented


@pytest.mark.parametrize("spelling", [str.upper, str.lower, _strip_accents, lambda name: _strip_accents(name).upper()])
def test_prefixes_of_real_names_ignore_accents_and_case(spelling: Callable[[str], str]) -> None:
    for place in _sample_names():
        name = spelling(place.name)
        half = place.name[: max(len(place.name) // 2, 1)]
        # A prefix typed in another case or without accents offers what the name as written does.
        assert search_places(spelling(half), limit=20) == search_places(half, limit=20), spelling(half)
        # The whole name finds the place first, or among its namesakes.
        found = search_places(name, limit=50)
        assert place in found, (name, place)
        assert normalize_place_name(found[0].name) == normalize_place_name(place.name), (name, found[0])


@pytest.mark.parametrize(
    ("lat", "lon", "name", "country"),
    [(48.8566, 2.3522, "Paris", "FR"), (45.7640, 4.8357, "Lyon", "FR"), (-33.87, 151.21, "Sydney", "AU"), (64.1466, -21.9426, "Reykjavík", "IS")],
)
def test_nearest_place_names_a_point(lat: float, lon: float, name: str, country: str) -> None:
    found = nearest_place(lat, lon)
    assert (found.name, found.country) == (name, country)


def test_nearest_place_is_the_nearest_of_all() -> None:
    places = load_places()
    rng = np.random.default_rng(20)
    lat, lon = np.radians([p.lat for p in places]), np.radians([p.lon for p in places])
    at = np.degrees(np.stack([lat, lon], axis=1))
    some, other = rng.integers(0, len(places), 200), rng.integers(0, len(places), 200)
    # Points anywhere (mostly the sea, far from every place: many strips of longitude to scan), near the antimeridian
    # and the poles, on the strips' edges (whole degrees); on places, near them and between two (where routes go).
    points = np.concatenate([
        rng.uniform([-90, -180], [90, 180], (150, 2)), [[65.0, 179.99], [65.0, -179.99], [89.9, 0.0], [-89.9, 10.0], [-16.5, -179.9], [-16.5, 180.0], [0.0, -180.0]],
        np.round(rng.uniform([-60, -180], [70, 180], (100, 2))),
        at[some[:50]], at[some] + rng.normal(0.0, 0.1, (200, 2)), (at[some] + at[other]) / 2,
    ])  # fmt: skip
    points[:, 1] = (points[:, 1] + 180.0) % 360.0 - 180.0
    for a, b in points:
        h = np.sin((lat - math.radians(a)) / 2) ** 2 + math.cos(math.radians(a)) * np.cos(lat) * np.sin((lon - math.radians(b)) / 2) ** 2
        best = places[int(np.argmin(h))]
        assert nearest_place(a, b) == best, (a, b)
    # a page's points named at once: the same places, point by point
    assert nearest_places(points[:, 0].tolist(), points[:, 1].tolist()) == [nearest_place(a, b) for a, b in points.tolist()]
    assert nearest_places([], []) == []
