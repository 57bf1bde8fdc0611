"""The days and windows of a search between anchors, compiled (no server): search days around a departure_time turned off midnight."""

from __future__ import annotations

from tripsearch.index.elastic.anchored import compile_anchored
from tripsearch.query.model import parse_query


def _minutes(low: int, high: int) -> dict:
    return {"nested": {"path": "anchors", "query": {"bool": {"filter": [{"term": {"anchors.place": "7"}}, {"range": {"anchors.minute": {"gte": low, "lte": high}}}]}}}}


def test_a_departure_time_window_across_midnight_on_two_days() -> None:
    q = parse_query({"from": [48.85341, 2.3488], "to": [45.74906, 4.84789], "date_from": "2026-12-01", "date_to": "2026-12-02", "departure_time": "23:50", "time_delta": 1800, "facets": []})
    post_filter = compile_anchored(q, "7", "3121")["post_filter"]["bool"]["filter"]
    # Days 20788..20789 are searched: from 11:50 on 1 December (12 hours before its 23:50) to 11:49 on the 3rd.
    assert post_filter[0] == {
        "bool": {
            "should": [
                {"term": {"anchor_days": "7@20789"}},
                {"bool": {"filter": [{"term": {"anchor_days": "7@20788"}}, _minutes(710, 1439)]}},
                {"bool": {"filter": [{"term": {"anchor_days": "7@20790"}}, _minutes(0, 709)]}},
            ],
            "minimum_should_match": 1,
        }
    }
    window = {"bool": {"should": [{"range": {"anchors.minute": {"gte": 1400}}}, {"range": {"anchors.minute": {"lte": 20}}}], "minimum_should_match": 1}}
    assert post_filter[1] == {"nested": {"path": "anchors", "query": {"bool": {"filter": [{"term": {"anchors.place": "7"}}, window]}}}}


def test_a_range_of_days_without_a_departure_time_is_its_local_days() -> None:
    q = parse_query({"from": [48.85341, 2.3488], "to": [45.74906, 4.84789], "date_from": "2026-12-01", "date_to": "2026-12-03", "facets": []})
    body = compile_anchored(q, "7", "3121")
    assert body["query"]["bool"]["filter"][0] == {"bool": {"should": [{"term": {"anchor_days": f"7@{d}"}} for d in (20788, 20789, 20790)], "minimum_should_match": 1}}
    assert body["post_filter"] == {"bool": {"filter": [{"range": {"seats_available": {"gte": 1}}}]}}  # no date or time filter: the query holds the days
