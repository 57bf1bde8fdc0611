"""What a trip looks like in Elasticsearch: the mapping, the index template and the documents.

One document per trip id, ``_id`` = trip id, ``_version`` = trip version
(external versioning). It holds:

- searchable fields derived from the trip: origin, destination and stops as
  ``geo_point``; the route as ``geo_shape`` plus densified route points as a
  multi-valued ``geo_point``; the corridor H3 cells (the very cells the
  embedded index posts, :func:`~tripsearch.index.cells.route_to_cells`) and
  origin/destination cells at several resolutions as ``keyword``; the local
  days the trip spans as a multi-valued ``integer``; times as ``date``;
  price, currency, seats, options and driver as typed fields;
- ``compact``: the trip as one row of :class:`~tripsearch.columns.TripColumns`
  in a small binary form (see :func:`columns_to_compact`), which is all a
  search fetches for its candidates;
- ``trip``: the trip document as stored (not indexed), which ``get`` and the
  page of hits return.

A delete leaves a tombstone ``{"id", "version", "deleted": true}`` at the
trip's version, so a late lower version cannot bring the trip back.

Some clusters lack the ``geo_shape`` mapper (no spatial module) or
``scaled_float`` (no mapper-extras module). :func:`trip_mapping` then gives
the fallback: no ``route_shape`` (the densified ``route_points`` remain) and
``price`` as ``double``. Nothing exact depends on either field.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import h3
import numpy as np
import orjson
from elasticsearch.dsl import (
    Binary,
    Boolean,
    Date,
    Document,
    Double,
    Float,
    GeoPoint,
    GeoShape,
    InnerDoc,
    Integer,
    Keyword,
    Long,
    MetaField,
    Object,
    ScaledFloat,
    Short,
)
from numpy.typing import NDArray

from ..columns import TripColumns, ragged_indices
from ..geo import interpolate_on_arcs
from ..model import MAX_ROUTE_POINTS, OPTION_NAMES, Trip
from .cells import CorridorCells, route_to_cells

__all__ = [
    "MAPPING_VERSION",
    "ROUTE_POINT_KM",
    "ENDPOINT_CELL_RESOLUTIONS",
    "PRICE_SCALING_FACTOR",
    "MappingFeatures",
    "TripDocument",
    "trip_mapping",
    "index_template",
    "template_name",
    "index_name",
    "cells_to_keywords",
    "trips_to_documents",
    "tombstone_document",
    "columns_to_compact",
    "compact_to_columns",
    "Corridor",
    "CompactFormatError",
]

MAPPING_VERSION = 1
# Route points are resampled every ROUTE_POINT_KM along the route: every point of the route is
# within ROUTE_POINT_KM / 2 (plus 1 m of rounding) of one of them.
ROUTE_POINT_KM = 5.0
ENDPOINT_CELL_RESOLUTIONS = (5, 7, 9)
PRICE_SCALING_FACTOR = 100


class TripOptions(InnerDoc):
    instant_booking = Boolean()
    pets = Boolean()
    smoking = Boolean()
    women_only = Boolean()
    max_two_back = Boolean()


class TripDocument(Document):
    """The production mapping of a trip (``geo_shape`` route, ``scaled_float`` price)."""

    id = Keyword()
    version = Long()
    deleted = Boolean()
    status = Keyword()
    origin = GeoPoint()
    destination = GeoPoint()
    stops = GeoPoint(multi=True)
    # A shape ES cannot parse (it has its own rules on degenerate lines) must not reject the trip:
    # nothing exact depends on it.
    route_shape = GeoShape(ignore_malformed=True)
    route_points = GeoPoint(multi=True)
    corridor_cells = Keyword(multi=True)
    origin_cells = Keyword(multi=True)
    destination_cells = Keyword(multi=True)
    local_days = Integer(multi=True)
    departure_time = Date()
    arrival_time = Date()
    stop_times = Date(multi=True)
    price = ScaledFloat(scaling_factor=PRICE_SCALING_FACTOR)
    currency = Keyword()
    seats_total = Short()
    seats_available = Short()
    options = Object(TripOptions)
    driver_id = Keyword()
    driver_rating = Float()
    driver_verified = Boolean()
    compact = Binary()
    trip = Object(enabled=False)

    class Meta:
        dynamic = MetaField("strict")


@dataclass(frozen=True)
class MappingFeatures:
    """Which optional field types the index uses: the production ones, or their fallbacks."""

    geo_shape: bool = True
    scaled_float: bool = True

    @property
    def fallbacks(self) -> list[str]:
        """Return the fallbacks in use, in words (empty for the production mapping)."""
        out = []
        if not self.geo_shape:
            out.append("route as densified geo_point only (no geo_shape mapper)")
        if not self.scaled_float:
            out.append("price as double (no scaled_float mapper)")
        return out

    @classmethod
    def of_mapping(cls, mapping: dict[str, Any]) -> MappingFeatures:
        """Return the features of a mapping read back from Elasticsearch."""
        props = mapping.get("properties", {})
        return cls(geo_shape="route_shape" in props, scaled_float=props.get("price", {}).get("type") == "scaled_float")


def trip_mapping(features: MappingFeatures = MappingFeatures()) -> dict[str, Any]:
    """Return the mapping of :class:`TripDocument`, with the fallbacks ``features`` asks for."""
    mapping: dict[str, Any] = TripDocument._doc_type.mapping.to_dict()
    props = mapping["properties"]
    if not features.geo_shape:
        del props["route_shape"]
    if not features.scaled_float:
        props["price"] = Double().to_dict()
    mapping["_meta"] = {"tripsearch_mapping": MAPPING_VERSION}
    return mapping


def template_name(alias: str) -> str:
    return f"tripsearch-{alias}"


def index_name(alias: str, generation: int) -> str:
    """Return the name of generation ``generation`` of the index behind ``alias``: ``trips-000001``."""
    return f"{alias}-{generation:06d}"


def index_template(alias: str, *, shards: int, replicas: int, refresh_interval: str | None = None, features: MappingFeatures = MappingFeatures()) -> dict[str, Any]:
    """Return the body of the composable index template for the versioned indices behind ``alias``."""
    settings: dict[str, Any] = {"number_of_shards": shards, "number_of_replicas": replicas}
    if refresh_interval is not None:
        settings["refresh_interval"] = refresh_interval
    return {
        "index_patterns": [f"{alias}-*"],
        # Patterns of two aliases overlap only when one alias is a prefix of the other; ES refuses
        # overlapping templates of equal priority, and with this one the more specific wins.
        "priority": len(alias),
        "template": {"settings": settings, "mappings": trip_mapping(features)},
        "_meta": {"tripsearch_mapping": MAPPING_VERSION, "alias": alias},
    }


def cells_to_keywords(cells: NDArray[np.uint64]) -> list[str]:
    """Return H3 cells as their usual hexadecimal strings (what the keyword fields hold).

    >>> cells_to_keywords(np.array([0x85283473FFFFFFF], dtype=np.uint64))
    ['85283473fffffff']
    """
    return [format(c, "x") for c in cells.tolist()]


def tombstone_document(trip_id: str, version: int) -> bytes:
    """Return the document a delete leaves at the trip's version."""
    return orjson.dumps({"id": trip_id, "version": version, "deleted": True})


def trips_to_documents(trips: Sequence[Trip], sources: Sequence[bytes], features: MappingFeatures) -> list[bytes]:
    """Return the Elasticsearch document of each trip, as one line of JSON.

    ``sources[i]`` is trip ``i`` as stored and returned by ``get``: a JSON
    object on one line, set in the document as it is (not parsed again).
    """
    n = len(trips)
    if n == 0:
        return []
    cols = TripColumns.from_trips(trips)
    rows = np.arange(n, dtype=np.int64)
    cells = route_to_cells(cols, rows)
    compact = columns_to_compact(cols, cells)
    cell_bounds = np.searchsorted(cells.rows, np.arange(n + 1)).tolist()
    cell_names = cells_to_keywords(cells.cells)
    first_day, last_day = (d.tolist() for d in cols.local_days())
    point_owner, point_lat, point_lon = _route_samples(cols, ROUTE_POINT_KM)
    point_bounds = np.searchsorted(point_owner, np.arange(n + 1)).tolist()
    points = np.stack((np.round(point_lon, 5), np.round(point_lat, 5)), axis=1).tolist()
    docs = []
    for i, trip in enumerate(trips):
        first, last = trip.stops[0], trip.stops[-1]
        driver = trip.driver
        doc: dict[str, Any] = {
            "id": trip.id,
            "version": trip.version,
            "deleted": False,
            "status": trip.status,
            "origin": [first.lon, first.lat],
            "destination": [last.lon, last.lat],
            "stops": [[s.lon, s.lat] for s in trip.stops],
            "route_points": points[point_bounds[i] : point_bounds[i + 1]],
            "corridor_cells": cell_names[cell_bounds[i] : cell_bounds[i + 1]],
            "origin_cells": [h3.latlng_to_cell(first.lat, first.lon, r) for r in ENDPOINT_CELL_RESOLUTIONS],
            "destination_cells": [h3.latlng_to_cell(last.lat, last.lon, r) for r in ENDPOINT_CELL_RESOLUTIONS],
            "local_days": list(range(first_day[i], last_day[i] + 1)),
            "departure_time": trip.departure_time.isoformat(),
            "arrival_time": last.time.isoformat(),
            "stop_times": [s.time.isoformat() for s in trip.stops],
            "price": trip.price.amount,
            "currency": trip.price.currency,
            "seats_total": trip.seats_total,
            "seats_available": trip.seats_available,
            "options": {name: getattr(trip.options, name) for name in OPTION_NAMES},
            "compact": compact[i],
        }
        if features.geo_shape:
            doc["route_shape"] = _route_shape(trip)
        if driver is not None:
            doc["driver_id"] = driver.id
            doc["driver_verified"] = driver.verified
            if driver.rating is not None:
                doc["driver_rating"] = driver.rating
        docs.append(orjson.dumps(doc)[:-1] + b',"trip":' + sources[i] + b"}")
    return docs


def _route_shape(trip: Trip) -> dict[str, Any]:
    """Return the route as GeoJSON for ``geo_shape``, without repeated points (ES refuses them in some cases)."""
    lat, lon = trip.route_latlon()
    keep = np.ones(len(lat), dtype=bool)
    keep[1:] = (lat[1:] != lat[:-1]) | (lon[1:] != lon[:-1])
    coords = np.stack((lon[keep], lat[keep]), axis=1).tolist()
    if len(coords) < 2:
        return {"type": "Point", "coordinates": coords[0]}
    return {"type": "LineString", "coordinates": coords}


def _route_samples(cols: TripColumns, step_km: float) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Return (row, lat, lon) of points every ``step_km`` or less along each route, both ends included."""
    n = len(cols)
    geom = cols.route_geometry(np.arange(n, dtype=np.int64))
    ends = geom.starts[1:] - 1
    length = geom.cum_len[ends]
    count = np.where(length > 0, np.ceil(length / step_km).astype(np.int64) + 1, 1)
    owner = np.repeat(np.arange(n, dtype=np.int64), count)
    heads = np.concatenate(([0], np.cumsum(count)[:-1]))
    k = np.arange(len(owner)) - np.repeat(heads, count)
    along = length[owner] * k / np.maximum(count[owner] - 1, 1)
    # One search over all routes: route r's distances are shifted by r * span so they never interleave.
    span = float(length.max()) + 1.0 if n else 1.0
    vert_key = geom.cum_len + geom.owner * span
    seg = np.searchsorted(vert_key, along + owner * span, side="right") - 1
    seg = np.clip(seg, geom.starts[owner], np.maximum(ends[owner] - 1, geom.starts[owner]))
    nxt = np.minimum(seg + 1, ends[owner])
    seg_len = geom.seg_len[seg]
    frac = np.where(seg_len > 0, np.clip((along - geom.cum_len[seg]) / np.where(seg_len > 0, seg_len, 1.0), 0.0, 1.0), 0.0)
    a = np.stack((geom.x[seg], geom.y[seg], geom.z[seg]), axis=1)
    b = np.stack((geom.x[nxt], geom.y[nxt], geom.z[nxt]), axis=1)
    lat, lon = interpolate_on_arcs(a, b, frac, seg_len)
    return owner, lat, lon


# -- the compact form ---------------------------------------------------------
#
# One trip, little-endian, in 4-byte words so that many can be read back as one int32 array:
#   header (_HEADER, 13 words), then
#   stop_time int64[s], stop_along float64[s], stop_lat int32[s], stop_lon int32[s],
#   vert_lat int32[v], vert_lon int32[v], vert_cum float64[v],
#   corridor cell uint64[c], corridor segments uint32[c] (seg_lo | seg_hi << 16);
# coordinates in 1e-7 degree steps. Everything computed from the trip (places of stops, distances
# along, corridor) is computed once when indexing, by the code the embedded index uses.

COMPACT_FORMAT = 2
# Segment numbers are packed two to a 32-bit word (as the embedded postings keep them in uint16).
assert MAX_ROUTE_POINTS <= 1 << 16, "segment numbers no longer fit in 16 bits: change the compact format"
_HEADER = np.dtype(
    [
        ("version", "<i8"),
        ("price", "<f8"),
        ("rating", "<f8"),
        ("offset_s", "<i4"),
        ("currency", "<i4"),
        ("n_vert", "<i4"),
        ("n_stop", "<i4"),
        ("n_cell", "<i4"),
        ("seats_total", "<i2"),
        ("seats_available", "<i2"),
        ("status", "i1"),
        ("options", "u1"),
        ("format", "u1"),
        ("pad", "u1"),
    ]
)
_HEADER_WORDS = _HEADER.itemsize // 4


class CompactFormatError(ValueError):
    """A compact trip that this code cannot read (another format, or damaged)."""


class Corridor(NamedTuple):
    """Corridor cells of many trips back to back (``start`` as in TripColumns), each with the route segments sampled in it."""

    start: NDArray[np.int64]  # len n + 1
    cells: NDArray[np.uint64]
    seg_lo: NDArray[np.int64]
    seg_hi: NDArray[np.int64]


def columns_to_compact(cols: TripColumns, corridor: CorridorCells) -> list[str]:
    """Return each row of ``cols`` with its corridor in the compact form, base64 (what the ``binary`` field holds).

    ``corridor`` is :func:`~tripsearch.index.cells.route_to_cells` of all rows, in row order.
    """
    n = len(cols)
    head = np.zeros(n, dtype=_HEADER)
    for name in ("version", "price", "rating", "offset_s", "currency", "seats_total", "seats_available", "status", "options"):
        head[name] = getattr(cols, name)
    cell_start = np.searchsorted(corridor.rows, np.arange(n + 1))
    head["n_vert"] = np.diff(cols.vert_start)
    head["n_stop"] = np.diff(cols.stop_start)
    head["n_cell"] = np.diff(cell_start)
    head["format"] = COMPACT_FORMAT
    stop_time = cols.stop_time.astype("<i8")
    stop_along = cols.stop_along.astype("<f8")
    stop_lat, stop_lon = cols.stop_lat.astype("<i4"), cols.stop_lon.astype("<i4")
    vert_lat, vert_lon = cols.vert_lat.astype("<i4"), cols.vert_lon.astype("<i4")
    vert_cum = cols.vert_cum.astype("<f8")
    cells = corridor.cells.astype("<u8")
    segs = (corridor.seg_lo.astype(np.uint32) | (corridor.seg_hi.astype(np.uint32) << np.uint32(16))).astype("<u4")
    out = []
    vs, ss, cs = cols.vert_start.tolist(), cols.stop_start.tolist(), cell_start.tolist()
    for i in range(n):
        s0, s1, v0, v1, c0, c1 = ss[i], ss[i + 1], vs[i], vs[i + 1], cs[i], cs[i + 1]
        blob = b"".join(
            (
                head[i].tobytes(),
                stop_time[s0:s1].tobytes(),
                stop_along[s0:s1].tobytes(),
                stop_lat[s0:s1].tobytes(),
                stop_lon[s0:s1].tobytes(),
                vert_lat[v0:v1].tobytes(),
                vert_lon[v0:v1].tobytes(),
                vert_cum[v0:v1].tobytes(),
                cells[c0:c1].tobytes(),
                segs[c0:c1].tobytes(),
            )
        )
        out.append(base64.b64encode(blob).decode("ascii"))
    return out


def compact_to_columns(ids: Sequence[str], blobs: Sequence[str]) -> tuple[TripColumns, Corridor]:
    """Return the columns and corridors of trips given in the compact form (the inverse of :func:`columns_to_compact`)."""
    n = len(ids)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        return TripColumns.empty(), Corridor(np.zeros(1, dtype=np.int64), none.astype(np.uint64), none, none)
    raw = [base64.b64decode(b) for b in blobs]
    sizes = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    if (sizes % 4).any() or (sizes < _HEADER.itemsize).any():
        raise CompactFormatError("a compact trip has a size that no trip can have")
    words = np.frombuffer(b"".join(raw), dtype="<i4")
    start = np.concatenate(([0], np.cumsum(sizes // 4)[:-1]))
    head = words[start[:, None] + np.arange(_HEADER_WORDS)].view(_HEADER).ravel()
    if (head["format"] != COMPACT_FORMAT).any():
        raise CompactFormatError(f"compact trips of format {sorted(set(head['format'].tolist()) - {COMPACT_FORMAT})}, this code reads {COMPACT_FORMAT}")
    nv = head["n_vert"].astype(np.int64)
    ns = head["n_stop"].astype(np.int64)
    nc = head["n_cell"].astype(np.int64)
    if (sizes != _HEADER.itemsize + 24 * ns + 16 * nv + 12 * nc).any():
        raise CompactFormatError("a compact trip is cut short or too long")

    def section(offset: NDArray[np.int64], count: NDArray[np.int64], dtype: str) -> NDArray[Any]:
        """Return the words ``offset .. offset + count`` of every trip, back to back, as ``dtype``."""
        return words[ragged_indices(offset, offset + count)].view(dtype)

    p = start + _HEADER_WORDS
    stop_time = section(p, 2 * ns, "<i8")
    stop_along = section(p + 2 * ns, 2 * ns, "<f8")
    stop_lat = section(p + 4 * ns, ns, "<i4")
    stop_lon = section(p + 5 * ns, ns, "<i4")
    p = p + 6 * ns
    vert_lat = section(p, nv, "<i4")
    vert_lon = section(p + nv, nv, "<i4")
    vert_cum = section(p + 2 * nv, 2 * nv, "<f8")
    p = p + 4 * nv
    cells = section(p, 2 * nc, "<u8")
    segs = section(p + 2 * nc, nc, "<u4").astype(np.int64)
    cols = TripColumns(
        ids=tuple(ids),
        version=head["version"].astype(np.int64),
        status=head["status"].astype(np.int8),
        seats_total=head["seats_total"].astype(np.int16),
        seats_available=head["seats_available"].astype(np.int16),
        price=head["price"].astype(np.float64),
        currency=head["currency"].astype(np.int32),
        options=head["options"].astype(np.uint8),
        rating=head["rating"].astype(np.float64),
        offset_s=head["offset_s"].astype(np.int32),
        vert_start=np.concatenate(([0], np.cumsum(nv))).astype(np.int64),
        vert_lat=vert_lat.astype(np.int32),
        vert_lon=vert_lon.astype(np.int32),
        vert_cum=vert_cum.astype(np.float64),
        stop_start=np.concatenate(([0], np.cumsum(ns))).astype(np.int64),
        stop_time=stop_time.astype(np.int64),
        stop_along=stop_along.astype(np.float64),
        stop_lat=stop_lat.astype(np.int32),
        stop_lon=stop_lon.astype(np.int32),
    )
    corridor = Corridor(np.concatenate(([0], np.cumsum(nc))).astype(np.int64), cells.astype(np.uint64), segs & 0xFFFF, segs >> 16)
    return cols, corridor
