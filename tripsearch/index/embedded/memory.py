"""The in-memory search structures of the embedded backend.

Trips live as columns (:class:`~tripsearch.core.columns.TripColumns`) in
append-only arrays with spare capacity. A new version of a trip is a new row;
the old row is marked dead. Corridor postings map a key (H3 cell, local day)
to rows, in a few immutable sorted segments merged log-structured style, as
Lucene merges its segments, so a refresh costs what it adds, not the size of
the index.

Searches read an :class:`IndexView`: an immutable snapshot of row count,
live mask and segments. A refresh builds the next view and swaps it in, so a
search never sees half a refresh.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Iterable, NamedTuple, Sequence

import numpy as np
from numpy.typing import NDArray

from ...core.columns import FIRST_OCCURRENCE, TripColumns
from ...model import Trip
from ...query.matching import SegmentWindows
from ...core.kernels import PostingRanges, join_postings, key_ranges
from ...occurrences import index_trips, trip_id_of
from ..cells import CELL_SHIFT, disk_to_cells, route_to_cells

__all__ = ["IndexView", "MemoryIndex", "PostingSegment", "Candidates", "cell_day_keys"]

_DAY_BITS = 24

def cell_day_keys(cells: NDArray[np.uint64], days: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Return one posting key per (cell, day) pair (broadcast)."""
    return (cells.astype(np.uint64) >> np.uint64(CELL_SHIFT)) << np.uint64(_DAY_BITS) | days.astype(np.uint64)


@dataclass(frozen=True)
class PostingSegment:
    """Sorted posting keys; entries ``offsets[i]:offsets[i+1]`` belong to ``keys[i]``.

    An entry is a row and the range of its route's segments sampled in the
    key's cell (``seg_lo..seg_hi``), so a search measures only those.
    """

    keys: NDArray[np.uint64]
    offsets: NDArray[np.int64]
    rows: NDArray[np.int32]
    seg_lo: NDArray[np.uint16]
    seg_hi: NDArray[np.uint16]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def build(cls, keys: NDArray[np.uint64], rows: NDArray[np.int64], seg_lo: NDArray[np.int64], seg_hi: NDArray[np.int64]) -> PostingSegment:
        order = np.lexsort((rows, keys))
        keys = keys[order]
        if len(keys):
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        else:
            starts = np.zeros(0, dtype=np.int64)
        offsets = np.concatenate((starts, [len(keys)])).astype(np.int64)
        return cls(keys[starts], offsets, rows[order].astype(np.int32), seg_lo[order].astype(np.uint16), seg_hi[order].astype(np.uint16))

    @classmethod
    def empty(cls) -> PostingSegment:
        none = np.zeros(0, dtype=np.int64)
        return cls.build(none.astype(np.uint64), none, none, none)

    def lookup(self, wanted: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Return the entry ranges (starts, ends) of the wanted keys (sorted, unique) that the segment holds."""
        return key_ranges(self.keys, self.offsets, wanted)

    def expanded(self) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        return np.repeat(self.keys, np.diff(self.offsets)), self.rows.astype(np.int64), self.seg_lo.astype(np.int64), self.seg_hi.astype(np.int64)

    @staticmethod
    def merge(segments: Sequence[PostingSegment], alive: NDArray[np.bool_]) -> PostingSegment:
        """Return one segment with the postings of all, dropping rows no longer alive.

        The rows must rise from each segment to the next (as rows are
        appended): then a key's entries are those of the first segment,
        then the second's, and so on, already in row order, so the segments
        are merged key by key without sorting their entries.
        """
        merged = PostingSegment.empty()
        for segment in segments:
            merged = _merge_two(merged, segment.alive_only(alive))
        return merged

    def alive_only(self, alive: NDArray[np.bool_]) -> PostingSegment:
        """Return the segment without the entries of rows no longer alive (itself when all are)."""
        if not len(self.rows) or alive[self.rows.min() : self.rows.max() + 1].all():
            return self
        keep = alive[self.rows]
        counts = np.add.reduceat(keep, self.offsets[:-1], dtype=np.int64)
        present = counts > 0
        offsets = np.concatenate(([0], np.cumsum(counts[present]))).astype(np.int64)
        return PostingSegment(self.keys[present], offsets, self.rows[keep], self.seg_lo[keep], self.seg_hi[keep])


def _merge_two(a: PostingSegment, b: PostingSegment) -> PostingSegment:
    """Return the entries of ``a`` and ``b`` as one segment, ``b``'s after ``a``'s within a key (its rows come later)."""
    if not len(b.rows):
        return a
    if not len(a.rows):
        return b
    # where each key of b goes among a's keys (both sorted and distinct), and among all keys
    at_key = np.searchsorted(a.keys, b.keys)
    found = at_key < len(a.keys)
    found[found] = a.keys[at_key[found]] == b.keys[found]
    new = ~found
    at_all = at_key + np.cumsum(new) - new
    of_a = np.ones(len(a.keys) + np.count_nonzero(new), dtype=bool)
    of_a[at_all[new]] = False
    keys = np.empty(len(of_a), dtype=a.keys.dtype)
    keys[of_a] = a.keys
    keys[at_all] = b.keys
    counts = np.zeros(len(keys), dtype=np.int64)
    counts[of_a] = np.diff(a.offsets)
    b_counts = np.diff(b.offsets)
    counts[at_all] += b_counts
    # an entry of b goes after every entry of a with a key up to its own, and after the entries of b before it
    dest = np.repeat(a.offsets[at_key + found], b_counts) + np.arange(len(b.rows))
    from_b = np.zeros(len(a.rows) + len(b.rows), dtype=bool)
    from_b[dest] = True
    from_a = ~from_b
    parts = []
    for name in ("rows", "seg_lo", "seg_hi"):
        out = np.empty(len(from_b), dtype=getattr(a, name).dtype)
        out[dest] = getattr(b, name)
        out[from_a] = getattr(a, name)
        parts.append(out)
    return PostingSegment(keys, np.concatenate(([0], np.cumsum(counts))).astype(np.int64), *parts)


class Candidates(NamedTuple):
    """Candidate rows, with the segment window of each route near ``from`` and near ``to``."""

    rows: NDArray[np.int64]
    windows: SegmentWindows

    def take(self, keep: NDArray[np.bool_]) -> Candidates:
        """Return the candidates where ``keep`` is true."""
        return Candidates(self.rows[keep], SegmentWindows(*(part[keep] for part in self.windows)))


@dataclass(frozen=True)
class IndexView:
    """What one search reads: rows ``< n`` of the columns, which of them are alive, and the postings."""

    cols: TripColumns
    alive: NDArray[np.bool_]
    segments: tuple[PostingSegment, ...]
    seq: int  # the store's change feed position this view reflects

    @property
    def live_count(self) -> int:
        return int(self.alive.sum())

    def trip_counts(self, rows: NDArray[np.int64] | None = None) -> tuple[int, int]:
        """Return (trips, occurrences) among the live rows (or among ``rows``): one-off and regular trips, and regular trips' occurrences."""
        flags = self.cols.occurrence[: len(self.alive)][self.alive] if rows is None else self.cols.occurrence[rows]
        return int(np.count_nonzero(flags <= FIRST_OCCURRENCE)), int(np.count_nonzero(flags >= FIRST_OCCURRENCE))

    def candidates(self, from_point: tuple[float, float], from_radius_km: float, to_point: tuple[float, float], to_radius_km: float, days: NDArray[np.int64]) -> Candidates:
        """Return live rows whose corridor passes near ``from`` and then near ``to`` on one of ``days`` (distinct, rising).

        A superset of the matches: a match's pickup lies on a segment listed
        near ``from`` and its dropoff on a segment listed near ``to``, and
        the pickup comes first (the rule of :func:`~tripsearch.core.kernels.join_postings`).
        """
        from_keys = _cover_keys(from_point, from_radius_km, days)
        to_keys = _cover_keys(to_point, to_radius_km, days)
        from_parts = [PostingRanges(seg.rows, seg.seg_lo, seg.seg_hi, *seg.lookup(from_keys)) for seg in self.segments]
        to_parts = [PostingRanges(seg.rows, seg.seg_lo, seg.seg_hi, *seg.lookup(to_keys)) for seg in self.segments]
        rows, windows = join_postings(from_parts, to_parts, self.alive)
        return Candidates(rows, SegmentWindows(*windows.T))


def _cover_keys(point: tuple[float, float], radius_km: float, days: NDArray[np.int64]) -> NDArray[np.uint64]:
    # Cells sorted and distinct, days rising (below 2**24): the keys come out sorted and distinct, as lookup wants.
    cells = disk_to_cells(point[0], point[1], radius_km)
    return cell_day_keys(cells[:, None], days[None, :]).ravel()


class _Buffer:
    """Append-only arrays with spare capacity; views of the first ``n`` items never change."""

    def __init__(self, dtype: np.dtype, capacity: int = 1024) -> None:
        self.array = np.zeros(capacity, dtype=dtype)
        self.n = 0

    def extend(self, values: NDArray) -> None:
        need = self.n + len(values)
        if need > len(self.array):
            grown = np.zeros(max(need, int(len(self.array) * 1.5) + 1024), dtype=self.array.dtype)
            grown[: self.n] = self.array[: self.n]
            self.array = grown
        self.array[self.n : need] = values
        self.n = need

    def view(self) -> NDArray:
        return self.array[: self.n]


_ROW_FIELDS = [f.name for f in fields(TripColumns) if f.name not in ("ids", "vert_start", "stop_start")]


class MemoryIndex:
    """The mutable side: applies changes and publishes immutable views."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        empty = TripColumns.empty()
        self._buffers = {name: _Buffer(getattr(empty, name).dtype) for name in _ROW_FIELDS}
        self._vert_start = _Buffer(np.dtype(np.int64))
        self._vert_start.extend(np.zeros(1, dtype=np.int64))
        self._stop_start = _Buffer(np.dtype(np.int64))
        self._stop_start.extend(np.zeros(1, dtype=np.int64))
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}  # punctual trips' rows
        self._occurrence_rows: dict[str, list[int]] = {}  # regular trips' rows, one per occurrence
        self._alive = _Buffer(np.dtype(np.bool_))
        self._segments: list[PostingSegment] = []
        self.view = IndexView(self._columns(), self._alive.view().copy(), (), 0)

    def __len__(self) -> int:
        return len(self._row_of) + len(self._occurrence_rows)

    def _columns(self) -> TripColumns:
        # ids: the list is append-only, so sharing it with older views is safe.
        return TripColumns(
            ids=self._ids,  # type: ignore[arg-type]
            vert_start=self._vert_start.view(),
            stop_start=self._stop_start.view(),
            **{name: buf.view() for name, buf in self._buffers.items()},
        )

    def apply(self, upserts: Sequence[Trip], deletes: Iterable[str], seq: int, routes: Sequence[np.ndarray | None] | None = None) -> IndexView:
        """Add new trip versions and remove deleted ids, then publish and return the new view (``routes``: see ``TripColumns.from_trips``)."""
        with self._lock:
            alive = self._alive
            dead: list[int] = []
            for tid in deletes:
                self._forget(tid, dead)
            # Within one batch the last version of an id wins (the feed is in seq order).
            latest: dict[str, int] = {}
            for pos, trip in enumerate(upserts):
                latest[trip.id] = pos
            trips = [upserts[pos] for pos in latest.values()]
            known = [routes[pos] for pos in latest.values()] if routes is not None else None
            for trip in trips:
                self._forget(trip.id, dead)
            if trips:
                self._append(TripColumns.from_trips(*index_trips(trips, known)))
            alive_arr = alive.view()
            alive_arr[np.asarray(dead, dtype=np.int64)] = False
            self._maybe_merge()
            self.view = IndexView(self._columns(), alive.view().copy(), tuple(self._segments), seq)
            return self.view

    def _append(self, new: TripColumns) -> None:
        first = len(self._ids)
        rows = np.arange(first, first + len(new), dtype=np.int64)
        for name, buf in self._buffers.items():
            buf.extend(getattr(new, name))
        self._vert_start.extend(new.vert_start[1:] + self._vert_start.array[self._vert_start.n - 1])
        self._stop_start.extend(new.stop_start[1:] + self._stop_start.array[self._stop_start.n - 1])
        self._ids.extend(new.ids)
        self._remember(new.ids, rows.tolist())
        self._alive.extend(np.ones(len(new), dtype=bool))
        self._segments.append(_corridor_postings(new, rows))

    def _maybe_merge(self) -> None:
        # Log-structured: merge the newest segment into the one before while they are of similar size.
        alive = self._alive.view()
        while len(self._segments) > 1 and len(self._segments[-1]) * 4 >= len(self._segments[-2]):
            last = self._segments.pop()
            self._segments[-1] = PostingSegment.merge([self._segments[-1], last], alive)

    def _forget(self, trip_id: str, dead: list[int]) -> None:
        """Add the rows of a trip (all its occurrences' for a regular trip) to ``dead``; the trip has no row from now on."""
        row = self._row_of.pop(trip_id, None)
        if row is not None:
            dead.append(row)
        dead.extend(self._occurrence_rows.pop(trip_id, ()))

    def _remember(self, keys: Sequence[str], rows: Iterable[int]) -> None:
        for key, row in zip(keys, rows):
            trip_id = trip_id_of(key)
            if len(trip_id) == len(key):
                self._row_of[key] = row
            else:
                self._occurrence_rows.setdefault(trip_id, []).append(row)


    def load(self, cols: TripColumns, alive: NDArray[np.bool_], segment: PostingSegment, seq: int) -> IndexView:
        """Replace everything with the content of a snapshot."""
        with self._lock:
            self.__init__()  # type: ignore[misc]
            for name, buf in self._buffers.items():
                buf.extend(getattr(cols, name))
            self._vert_start.extend(cols.vert_start[1:])
            self._stop_start.extend(cols.stop_start[1:])
            self._ids.extend(cols.ids)
            self._row_of, self._occurrence_rows = {}, {}
            live = np.flatnonzero(alive)
            self._remember([cols.ids[i] for i in live.tolist()], live.tolist())
            self._alive.extend(alive)
            self._segments = [segment] if len(segment) else []
            self.view = IndexView(self._columns(), self._alive.view().copy(), tuple(self._segments), seq)
            return self.view

    def compacted_segment(self) -> PostingSegment:
        """Return all postings of live rows as one segment (what a snapshot saves)."""
        with self._lock:
            if not self._segments:
                return PostingSegment.empty()
            return PostingSegment.merge(self._segments, self._alive.view())


def _corridor_postings(cols: TripColumns, rows: NDArray[np.int64]) -> PostingSegment:
    """Return the postings of new rows: every corridor cell on every local day the trip spans."""
    corridor = route_to_cells(cols, np.arange(len(cols), dtype=np.int64))
    first_day, last_day = cols.local_days()
    owner = corridor.rows
    span = (last_day - first_day + 1)[owner]
    entry = np.repeat(np.arange(len(owner)), span)
    heads = np.concatenate(([0], np.cumsum(span)[:-1]))
    day = first_day[owner][entry] + (np.arange(len(entry)) - np.repeat(heads, span))
    keys = cell_day_keys(corridor.cells[entry], day)
    return PostingSegment.build(keys, rows[owner[entry]], corridor.seg_lo[entry], corridor.seg_hi[entry])
