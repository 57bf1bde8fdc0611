"""The searchable index of one process: a shared, mapped segment plus a small in-memory delta.

The segment (:mod:`.segments`) holds every trip as of its ``seq``; it is the
same mapped file in every process. The delta (:class:`~.memory.MemoryIndex`)
holds what the change feed brought since: new trip versions as rows of its
own, and the segment rows they replace or delete, listed as ``killed``. A
search gathers candidates from both; when both have some, it copies just
those candidates into one small set of columns, so the shared exact code
runs on one set as always.

:class:`SharedView` is immutable: a search reads one, and a refresh or a
switch to a new segment publishes the next one, so a search sees one
segment and the delta made for it, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
from numpy.typing import NDArray

from ...core.columns import TripColumns
from ...model import Trip
from ...query.matching import Ends, SegmentWindows, measure_ends
from ...query.model import Query
from .memory import Candidates, IndexView, MemoryIndex
from .segments import Segment

__all__ = ["SharedIndex", "SharedView", "SearchRows"]

_NO_ROWS = np.zeros(0, dtype=np.int64)


class SearchRows(NamedTuple):
    """What a search evaluates: candidate rows of some columns, with the windows to measure them in or their ends already decided."""

    cols: TripColumns
    rows: NDArray[np.int64]
    windows: SegmentWindows | None
    ends: Ends | None


@dataclass(frozen=True)
class SharedView:
    """What one search reads: the segment (if any), its rows replaced since, and the delta."""

    segment: Segment | None
    base: IndexView | None  # the segment as an index view
    killed: NDArray[np.int64]  # segment rows replaced or deleted since the segment, sorted
    delta: IndexView
    seq: int

    @property
    def generation(self) -> int:
        return self.segment.generation if self.segment is not None else 0

    @property
    def live_count(self) -> int:
        base = len(self.segment) - len(self.killed) if self.segment is not None else 0
        return base + self.delta.live_count

    def trip_counts(self) -> tuple[int, int]:
        """Return (trips, occurrences) live in the view: one-off and regular trips, and regular trips' occurrences."""
        trips, occurrences = self.delta.trip_counts()
        if self.segment is not None:
            base = self.segment.trip_counts()
            gone = self.base.trip_counts(self.killed) if self.base is not None and len(self.killed) else (0, 0)
            trips, occurrences = trips + base[0] - gone[0], occurrences + base[1] - gone[1]
        return trips, occurrences

    @property
    def rows(self) -> int:
        return (len(self.segment) if self.segment is not None else 0) + len(self.delta.cols)

    @property
    def cols(self) -> TripColumns:
        """The columns :meth:`candidates` rows point into when only one side is in use (see there)."""
        if self.segment is None:
            return self.delta.cols
        if len(self.delta.cols) == 0:
            return self.segment.cols
        raise ValueError("the index has a segment and a delta: use search_rows()")

    def candidates(self, from_point: tuple[float, float], from_radius_km: float, to_point: tuple[float, float], to_radius_km: float, days: NDArray[np.int64]) -> Candidates:
        """Return candidates as :meth:`IndexView.candidates` does, when the view has one side only (see :attr:`cols`)."""
        cols, found = self.search_rows(from_point, from_radius_km, to_point, to_radius_km, days)
        if cols is not self.cols:
            raise ValueError("the index has a segment and a delta: use search_rows()")
        return found

    def query_rows(self, query: Query, days: NDArray[np.int64], anchored: bool = True) -> SearchRows:
        """Return what :func:`~tripsearch.index.execute.execute` evaluates for ``query`` over ``days`` (:func:`~tripsearch.index.execute.candidate_days`).

        A search between two of the anchors the segment holds entries for
        (:meth:`.anchored.AnchorIndex.places_of`) takes the segment's
        candidates and their ends from the entries, unless ``anchored`` is
        false; the delta's always come from its postings, measured. Any
        other search is :meth:`search_rows`.
        """
        entries = self.segment.anchored if anchored and self.segment is not None else None
        places = entries.places_of(query) if entries is not None else None
        if places is None:
            cols, found = self.search_rows(query.from_point, query.from_radius_km, query.to_point, query.to_radius_km, days)
            return SearchRows(cols, found.rows, found.windows, None)
        assert self.segment is not None and entries is not None
        rows, ends = entries.ends(self.segment.cols, query, *places, days)
        if not len(self.delta.cols):  # nothing written since the segment: no H3 cover to compute for it
            found = Candidates(_NO_ROWS, SegmentWindows(_NO_ROWS, _NO_ROWS, _NO_ROWS, _NO_ROWS))
        else:
            found = self.delta.candidates(query.from_point, query.from_radius_km, query.to_point, query.to_radius_km, days)
        if len(self.killed) and len(rows):
            at = np.minimum(np.searchsorted(self.killed, rows), len(self.killed) - 1)
            keep = self.killed[at] != rows
            rows, ends = rows[keep], ends.take(keep)
        if not len(found.rows):
            return SearchRows(self.segment.cols, rows, None, ends)
        delta_ends = measure_ends(self.delta.cols, found.rows, query, found.windows)
        if not len(rows):
            return SearchRows(self.delta.cols, found.rows, None, delta_ends)
        cols = TripColumns.concat([self.segment.cols.take(rows), self.delta.cols.take(found.rows)])
        return SearchRows(cols, np.arange(len(cols), dtype=np.int64), None, Ends.concat([ends, delta_ends]))

    def search_rows(
        self, from_point: tuple[float, float], from_radius_km: float, to_point: tuple[float, float], to_radius_km: float, days: NDArray[np.int64]
    ) -> tuple[TripColumns, Candidates]:
        """Return the columns to search and the candidate rows in them (see :meth:`IndexView.candidates`)."""
        args = (from_point, from_radius_km, to_point, to_radius_km, days)
        found = self.delta.candidates(*args)
        if self.base is None:
            return self.delta.cols, found
        in_base = self.base.candidates(*args)
        if len(self.killed) and len(in_base.rows):
            at = np.minimum(np.searchsorted(self.killed, in_base.rows), len(self.killed) - 1)
            keep = self.killed[at] != in_base.rows
            in_base = in_base.take(keep)
        if not len(found.rows):
            return self.base.cols, in_base
        if not len(in_base.rows):
            return self.delta.cols, found
        cols = TripColumns.concat([self.base.cols.take(in_base.rows), self.delta.cols.take(found.rows)])
        rows = np.arange(len(cols), dtype=np.int64)
        return cols, Candidates(rows, SegmentWindows(*(np.concatenate((a, b)) for a, b in zip(in_base.windows, found.windows))))


class SharedIndex:
    """The mutable side of one process: a segment, and the delta that the change feed adds to it."""

    def __init__(self, segment: Segment | None = None) -> None:
        self.segment = segment
        self._base = segment.view() if segment is not None else None
        self._delta = MemoryIndex()
        self._killed = _NO_ROWS
        seq = segment.seq if segment is not None else 0
        self.view = SharedView(segment, self._base, self._killed, self._delta.view, seq)

    @property
    def delta_rows(self) -> int:
        """Rows the delta holds or kills: what a merge into a new segment would fold in."""
        return len(self.view.delta.cols) + len(self.view.killed)

    def apply(self, upserts: Sequence[Trip], deletes: Sequence[str], seq: int, routes: Sequence[np.ndarray | None] | None = None) -> SharedView:
        """Add trip versions and deletes from the change feed (in seq order), then publish and return the new view."""
        if self.segment is not None:
            replaced = self.segment.rows_of([t.id for t in upserts] + list(deletes))
            replaced = replaced[replaced >= 0]
            if len(replaced):
                self._killed = np.union1d(self._killed, replaced)
        delta = self._delta.apply(upserts, deletes, seq, routes)
        self.view = SharedView(self.segment, self._base, self._killed, delta, seq)
        return self.view

    def base_rows(self) -> NDArray[np.int64]:
        """Return the segment rows still live (what a merge keeps of the segment)."""
        if self.segment is None:
            return _NO_ROWS
        keep = np.ones(len(self.segment), dtype=bool)
        keep[self.view.killed] = False
        return np.flatnonzero(keep).astype(np.int64)
