"""Trips as columns: the numeric form every backend matches on.

:class:`TripColumns` holds many trips as flat numpy arrays (one row per trip,
variable-length parts such as route vertices and stops back to back with
start offsets). The embedded index keeps one large instance in memory; the
Elasticsearch backend builds a small one from the candidates a query
returns. Both then run the same matching code on it, which is why they agree.

Inside, coordinates are int32 steps of 1e-7 degree, times int64 epoch
seconds plus the trip's UTC offset, options a bit mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from ..geo import COORD_SCALE, RouteGeometry, quantize_degrees, route_geometry
from .kernels import closest_in_ranges, route_distances_along
from ..model import OPTION_NAMES, STATUSES, Trip
from ..occurrences import KEY_SEPARATOR as OCCURRENCE_SEPARATOR

__all__ = ["TripColumns", "occurrence_flags", "ONE_OFF", "FIRST_OCCURRENCE", "LATER_OCCURRENCE", "ragged_indices", "ROW_FIELDS", "VERTEX_FIELDS", "STOP_FIELDS", "currency_code", "currency_name", "STATUS_CODES", "SECONDS_PER_DAY"]

SECONDS_PER_DAY = 86_400
STATUS_CODES = {name: i for i, name in enumerate(STATUSES)}


def currency_code(currency: str) -> int:
    """Return a three-letter currency as one integer (its ASCII bytes)."""
    return int.from_bytes(currency.encode("ascii"), "big")


def currency_name(code: int) -> str:
    """Return the three-letter currency of :func:`currency_code`."""
    return int(code).to_bytes(3, "big").decode("ascii")


def _starts(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


_option_flags = attrgetter(*OPTION_NAMES)


def occurrence_flags(ids: Sequence[str]) -> NDArray[np.int8]:
    """Return the ``occurrence`` column of rows keyed ``ids``: a regular trip's occurrences follow one another, the first is marked.

    So live rows count one-off trips and regular trips (flags up to
    FIRST_OCCURRENCE) and occurrences (flags above ONE_OFF) without reading
    their keys: all of a trip's rows are replaced together.

    >>> occurrence_flags(["a", "r\x1f2027-01-04", "r\x1f2027-01-05", "b"]).tolist()
    [0, 1, 2, 0]
    """
    out = np.zeros(len(ids), dtype=np.int8)
    previous = None
    for i, key in enumerate(ids):
        trip_id, sep, _ = key.partition(OCCURRENCE_SEPARATOR)
        if sep:
            out[i] = LATER_OCCURRENCE if trip_id == previous else FIRST_OCCURRENCE
        previous = trip_id if sep else None
    return out


def _route_lonlat(trip: Trip) -> NDArray[np.float64]:
    """Return a trip's route as (points, 2) [lon, lat] (its stops when it has no route)."""
    lat, lon = trip.route_latlon()
    return np.stack((lon, lat), axis=1)


def ragged_indices(starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return the concatenation of ``arange(s, e)`` for each pair, without a Python loop.

    >>> ragged_indices(np.array([0, 10]), np.array([3, 12])).tolist()
    [0, 1, 2, 10, 11]
    """
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    steps = np.ones(total, dtype=np.int64)
    heads = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    steps[0] = starts[0]
    steps[heads[1:]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    return np.cumsum(steps)


# The fields of TripColumns by shape: one value per row, per route vertex, per stop.
ROW_FIELDS = ["version", "status", "seats_total", "seats_available", "price", "currency", "options", "rating", "offset_s", "occurrence"]
# ``occurrence`` of a row: a one-off trip, the first occurrence of a regular trip in the columns, or a later one
ONE_OFF, FIRST_OCCURRENCE, LATER_OCCURRENCE = 0, 1, 2
VERTEX_FIELDS = ["vert_lat", "vert_lon", "vert_cum"]
STOP_FIELDS = ["stop_time", "stop_along", "stop_lat", "stop_lon"]


@dataclass(frozen=True)
class TripColumns:
    """Many trips as columns. Row ``i`` is one trip; ragged parts use ``*_start`` offsets."""

    ids: Sequence[str]  # a tuple, or an IdColumn over a mapped segment
    version: NDArray[np.int64]
    status: NDArray[np.int8]
    seats_total: NDArray[np.int16]
    seats_available: NDArray[np.int16]
    price: NDArray[np.float64]
    currency: NDArray[np.int32]
    options: NDArray[np.uint8]
    rating: NDArray[np.float64]  # NaN when the driver has no rating
    offset_s: NDArray[np.int32]
    occurrence: NDArray[np.int8]  # ONE_OFF, FIRST_OCCURRENCE or LATER_OCCURRENCE (see occurrence_flags)
    # route vertices, 1e-7 degree steps, rows back to back
    vert_start: NDArray[np.int64]  # len n + 1
    vert_lat: NDArray[np.int32]
    vert_lon: NDArray[np.int32]
    vert_cum: NDArray[np.float64]  # distance along the route of each vertex, km
    # stops, rows back to back
    stop_start: NDArray[np.int64]  # len n + 1
    stop_time: NDArray[np.int64]
    stop_along: NDArray[np.float64]  # place of each stop along the route, km
    stop_lat: NDArray[np.int32]
    stop_lon: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def departure_time(self) -> NDArray[np.int64]:
        return self.stop_time[self.stop_start[:-1]]

    @property
    def arrival_time(self) -> NDArray[np.int64]:
        return self.stop_time[self.stop_start[1:] - 1]

    def local_days(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Return each trip's first and last local day (days since 1970-01-01 in its own UTC offset).

        A pickup always falls between them, so an index keyed by these days
        never misses a trip for a date.
        """
        first = np.floor_divide(self.departure_time + self.offset_s, SECONDS_PER_DAY)
        last = np.floor_divide(self.arrival_time + self.offset_s, SECONDS_PER_DAY)
        return first, last

    @classmethod
    def empty(cls) -> TripColumns:
        return cls.from_trips([])

    @classmethod
    def from_trips(cls, trips: Sequence[Trip], routes: Sequence[np.ndarray | None] | None = None) -> TripColumns:
        """Return the columns of validated trips, computing each stop's place along its route.

        ``routes`` may give each trip's route as read by
        :func:`~tripsearch.model.parse_trip_route` ([lon, lat] rows), to save reading it again.
        """
        n = len(trips)
        # The routes back to back as one (points, 2) array of [lon, lat]: those given, else read from the trips.
        pieces = [known if routes is not None and (known := routes[i]) is not None else _route_lonlat(trip) for i, trip in enumerate(trips)]
        n_vert = np.fromiter((len(a) for a in pieces), dtype=np.int64, count=n)
        flat = np.concatenate(pieces) if n else np.zeros((0, 2))
        vlat, vlon = flat[:, 1], flat[:, 0]
        stops = [stop for trip in trips for stop in trip.stops]
        n_stops = np.fromiter((len(t.stops) for t in trips), dtype=np.int64, count=n)
        stop_lat = [s.lat for s in stops]
        stop_lon = [s.lon for s in stops]
        stop_time = [int(s.time.timestamp()) for s in stops]
        flags = np.array([_option_flags(t.options) for t in trips], dtype=np.uint8).reshape(n, len(OPTION_NAMES))
        option_bits = (flags << np.arange(len(OPTION_NAMES), dtype=np.uint8)).sum(axis=1, dtype=np.uint8)
        vert_start = np.concatenate(([0], np.cumsum(n_vert))).astype(np.int64)
        stop_start = np.concatenate(([0], np.cumsum(n_stops))).astype(np.int64)
        qlat = quantize_degrees(vlat).astype(np.int32)
        qlon = quantize_degrees(vlon).astype(np.int32)
        slat = np.asarray(stop_lat, dtype=np.float64)
        slon = np.asarray(stop_lon, dtype=np.float64)
        ids = tuple(t.id for t in trips)
        cols = cls(
            ids=ids,
            version=np.fromiter((t.version for t in trips), dtype=np.int64, count=n),
            status=np.fromiter((STATUS_CODES[t.status] for t in trips), dtype=np.int8, count=n),
            seats_total=np.fromiter((t.seats_total for t in trips), dtype=np.int16, count=n),
            seats_available=np.fromiter((t.seats_available for t in trips), dtype=np.int16, count=n),
            price=np.fromiter((t.price.amount for t in trips), dtype=np.float64, count=n),
            currency=np.fromiter((currency_code(t.price.currency) for t in trips), dtype=np.int32, count=n),
            options=option_bits,
            rating=np.fromiter(
                (t.driver.rating if t.driver is not None and t.driver.rating is not None else np.nan for t in trips),
                dtype=np.float64,
                count=n,
            ),
            offset_s=np.fromiter((t.utc_offset_s for t in trips), dtype=np.int32, count=n),
            occurrence=occurrence_flags(ids),
            vert_start=vert_start,
            vert_lat=qlat,
            vert_lon=qlon,
            vert_cum=route_distances_along(qlat, qlon, vert_start),
            stop_start=stop_start,
            stop_time=np.asarray(stop_time, dtype=np.int64),
            stop_along=np.zeros(len(slat), dtype=np.float64),
            stop_lat=quantize_degrees(slat).astype(np.int32),
            stop_lon=quantize_degrees(slon).astype(np.int32),
        )
        cols._place_stops()
        return cols

    def take(self, rows: NDArray[np.int64]) -> TripColumns:
        """Return the columns of ``rows`` only (in that order), as a new compact set.

        >>> TripColumns.empty().take(np.zeros(0, dtype=np.int64)).ids
        ()
        """
        rows = np.asarray(rows, dtype=np.int64)
        vert = ragged_indices(self.vert_start[rows], self.vert_start[rows + 1])
        stop = ragged_indices(self.stop_start[rows], self.stop_start[rows + 1])
        return TripColumns(
            ids=tuple(self.ids[r] for r in rows.tolist()),
            vert_start=_starts(self.vert_start[rows + 1] - self.vert_start[rows]),
            stop_start=_starts(self.stop_start[rows + 1] - self.stop_start[rows]),
            **{name: getattr(self, name)[rows] for name in ROW_FIELDS},
            **{name: getattr(self, name)[vert] for name in VERTEX_FIELDS},
            **{name: getattr(self, name)[stop] for name in STOP_FIELDS},
        )

    @classmethod
    def concat(cls, parts: Sequence[TripColumns]) -> TripColumns:
        """Return the rows of every part, one part after the other."""
        return cls(
            ids=tuple(tid for part in parts for tid in part.ids),
            vert_start=_starts(np.concatenate([np.diff(p.vert_start) for p in parts])),
            stop_start=_starts(np.concatenate([np.diff(p.stop_start) for p in parts])),
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in ROW_FIELDS + VERTEX_FIELDS + STOP_FIELDS},
        )

    def route_geometry(self, rows: NDArray[np.int64]) -> RouteGeometry:
        """Return the unit-vector geometry of the routes of ``rows`` (repeats allowed)."""
        idx = ragged_indices(self.vert_start[rows], self.vert_start[rows + 1])
        counts = self.vert_start[rows + 1] - self.vert_start[rows]
        starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return route_geometry(self.vert_lat[idx] / COORD_SCALE, self.vert_lon[idx] / COORD_SCALE, starts, self.vert_cum[idx])

    def route_sizes(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the number of route vertices of each row."""
        return self.vert_start[rows + 1] - self.vert_start[rows]

    def route_length_km(self, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        return self.vert_cum[self.vert_start[rows + 1] - 1]

    def _place_stops(self) -> None:
        """Fill ``stop_along``: origin at 0, destination at the route's end, stopovers at their closest route point.

        A stopover's place is the route point closest to it (ties: the
        earliest), then clamped so places never decrease along the stops.
        """
        n = len(self)
        if n == 0:
            return
        lengths = self.route_length_km(np.arange(n, dtype=np.int64))
        along = self.stop_along
        along[self.stop_start[1:] - 1] = lengths
        inner_mask = np.ones(len(along), dtype=bool)
        inner_mask[self.stop_start[:-1]] = False
        inner_mask[self.stop_start[1:] - 1] = False
        inner = np.flatnonzero(inner_mask)
        if len(inner):
            owner = np.searchsorted(self.stop_start, inner, side="right") - 1
            first, last = self.vert_start[owner], self.vert_start[owner + 1] - 1
            lat, lon = self.stop_lat[inner] / COORD_SCALE, self.stop_lon[inner] / COORD_SCALE
            along[inner] = closest_in_ranges(self.vert_lat, self.vert_lon, self.vert_cum, first, last, lat, lon, False, np.inf)[1]
        # places never decrease: running maximum within each trip
        for k in range(1, int(np.diff(self.stop_start).max())):
            rows_with_k = self.stop_start[:-1] + k < self.stop_start[1:]
            pos = self.stop_start[:-1][rows_with_k] + k
            along[pos] = np.maximum(along[pos], along[pos - 1])
        # the destination closes the route even if a stopover was placed at its very end
        along[self.stop_start[1:] - 1] = np.maximum(lengths, along[self.stop_start[1:] - 1])
