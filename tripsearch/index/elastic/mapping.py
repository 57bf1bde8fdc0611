"""What a trip looks like in Elasticsearch: the mapping, the index template and the documents.

One document per index row, ``_version`` = trip version (external
versioning): a punctual trip's, ``_id`` = trip id; a regular trip's
occurrence's, ``_id`` = its key (:func:`~tripsearch.occurrences.occurrence_key`),
with ``trip_id``. A regular trip also has a *master* document, ``_id`` = trip
id, ``regular``: true, holding only the stored trip (``get`` reads it); it has
no status, so no search matches it. A search document holds:

- the fields a search reads in the shards, each encoded as
  :mod:`~tripsearch.index.elastic.encoding` says: the route as a sentence of
  cells (``route_cells``) and as points (``route_points``), the corridor
  cells the embedded index posts (``corridor_cells``,
  :func:`~tripsearch.index.cells.route_to_cells`), the local days the trip
  spans (``local_days``) and the local day and minute of its departure and
  arrival, the status, and the filter values (price, seats, options,
  rating) in types that compare exactly as the shared rules do (``double``,
  never ``float`` or ``scaled_float``, which round);
- ``compact``: the trip as one row of :class:`~tripsearch.core.columns.TripColumns`
  in a small binary form (see :func:`columns_to_compact`), which is what a
  search fetches for the trips the shards cannot decide;
- ``trip``: the trip document as stored (not indexed), which ``get`` and the
  page of hits return (not in an occurrence's document: its master has it).

A delete leaves a tombstone ``{"id", "deleted": true}`` at the trip's
version (its ``_version``), so a late lower version cannot bring the trip back.
Nothing else is indexed: a field no query reads costs bulk time and disk.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np
import orjson
from elasticsearch.dsl import (
    Binary,
    Boolean,
    Document,
    Double,
    GeoPoint,
    InnerDoc,
    Integer,
    Keyword,
    Long,
    MetaField,
    Nested,
    Object,
    Short,
    Text,
)
from numpy.typing import NDArray

from ...core.columns import TripColumns, occurrence_flags, ragged_indices
from ...model import MAX_ROUTE_POINTS, OPTION_NAMES, Trip, gc_paused
from ...occurrences import trip_id_of
from ..cells import CorridorCells, route_to_cells, route_to_samples
from ..anchors import anchor_places
from .anchors import BY_PLACE, anchor_fields
from .encoding import ROUTE_CELLS_ANALYZER, cells_to_keywords, local_times, route_cell_days, route_cell_sentences, route_points

__all__ = [
    "MAPPING_VERSION",
    "TripDocument",
    "trip_mapping",
    "index_template",
    "template_name",
    "index_name",
    "mapping_version",
    "mapping_anchors",
    "trips_to_documents",
    "master_document",
    "tombstone_document",
    "columns_to_compact",
    "compact_to_columns",
    "CompactFormatError",
]

# 2: route_cells and the local times, for searches decided in the shards; price and rating as double.
# 3: anchors, the exact pickup at known places, for pages, facets and totals from the shards.
# 4: the anchor entries' days, hours, pickups and dropoffs as top-level place@value keywords.
# 5: the radius classes of the entries as place@radius keywords; the entries as one binary value.
# 6: regular trips: one document per occurrence (trip_id), the trip in a master document (regular).
MAPPING_VERSION = 6


class TripOptions(InnerDoc):
    instant_booking = Boolean()
    pets = Boolean()
    smoking = Boolean()
    women_only = Boolean()
    max_two_back = Boolean()


class AnchorEntry(InnerDoc):
    """A trip seen from a known place (:mod:`~tripsearch.index.elastic.anchors`)."""

    place = Keyword()
    km = Double()
    time = Long()
    drop_time = Long()
    day = Integer()
    minute = Short()
    pickup = Keyword()
    dropoff = Keyword()


class TripDocument(Document):
    """The mapping of a trip."""

    id = Keyword()
    trip_id = Keyword()
    regular = Boolean()
    deleted = Boolean()
    status = Keyword()
    route_cells = Text(analyzer=ROUTE_CELLS_ANALYZER, index_options="positions", norms=False)
    route_points = GeoPoint(multi=True)
    route_cell_days = Keyword(multi=True)
    corridor_cells = Keyword(multi=True)
    anchors = Nested(AnchorEntry)
    anchor_pairs = Keyword(multi=True)
    anchor_values = Binary(doc_values=True)
    anchor_days = Keyword(multi=True)
    anchor_hours = Keyword(multi=True)
    anchor_pickups = Keyword(multi=True)
    anchor_dropoffs = Keyword(multi=True)
    anchor_radii = Keyword(multi=True)
    local_days = Integer(multi=True)
    local_day_first = Integer()
    local_day_span = Short()
    local_minute_first = Short()
    local_minute_last = Short()
    price = Double()
    currency = Keyword()
    seats_available = Short()
    options = Object(TripOptions)
    driver_rating = Double()
    utc_offset_s = Integer()
    compact = Binary(doc_values=True)
    trip_json = Binary(doc_values=True)
    trip = Object(enabled=False)

    class Meta:
        dynamic = MetaField("strict")


# Indexed (or kept in doc values) and never read back from _source: a search reads the compact row from
# doc values, get and reindex read the stored trip. Left out of _source, they cost no stored bytes and
# no JSON parsing when a hit's source is read.
SOURCE_EXCLUDES = ("route_cells", "route_points", "route_cell_days", "corridor_cells", "anchors", "anchor_pairs", "anchor_values", *BY_PLACE, "compact", "trip_json")


def trip_mapping() -> dict[str, Any]:
    """Return the mapping of :class:`TripDocument`, with its version in ``_meta``."""
    mapping: dict[str, Any] = TripDocument._doc_type.mapping.to_dict()
    mapping["_source"] = {"excludes": list(SOURCE_EXCLUDES)}
    mapping["_meta"] = {"tripsearch_mapping": MAPPING_VERSION, "tripsearch_anchors": anchor_places().fingerprint}
    return mapping


def mapping_version(mapping: dict[str, Any]) -> int:
    """Return the version of a mapping read back from Elasticsearch."""
    return int(mapping.get("_meta", {}).get("tripsearch_mapping", 1))


def mapping_anchors(mapping: dict[str, Any]) -> str | None:
    """Return the fingerprint of the anchor places whose entries the documents of a mapping hold."""
    found = mapping.get("_meta", {}).get("tripsearch_anchors")
    return None if found is None else str(found)


def template_name(alias: str) -> str:
    return f"tripsearch-{alias}"


def index_name(alias: str, generation: int) -> str:
    """Return the name of generation ``generation`` of the index behind ``alias``: ``trips-000001``."""
    return f"{alias}-{generation:06d}"


def index_template(alias: str, *, shards: int, replicas: int, refresh_interval: str | None = None) -> dict[str, Any]:
    """Return the body of the composable index template for the versioned indices behind ``alias``."""
    settings: dict[str, Any] = {"number_of_shards": shards, "number_of_replicas": replicas}
    if refresh_interval is not None:
        settings["refresh_interval"] = refresh_interval
    return {
        "index_patterns": [f"{alias}-*"],
        # Patterns of two aliases overlap only when one alias is a prefix of the other; ES refuses
        # overlapping templates of equal priority, and with this one the more specific wins.
        "priority": len(alias),
        "template": {"settings": settings, "mappings": trip_mapping()},
        "_meta": {"tripsearch_mapping": MAPPING_VERSION, "alias": alias},
    }


def tombstone_document(key: str, trip_id: str | None = None) -> bytes:
    """Return the document a delete leaves (written at the trip's version: its ``_version`` keeps it); an occurrence's names its trip."""
    return orjson.dumps({"id": key, "deleted": True} if trip_id is None else {"id": key, "trip_id": trip_id, "deleted": True})


def master_document(trip_id: str, source: bytes) -> bytes:
    """Return the master document of a regular trip: the trip as stored (``source``, one line of JSON), nothing searchable."""
    return orjson.dumps({"id": trip_id, "regular": True, "deleted": False})[:-1] + b',"trip":' + source + b"}"


@gc_paused  # a batch's entries, keywords and fields are hundreds of thousands of small objects, none in a cycle, all freed as it returns
def trips_to_documents(trips: Sequence[Trip], sources: Sequence[bytes | None]) -> list[bytes]:
    """Return the Elasticsearch document of each trip, as one line of JSON.

    ``sources[i]`` is trip ``i`` as stored and returned by ``get``: a JSON
    object on one line, set in the document as it is (not parsed again).
    None marks an occurrence of a regular trip (its id a key of
    :func:`~tripsearch.occurrences.occurrence_key`): its document names
    its trip and leaves the stored trip to the master's.
    """
    n = len(trips)
    if n == 0:
        return []
    cols = TripColumns.from_trips(trips)
    rows = np.arange(n, dtype=np.int64)
    samples = route_to_samples(cols, rows)
    cells = route_to_cells(cols, rows, samples)
    compact = columns_to_compact(cols, cells)
    cell_bounds = np.searchsorted(cells.rows, np.arange(n + 1)).tolist()
    cell_names = cells_to_keywords(cells.cells)
    sentences = route_cell_sentences(cols, samples)
    cell_days = route_cell_days(cols, samples)
    points = route_points(cols)
    times = local_times(cols)
    anchors = anchor_fields(cols)
    day_first, day_last, minute_first, minute_last = (a.tolist() for a in times)
    docs = []
    for i, trip in enumerate(trips):
        driver = trip.driver
        doc: dict[str, Any] = {
            "id": trip.id,
            "deleted": False,
            "status": trip.status,
            "route_cells": sentences[i],
            "route_points": points[i],
            "route_cell_days": cell_days[i],
            "corridor_cells": cell_names[cell_bounds[i] : cell_bounds[i + 1]],
            "anchors": anchors.entries[i],
            "anchor_pairs": anchors.pairs[i],
            "anchor_values": base64.b64encode("\n".join(anchors.values[i]).encode()).decode("ascii"),
            **{name: values[i] for name, values in anchors.by_place.items()},
            "local_days": list(range(day_first[i], day_last[i] + 1)),
            "local_day_first": day_first[i],
            "local_day_span": day_last[i] - day_first[i],
            "local_minute_first": minute_first[i],
            "local_minute_last": minute_last[i],
            "price": trip.price.amount,
            "currency": trip.price.currency,
            "seats_available": trip.seats_available,
            "utc_offset_s": trip.utc_offset_s,
            "options": {name: getattr(trip.options, name) for name in OPTION_NAMES},
            "compact": compact[i],
        }
        if driver is not None and driver.rating is not None:
            doc["driver_rating"] = driver.rating
        source = sources[i]
        if source is None:
            doc["trip_id"] = trip_id_of(trip.id)
            docs.append(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
            continue
        doc["trip_json"] = base64.b64encode(source).decode("ascii")
        docs.append(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)[:-1] + b',"trip":' + source + b"}")
    return docs


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


def compact_to_columns(ids: Sequence[str], blobs: Sequence[str]) -> tuple[TripColumns, CorridorCells]:
    """Return the columns and corridors of trips given in the compact form (the inverse of :func:`columns_to_compact`)."""
    n = len(ids)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        return TripColumns.empty(), CorridorCells(none, none.astype(np.uint64), none, none)
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
        occurrence=occurrence_flags(ids),
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
    corridor = CorridorCells(np.repeat(np.arange(n, dtype=np.int64), nc), cells.astype(np.uint64), segs & 0xFFFF, segs >> 16)
    return cols, corridor
