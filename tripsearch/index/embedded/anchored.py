"""Anchor entries in a segment: searches between two known places read the pickups and dropoffs stored for them.

A segment written for an anchor set (:mod:`tripsearch.index.anchors`)
holds, for every row, its anchor entries (the places within
:data:`~tripsearch.index.anchors.ANCHOR_KM` of its route, with the exact
pickup and dropoff there, as :func:`~tripsearch.index.anchors.anchor_entries`
computes them), as ragged arrays over the rows (``anchor_start``), and
every entry again in one order by place, then by local day of the pickup,
then by row (``anchor_order_rows``, ``anchor_order_day``,
``anchor_place_start``): a search reads its days' range of a place's
entries, and reads their rows rising, as Lucene reads a posting list in
document order (the rows' entries, columns and stops are then read from
one end of the segment to the other, not at random).
An entry's dropoff is its pickup (the one closest point) but where the
route passes the place twice at the same distance (loops, out and back):
only those entries' dropoffs are stored, in a short list by entry
(``anchor_drop_entry``, ``anchor_drop_along``, ``anchor_dropoff_lat``,
``anchor_dropoff_lon``).

The segment also holds the anchor places (``anchor_lat``, ``anchor_lon``)
and the longest trip's duration (``anchor_max_span``): a search from one
of them to another with both radii up to ANCHOR_KM joins, on their rows,
the ``from`` place's entries on its candidate days (one binary-searched
range of the order) with the ``to`` place's on those days widened by that
duration (sequential reads of two sorted lists, as a postings join reads
two posting lists: a big city's list is long, and reading each of its
rows' entries at random costs a cache miss a row), then finds both entries
among each joined row's own entries, and decides rules 1 and 2 by
comparing the stored values with the radii: no H3 postings read, no route
measured. A row without an entry for
a place is farther than ANCHOR_KM from it, so it cannot match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import numpy as np
from numpy.typing import NDArray

from ...core.columns import SECONDS_PER_DAY, STATUS_CODES, TripColumns
from ...core.kernels import anchored_ends
from ...geo import ClosestPoints
from ...query.matching import Ends
from ...query.model import Query
from ..anchors import ANCHOR_KM, Anchors, anchor_entries

__all__ = ["AnchorIndex", "ENTRY_FIELDS", "DROP_FIELDS", "ORDER_FIELDS", "PLACE_FIELDS", "anchor_arrays", "anchor_index", "warm_up_anchored"]

# The arrays of an entry (``anchor_<name>``), by row; then those of the order by place.
ENTRY_FIELDS: dict[str, type] = {"place": np.uint16, "km": np.float64, "along": np.float64, "pickup_lat": np.float64, "pickup_lon": np.float64}
# The dropoffs that are not the pickup, by entry.
DROP_FIELDS: dict[str, type] = {"drop_entry": np.int64, "drop_along": np.float64, "dropoff_lat": np.float64, "dropoff_lon": np.float64}
ORDER_FIELDS: dict[str, type] = {"order_rows": np.uint32, "order_day": np.int32, "order_m": np.uint16}
# The anchor places the entries were computed for (a place's id is its position), so that a search needs
# nothing but the segment: not the places table (half a second to read), nor this process's anchor set.
PLACE_FIELDS: dict[str, type] = {"lat": np.float64, "lon": np.float64}
MAX_PLACES = 1 << 16  # place ids are u16
_PUBLISHED = STATUS_CODES["published"]


@dataclass(frozen=True)
class AnchorIndex:
    """A segment's anchor entries (see the module docstring), for the anchor set of ``fingerprint``."""

    fingerprint: str
    lat: NDArray[np.float64]  # the anchor places, by id
    lon: NDArray[np.float64]
    max_span: NDArray[np.int64]  # [the longest trip's seconds from its first stop to its last]
    start: NDArray[np.int64]  # rows + 1: the entries of row r are start[r]:start[r + 1], by place
    place: NDArray[np.uint16]
    km: NDArray[np.float64]
    along: NDArray[np.float64]
    pickup_lat: NDArray[np.float64]
    pickup_lon: NDArray[np.float64]
    drop_entry: NDArray[np.int64]  # the entries whose dropoff is not their pickup, rising
    drop_along: NDArray[np.float64]  # and their dropoffs
    dropoff_lat: NDArray[np.float64]
    dropoff_lon: NDArray[np.float64]
    place_start: NDArray[np.int64]  # places + 1: the order's entries of place p are place_start[p]:place_start[p + 1]
    order_rows: NDArray[np.uint32]  # each entry's row, by place, then by local day of the pickup, then by row
    order_day: NDArray[np.int32]  # each entry's local day of the pickup (days since 1970-01-01), in that order
    order_m: NDArray[np.uint16]  # and its distance in whole metres, rounded down, less one: at most its km * 1000 (a radius prefilter)

    @cached_property
    def _ids(self) -> dict[tuple[float, float], int]:
        return {point: i for i, point in enumerate(zip(self.lat.tolist(), self.lon.tolist()))}

    def places_of(self, query: Query) -> tuple[int, int] | None:
        """Return the places of ``query``'s ``from`` and ``to`` when the entries answer it (two different anchors of the segment, both radii up to ANCHOR_KM), else None."""
        if query.from_radius_km > ANCHOR_KM or query.to_radius_km > ANCHOR_KM:
            return None
        f = self._ids.get((float(query.from_point[0]), float(query.from_point[1])))
        t = self._ids.get((float(query.to_point[0]), float(query.to_point[1])))
        if f is None or t is None or f == t:
            return None
        return f, t

    def entries_on(self, place: int, first_day: int, last_day: int) -> tuple[int, int]:
        """Return the order positions of ``place``'s entries picking up on local days ``first_day..last_day``."""
        lo, hi = int(self.place_start[place]), int(self.place_start[place + 1])
        on = self.order_day[lo:hi]
        # the days as int32, as the array: a Python int makes numpy search a copy of the whole range as int64
        return lo + int(np.searchsorted(on, np.int32(first_day))), lo + int(np.searchsorted(on, np.int32(last_day + 1)))

    def ends(self, cols: TripColumns, query: Query, from_place: int, to_place: int, days: NDArray[np.int64]) -> tuple[NDArray[np.int64], Ends]:
        """Return the rows with an entry at ``from_place`` picking up on one of ``days`` (distinct, rising, consecutive) and one at ``to_place``, and rules 1 and 2 for them.

        Two lists are joined on their rows: ``from_place``'s entries on
        those days, and ``to_place``'s on the days a trip that picks up on
        them can pass there (as many days before and after as the longest
        trip can reach: on a loop its entry there may come first).
        """
        first, last = (int(days[0]), int(days[-1])) if len(days) else (0, -1)  # no days: no entries
        reach = -(-int(self.max_span[0]) // SECONDS_PER_DAY)  # floor(a) - floor(b) <= ceil(a - b)
        # Only the geometric matches are candidates: the others count nowhere (no filter, facet or page reads them).
        rows, pickup, dropoff, times = anchored_ends(
            self.start, self.place, (self.km, self.along, self.pickup_lat, self.pickup_lon), (self.drop_entry, self.drop_along, self.dropoff_lat, self.dropoff_lon),
            self.order_rows, self.order_m, self.entries_on(from_place, first, last), self.entries_on(to_place, first - reach, last + reach) if last >= first else (0, 0),
            from_place, to_place, cols.status, _PUBLISHED, query.from_radius_km, query.to_radius_km,
            cols.stop_start, cols.stop_along, cols.stop_time, cols.offset_s, first, last,
        )
        return rows, Ends(ClosestPoints(*pickup), ClosestPoints(*dropoff), np.ones(len(rows), dtype=np.bool_), times[0], times[1])


def warm_up_anchored() -> None:
    """Build (or read from numba's cache) the compiled loop of a search between anchors now, not in the first one.

    With read-only arrays, as a mapped segment's are (numba compiles one
    version per writability).
    """

    def mapped(dtype: type, n: int = 0) -> NDArray:
        out: NDArray = np.zeros(n, dtype=dtype)
        out.flags.writeable = False
        return out

    one, none = mapped(np.int64, 1), mapped(np.float64)
    anchored_ends(one, mapped(np.uint16), (none,) * 4, (mapped(np.int64), none, none, none), mapped(np.uint32), mapped(np.uint16), (0, 0), (0, 0), 0, 1, mapped(np.int8), _PUBLISHED, 1.0, 1.0, one, none, one, mapped(np.int32), 0, 0)


def anchor_arrays(
    parts: list[tuple[TripColumns, NDArray[np.int64]]], reuse: AnchorIndex | None, reuse_cols: TripColumns | None, anchors: Anchors, chunk_rows: int
) -> Iterator[tuple[str, type, list[NDArray]]]:
    """Yield the anchor arrays (name, dtype, chunks) of a segment of ``parts`` (columns and their rows, rising), one array at a time.

    The entries of ``reuse_cols``'s part are copied from ``reuse`` (the old
    segment's, for the same anchor set); every other part's are computed.
    """
    # Per part: entry counts per row, and the entries' values (copied parts as masks over the old arrays).
    counts: list[NDArray[np.int64]] = []
    values: list[dict[str, NDArray] | NDArray[np.bool_]] = []
    drops: list[dict[str, NDArray]] = []
    # the order's entries, a chunk at a time: place (u16), local day (i32) and row (u32), packed into sort keys at the end
    order_place: list[NDArray[np.uint16]] = []
    order_day: list[NDArray[np.int32]] = []
    order_rows: list[NDArray[np.uint32]] = []
    order_m: list[NDArray[np.uint16]] = []
    max_span = 0
    first = first_entry = 0
    for cols, rows in parts:
        if len(rows):
            max_span = max(max_span, int((cols.stop_time[cols.stop_start[rows + 1] - 1] - cols.stop_time[cols.stop_start[rows]]).max()))
        if reuse is not None and cols is reuse_cols:
            counts.append(reuse.start[rows + 1] - reuse.start[rows])
            keep = np.zeros(len(reuse.start) - 1, dtype=np.bool_)
            keep[rows] = True
            mask = np.repeat(keep, np.diff(reuse.start))
            values.append(mask)
            kept = mask[reuse.drop_entry]
            new_entry = first_entry + np.cumsum(mask)[reuse.drop_entry[kept]] - 1
            drops.append({"drop_entry": new_entry, **{name: getattr(reuse, name)[kept] for name in DROP_FIELDS if name != "drop_entry"}})
            renumber = np.full(len(reuse.start) - 1, -1, dtype=np.int64)
            renumber[rows] = np.arange(first, first + len(rows))
            new_rows = renumber[reuse.order_rows]
            in_order = new_rows >= 0
            order_place.append(np.repeat(np.arange(len(reuse.place_start) - 1, dtype=np.uint16), np.diff(reuse.place_start))[in_order])
            order_day.append(reuse.order_day[in_order])
            order_rows.append(new_rows[in_order].astype(np.uint32))
            order_m.append(reuse.order_m[in_order])
            del new_rows, in_order
        else:
            found: dict[str, list[NDArray]] = {name: [] for name in [*ENTRY_FIELDS, *DROP_FIELDS]}
            part_counts = []
            at_entry = first_entry
            for s in range(0, len(rows), chunk_rows):
                chunk = rows[s : s + chunk_rows]
                e = anchor_entries(cols, anchors, chunk)
                at = np.searchsorted(chunk, e.rows)
                part_counts.append(np.bincount(at, minlength=len(chunk)))
                for name in ENTRY_FIELDS:
                    found[name].append(getattr(e, "places" if name == "place" else name))
                # bit for bit: a dropoff is stored unless it is its entry's pickup
                other = (e.drop_along != e.along) | (e.dropoff_lat != e.pickup_lat) | (e.dropoff_lon != e.pickup_lon)
                found["drop_entry"].append(at_entry + np.flatnonzero(other))
                for name in ("drop_along", "dropoff_lat", "dropoff_lon"):
                    found[name].append(getattr(e, name)[other])
                at_entry += len(e.rows)
                order_place.append(e.places.astype(np.uint16))
                order_day.append(np.floor_divide(e.pickup_time + cols.offset_s[e.rows], SECONDS_PER_DAY).astype(np.int32))
                order_rows.append((first + s + at).astype(np.uint32))
                order_m.append(_metres_below(e.km))
            counts.append(np.concatenate(part_counts) if part_counts else np.zeros(0, dtype=np.int64))
            joined = {name: np.concatenate(found[name]) if found[name] else np.zeros(0) for name in found}
            values.append({name: joined[name] for name in ENTRY_FIELDS})
            drops.append({name: joined[name] for name in DROP_FIELDS})
        first += len(rows)
        first_entry += int(counts[-1].sum())
    yield "anchor_lat", np.float64, [anchors.lat]
    yield "anchor_lon", np.float64, [anchors.lon]
    yield "anchor_max_span", np.int64, [np.array([max_span], dtype=np.int64)]
    all_counts = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    yield "anchor_start", np.int64, [np.concatenate(([0], np.cumsum(all_counts))).astype(np.int64)]
    for name, dtype in ENTRY_FIELDS.items():
        chunks: list[NDArray] = []
        for part in values:
            if isinstance(part, dict):
                chunks.append(part[name])
            else:  # a mask over the old segment's entries, applied a chunk at a time
                old = getattr(reuse, name)
                step = 16 * chunk_rows
                chunks.extend(old[s : s + step][part[s : s + step]] for s in range(0, len(part), step))
        yield f"anchor_{name}", dtype, chunks
    del values
    for name, dtype in DROP_FIELDS.items():
        yield f"anchor_{name}", dtype, [d[name] for d in drops]
    # One u64 key per entry: place, then day, then row (8 bytes an entry, and 8 for the sort's permutation, where a lexsort of three i64 arrays took 56).
    first_day = min((int(d.min()) for d in order_day if len(d)), default=0)
    if max((int(d.max()) for d in order_day if len(d)), default=first_day) - first_day >= 1 << 16:
        raise ValueError("the anchor entries' local days span more than 65,536 days")
    keys = np.empty(sum(len(p) for p in order_place), dtype=np.uint64)
    at = 0
    for place, day, row in zip(order_place, order_day, order_rows):
        keys[at : at + len(place)] = (place.astype(np.uint64) << np.uint64(48)) | ((day - first_day).astype(np.uint64) << np.uint64(32)) | row
        at += len(place)
    del order_place, order_day, order_rows
    order = np.argsort(keys)
    keys = keys[order]
    metres = np.concatenate(order_m) if order_m else np.zeros(0, dtype=np.uint16)
    del order_m
    yield "anchor_place_start", np.int64, [np.searchsorted(keys, np.arange(len(anchors) + 1, dtype=np.uint64) << np.uint64(48)).astype(np.int64)]
    step = 1 << 22
    yield "anchor_order_rows", np.uint32, ((keys[s : s + step] & np.uint64(0xFFFF_FFFF)).astype(np.uint32) for s in range(0, len(keys), step))
    yield "anchor_order_day", np.int32, (((keys[s : s + step] >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.int32) + first_day for s in range(0, len(keys), step))
    yield "anchor_order_m", np.uint16, (metres[order[s : s + step]] for s in range(0, len(keys), step))


def _metres_below(km: NDArray[np.float64]) -> NDArray[np.uint16]:
    """Return ``km`` in whole metres, rounded down, less one (0 at least): never more than ``km * 1000``, whatever the rounding of the product."""
    return np.maximum(np.floor(km * 1000.0) - 1.0, 0.0).astype(np.uint16)


def anchor_index(arrays: dict[str, NDArray], fingerprint: str, rows: int, places: int) -> AnchorIndex | None:
    """Return the anchor index of a segment's arrays, None when one is missing or their lengths disagree."""
    names = [*(f"anchor_{n}" for n in PLACE_FIELDS), "anchor_max_span", "anchor_start", *(f"anchor_{n}" for n in [*ENTRY_FIELDS, *DROP_FIELDS]), "anchor_place_start", *(f"anchor_{n}" for n in ORDER_FIELDS)]
    if any(n not in arrays for n in names):
        return None
    entries = len(arrays["anchor_place"])
    if (
        len(arrays["anchor_start"]) != rows + 1
        or len(arrays["anchor_place_start"]) != places + 1
        or len(arrays["anchor_lat"]) != places
        or len(arrays["anchor_lon"]) != places
        or len(arrays["anchor_max_span"]) != 1
        or any(len(arrays[f"anchor_{n}"]) != entries for n in [*ENTRY_FIELDS, *ORDER_FIELDS])
        or any(len(arrays[f"anchor_{n}"]) != len(arrays["anchor_drop_entry"]) for n in DROP_FIELDS)
    ):
        return None
    return AnchorIndex(fingerprint, *(arrays[n] for n in names))
