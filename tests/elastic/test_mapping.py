"""What the Elasticsearch backend sends, checked without a server: template, mapping, documents, requests.

The production mapping (``geo_shape`` route, ``scaled_float`` price) cannot
be tried on the test distribution, which lacks both mappers: it is checked
here against a literal. The candidate request is checked against a literal
too, and by interpreting it over the documents it would run on: it must
select exactly the embedded index's candidates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import Any

import numpy as np
import orjson
import pytest

from tests.geometry import REGIONS, random_queries, random_trips
from tripsearch.columns import TripColumns
from tripsearch.fixtures import generate_trips
from tripsearch.index.cells import disk_to_cells, route_to_cells
from tripsearch.index.elastic import corridor_windows
from tripsearch.index.elastic_mapping import (
    CompactFormatError,
    MappingFeatures,
    TripDocument,
    columns_to_compact,
    compact_to_columns,
    index_template,
    trip_mapping,
    trips_to_documents,
)
from tripsearch.index.memory import MemoryIndex
from tripsearch.model import OPTION_NAMES, parse_trip, trip_to_json
from tripsearch.query.elastic import compile_candidates
from tripsearch.query.execute import candidate_days
from tripsearch.query.model import parse_query

PRODUCTION_TEMPLATE = {
    "index_patterns": ["trips-*"],
    "priority": 5,
    "template": {
        "settings": {"number_of_shards": 3, "number_of_replicas": 1, "refresh_interval": "1s"},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": {"type": "keyword"},
                "version": {"type": "long"},
                "deleted": {"type": "boolean"},
                "status": {"type": "keyword"},
                "origin": {"type": "geo_point"},
                "destination": {"type": "geo_point"},
                "stops": {"type": "geo_point"},
                "route_shape": {"type": "geo_shape", "ignore_malformed": True},
                "route_points": {"type": "geo_point"},
                "corridor_cells": {"type": "keyword"},
                "origin_cells": {"type": "keyword"},
                "destination_cells": {"type": "keyword"},
                "local_days": {"type": "integer"},
                "departure_time": {"type": "date"},
                "arrival_time": {"type": "date"},
                "stop_times": {"type": "date"},
                "price": {"type": "scaled_float", "scaling_factor": 100},
                "currency": {"type": "keyword"},
                "seats_total": {"type": "short"},
                "seats_available": {"type": "short"},
                "options": {
                    "type": "object",
                    "properties": {
                        "instant_booking": {"type": "boolean"},
                        "pets": {"type": "boolean"},
                        "smoking": {"type": "boolean"},
                        "women_only": {"type": "boolean"},
                        "max_two_back": {"type": "boolean"},
                    },
                },
                "driver_id": {"type": "keyword"},
                "driver_rating": {"type": "float"},
                "driver_verified": {"type": "boolean"},
                "compact": {"type": "binary"},
                "trip": {"type": "object", "enabled": False},
            },
            "_meta": {"tripsearch_mapping": 1},
        },
    },
    "_meta": {"tripsearch_mapping": 1, "alias": "trips"},
}


def test_production_template() -> None:
    assert index_template("trips", shards=3, replicas=1, refresh_interval="1s") == PRODUCTION_TEMPLATE


def test_fallback_mapping_drops_geo_shape_and_scaled_float_only() -> None:
    production = trip_mapping()["properties"]
    fallback = trip_mapping(MappingFeatures(geo_shape=False, scaled_float=False))["properties"]
    assert set(production) - set(fallback) == {"route_shape"}
    assert fallback["price"] == {"type": "double"}
    assert {k: v for k, v in production.items() if k not in ("route_shape", "price")} == {k: v for k, v in fallback.items() if k != "price"}
    assert MappingFeatures.of_mapping(trip_mapping()) == MappingFeatures()
    assert MappingFeatures.of_mapping(trip_mapping(MappingFeatures(False, False))) == MappingFeatures(False, False)


def test_template_priorities_never_tie_when_patterns_overlap() -> None:
    # "trips-*" also matches "trips-eu-000001"; ES refuses overlapping templates of equal priority.
    assert index_template("trips", shards=1, replicas=0)["priority"] != index_template("trips-eu", shards=1, replicas=0)["priority"]


def test_options_follow_the_trip_model() -> None:
    assert set(trip_mapping()["properties"]["options"]["properties"]) == set(OPTION_NAMES)


def test_compile_candidates() -> None:
    q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": [], "from_radius_km": 0.5, "to_radius_km": 0.5})
    assert compile_candidates(q, page_size=1000) == {
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"corridor_cells": ["861fb4647ffffff", "861fb4667ffffff", "861fb466fffffff", "861fb4677ffffff", "861fb475fffffff"]}},
                    {"terms": {"corridor_cells": ["861f9020fffffff", "861f9022fffffff", "861f90257ffffff", "861f90277ffffff", "861f902e7ffffff"]}},
                    {"terms": {"local_days": [20788]}},
                    {"term": {"status": "published"}},
                    {"term": {"deleted": False}},
                ]
            }
        },
        "sort": ["_doc"],
        "size": 1000,
        "track_total_hits": True,
        "_source": ["compact"],
    }


def test_compile_candidates_with_the_dates_facet_looks_at_a_week() -> None:
    q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": ["dates"]})
    days = compile_candidates(q)["query"]["bool"]["filter"][2]
    assert days == {"terms": {"local_days": list(range(20785, 20792))}}


def awkward_trips() -> list[dict[str, Any]]:
    """Trips of every awkward region of tests.geometry (loops, antimeridian, poles, no route, odd offsets) plus fixture trips."""
    trips = [t for region in REGIONS for t in random_trips(region, 30, seed=3)]
    return trips + list(generate_trips(200, 5, dt.date(2026, 12, 1), 3))


def test_compact_form_gives_back_the_columns() -> None:
    trips = [parse_trip(t) for t in awkward_trips()]
    cols = TripColumns.from_trips(trips)
    corridor = route_to_cells(cols, np.arange(len(cols)))
    back, back_corridor = compact_to_columns(cols.ids, columns_to_compact(cols, corridor))
    for f in fields(TripColumns):
        want, got = getattr(cols, f.name), getattr(back, f.name)
        if f.name == "ids":
            assert got == want
        else:
            assert got.dtype == want.dtype, f.name
            np.testing.assert_array_equal(got, want, err_msg=f.name)
    np.testing.assert_array_equal(back_corridor.cells, corridor.cells)
    np.testing.assert_array_equal(back_corridor.seg_lo, corridor.seg_lo)
    np.testing.assert_array_equal(back_corridor.seg_hi, corridor.seg_hi)
    np.testing.assert_array_equal(back_corridor.start, np.searchsorted(corridor.rows, np.arange(len(cols) + 1)))


def test_compact_form_refuses_what_it_cannot_read() -> None:
    trips = [parse_trip(t) for t in awkward_trips()[:3]]
    cols = TripColumns.from_trips(trips)
    blobs = columns_to_compact(cols, route_to_cells(cols, np.arange(len(cols))))
    with pytest.raises(CompactFormatError):
        compact_to_columns(["a"], [blobs[0][:-8]])
    with pytest.raises(CompactFormatError):
        compact_to_columns(cols.ids, [blobs[0], blobs[1], blobs[2] + "AAAA"])


@pytest.mark.parametrize("features", [MappingFeatures(), MappingFeatures(geo_shape=False, scaled_float=False)])
def test_documents_fit_the_mapping(features: MappingFeatures) -> None:
    raw = awkward_trips()
    trips = [parse_trip(t) for t in raw]
    sources = [trip_to_json(t) for t in trips]
    docs = [orjson.loads(d) for d in trips_to_documents(trips, sources, features)]
    props = trip_mapping(features)["properties"]
    for doc, trip, source in zip(docs, trips, sources):
        assert set(doc) <= set(props)
        assert set(doc["options"]) <= set(props["options"]["properties"])
        assert doc["trip"] == orjson.loads(source)
        assert doc["id"] == trip.id and doc["version"] == trip.version and doc["deleted"] is False
        assert ("route_shape" in doc) == features.geo_shape
        assert doc["origin"] == [trip.stops[0].lon, trip.stops[0].lat]
        assert doc["route_points"][0] == pytest.approx(doc["origin"], abs=1e-5) or trip.route is not None


def test_document_classes_name_every_field_once() -> None:
    assert set(TripDocument._doc_type.mapping) == set(trip_mapping()["properties"])


def _matches(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    """Evaluate one filter clause of the compiled request on a document, as Elasticsearch would."""
    (kind, spec), = clause.items()
    (field, wanted), = spec.items()
    have = doc.get(field)
    have = have if isinstance(have, list) else [have]
    return bool(set(have) & (set(wanted) if kind == "terms" else {wanted}))


@pytest.mark.parametrize("region", ["europe", "antimeridian", "north_pole"])
def test_compiled_request_selects_the_embedded_candidates(region: str) -> None:
    """Interpreted over the documents, the request plus the corridor windows gives the embedded index's candidates."""
    raw = random_trips(region, 120, seed=11)
    latest: dict[str, dict[str, Any]] = {}
    for t in raw:
        if t["id"] not in latest or t["version"] > latest[t["id"]]["version"]:
            latest[t["id"]] = t
    trips = [parse_trip(t) for t in latest.values()]
    docs = [orjson.loads(d) for d in trips_to_documents(trips, [trip_to_json(t) for t in trips], MappingFeatures(False, False))]
    index = MemoryIndex()
    view = index.apply(trips, [], 1)
    for query in random_queries(list(latest.values()), 150, seed=2):
        q = parse_query(query)
        body = compile_candidates(q)
        hits = [i for i, doc in enumerate(docs) if all(_matches(doc, c) for c in body["query"]["bool"]["filter"])]
        cols, corridor = compact_to_columns([docs[i]["id"] for i in hits], [docs[i]["compact"] for i in hits])
        rows, windows = corridor_windows(corridor, disk_to_cells(*q.from_point, q.from_radius_km), disk_to_cells(*q.to_point, q.to_radius_km))
        got = {cols.ids[r]: w for r, *w in zip(rows.tolist(), *(a.tolist() for a in windows))}
        found = view.candidates(q.from_point, q.from_radius_km, q.to_point, q.to_radius_km, candidate_days(q))
        published = view.cols.status[found.rows] == 0
        want = {view.cols.ids[r]: w for r, *w in zip(*(a[published].tolist() for a in found))}
        assert got == want, query
