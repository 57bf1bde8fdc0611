"""What the Elasticsearch backend sends, checked without a server: template, mapping, documents, requests.

The template and the compiled requests are checked against literals; what
they select on a real cluster is checked in test_parity.py (no match is
ever left out, every trip the shards count as certain matches).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import fields
from typing import Any

import numpy as np
import orjson
import pytest

from tests.geometry import REGIONS, destination, random_trips
from tripsearch.core.columns import TripColumns
from tripsearch.data.fixtures import generate_trips
from tripsearch.index.cells import route_to_cells, route_to_samples
from tripsearch.index.elastic.anchors import ANCHOR_KM, ANCHOR_MIN_POPULATION, RADIUS_CLASSES, Anchors, anchor_fields, anchor_pair, anchor_places, entry_value, place_value, point_key, value_entry
from tripsearch.core.kernels import closest_in_ranges
from tripsearch.data.places import load_places
from tripsearch.index.elastic.encoding import ROUTE_POINT_KM, cells_to_keywords, local_times, route_cell_days, route_cell_sentences, route_points, span_cover
from tripsearch.index.elastic.mapping import (
    CompactFormatError,
    TripDocument,
    columns_to_compact,
    compact_to_columns,
    index_template,
    trip_mapping,
    trips_to_documents,
)
from tripsearch.index.elastic.query import CERTAIN_DATES, compile_search
from tripsearch.geo import haversine_km
from tripsearch.model import OPTION_NAMES, parse_trip, trip_to_json
from tripsearch.query.matching import evaluate
from tripsearch.query.model import parse_query

TEMPLATE = {
    "index_patterns": ["trips-*"],
    "priority": 5,
    "template": {
        "settings": {"number_of_shards": 3, "number_of_replicas": 1, "refresh_interval": "1s"},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": {"type": "keyword"},
                "trip_id": {"type": "keyword"},
                "regular": {"type": "boolean"},
                "deleted": {"type": "boolean"},
                "status": {"type": "keyword"},
                "route_cells": {"type": "text", "analyzer": "whitespace", "index_options": "positions", "norms": False},
                "route_points": {"type": "geo_point"},
                "route_cell_days": {"type": "keyword"},
                "corridor_cells": {"type": "keyword"},
                "anchors": {
                    "type": "nested",
                    "properties": {
                        "place": {"type": "keyword"},
                        "km": {"type": "double"},
                        "time": {"type": "long"},
                        "drop_time": {"type": "long"},
                        "day": {"type": "integer"},
                        "minute": {"type": "short"},
                        "pickup": {"type": "keyword"},
                        "dropoff": {"type": "keyword"},
                    },
                },
                "anchor_pairs": {"type": "keyword"},
                "anchor_values": {"type": "binary", "doc_values": True},
                "anchor_days": {"type": "keyword"},
                "anchor_hours": {"type": "keyword"},
                "anchor_pickups": {"type": "keyword"},
                "anchor_dropoffs": {"type": "keyword"},
                "anchor_radii": {"type": "keyword"},
                "local_days": {"type": "integer"},
                "local_day_first": {"type": "integer"},
                "local_day_span": {"type": "short"},
                "local_minute_first": {"type": "short"},
                "local_minute_last": {"type": "short"},
                "price": {"type": "double"},
                "currency": {"type": "keyword"},
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
                "driver_rating": {"type": "double"},
                "utc_offset_s": {"type": "integer"},
                "compact": {"type": "binary", "doc_values": True},
                "trip_json": {"type": "binary", "doc_values": True},
                "trip": {"type": "object", "enabled": False},
            },
            "_source": {"excludes": ["route_cells", "route_points", "route_cell_days", "corridor_cells", "anchors", "anchor_pairs", "anchor_values", "anchor_days", "anchor_hours", "anchor_pickups", "anchor_dropoffs", "anchor_radii", "compact", "trip_json"]},
            "_meta": {"tripsearch_mapping": 6, "tripsearch_anchors": anchor_places().fingerprint},
        },
    },
    "_meta": {"tripsearch_mapping": 6, "alias": "trips"},
}


def test_template() -> None:
    assert index_template("trips", shards=3, replicas=1, refresh_interval="1s") == TEMPLATE


def test_template_priorities_never_tie_when_patterns_overlap() -> None:
    # "trips-*" also matches "trips-eu-000001"; ES refuses overlapping templates of equal priority.
    assert index_template("trips", shards=1, replicas=0)["priority"] != index_template("trips-eu", shards=1, replicas=0)["priority"]


def test_options_follow_the_trip_model() -> None:
    assert set(trip_mapping()["properties"]["options"]["properties"]) == set(OPTION_NAMES)


PARIS_CELLS = ["861fb4647ffffff", "861fb4667ffffff", "861fb466fffffff", "861fb4677ffffff", "861fb475fffffff"]
LYON_CELLS = ["861f9020fffffff", "861f9022fffffff", "861f90257ffffff", "861f90277ffffff", "861f902e7ffffff"]
PARIS_SPAN = ["861fb4297ffffff", "861fb460fffffff", "861fb462fffffff", "861fb4647ffffff", "861fb4657ffffff", "861fb4667ffffff", "861fb466fffffff", "861fb4677ffffff", "861fb474fffffff", "861fb475fffffff"]
LYON_SPAN = ["861f90207ffffff", "861f9020fffffff", "861f9021fffffff", "861f9022fffffff", "861f90247ffffff", "861f90257ffffff", "861f9025fffffff", "861f90277ffffff", "861f902e7ffffff", "861f902efffffff", "861f9035fffffff"]


def span(first: list[str], then: list[str]) -> dict[str, Any]:
    return {
        "span_near": {
            "clauses": [{"span_or": {"clauses": [{"span_term": {"route_cells": c}} for c in cells]}} for cells in (first, then)],
            "slop": 2**31 - 1,
            "in_order": True,
        }
    }


def test_compile_search_without_facets_filters_in_the_shards() -> None:
    q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": [], "from_radius_km": 0.5, "to_radius_km": 0.5, "seats": 2, "max_price": 30, "options": ["pets"], "time_from": "07:00", "time_to": "09:30"})
    plan = compile_search(q, page_size=1000)
    assert plan.band is None
    assert plan.candidates == {
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"corridor_cells": PARIS_CELLS}},
                    {"terms": {"corridor_cells": LYON_CELLS}},
                    span(PARIS_SPAN, LYON_SPAN),
                    {"geo_distance": {"distance": "3005.000m", "route_points": {"lat": 48.8566, "lon": 2.3522}}},
                    {"geo_distance": {"distance": "3005.000m", "route_points": {"lat": 45.764, "lon": 4.8357}}},
                    {"term": {"local_days": 20788}},
                    {"term": {"status": "published"}},
                    {"term": {"deleted": False}},
                    {"range": {"seats_available": {"gte": 2}}},
                    {"range": {"price": {"lte": 30.0}}},
                    {"term": {"options.pets": True}},
                ],
                # a one-day trip with no minute between departure and arrival in 07:00..09:30
                "must_not": [
                    {"bool": {"filter": [
                        {"term": {"local_day_span": 0}},
                        {"bool": {"should": [{"range": {"local_minute_last": {"lt": 420}}}, {"range": {"local_minute_first": {"gt": 570}}}], "minimum_should_match": 1}},
                    ]}}
                ],
            }
        },
        "sort": ["_doc"],
        "size": 1000,
        "track_total_hits": True,
        "stored_fields": "_none_",
        "docvalue_fields": ["id", "compact"],
    }


def test_compile_search_leaves_to_this_process_the_filters_a_facet_ignores() -> None:
    q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": ["price", "options"], "seats": 2, "max_price": 30, "options": ["pets"]})
    filters = compile_search(q).candidates["query"]["bool"]["filter"]
    assert filters[-1] == {"range": {"seats_available": {"gte": 2}}}, "only seats is pushed: price and options are facets here"


def test_compile_search_with_the_dates_facet_counts_certain_trips_of_the_other_days() -> None:
    q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": ["dates"], "min_rating": 4.5})
    plan = compile_search(q)
    others = [20785, 20786, 20787, 20789, 20790, 20791]
    assert plan.candidates["query"]["bool"]["filter"][5] == {"term": {"local_days": 20788}}
    assert plan.band is not None
    band = plan.band["query"]["bool"]
    assert band["filter"][5] == {"terms": {"local_days": others}}
    assert band["filter"][-1] == {"range": {"driver_rating": {"gte": 4.5}}}, "the band applies every filter but the date"
    in_order = band["filter"][2]["span_near"]
    paris_span = [c["span_term"]["route_cells"] for c in in_order["clauses"][0]["span_or"]["clauses"]]
    certain = {
        "bool": {
            "filter": [
                {"geo_distance": {"distance": "9995.000m", "route_points": {"lat": 48.8566, "lon": 2.3522}}},
                {"geo_distance": {"distance": "9995.000m", "route_points": {"lat": 45.764, "lon": 4.8357}}},
            ],
            "must_not": [{"span_near": {**in_order, "clauses": in_order["clauses"][::-1]}}],  # no cell near Lyon before one near Paris
        }
    }

    def on(day: int) -> dict[str, Any]:
        return {
            "bool": {
                "filter": [{"terms": {"route_cell_days": [f"{c}@{day}" for c in paris_span]}}, {"range": {"local_day_span": {"lte": 1}}}],
                "must_not": [{"terms": {"route_cell_days": [f"{c}@{day - 1}" for c in paris_span] + [f"{c}@{day + 1}" for c in paris_span]}}],
            }
        }

    assert band["must_not"] == [{"term": {"local_days": 20788}}, {"bool": {"filter": [certain], "should": [on(d) for d in others], "minimum_should_match": 1}}]
    agg = plan.candidates["aggs"][CERTAIN_DATES]
    assert agg["global"] == {}
    assert agg["aggs"]["certain"]["filter"] == {"bool": {"filter": band["filter"] + [certain], "must_not": [{"term": {"local_days": 20788}}]}}
    assert agg["aggs"]["certain"]["aggs"] == {"days": {"filters": {"filters": {str(d): on(d) for d in others}}}}


def test_the_certain_set_is_empty_below_the_geo_tolerance() -> None:
    q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "from_radius_km": 0.001})
    plan = compile_search(q)
    assert "aggs" not in plan.candidates and plan.band is not None
    assert plan.band["query"]["bool"]["must_not"] == [{"term": {"local_days": 20788}}]


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
    np.testing.assert_array_equal(back_corridor.rows, corridor.rows)


def test_compact_form_refuses_what_it_cannot_read() -> None:
    trips = [parse_trip(t) for t in awkward_trips()[:3]]
    cols = TripColumns.from_trips(trips)
    blobs = columns_to_compact(cols, route_to_cells(cols, np.arange(len(cols))))
    with pytest.raises(CompactFormatError):
        compact_to_columns(["a"], [blobs[0][:-8]])
    with pytest.raises(CompactFormatError):
        compact_to_columns(cols.ids, [blobs[0], blobs[1], blobs[2] + "AAAA"])


def test_documents_fit_the_mapping() -> None:
    raw = awkward_trips()
    trips = [parse_trip(t) for t in raw]
    sources = [trip_to_json(t) for t in trips]
    docs = [orjson.loads(d) for d in trips_to_documents(trips, sources)]
    props = trip_mapping()["properties"]
    cols = TripColumns.from_trips(trips)
    times = local_times(cols)
    for i, (doc, trip, source) in enumerate(zip(docs, trips, sources)):
        assert set(doc) <= set(props)
        assert set(doc["options"]) <= set(props["options"]["properties"])
        assert doc["trip"] == orjson.loads(source)
        assert doc["id"] == trip.id and doc["deleted"] is False
        assert doc["local_days"] == list(range(doc["local_day_first"], doc["local_day_first"] + doc["local_day_span"] + 1))
        assert (doc["local_day_first"], doc["local_minute_first"], doc["local_minute_last"]) == (times.day_first[i], times.minute_first[i], times.minute_last[i])
        departure = trip.departure_time
        assert doc["local_minute_first"] == departure.hour * 60 + departure.minute


def test_document_classes_name_every_field_once() -> None:
    assert set(TripDocument._doc_type.mapping) == set(trip_mapping()["properties"])


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_route_points_are_close_enough_together(region: str) -> None:
    """Every point of a route is within ROUTE_POINT_KM / 2 of a route point: consecutive ones are at most that far apart, ends included."""
    cols = TripColumns.from_trips([parse_trip(t) for t in random_trips(region, 40, seed=5)])
    for row, points in enumerate(route_points(cols)):
        lon, lat = np.array(points).T
        gaps = [haversine_km(lat[k], lon[k], lat[k + 1], lon[k + 1]) for k in range(len(lat) - 1)]
        assert max(gaps, default=0.0) <= ROUTE_POINT_KM + 1e-6
        first, last = cols.vert_start[row], cols.vert_start[row + 1] - 1
        for at, (plat, plon) in ((first, (lat[0], lon[0])), (last, (lat[-1], lon[-1]))):
            assert haversine_km(cols.vert_lat[at] / 1e7, cols.vert_lon[at] / 1e7, plat, plon) < 1e-3


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_route_sentence_is_the_samples_cells_in_order(region: str) -> None:
    cols = TripColumns.from_trips([parse_trip(t) for t in random_trips(region, 40, seed=6)])
    owner, cells, _, _, _ = route_to_samples(cols, np.arange(len(cols)))
    for row, sentence in enumerate(route_cell_sentences(cols)):
        mine = [format(c, "x") for c in cells[owner == row].tolist()]
        assert sentence.split() == [c for k, c in enumerate(mine) if k == 0 or c != mine[k - 1]]


def _in_order(sentence: list[str], first: set[str], then: set[str]) -> bool:
    """Interpret the order clause of the candidates request on one route sentence, as Lucene would."""
    seen_first = False
    for token in sentence:
        if token in first and token in then:
            return True  # a cell near both places
        if seen_first and token in then:
            return True
        seen_first = seen_first or token in first
    return False


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_order_clause_never_drops_a_geometric_match_and_sure_days_are_right(region: str) -> None:
    """For places near random route points, every trip the exact rules 1 and 2 select passes the route sentence clause,
    and picks up on the day of its samples near ``from`` when they have one."""
    trips = [parse_trip(t) for t in random_trips(region, 60, seed=8)]
    cols = TripColumns.from_trips(trips)
    sentences = [s.split() for s in route_cell_sentences(cols)]
    cell_days = route_cell_days(cols)
    rows = np.arange(len(cols), dtype=np.int64)
    rng = np.random.default_rng(8)
    checked = one_day = 0
    for _ in range(400):
        row = int(rng.integers(len(cols)))
        first, last = int(cols.vert_start[row]), int(cols.vert_start[row + 1]) - 1
        a, b = sorted(rng.integers(first, last + 1, size=2).tolist())
        radius = float(rng.choice([0.0, 0.3, 2.0, 10.0]))
        places = [(cols.vert_lat[k] / 1e7 + rng.normal(0, 0.01), cols.vert_lon[k] / 1e7 + rng.normal(0, 0.01)) for k in (a, b)]
        places = [(float(np.clip(lat, -90, 90)), float((lon + 180) % 360 - 180)) for lat, lon in places]
        q = parse_query({"from": list(places[0]), "to": list(places[1]), "date": "2026-12-01", "from_radius_km": radius, "to_radius_km": radius})
        ev = evaluate(cols, rows, q)
        near_from = set(cells_to_keywords(span_cover(*places[0], radius)))
        near_to = set(cells_to_keywords(span_cover(*places[1], radius)))
        for r in np.flatnonzero(ev.geo & (cols.status == 0)).tolist():
            assert _in_order(sentences[r], near_from, near_to), (region, q, cols.ids[r])
            days_near = {int(word.split("@")[1]) for word in cell_days[r] if word.split("@")[0] in near_from}
            if len(days_near) == 1:  # what the shards take for a sure pickup day
                assert ev.local_day[r] == days_near.pop(), (region, q, cols.ids[r])
                one_day += 1
            checked += 1
    assert checked > 50 and one_day > 25, "the places are drawn on routes: many trips must match, or this proves little"


def _region_anchors(region: str, seed: int) -> Anchors:
    """Return anchors scattered around a region's centre (where its random routes wander), the centre among them."""
    rng = np.random.default_rng(seed)
    centre = REGIONS[region]
    points = [centre] + [destination(*centre, float(rng.uniform(0, 360)), float(rng.uniform(0, 120))) for _ in range(40)]
    return Anchors.of([(round(lat, 5), round(lon, 5)) for lat, lon in points])


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_anchor_entries_are_what_a_search_computes(region: str) -> None:
    """Every anchor within ANCHOR_KM of a route has an entry and no other does; entries and pairs hold what the exact rules compute."""
    trips = [parse_trip(t) for t in random_trips(region, 60, seed=17)]
    cols = TripColumns.from_trips(trips)
    anchors = _region_anchors(region, seed=17)
    found = anchor_fields(cols, anchors)
    n_places = len(anchors.lat)
    rows = np.repeat(np.arange(len(cols)), n_places)
    places = np.tile(np.arange(n_places), len(cols))
    # Brute force: every place against every whole route, nothing pruned.
    km, _, _, _ = closest_in_ranges(cols.vert_lat, cols.vert_lon, cols.vert_cum, cols.vert_start[rows], cols.vert_start[rows + 1] - 1, anchors.lat[places], anchors.lon[places], False, np.inf)
    near = km.reshape(len(cols), n_places) <= ANCHOR_KM
    point_of = {key: (float(anchors.lat[i]), float(anchors.lon[i])) for i, key in enumerate(sorted(anchors.by_point.values(), key=int))}
    pairs_checked = 0
    for i, entries in enumerate(found.entries):
        assert sorted(int(e["place"]) for e in entries) == np.flatnonzero(near[i]).tolist()
        by_place = {e["place"]: e for e in entries}
        for f, t in itertools.permutations(by_place, 2):
            e_from, e_to = by_place[f], by_place[t]
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(e_from["day"]))
            q = parse_query({"from": point_of[f], "to": point_of[t], "date": day.isoformat(), "from_radius_km": ANCHOR_KM, "to_radius_km": ANCHOR_KM, "facets": []})
            ev = evaluate(cols, np.array([i]), q)
            if trips[i].status == "published":  # the rules measure the dropoff of published trips only
                assert (anchor_pair(f, t) in found.pairs[i]) == bool(ev.geo[0]), (i, f, t)
            assert e_from["km"] == ev.pickup.distance_km[0]
            assert e_from["pickup"] == point_key((float(ev.pickup.lat[0]), float(ev.pickup.lon[0])))
            if ev.geo[0]:
                pairs_checked += 1
                assert e_to["km"] == ev.dropoff.distance_km[0]
                assert e_to["dropoff"] == point_key((float(ev.dropoff.lat[0]), float(ev.dropoff.lon[0])))
                assert (e_from["time"], e_to["drop_time"]) == (ev.pickup_time[0], ev.dropoff_time[0])
                assert (e_from["day"], e_from["minute"]) == (ev.local_day[0], ev.local_minute[0])
    assert pairs_checked > 20
    assert all(value_entry(entry_value(e)) == e for entries in found.entries for e in entries)
    assert found.values == [[entry_value(e) for e in entries] for entries in found.entries]
    by_place = {"anchor_days": "day", "anchor_hours": "minute", "anchor_pickups": "pickup", "anchor_dropoffs": "dropoff"}
    for name, key in by_place.items():
        want = [[place_value(str(e["place"]), e[key] // 60 if name == "anchor_hours" else e[key]) for e in entries] for entries in found.entries]  # type: ignore[operator]
        assert found.by_place[name] == want, name
    assert found.by_place["anchor_radii"] == [[place_value(str(e["place"]), r) for e in entries for r in RADIUS_CLASSES if e["km"] <= r] for entries in found.entries]  # type: ignore[operator]
    assert any(len(radii) < len(RADIUS_CLASSES) * len(entries) for radii, entries in zip(found.by_place["anchor_radii"], found.entries))


def test_anchor_places_are_the_big_cities() -> None:
    anchors = anchor_places()
    paris = next(p for p in load_places() if p.name == "Paris")
    assert anchors.key_of((paris.lat, paris.lon)) is not None
    assert anchors.key_of((paris.lat + 1e-5, paris.lon)) is None
    assert len(anchors.lat) == len({(p.lat, p.lon) for p in load_places(ANCHOR_MIN_POPULATION) if p.population >= ANCHOR_MIN_POPULATION})
