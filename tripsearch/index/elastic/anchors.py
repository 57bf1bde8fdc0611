"""Anchors: the places passengers search from, with each trip's exact pickup there written when it is indexed.

A shard cannot compute the pickup point of a trip for a place (no
scripts), and the page's sort keys, time filters and facets all depend on
it. But passengers search from a small set of known places: the page and
MaaS apps send the coordinates of :mod:`tripsearch.data.places`, and a popular
corridor is a pair of such places. So for every place of at least
:data:`ANCHOR_MIN_POPULATION` inhabitants within :data:`ANCHOR_KM` of a
trip's route, the trip document holds an entry (``anchors``, ``nested``)
computed by the same kernels a search runs, on the same bits
(:func:`tripsearch.index.anchors.anchor_entries`, which the embedded
backend's segments store too):

- ``place``: the place's key (its position among the anchors);
- ``km``: the distance from the place to the route (rule 1 of
  :mod:`tripsearch.query.matching`);
- ``time``, ``day``, ``minute``: the pickup time there (the earliest
  closest point) and its local day and minute in the trip's UTC offset;
  ``drop_time``: the dropoff time there (the latest closest point);
- ``pickup`` and ``dropoff``: the closest point, earliest and latest on a
  tie, as ``"lat,lon"`` (the point a hit reports, and its cell).

Rule 2 (pickup before dropoff) compares two entries, which a query cannot
do; so the document also lists, in ``anchor_pairs``, every ordered pair
``"A>B"`` of its anchors whose pickup at A comes strictly before the
dropoff at B along the route. A search from one anchor to another with
radii up to :data:`ANCHOR_KM` then reads, in the shard, exactly the values
the shared rules compute: a trip with no entry for a place is farther than
:data:`ANCHOR_KM` from it, and one without the pair drops off before it
picks up.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from ...core.columns import SECONDS_PER_DAY, TripColumns
from ..anchors import ANCHOR_KM, ANCHOR_MIN_POPULATION, Anchors, anchor_entries, anchor_places, point_key

__all__ = ["ANCHOR_KM", "ANCHOR_MIN_POPULATION", "RADIUS_CLASSES", "Anchors", "AnchorFields", "anchor_places", "point_key", "anchor_fields", "anchor_pair", "entry_value", "value_entry", "BY_PLACE", "place_value"]

# Radii (km) a place's entry is also indexed under when it is that close (``anchor_radii``): the page's
# choices up to ANCHOR_KM and the standard covoiturage's default of 1 km, so a search with one of them
# needs no nested join for its radius.
RADIUS_CLASSES = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0)


def anchor_pair(from_key: str, to_key: str) -> str:
    """Return the ``anchor_pairs`` keyword of a trip that picks up at ``from_key`` before it drops off at ``to_key``."""
    return f"{from_key}>{to_key}"


# An entry as one line of the trip's ``anchor_values`` (binary doc values, read back with a page's hits
# without loading the source: one value per trip, where a multi-valued keyword cost a terms dictionary
# lookup per entry).
_ENTRY_KEYS = ("place", "km", "time", "drop_time", "day", "minute", "pickup", "dropoff")
_ENTRY_TYPES = (str, float, int, int, int, int, str, str)


def entry_value(entry: dict[str, object]) -> str:
    """Return an anchor entry as one line, its place first (floats as Python writes them, read back to the same)."""
    return "|".join(repr(entry[k]) if isinstance(entry[k], float) else str(entry[k]) for k in _ENTRY_KEYS)


def value_entry(value: str) -> dict[str, Any]:
    """Return the anchor entry of a line of :func:`entry_value`."""
    return {k: t(part) for k, t, part in zip(_ENTRY_KEYS, _ENTRY_TYPES, value.split("|"))}


class AnchorFields(NamedTuple):
    """The anchor fields of trip documents: each trip's entries, the same as lines (:func:`entry_value`), its ordered pairs, and its entries' values by place (:data:`BY_PLACE`)."""

    entries: list[list[dict[str, object]]]
    values: list[list[str]]
    pairs: list[list[str]]
    by_place: dict[str, list[list[str]]]


# Values of each entry also indexed as top-level keywords ``place@value`` (:func:`place_value`), so that a
# filter or a facet on one place's entry reads them without joining nested documents: its local day, the
# hour of its minute, its pickup point, its dropoff point, and every radius of RADIUS_CLASSES it is within.
BY_PLACE = ("anchor_days", "anchor_hours", "anchor_pickups", "anchor_dropoffs", "anchor_radii")


def place_value(place: str, value: object) -> str:
    """Return the keyword of a place's entry value in the :data:`BY_PLACE` fields."""
    return f"{place}@{value}"


@lru_cache(maxsize=1 << 16)
def _radius_values(place: str) -> tuple[str, ...]:
    """Return the ``anchor_radii`` keywords of a place's entry within every radius class (a place's entries share them)."""
    return tuple(place_value(place, r) for r in RADIUS_CLASSES)


def anchor_fields(cols: TripColumns, anchors: Anchors | None = None) -> AnchorFields:
    """Return the anchor entries and pairs of every trip of ``cols`` (see the module docstring), in the order of the places.

    ``anchors`` defaults to :func:`anchor_places`.
    """
    anchors = anchor_places() if anchors is None else anchors
    n = len(cols)
    out = AnchorFields([[] for _ in range(n)], [[] for _ in range(n)], [[] for _ in range(n)], {name: [[] for _ in range(n)] for name in BY_PLACE})
    # The entries are computed where both backends compute them (index/anchors.py); here they are only written out.
    rows, places, km, along, p_lat, p_lon, time, q_along, q_lat, q_lon, drop_time = anchor_entries(cols, anchors)
    if len(rows) == 0:
        return out
    local = time + cols.offset_s[rows].astype(np.int64)
    day = local // SECONDS_PER_DAY
    minute = local % SECONDS_PER_DAY // 60
    keys = places.astype(str).tolist()
    within = np.searchsorted(RADIUS_CLASSES, km).tolist()  # the first radius class at least km: it and every larger one
    days, hours, pickups, dropoffs, radii = (out.by_place[name] for name in ("anchor_days", "anchor_hours", "anchor_pickups", "anchor_dropoffs", "anchor_radii"))
    for row, place, d, t, dt, dy, mi, plat, plon, qlat, qlon, first in zip(
        rows.tolist(), keys, km.tolist(), time.tolist(), drop_time.tolist(), day.tolist(), minute.tolist(), p_lat.tolist(), p_lon.tolist(), q_lat.tolist(), q_lon.tolist(), within
    ):
        pickup, dropoff = f"{plat!r},{plon!r}", f"{qlat!r},{qlon!r}"  # point_key
        out.entries[row].append({"place": place, "km": d, "time": t, "drop_time": dt, "day": dy, "minute": mi, "pickup": pickup, "dropoff": dropoff})
        out.values[row].append(f"{place}|{d!r}|{t}|{dt}|{dy}|{mi}|{pickup}|{dropoff}")  # entry_value
        # place_value, for each of BY_PLACE
        days[row].append(f"{place}@{dy}")
        hours[row].append(f"{place}@{mi // 60}")
        pickups[row].append(f"{place}@{pickup}")
        dropoffs[row].append(f"{place}@{dropoff}")
        radii[row].extend(_radius_values(place)[first:])
    # Rule 2 for every two anchors of a route: the pickup at one strictly before the dropoff at the other.
    # Entries come by route: every (i, j) of one route's entries, i != j, from the group sizes.
    bounds = np.searchsorted(rows, np.arange(n + 1))
    size = np.diff(bounds)
    group = np.repeat(bounds[:-1], size)  # first entry of each entry's route
    i = np.repeat(np.arange(len(rows)), size[rows])
    j = group[i] + (np.arange(len(i)) - np.repeat(np.cumsum(size[rows]) - size[rows], size[rows]))
    keep = (i != j) & (along[i] < q_along[j])
    i, j = i[keep], j[keep]
    pair_bounds = np.searchsorted(rows[i], np.arange(n + 1)).tolist()
    flat = [f"{keys[a]}>{keys[b]}" for a, b in zip(i.tolist(), j.tolist())]  # anchor_pair
    for row in range(n):
        out.pairs[row].extend(flat[pair_bounds[row] : pair_bounds[row + 1]])
    return out
