"""The in-memory search structures of the embedded backend.

Trips live as columns (:class:`~tripsearch.columns.TripColumns`) in
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
from typing import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from ..columns import TripColumns, ragged_indices
from ..model import Trip
from .cells import disk_to_cells, route_to_cells

__all__ = ["IndexView", "MemoryIndex", "PostingSegment", "cell_day_keys"]

_CELL_SHIFT = 30  # a resolution-5 H3 index keeps its information above bit 30
_DAY_BITS = 24


def cell_day_keys(cells: NDArray[np.uint64], days: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Return one posting key per (cell, day) pair (broadcast)."""
    return (cells.astype(np.uint64) >> np.uint64(_CELL_SHIFT)) << np.uint64(_DAY_BITS) | days.astype(np.uint64)


@dataclass(frozen=True)
class PostingSegment:
    """Sorted posting keys, with the rows of key ``keys[i]`` at ``rows[offsets[i]:offsets[i+1]]``."""

    keys: NDArray[np.uint64]
    offsets: NDArray[np.int64]
    rows: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def build(cls, keys: NDArray[np.uint64], rows: NDArray[np.int64]) -> PostingSegment:
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        if len(keys):
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        else:
            starts = np.zeros(0, dtype=np.int64)
        offsets = np.concatenate((starts, [len(keys)])).astype(np.int64)
        return cls(keys[starts], offsets, rows.astype(np.int32))

    def lookup(self, wanted: NDArray[np.uint64]) -> NDArray[np.int32]:
        pos = np.searchsorted(self.keys, wanted)
        inside = pos < len(self.keys)
        pos = pos[inside]
        pos = pos[self.keys[pos] == wanted[inside]]
        if len(pos) == 0:
            return np.zeros(0, dtype=np.int32)
        return self.rows[ragged_indices(self.offsets[pos], self.offsets[pos + 1])]

    def expanded(self) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        return np.repeat(self.keys, np.diff(self.offsets)), self.rows.astype(np.int64)

    @staticmethod
    def merge(segments: Sequence[PostingSegment], alive: NDArray[np.bool_]) -> PostingSegment:
        """Return one segment with the postings of all, dropping rows no longer alive."""
        parts = [s.expanded() for s in segments]
        keys = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        keep = alive[rows]
        return PostingSegment.build(keys[keep], rows[keep])


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

    def candidates(self, from_point: tuple[float, float], from_radius_km: float, to_point: tuple[float, float], to_radius_km: float, days: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return live rows whose corridor touches both disks on one of ``days`` (a superset of the matches)."""
        from_rows = self._rows_near(from_point, from_radius_km, days)
        if len(from_rows) == 0:
            return np.zeros(0, dtype=np.int64)
        to_rows = self._rows_near(to_point, to_radius_km, days)
        rows = np.intersect1d(from_rows, to_rows, assume_unique=True)
        return rows[self.alive[rows]].astype(np.int64)

    def _rows_near(self, point: tuple[float, float], radius_km: float, days: NDArray[np.int64]) -> NDArray[np.int32]:
        cells = disk_to_cells(point[0], point[1], radius_km)
        wanted = np.unique(cell_day_keys(cells[:, None], days[None, :]).ravel())
        found = [seg.lookup(wanted) for seg in self.segments]
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int32)


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
        self._row_of: dict[str, int] = {}
        self._alive = _Buffer(np.dtype(np.bool_))
        self._segments: list[PostingSegment] = []
        self.view = IndexView(self._columns(), self._alive.view().copy(), (), 0)

    def __len__(self) -> int:
        return len(self._row_of)

    def _columns(self) -> TripColumns:
        # ids: the list is append-only, so sharing it with older views is safe.
        return TripColumns(
            ids=self._ids,  # type: ignore[arg-type]
            vert_start=self._vert_start.view(),
            stop_start=self._stop_start.view(),
            **{name: buf.view() for name, buf in self._buffers.items()},
        )

    def apply(self, upserts: Sequence[Trip], deletes: Iterable[str], seq: int) -> IndexView:
        """Add new trip versions and remove deleted ids, then publish and return the new view."""
        with self._lock:
            alive = self._alive
            dead: list[int] = []
            for tid in deletes:
                row = self._row_of.pop(tid, None)
                if row is not None:
                    dead.append(row)
            # Within one batch the last version of an id wins (the feed is in seq order).
            latest: dict[str, Trip] = {}
            for trip in upserts:
                latest[trip.id] = trip
            trips = list(latest.values())
            for trip in trips:
                row = self._row_of.get(trip.id)
                if row is not None:
                    dead.append(row)
            if trips:
                self._append(TripColumns.from_trips(trips))
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
        for i, tid in enumerate(new.ids):
            self._row_of[tid] = first + i
        self._alive.extend(np.ones(len(new), dtype=bool))
        self._segments.append(_corridor_postings(new, rows))

    def _maybe_merge(self) -> None:
        # Log-structured: merge the newest segment into the one before while they are of similar size.
        alive = self._alive.view()
        while len(self._segments) > 1 and len(self._segments[-1]) * 4 >= len(self._segments[-2]):
            last = self._segments.pop()
            self._segments[-1] = PostingSegment.merge([self._segments[-1], last], alive)

    def row_of(self, trip_id: str) -> int | None:
        return self._row_of.get(trip_id)

    def load(self, cols: TripColumns, alive: NDArray[np.bool_], segment: PostingSegment, seq: int) -> IndexView:
        """Replace everything with the content of a snapshot."""
        with self._lock:
            self.__init__()  # type: ignore[misc]
            for name, buf in self._buffers.items():
                buf.extend(getattr(cols, name))
            self._vert_start.extend(cols.vert_start[1:])
            self._stop_start.extend(cols.stop_start[1:])
            self._ids.extend(cols.ids)
            self._row_of = {tid: i for i, tid in enumerate(cols.ids) if alive[i]}
            self._alive.extend(alive)
            self._segments = [segment] if len(segment) else []
            self.view = IndexView(self._columns(), self._alive.view().copy(), tuple(self._segments), seq)
            return self.view

    def compacted_segment(self) -> PostingSegment:
        """Return all postings of live rows as one segment (what a snapshot saves)."""
        with self._lock:
            if not self._segments:
                return PostingSegment.build(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
            return PostingSegment.merge(self._segments, self._alive.view())


def _corridor_postings(cols: TripColumns, rows: NDArray[np.int64]) -> PostingSegment:
    """Return the postings of new rows: every corridor cell on every local day the trip spans."""
    local = np.arange(len(cols), dtype=np.int64)
    pair_local, cells = route_to_cells(cols, local)
    first_day, last_day = cols.local_days()
    span = (last_day - first_day + 1)[pair_local]
    pair_rep = np.repeat(np.arange(len(pair_local)), span)
    heads = np.concatenate(([0], np.cumsum(span)[:-1]))
    day = first_day[pair_local][pair_rep] + (np.arange(len(pair_rep)) - np.repeat(heads, span))
    keys = cell_day_keys(cells[pair_rep], day)
    return PostingSegment.build(keys, rows[pair_local[pair_rep]])
