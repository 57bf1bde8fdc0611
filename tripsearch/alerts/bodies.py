"""What a match event says, packed: the numbers of a trip's pickup and dropoff for an alert group, as the feed stores them.

A batch of trip writes over a million alerts has a few match bodies per
trip. Saying each as a search hit says its points (rounded numbers, local
times as text, the nearest place's name) and writing it as JSON took about
a tenth of the matcher's time, for events most of which are read once, if
ever. So the matcher packs the numbers (:func:`pack`, one array for a
batch), the feed stores those bytes, and a reader says them
(:func:`said`) with the function search hits use
(:func:`~tripsearch.index.execute.hit_point_dicts`): the same text as a
search with the alert's fields on that day.

A packed body is :data:`BODY` (little-endian, no padding): a tag byte
(:data:`TAG`), then the pickup's and the dropoff's distance, place along
the route, latitude and longitude (as :class:`~tripsearch.geo.ClosestPoints`)
and UTC time (seconds), the trip's UTC offset (seconds), and the
occurrence's day (days since 1970-01-01; :data:`NO_OCCURRENCE` for a
one-off trip). A body of JSON text (a cancellation's, or a match of an
earlier release) starts with ``{`` and is read as it is.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any, Sequence

import numpy as np
import orjson
from numpy.typing import NDArray

from ..core.columns import SECONDS_PER_DAY
from ..geo import ClosestPoints
from ..index.execute import hit_point_dicts
from ..query.ranking import score_of

__all__ = ["BODY", "NO_OCCURRENCE", "TAG", "day_of", "pack", "said", "with_occurrence"]

TAG = 1  # the format of a packed body; JSON text starts with b"{" (123)
NO_OCCURRENCE = -(2**31)
_POINT = [("distance_km", "<f8"), ("along_km", "<f8"), ("lat", "<f8"), ("lon", "<f8"), ("time_s", "<i8")]
BODY = np.dtype([("tag", "u1"), *((f"pickup_{n}", t) for n, t in _POINT), *((f"dropoff_{n}", t) for n, t in _POINT), ("offset_s", "<i4"), ("occurrence", "<i4")])
_EPOCH = dt.date(1970, 1, 1)
_I64, _I32 = struct.Struct("<q"), struct.Struct("<i")
assert BODY.fields is not None
_PICKUP_TIME_AT, _OFFSET_AT = BODY.fields["pickup_time_s"][1], BODY.fields["offset_s"][1]
assert tuple(ClosestPoints._fields) == tuple(n for n, _ in _POINT[:4])


def pack(pickup: NDArray[np.float64], dropoff: NDArray[np.float64], times: NDArray[np.int64], offsets_s: NDArray[np.integer[Any]]) -> list[bytes]:
    """Return the packed bodies of n matched items: their pickups and dropoffs (4 x n, as ClosestPoints), times (2 x n, UTC seconds) and trips' UTC offsets."""
    n = len(offsets_s)
    table = np.zeros(n, dtype=BODY)
    table["tag"] = TAG
    for prefix, points, at in (("pickup", pickup, times[0]), ("dropoff", dropoff, times[1])):
        for i, name in enumerate(ClosestPoints._fields):
            table[f"{prefix}_{name}"] = points[i]
        table[f"{prefix}_time_s"] = at
    table["offset_s"] = offsets_s
    table["occurrence"] = NO_OCCURRENCE
    blob, size = table.tobytes(), BODY.itemsize
    return [blob[i : i + size] for i in range(0, n * size, size)]


def with_occurrence(body: bytes, date: str) -> bytes:
    """Return a packed body that also says the occurrence of ``date`` (YYYY-MM-DD) of a regular trip."""
    return body[:-4] + _I32.pack((dt.date.fromisoformat(date) - _EPOCH).days)


def day_of(body: bytes) -> int:
    """Return the local day (days since 1970-01-01) of a packed body's pickup: the day of the search that finds the trip."""
    return int(_I64.unpack_from(body, _PICKUP_TIME_AT)[0] + _I32.unpack_from(body, _OFFSET_AT)[0]) // SECONDS_PER_DAY


def said(bodies: Sequence[bytes]) -> list[dict[str, Any]]:
    """Return what each body says: the dict of a packed one (as a search hit says its points), JSON text as it is."""
    out: list[dict[str, Any]] = [orjson.loads(body) if body[:1] == b"{" else {} for body in bodies]
    packed = [i for i, body in enumerate(bodies) if body[:1] != b"{"]
    if not packed:
        return out
    table = np.frombuffer(b"".join(bodies[i] for i in packed), dtype=BODY)
    if (table["tag"] != TAG).any():
        raise ValueError("a match body of an unknown format (written by a later release)")
    offsets = table["offset_s"].astype(np.int64).tolist()
    pickups, dropoffs = (hit_point_dicts(ClosestPoints(*(table[f"{end}_{name}"] for name in ClosestPoints._fields)), table[f"{end}_time_s"], offsets) for end in ("pickup", "dropoff"))
    walk = (table["pickup_distance_km"] + table["dropoff_distance_km"]).tolist()
    for i, pickup, dropoff, w, day in zip(packed, pickups, dropoffs, walk, table["occurrence"].tolist()):
        out[i] = {"date": pickup["time"][:10], "score": score_of(w), "pickup": pickup, "dropoff": dropoff}
        if day != NO_OCCURRENCE:
            out[i]["occurrence"] = (_EPOCH + dt.timedelta(days=day)).isoformat()
    return out
